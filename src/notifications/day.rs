//! The account's one gentle message a day (`accounts.last_nudge_at`).
//!
//! A silence nudge and a questionnaire's ask share it: whichever goes out
//! first takes the day, and the other waits for the member's next moment
//! (or rides along in the same message). Both take it here, conditional on
//! the value they read when they decided, so two messages decided at once
//! (by two instances, or a nudge and an ask) cannot both go out: on
//! PostgreSQL the second update waits for the first transaction and then
//! finds the day taken; on SQLite writers take turns.

use sqlx::AnyConnection;

/// Stands for "no message yet" in the comparison (times are never negative).
const NEVER: i64 = -1;

/// Takes the day for a message going out at `now`, if no other message
/// took it since `read` (the account's `last_nudge_at` as the caller read
/// it). Returns whether the day is now this message's.
pub async fn take(
    conn: &mut AnyConnection,
    account_id: &str,
    read: Option<i64>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE accounts SET last_nudge_at = $1 WHERE id = $2 AND COALESCE(last_nudge_at, $3) = $4",
    )
    .bind(now)
    .bind(account_id)
    .bind(NEVER)
    .bind(read.unwrap_or(NEVER))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Nothing went out after all: the day is free again (back to `read`), if
/// it is still the one this message took at `now`.
pub async fn give_back(
    conn: &mut AnyConnection,
    account_id: &str,
    read: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET last_nudge_at = $1 WHERE id = $2 AND last_nudge_at = $3")
        .bind(read)
        .bind(account_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The account's last message as it stands now (after [`take`] found the
/// day taken: the moment to count the next one from).
pub async fn last(conn: &mut AnyConnection, account_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let last: Option<Option<i64>> =
        sqlx::query_scalar("SELECT last_nudge_at FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(last.flatten())
}

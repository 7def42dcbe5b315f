//! Carrying out an erasure: one transaction per account, claimed under a
//! lease like every job's work, so a crash rolls it back whole and the next
//! claim does it again; running it twice finds nothing left to do.
//!
//! What goes and what stays (README, "Privacy and accountability"):
//! - deleted: sessions and tokens, devices and their pending pushes, codes,
//!   notification preferences, idempotency records, the member's own
//!   notifications, check-ins (moods, notes, contact requests), reactions,
//!   sign-in failures under their login name, exports of their data,
//!   questionnaires with their answers and scores;
//! - posts become tombstones (no text; threads still read), or with
//!   `keep_posts` stay under the name "former member"; either way every
//!   membership is left and renamed "former member", so nothing shown
//!   links the posts to the person; a synced feed receives the change;
//! - alerts and silence history stay for the organisation's accountability,
//!   without the worker's free-text note; other people's notifications
//!   about the member keep their place but lose their text;
//! - the account stays as an anonymous stub (no name, e-mail, login name or
//!   password), so that ids elsewhere (alerts, access-log entries) point
//!   at no one;
//! - access-log entries stay as they are: they hold only ids.

use std::time::Duration;

use crate::circles::membership;
use crate::ids::{AccountId, CircleId, MembershipId};
use crate::jobs::Job;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::cache::Scope;
use crate::store::claim::Queue;

/// Erasures wait in `due_at`; a claim holds for 5 minutes.
pub const QUEUE: Queue = Queue {
    table: "erasures",
    key: "account_id",
    due: "due_at",
    lease: "lease_until",
    lease_ms: 300_000,
    waiting: Some("erased_at IS NULL"),
    claimable: None,
    on_claim: None,
};

/// The erasure job: every minute, the erasures that are due.
pub struct Erasures;

impl Job for Erasures {
    type Progress = usize;

    fn name(&self) -> &'static str {
        "erasure"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn run_once(&self, state: &AppState) -> Result<usize, sqlx::Error> {
        let now = state.now_ms();
        let due = state.store.claim_due(&QUEUE, now, 10, None).await?;
        for account_id in &due {
            let mut tx = state.store.begin().await?;
            erase(&mut tx, account_id, now).await?;
            tx.commit().await?;
            // Ids only: nothing about the person.
            tracing::info!(account_id = %account_id, "account erased at the member's request");
        }
        Ok(due.len())
    }
}

/// Erases `account_id` as its erasure request says. Idempotent.
pub async fn erase(tx: &mut Tx, account_id: &str, now: i64) -> Result<(), sqlx::Error> {
    let keep_posts: Option<i64> = sqlx::query_scalar(
        "SELECT keep_posts FROM erasures WHERE account_id = $1 AND erased_at IS NULL",
    )
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(keep_posts) = keep_posts else {
        return Ok(());
    };
    tx.touch(Scope::Account(account_id.to_owned()));
    let memberships: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT m.id, m.circle_id, m.pseudonym, c.language FROM memberships m
         JOIN circles c ON c.id = m.circle_id WHERE m.account_id = $1",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await?;

    for (membership_id, circle_id, pseudonym, language) in &memberships {
        erase_membership(
            tx,
            membership_id,
            circle_id,
            pseudonym,
            language,
            keep_posts != 0,
            now,
        )
        .await?;
    }
    erase_account(tx, account_id, now).await?;
    sqlx::query("UPDATE erasures SET erased_at = $1, lease_until = NULL WHERE account_id = $2")
        .bind(now)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// "Former member" in the circle's language.
fn former_member(language: &str) -> &'static str {
    match language {
        "en" => "Former member",
        _ => "Oud-lid",
    }
}

async fn erase_membership(
    tx: &mut Tx,
    membership_id: &str,
    circle_id: &str,
    pseudonym: &str,
    language: &str,
    keep_posts: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (circle, membership) = (CircleId::from(circle_id), MembershipId::from(membership_id));
    // The posts: tombstones, or kept under "former member"; a synced feed
    // receives them as changed.
    let posts: Vec<String> =
        sqlx::query_scalar("SELECT id FROM posts WHERE author_membership_id = $1")
            .bind(membership_id)
            .fetch_all(&mut **tx)
            .await?;
    for post in &posts {
        let seq = crate::posts::next_change(tx, circle_id).await?;
        let sql = if keep_posts {
            "UPDATE posts SET hidden_reason = NULL, updated_at = $1, change_seq = $2 WHERE id = $3"
        } else {
            "UPDATE posts SET body = '', deleted_at = COALESCE(deleted_at, $1), erased_at = $1,
                    hidden_reason = NULL, updated_at = $1, change_seq = $2 WHERE id = $3"
        };
        sqlx::query(sql)
            .bind(now)
            .bind(seq)
            .bind(post)
            .execute(&mut **tx)
            .await?;
    }
    // Reactions count on others' posts: the circle's feed changes.
    let reacted: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT post_id FROM reactions WHERE membership_id = $1")
            .bind(membership_id)
            .fetch_all(&mut **tx)
            .await?;
    sqlx::query("DELETE FROM reactions WHERE membership_id = $1")
        .bind(membership_id)
        .execute(&mut **tx)
        .await?;
    for post in &reacted {
        let seq = crate::posts::next_change(tx, circle_id).await?;
        sqlx::query("UPDATE posts SET change_seq = $1 WHERE id = $2")
            .bind(seq)
            .bind(post)
            .execute(&mut **tx)
            .await?;
    }
    // Check-ins become tombstones that a sync hands out (numbered anew),
    // so that apps holding copies drop them; nothing the member said stays.
    sqlx::query(
        "UPDATE checkins SET kind = 'ok', mood = NULL, note = NULL, wants_contact = 0,
                             removed_at = $1, change_seq = 0
         WHERE membership_id = $2",
    )
    .bind(now)
    .bind(membership_id)
    .execute(&mut **tx)
    .await?;
    // Alerts stay for the organisation's record, without the free text.
    sqlx::query(
        "UPDATE alerts SET resolution_note = NULL, updated_at = $1 WHERE membership_id = $2",
    )
    .bind(now)
    .bind(membership_id)
    .execute(&mut **tx)
    .await?;
    // Other people's notifications about the member, or naming them (a
    // reply, a reaction, an alert): they keep their place, not their text.
    let pattern = format!("%{}%", like_escape(pseudonym));
    // Pending pushes of those first: once neutralised, the text no longer
    // names the member and the condition would miss them.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM deliveries WHERE status = 'pending'
             AND notification_id IN (SELECT id FROM notifications WHERE {ABOUT_MEMBER})"
    )))
    .bind(membership_id)
    .bind(circle_id)
    .bind(&pattern)
    .execute(&mut **tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET
             title = CASE WHEN locale = 'en' THEN 'About a former member' ELSE 'Over een oud-lid' END,
             body = CASE WHEN locale = 'en' THEN 'This was about someone who left Kring.'
                         ELSE 'Dit ging over iemand die Kring verlaten heeft.' END,
             updated_at = $4, change_seq = 0
         WHERE {ABOUT_MEMBER}"
    )))
    .bind(membership_id)
    .bind(circle_id)
    .bind(&pattern)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    membership::leave(tx, &circle, &membership, now)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    membership::rename_former(tx, &circle, &membership, former_member(language), now).await
}

/// Notifications about the membership `$1` of circle `$2`, or naming its
/// pseudonym (`$3`, a LIKE pattern): for it, replies to its posts,
/// reactions to them, alerts about it.
const ABOUT_MEMBER: &str = "membership_id = $1
    OR post_id IN (SELECT id FROM posts WHERE author_membership_id = $1)
    OR (circle_id = $2 AND (title LIKE $3 ESCAPE '\\' OR body LIKE $3 ESCAPE '\\'))";

/// `%` and `_` match themselves in a LIKE pattern built from a name.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

async fn erase_account(tx: &mut Tx, account_id: &str, now: i64) -> Result<(), sqlx::Error> {
    let login: Option<Option<String>> =
        sqlx::query_scalar("SELECT login_name FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(login) = login.flatten() {
        for table in ["login_failures", "login_throttles"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE identifier = $1"
            )))
            .bind(format!("login:{login}"))
            .execute(&mut **tx)
            .await?;
        }
    }
    let sessions = "SELECT id FROM sessions WHERE account_id = $1";
    for sql in [
        format!("DELETE FROM access_tokens WHERE session_id IN ({sessions})"),
        format!("DELETE FROM refresh_tokens WHERE session_id IN ({sessions})"),
        "DELETE FROM sessions WHERE account_id = $1".to_owned(),
        "DELETE FROM deliveries WHERE device_id IN (SELECT id FROM devices WHERE account_id = $1)"
            .to_owned(),
        "DELETE FROM deliveries WHERE notification_id IN (SELECT id FROM notifications WHERE account_id = $1)"
            .to_owned(),
        "DELETE FROM devices WHERE account_id = $1".to_owned(),
        "DELETE FROM notifications WHERE account_id = $1".to_owned(),
        "DELETE FROM notification_preferences WHERE account_id = $1".to_owned(),
        "DELETE FROM account_codes WHERE account_id = $1".to_owned(),
        "DELETE FROM idempotency_keys WHERE scope = 'account:' || $1".to_owned(),
        "DELETE FROM sync_heads WHERE stream = 'notifications:' || $1".to_owned(),
        // Exports hold a copy of everything: gone with the rest.
        "DELETE FROM exports WHERE account_id = $1".to_owned(),
        // Questionnaires and their answers: health data of the member's own.
        "DELETE FROM questionnaire_answers WHERE questionnaire_id IN
             (SELECT id FROM questionnaires WHERE account_id = $1)"
            .to_owned(),
        "DELETE FROM questionnaires WHERE account_id = $1".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .execute(&mut **tx)
            .await?;
    }
    crate::accounts::create::erase_to_stub(tx, &AccountId::from(account_id), now).await
}

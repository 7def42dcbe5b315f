//! The one place accounts are created: members who join with an invite, and
//! staff made by a coordinator or by `kring admin create-organisation`.

use sqlx::AnyConnection;

use crate::error::{ApiError, ApiResult, Code};
use crate::http::Role;
use crate::ids::AccountId;

use super::types::{Locale, TimeZoneName};

/// A member's account: no e-mail; a login name and password only when they
/// chose to sign in with them (else a recovery code brings them back).
pub struct NewMember<'a> {
    pub organisation_id: &'a str,
    pub login_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub locale: Locale,
    pub time_zone: &'a TimeZoneName,
}

/// Creates a member's account and returns its id; 409 `login_name_taken`.
pub async fn member(
    conn: &mut AnyConnection,
    new: NewMember<'_>,
    now: i64,
) -> ApiResult<AccountId> {
    let id = AccountId::generate();
    sqlx::query(
        "INSERT INTO accounts (id, organisation_id, role, login_name, password_hash, locale, time_zone, created_at)
         VALUES ($1, $2, 'member', $3, $4, $5, $6, $7)",
    )
    .bind(id.as_str())
    .bind(new.organisation_id)
    .bind(new.login_name)
    .bind(new.password_hash)
    .bind(new.locale.as_str())
    .bind(new.time_zone.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        ApiError::conflict_if_taken(e, Code::LoginNameTaken, "This login name is taken; choose another")
    })?;
    Ok(id)
}

/// A staff member's account: they set a password with a setup code.
pub struct NewStaff<'a> {
    pub organisation_id: &'a str,
    pub role: Role,
    pub email: &'a str,
    pub display_name: &'a str,
    pub locale: Locale,
    pub time_zone: &'a TimeZoneName,
}

/// Creates a staff account with id `id`; 409 `email_taken`.
pub async fn staff(
    conn: &mut AnyConnection,
    id: &AccountId,
    new: NewStaff<'_>,
    now: i64,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO accounts (id, organisation_id, role, display_name, email, locale, time_zone, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(new.organisation_id)
    .bind(new.role.as_str())
    .bind(new.display_name)
    .bind(new.email)
    .bind(new.locale.as_str())
    .bind(new.time_zone.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        ApiError::conflict_if_taken(
            e,
            Code::EmailTaken,
            "An account with this e-mail address already exists",
        )
    })?;
    Ok(())
}

/// Reduces an erased account to an anonymous stub: no name, e-mail, login
/// name, password or settings of the person, signed in nowhere; only its id
/// stays, so that alerts and access-log entries point at no one.
pub async fn erase_to_stub(
    tx: &mut crate::store::Tx,
    account: &AccountId,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET display_name = NULL, email = NULL, login_name = NULL,
                password_hash = NULL, locale = 'nl', time_zone = 'Europe/Amsterdam',
                reminder_time_min = NULL, last_nudge_at = NULL, last_nudge_text = NULL,
                deactivated_at = COALESCE(deactivated_at, $2), erased_at = $2
         WHERE id = $1",
    )
    .bind(account.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

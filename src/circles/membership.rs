//! The one module that writes memberships: enrol (join or be added, also
//! coming back), change a pseudonym, a break or nudges, consent, leave, and
//! leave every circle. Each function marks the circle's read-cache scope and
//! brings the member's silence schedule up to date itself, so no caller can
//! forget either.

use crate::error::{ApiError, ApiResult, Code};
use crate::ids::{AccountId, CircleId, MembershipId};
use crate::silence::engine;
use crate::store::Tx;
use crate::store::cache::Scope;

use super::pseudonym::Pseudonym;

/// How someone enters a circle.
#[derive(Debug, Clone, Copy)]
pub enum EnrolAs {
    /// A member, consenting to this agreement version.
    Member { consent_version: i64 },
    /// A worker (staff consent to nothing).
    Worker,
}

/// Puts an account in a circle, or brings a former member or worker back
/// (with a new pseudonym, a fresh start of the silence, no break). Returns
/// the membership id. 409 `already_in_circle` when they are in it now,
/// 409 `pseudonym_taken` when the name looks like one in use.
pub async fn enrol(
    tx: &mut Tx,
    circle: &CircleId,
    account: &AccountId,
    pseudonym: &Pseudonym,
    role: EnrolAs,
    now: i64,
) -> ApiResult<MembershipId> {
    let (circle_id, account_id) = (circle.as_str(), account.as_str());
    // A returning member comes back with a new pseudonym on their posts.
    tx.touch(Scope::Circle(circle_id.to_owned()));
    let (role_name, consent) = match role {
        EnrolAs::Member { consent_version } => ("member", Some(consent_version)),
        EnrolAs::Worker => ("worker", None),
    };
    let consented_at = consent.map(|_| now);
    let existing: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT id, left_at FROM memberships WHERE circle_id = $1 AND account_id = $2",
    )
    .bind(circle_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    let written = match existing {
        Some((_, None)) => {
            return Err(ApiError::new(
                Code::AlreadyInCircle,
                match role {
                    EnrolAs::Member { .. } => "You are already in this circle",
                    EnrolAs::Worker => "This person is already in the circle",
                },
            ));
        }
        Some((id, Some(_))) => sqlx::query(
            "UPDATE memberships SET left_at = NULL, role = $1, pseudonym = $2, pseudonym_key = $3,
                    consent_version = $4, consented_at = $5, away_until = NULL,
                    last_activity_at = $6, last_read_at = $6, joined_at = $6, updated_at = $6
             WHERE id = $7",
        )
        .bind(role_name)
        .bind(pseudonym.as_str())
        .bind(pseudonym.key())
        .bind(consent)
        .bind(consented_at)
        .bind(now)
        .bind(&id)
        .execute(&mut **tx)
        .await
        .map(|_| id),
        None => {
            let id = MembershipId::generate().into_string();
            sqlx::query(
                "INSERT INTO memberships (id, circle_id, account_id, role, pseudonym, pseudonym_key,
                    consent_version, consented_at, last_activity_at, last_read_at, joined_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9, $9)",
            )
            .bind(&id)
            .bind(circle_id)
            .bind(account_id)
            .bind(role_name)
            .bind(pseudonym.as_str())
            .bind(pseudonym.key())
            .bind(consent)
            .bind(consented_at)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map(|_| id)
        }
    };
    let id = written.map_err(pseudonym_taken)?;
    engine::reschedule(tx, &id, now).await?;
    Ok(MembershipId::from(id))
}

/// What a member changes about their own membership; `None` leaves a field.
#[derive(Debug, Default)]
pub struct Changes {
    pub pseudonym: Option<Pseudonym>,
    pub nudges_enabled: Option<bool>,
    /// `Some(Some(t))`: away until `t`; `Some(None)`: the break ends now.
    pub away_until: Option<Option<i64>>,
}

/// Writes `changes` to a membership of `circle_id`: the pseudonym and
/// nudges in one statement, then the break, then the schedule.
pub async fn change(
    tx: &mut Tx,
    circle: &CircleId,
    membership: &MembershipId,
    changes: Changes,
    now: i64,
) -> ApiResult<()> {
    let (circle_id, membership_id) = (circle.as_str(), membership.as_str());
    // Posts and member lists show the pseudonym.
    tx.touch(Scope::Circle(circle_id.to_owned()));
    if changes.pseudonym.is_some() || changes.nudges_enabled.is_some() {
        sqlx::query(
            "UPDATE memberships SET pseudonym = COALESCE($1, pseudonym),
                    pseudonym_key = COALESCE($2, pseudonym_key),
                    nudges_enabled = COALESCE($3, nudges_enabled), updated_at = $4
             WHERE id = $5",
        )
        .bind(changes.pseudonym.as_ref().map(Pseudonym::as_str))
        .bind(changes.pseudonym.as_ref().map(Pseudonym::key))
        .bind(changes.nudges_enabled.map(i64::from))
        .bind(now)
        .bind(membership_id)
        .execute(&mut **tx)
        .await
        .map_err(pseudonym_taken)?;
    }
    match changes.away_until {
        // A break begins, moves or ends; the engine restarts the silence.
        Some(until) => engine::set_away(tx, membership_id, until, now).await?,
        None => engine::reschedule(tx, membership_id, now).await?,
    }
    Ok(())
}

/// Records a member's consent to agreement `version`.
pub async fn consent(
    tx: &mut Tx,
    circle: &CircleId,
    membership: &MembershipId,
    version: i64,
    now: i64,
) -> ApiResult<()> {
    let (circle_id, membership_id) = (circle.as_str(), membership.as_str());
    tx.touch(Scope::Circle(circle_id.to_owned()));
    sqlx::query(
        "UPDATE memberships SET consent_version = $1, consented_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(version)
    .bind(now)
    .bind(membership_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes a membership out of its circle (the member leaves, or a
/// coordinator removes a worker). Returns whether it was in the circle.
pub async fn leave(
    tx: &mut Tx,
    circle: &CircleId,
    membership: &MembershipId,
    now: i64,
) -> ApiResult<bool> {
    let (circle_id, membership_id) = (circle.as_str(), membership.as_str());
    tx.touch(Scope::Circle(circle_id.to_owned()));
    let left = sqlx::query(
        "UPDATE memberships SET left_at = $1, updated_at = $1 WHERE id = $2 AND left_at IS NULL",
    )
    .bind(now)
    .bind(membership_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    engine::reschedule(tx, membership_id, now).await?;
    Ok(left == 1)
}

/// Renames a left membership of an erased member: `name` ("former
/// member") on its posts, nothing that links them to the person.
pub async fn rename_former(
    tx: &mut Tx,
    circle: &CircleId,
    membership: &MembershipId,
    name: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    tx.touch(Scope::Circle(circle.as_str().to_owned()));
    // The key is unique among current members only; a left one keeps its
    // own, which no name can take.
    sqlx::query(
        "UPDATE memberships SET pseudonym = $1, pseudonym_key = '#' || id, updated_at = $2
         WHERE id = $3",
    )
    .bind(name)
    .bind(now)
    .bind(membership.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes an account out of every circle it is in (a staff member removed
/// from the organisation).
pub async fn leave_all(tx: &mut Tx, account: &AccountId, now: i64) -> ApiResult<()> {
    let account_id = account.as_str();
    let memberships: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, circle_id FROM memberships WHERE account_id = $1 AND left_at IS NULL",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await?;
    for (id, circle_id) in memberships {
        leave(tx, &CircleId::from(circle_id), &MembershipId::from(id), now).await?;
    }
    Ok(())
}

/// The pseudonym index's unique violation.
fn pseudonym_taken(err: sqlx::Error) -> ApiError {
    ApiError::conflict_if_taken(
        err,
        Code::PseudonymTaken,
        "Someone in this circle already uses this name",
    )
}

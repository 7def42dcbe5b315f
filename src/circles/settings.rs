//! The one function that changes a circle's settings: it writes every
//! changed field in one statement, lets the silence engine write a new
//! escalation policy (which reschedules every member), and marks the
//! circle's read-cache scope, so no caller can forget either.

use crate::error::{ApiError, ApiResult};
use crate::ids::CircleId;
use crate::silence::engine;
use crate::store::Tx;
use crate::store::cache::Scope;

use super::policy::EscalationPolicy;

/// What changes; `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct CircleChanges {
    pub name: Option<String>,
    pub theme: Option<String>,
    pub language: Option<&'static str>,
    pub checkin_visibility: Option<&'static str>,
    pub sensitive: Option<bool>,
    pub rhythm_days: Option<i64>,
    pub escalation_policy: Option<EscalationPolicy>,
    /// A different text bumps the agreement's version (members consent
    /// again); the same text changes nothing.
    pub agreement_text: Option<String>,
}

/// Writes `changes` to `circle`.
pub async fn change(
    tx: &mut Tx,
    circle: &CircleId,
    changes: CircleChanges,
    now: i64,
) -> ApiResult<()> {
    let circle_id = circle.as_str();
    tx.touch(Scope::Circle(circle_id.to_owned()));
    sqlx::query(
        "UPDATE circles SET name = COALESCE($1, name), theme = COALESCE($2, theme),
                language = COALESCE($3, language),
                checkin_visibility = COALESCE($4, checkin_visibility),
                rhythm_days = COALESCE($5, rhythm_days),
                agreement_version = agreement_version
                    + CASE WHEN $6 IS NOT NULL AND agreement_text <> $6 THEN 1 ELSE 0 END,
                agreement_text = COALESCE($6, agreement_text),
                updated_at = $7,
                sensitive = COALESCE($9, sensitive)
         WHERE id = $8",
    )
    .bind(changes.name)
    .bind(changes.theme)
    .bind(changes.language)
    .bind(changes.checkin_visibility)
    .bind(changes.rhythm_days)
    .bind(changes.agreement_text)
    .bind(now)
    .bind(circle_id)
    .bind(changes.sensitive.map(i64::from))
    .execute(&mut **tx)
    .await?;
    if let Some(policy) = changes.escalation_policy {
        // The engine writes the policy and reschedules every member with it.
        let json = serde_json::to_string(&policy).map_err(|e| ApiError::Internal(e.to_string()))?;
        engine::set_policy(tx, circle_id, &json, now).await?;
    }
    Ok(())
}

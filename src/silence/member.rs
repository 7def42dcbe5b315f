//! What the engine knows of one membership when it decides: the member,
//! their circle's policy, their account's hours, and how far the current
//! silence got.

use sqlx::AnyConnection;

use crate::circles::policy::{EscalationPolicy, StepAction};
use crate::notifications::timing::QuietWindow;
use crate::silence::ladder::{HOUR_MS, Ladder, Step};
use crate::silence::timing::message_moment;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct MemberState {
    pub(super) id: String,
    pub(super) circle_id: String,
    pub(super) organisation_id: String,
    pub(super) account_id: String,
    pub(super) role: String,
    pub(super) left_at: Option<i64>,
    pub(super) archived_at: Option<i64>,
    pub(super) away_until: Option<i64>,
    pub(super) nudges_enabled: i64,
    pub(super) last_activity_at: i64,
    pub(super) updated_at: i64,
    pub(super) silence_start_at: Option<i64>,
    pub(super) pseudonym: String,
    pub(super) circle_name: String,
    pub(super) escalation_policy: String,
    pub(super) policy_changed_at: i64,
    pub(super) locale: String,
    pub(super) time_zone: String,
    pub(super) quiet_start_min: i64,
    pub(super) quiet_end_min: i64,
    pub(super) reminder_time_min: Option<i64>,
    pub(super) last_nudge_at: Option<i64>,
    pub(super) last_nudge_text: Option<i64>,
    /// Silence alerts about this membership that are not resolved.
    pub(super) open_silence_alerts: i64,
}

pub(super) async fn load(
    conn: &mut AnyConnection,
    membership_id: &str,
) -> Result<Option<MemberState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.circle_id, c.organisation_id, m.account_id, m.role, m.left_at, c.archived_at, m.away_until,
                m.nudges_enabled, m.last_activity_at, m.updated_at, m.silence_start_at, m.pseudonym,
                c.name AS circle_name, c.escalation_policy, c.policy_changed_at, a.locale, a.time_zone,
                a.quiet_start_min, a.quiet_end_min, a.reminder_time_min, a.last_nudge_at, a.last_nudge_text,
                (SELECT COUNT(*) FROM alerts al
                 WHERE al.membership_id = m.id AND al.status <> 'resolved' AND al.reason = 'silence')
                    AS open_silence_alerts
         FROM memberships m JOIN circles c ON c.id = m.circle_id JOIN accounts a ON a.id = m.account_id
         WHERE m.id = $1",
    )
    .bind(membership_id)
    .fetch_optional(&mut *conn)
    .await
}

/// How far a silence got: the latest fired step of each kind, in hours.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Progress {
    pub(super) nudge: Option<i64>,
    pub(super) alert: Option<i64>,
}

impl Progress {
    pub(super) fn advance(&mut self, step: Step) {
        let slot = match step.action {
            StepAction::Nudge => &mut self.nudge,
            StepAction::AlertWorker => &mut self.alert,
        };
        *slot = Some(slot.map_or(step.after_hours, |h| h.max(step.after_hours)));
    }
}

/// The steps of this silence already recorded (fired or merged).
pub(super) async fn progress(
    conn: &mut AnyConnection,
    state: &MemberState,
    start: i64,
) -> Result<Progress, sqlx::Error> {
    let mut progress = Progress::default();
    // A silence the schedule has not seen yet has no steps behind it.
    if state.silence_start_at != Some(start) {
        return Ok(progress);
    }
    let keys: Vec<i64> = sqlx::query_scalar(
        "SELECT step_key FROM silence_steps WHERE membership_id = $1 AND silence_start = $2",
    )
    .bind(&state.id)
    .bind(start)
    .fetch_all(&mut *conn)
    .await?;
    for step in keys.into_iter().filter_map(Step::from_key) {
        progress.advance(step);
    }
    Ok(progress)
}

impl MemberState {
    pub(super) fn policy(&self) -> Option<EscalationPolicy> {
        serde_json::from_str(&self.escalation_policy).ok()
    }

    pub(super) fn quiet(&self) -> QuietWindow {
        QuietWindow {
            time_zone: self.time_zone.clone(),
            start_min: self.quiet_start_min,
            end_min: self.quiet_end_min,
        }
    }

    /// Silence starts at the last activity, or at the end of a break.
    pub(super) fn silence_start(&self) -> i64 {
        match self.away_until {
            Some(away) if away > self.last_activity_at => away,
            _ => self.last_activity_at,
        }
    }

    pub(super) fn away_at(&self, now: i64) -> bool {
        self.away_until.is_some_and(|a| a > now)
    }

    pub(super) fn watched(&self) -> bool {
        self.role == "member" && self.left_at.is_none() && self.archived_at.is_none()
    }

    /// When a nudge that falls due at `due` may reach the member, seen at
    /// `now`: the reminder time or the end of quiet hours, counted from the
    /// due time or from the policy change that made it past due; never in
    /// quiet hours; at most one nudge per local day.
    pub(super) fn nudge_moment(&self, due: i64, now: i64) -> i64 {
        message_moment(
            due.max(self.policy_changed_at),
            now,
            &self.quiet(),
            self.reminder_time_min,
            self.last_nudge_at,
        )
    }

    /// The next nudge still to come in this silence, and its moment.
    pub(super) fn next_nudge(
        &self,
        ladder: &Ladder,
        start: i64,
        done: Progress,
        now: i64,
    ) -> Option<i64> {
        if self.nudges_enabled == 0 {
            return None;
        }
        let step = ladder.next_after(StepAction::Nudge, done.nudge)?;
        Some(self.nudge_moment(start + step.after_hours * HOUR_MS, now))
    }

    /// The next alert step still to come in this silence: the policy's time.
    pub(super) fn next_alert(ladder: &Ladder, start: i64, done: Progress) -> Option<i64> {
        ladder
            .next_after(StepAction::AlertWorker, done.alert)
            .map(|s| start + s.after_hours * HOUR_MS)
    }
}

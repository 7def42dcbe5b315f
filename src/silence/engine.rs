//! The engine: every membership keeps its next due step (`next_step_due_at`,
//! indexed). [`reschedule`] computes it whenever something changes;
//! [`fire_due`] fires what is due, exactly once per (membership, silence,
//! step), in the same transaction as the notifications it causes.

use sqlx::AnyConnection;

use crate::circles::policy::{EscalationPolicy, StepAction};
use crate::notifications::produce::{Outgoing, notify};
use crate::notifications::texts::{NUDGES_EN, NUDGES_NL, TextParams};
use crate::notifications::timing::QuietWindow;
use crate::push::payload::NotificationKind;
use crate::secrets::new_id;
use crate::silence::timing::{WorkingHours, local_day, member_moment, parse_work_days};

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, sqlx::FromRow)]
struct MemberState {
    id: String,
    circle_id: String,
    organisation_id: String,
    account_id: String,
    role: String,
    left_at: Option<i64>,
    archived_at: Option<i64>,
    away_until: Option<i64>,
    nudges_enabled: i64,
    last_activity_at: i64,
    updated_at: i64,
    silence_start_at: Option<i64>,
    next_step_index: i64,
    pseudonym: String,
    circle_name: String,
    escalation_policy: String,
    locale: String,
    time_zone: String,
    quiet_start_min: i64,
    quiet_end_min: i64,
    reminder_time_min: Option<i64>,
    last_nudge_at: Option<i64>,
    last_nudge_text: Option<i64>,
    /// Silence alerts about this membership that are not resolved.
    open_silence_alerts: i64,
}

async fn load(
    conn: &mut AnyConnection,
    membership_id: &str,
) -> Result<Option<MemberState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.circle_id, c.organisation_id, m.account_id, m.role, m.left_at, c.archived_at, m.away_until,
                m.nudges_enabled, m.last_activity_at, m.updated_at, m.silence_start_at, m.next_step_index, m.pseudonym,
                c.name AS circle_name, c.escalation_policy, a.locale, a.time_zone, a.quiet_start_min,
                a.quiet_end_min, a.reminder_time_min, a.last_nudge_at, a.last_nudge_text,
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

impl MemberState {
    fn policy(&self) -> Option<EscalationPolicy> {
        serde_json::from_str(&self.escalation_policy).ok()
    }

    fn quiet(&self) -> QuietWindow {
        QuietWindow {
            time_zone: self.time_zone.clone(),
            start_min: self.quiet_start_min,
            end_min: self.quiet_end_min,
        }
    }

    /// Silence starts at the last activity, or at the end of a break.
    fn silence_start(&self) -> i64 {
        match self.away_until {
            Some(away) if away > self.last_activity_at => away,
            _ => self.last_activity_at,
        }
    }

    /// The current silence, and the next step of it to consider: a new
    /// silence starts its ladder from the first step.
    fn position(&self) -> (i64, i64) {
        let start = self.silence_start();
        let index = if self.silence_start_at == Some(start) {
            self.next_step_index
        } else {
            0
        };
        (start, index)
    }

    fn watched(&self) -> bool {
        self.role == "member" && self.left_at.is_none() && self.archived_at.is_none()
    }

    /// The next step to fire at or after `from_index`, and when: nudge steps
    /// are skipped when nudges are off and timed to the member's day.
    fn next_step(
        &self,
        policy: &EscalationPolicy,
        start: i64,
        from_index: i64,
    ) -> Option<(i64, i64)> {
        let from = usize::try_from(from_index).unwrap_or(usize::MAX);
        policy
            .steps
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(i, step)| {
                let due = start + step.after_hours * HOUR_MS;
                let index = i64::try_from(i).unwrap_or(i64::MAX);
                match step.action {
                    StepAction::Nudge if self.nudges_enabled == 0 => None,
                    StepAction::Nudge => Some((
                        index,
                        member_moment(due, &self.quiet(), self.reminder_time_min),
                    )),
                    StepAction::AlertWorker => Some((index, due)),
                }
            })
    }
}

/// Recomputes a membership's next due step: after activity, a step firing, a
/// change to away-until or settings, or a change to the circle's policy.
pub async fn reschedule(conn: &mut AnyConnection, membership_id: &str) -> Result<(), sqlx::Error> {
    let Some(state) = load(conn, membership_id).await? else {
        return Ok(());
    };
    let (start, index) = state.position();
    write_schedule(conn, &state, start, index).await
}

async fn write_schedule(
    conn: &mut AnyConnection,
    state: &MemberState,
    start: i64,
    index: i64,
) -> Result<(), sqlx::Error> {
    let next = match (state.watched(), state.policy()) {
        (true, Some(policy)) => state.next_step(&policy, start, index),
        _ => None,
    };
    // `last_activity_at` goes along: activity changes it in memory first
    // (see `on_activity`), so one statement records both. Never backwards:
    // a scheduler holding an older copy must not undo newer activity.
    sqlx::query(
        "UPDATE memberships SET silence_start_at = $1, next_step_index = $2, next_step_due_at = $3,
                schedule_lease_until = NULL,
                last_activity_at = CASE WHEN last_activity_at > $4 THEN last_activity_at ELSE $4 END,
                updated_at = CASE WHEN updated_at > $5 THEN updated_at ELSE $5 END
         WHERE id = $6",
    )
    .bind(start)
    .bind(next.map(|(i, _)| i).unwrap_or(index))
    .bind(next.map(|(_, due)| due))
    .bind(state.last_activity_at)
    .bind(state.updated_at)
    .bind(&state.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Reschedules every membership of an account (its settings changed).
pub async fn reschedule_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM memberships WHERE account_id = $1 AND left_at IS NULL")
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in ids {
        reschedule(conn, &id).await?;
    }
    Ok(())
}

/// Reschedules every membership of a circle (its policy changed).
pub async fn reschedule_circle(
    conn: &mut AnyConnection,
    circle_id: &str,
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM memberships WHERE circle_id = $1 AND left_at IS NULL")
            .bind(circle_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in ids {
        reschedule(conn, &id).await?;
    }
    Ok(())
}

/// Activity ended a silence: open silence alerts resolve themselves with an
/// "all clear" to the workers, and the ladder starts again.
pub async fn on_activity(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(mut state) = load(conn, membership_id).await? else {
        return Ok(());
    };
    state.last_activity_at = state.last_activity_at.max(now);
    state.updated_at = now;
    let open: Vec<String> = if state.open_silence_alerts > 0 {
        sqlx::query_scalar(
            "SELECT id FROM alerts WHERE membership_id = $1 AND reason = 'silence' AND status <> 'resolved'",
        )
        .bind(membership_id)
        .fetch_all(&mut *conn)
        .await?
    } else {
        Vec::new()
    };
    for alert_id in open {
        sqlx::query(
            "UPDATE alerts SET status = 'resolved', resolved_at = $1, resolution_outcome = 'member_active',
                    updated_at = $1
             WHERE id = $2 AND status <> 'resolved'",
        )
        .bind(now)
        .bind(&alert_id)
        .execute(&mut *conn)
        .await?;
        tell_workers(
            conn,
            &state,
            now,
            NotificationKind::AllClear,
            &alert_id,
            TextParams::default(),
            false,
        )
        .await?;
    }
    let (start, index) = state.position();
    write_schedule(conn, &state, start, index).await
}

/// Fires the membership's step if it is due. Returns whether a step fired.
pub async fn fire_due(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let Some(state) = load(conn, membership_id).await? else {
        return Ok(false);
    };
    let (start, index) = state.position();
    let (Some(policy), true) = (state.policy(), state.watched()) else {
        write_schedule(conn, &state, start, index).await?;
        return Ok(false);
    };
    let Some((step_index, due)) = state.next_step(&policy, start, index) else {
        write_schedule(conn, &state, start, index).await?;
        return Ok(false);
    };
    if due > now {
        write_schedule(conn, &state, start, step_index).await?;
        return Ok(false);
    }
    let action = policy.steps[usize::try_from(step_index).unwrap_or(0)].action;
    let action_name = match action {
        StepAction::Nudge => "nudge",
        StepAction::AlertWorker => "alert_worker",
    };
    // The exactly-once gate: a second scheduler, or a retry after a crash,
    // finds the row and fires nothing.
    let claimed = sqlx::query(
        "INSERT INTO silence_steps (membership_id, silence_start, step_index, action, outcome, fired_at)
         VALUES ($1, $2, $3, $4, 'pending', $5)
         ON CONFLICT (membership_id, silence_start, step_index) DO NOTHING",
    )
    .bind(&state.id)
    .bind(start)
    .bind(step_index)
    .bind(action_name)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        let (outcome, notification_id, alert_id) = match action {
            StepAction::Nudge => nudge(conn, &state, now).await?,
            StepAction::AlertWorker => alert(conn, &state, &policy, start, now).await?,
        };
        sqlx::query(
            "UPDATE silence_steps SET outcome = $1, notification_id = $2, alert_id = $3
             WHERE membership_id = $4 AND silence_start = $5 AND step_index = $6",
        )
        .bind(outcome)
        .bind(notification_id)
        .bind(alert_id)
        .bind(&state.id)
        .bind(start)
        .bind(step_index)
        .execute(&mut *conn)
        .await?;
    }
    write_schedule(conn, &state, start, step_index + 1).await?;
    Ok(claimed)
}

/// A gentle reminder, at most one a day per member across their circles: a
/// second circle's nudge on the same local day merges into the first.
async fn nudge(
    conn: &mut AnyConnection,
    state: &MemberState,
    now: i64,
) -> Result<(&'static str, Option<String>, Option<String>), sqlx::Error> {
    if state
        .last_nudge_at
        .is_some_and(|last| local_day(last, &state.time_zone) == local_day(now, &state.time_zone))
    {
        return Ok(("merged", None, None));
    }
    // Circles whose nudge falls due later today go in the same message.
    let tomorrow = local_day(now, &state.time_zone)
        .tomorrow()
        .ok()
        .and_then(|d| {
            d.to_zoned(jiff::tz::TimeZone::get(&state.time_zone).ok()?)
                .ok()
        })
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(now + 86_400_000);
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT c.name FROM memberships m JOIN circles c ON c.id = m.circle_id
         WHERE m.account_id = $1 AND m.id <> $2 AND m.left_at IS NULL AND m.role = 'member'
           AND m.next_step_due_at IS NOT NULL AND m.next_step_due_at < $3
         ORDER BY c.name",
    )
    .bind(&state.account_id)
    .bind(&state.id)
    .bind(tomorrow)
    .fetch_all(&mut *conn)
    .await?;
    let texts = if state.locale == "en" {
        NUDGES_EN
    } else {
        NUDGES_NL
    };
    let count = i64::try_from(texts.len()).unwrap_or(1);
    // Never the same text twice in a row.
    let mut pick = fastrand::i64(0..count);
    if Some(pick) == state.last_nudge_text {
        pick = (pick + 1 + fastrand::i64(0..count - 1)) % count;
    }
    let mut names = vec![state.circle_name.clone()];
    names.extend(others);
    let out = Outgoing {
        account_id: state.account_id.clone(),
        kind: NotificationKind::Nudge,
        params: TextParams {
            circle_name: names.join(", "),
            message: texts
                .get(usize::try_from(pick).unwrap_or(0))
                .map(|t| (*t).to_owned()),
            ..Default::default()
        },
        circle_id: Some(state.circle_id.clone()),
        post_id: None,
        membership_id: Some(state.id.clone()),
        alert_id: None,
        deliver_at: None,
    };
    let id = notify(conn, now, &out).await?;
    sqlx::query("UPDATE accounts SET last_nudge_at = $1, last_nudge_text = $2 WHERE id = $3")
        .bind(now)
        .bind(pick)
        .bind(&state.account_id)
        .execute(&mut *conn)
        .await?;
    Ok(("nudged", Some(id), None))
}

/// The working hours that count for a circle's alerts: those of its first
/// worker (a circle without workers uses office hours in Amsterdam).
async fn circle_working_hours(
    conn: &mut AnyConnection,
    circle_id: &str,
) -> Result<WorkingHours, sqlx::Error> {
    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT a.time_zone, a.work_days, a.work_start_min, a.work_end_min
         FROM memberships m JOIN accounts a ON a.id = m.account_id
         WHERE m.circle_id = $1 AND m.role = 'worker' AND m.left_at IS NULL
         ORDER BY m.joined_at, m.id LIMIT 1",
    )
    .bind(circle_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some((tz, days, start, end)) => working_hours(tz, &days, start, end),
        None => working_hours("Europe/Amsterdam".into(), "12345", 540, 1020),
    })
}

pub fn working_hours(time_zone: String, days: &str, start_min: i64, end_min: i64) -> WorkingHours {
    WorkingHours {
        time_zone,
        days: parse_work_days(days),
        start_min,
        end_min,
    }
}

/// Opens an alert (or reuses the open one) and tells the circle's workers.
async fn alert(
    conn: &mut AnyConnection,
    state: &MemberState,
    policy: &EscalationPolicy,
    start: i64,
    now: i64,
) -> Result<(&'static str, Option<String>, Option<String>), sqlx::Error> {
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE membership_id = $1 AND reason = 'silence' AND status <> 'resolved'",
    )
    .bind(&state.id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = existing {
        return Ok(("alerted", None, Some(id)));
    }
    let id = open_alert(conn, state, policy, "silence", Some(start), now).await?;
    let days = (now - start) / 86_400_000;
    let params = TextParams {
        count: days,
        reaction: Some("silence".into()),
        ..Default::default()
    };
    tell_workers(
        conn,
        state,
        now,
        NotificationKind::Alert,
        &id,
        params,
        false,
    )
    .await?;
    Ok(("alerted", None, Some(id)))
}

async fn open_alert(
    conn: &mut AnyConnection,
    state: &MemberState,
    policy: &EscalationPolicy,
    reason: &str,
    silence_start: Option<i64>,
    now: i64,
) -> Result<String, sqlx::Error> {
    let escalate_at = match policy.coordinator_after_working_hours {
        Some(hours) => Some(
            circle_working_hours(conn, &state.circle_id)
                .await?
                .add_working_hours(now, hours),
        ),
        None => None,
    };
    let id = new_id();
    sqlx::query(
        "INSERT INTO alerts (id, organisation_id, circle_id, membership_id, reason, status, silence_start, opened_at,
                             escalate_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $7)",
    )
    .bind(&id)
    .bind(&state.organisation_id)
    .bind(&state.circle_id)
    .bind(&state.id)
    .bind(reason)
    .bind(silence_start)
    .bind(now)
    .bind(escalate_at)
    .execute(&mut *conn)
    .await?;
    tracing::info!(alert_id = %id, circle_id = %state.circle_id, reason, "alert opened");
    Ok(id)
}

/// Notifies every active worker of the circle: silence alerts inside each
/// worker's working hours, urgent ones at once.
async fn tell_workers(
    conn: &mut AnyConnection,
    state: &MemberState,
    now: i64,
    kind: NotificationKind,
    alert_id: &str,
    params: TextParams,
    urgent: bool,
) -> Result<(), sqlx::Error> {
    let workers: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.time_zone, a.work_days, a.work_start_min, a.work_end_min
         FROM memberships m JOIN accounts a ON a.id = m.account_id
         WHERE m.circle_id = $1 AND m.role = 'worker' AND m.left_at IS NULL AND a.deactivated_at IS NULL",
    )
    .bind(&state.circle_id)
    .fetch_all(&mut *conn)
    .await?;
    for (account_id, tz, days, start, end) in workers {
        let at = if urgent {
            now
        } else {
            working_hours(tz, &days, start, end).next_working(now)
        };
        notify(
            conn,
            now,
            &alert_notice(state, account_id, kind, alert_id, params.clone(), at),
        )
        .await?;
    }
    Ok(())
}

fn alert_notice(
    state: &MemberState,
    account_id: String,
    kind: NotificationKind,
    alert_id: &str,
    params: TextParams,
    deliver_at: i64,
) -> Outgoing {
    Outgoing {
        account_id,
        kind,
        params: TextParams {
            circle_name: state.circle_name.clone(),
            actor: state.pseudonym.clone(),
            ..params
        },
        circle_id: Some(state.circle_id.clone()),
        post_id: None,
        membership_id: Some(state.id.clone()),
        alert_id: Some(alert_id.to_owned()),
        deliver_at: Some(deliver_at),
    }
}

/// "I would like contact": an alert at once, whatever the hour.
pub async fn contact_request(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(state) = load(conn, membership_id).await? else {
        return Ok(());
    };
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE membership_id = $1 AND reason = 'contact_request' AND status <> 'resolved'",
    )
    .bind(membership_id)
    .fetch_optional(&mut *conn)
    .await?;
    if existing.is_some() {
        return Ok(());
    }
    let policy = state
        .policy()
        .unwrap_or_else(|| EscalationPolicy::default_for(2));
    let id = open_alert(conn, &state, &policy, "contact_request", None, now).await?;
    let params = TextParams {
        reaction: Some("contact_request".into()),
        ..Default::default()
    };
    tell_workers(
        conn,
        &state,
        now,
        NotificationKind::Alert,
        &id,
        params,
        true,
    )
    .await
}

/// Alerts nobody acknowledged in time go to the coordinators, once.
pub async fn escalate(
    conn: &mut AnyConnection,
    alert_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE alerts SET escalated_at = $1, updated_at = $1
         WHERE id = $2 AND escalated_at IS NULL AND status = 'open' AND acknowledged_at IS NULL
           AND escalate_at <= $1",
    )
    .bind(now)
    .bind(alert_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !taken {
        return Ok(false);
    }
    let membership_id: String =
        sqlx::query_scalar("SELECT membership_id FROM alerts WHERE id = $1")
            .bind(alert_id)
            .fetch_one(&mut *conn)
            .await?;
    let Some(state) = load(conn, &membership_id).await? else {
        return Ok(true);
    };
    let coordinators: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE organisation_id = $1 AND role = 'coordinator' AND deactivated_at IS NULL",
    )
    .bind(&state.organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    for account_id in coordinators {
        let out = alert_notice(
            &state,
            account_id,
            NotificationKind::AlertEscalated,
            alert_id,
            TextParams::default(),
            now,
        );
        notify(conn, now, &out).await?;
    }
    tracing::info!(alert_id, "alert escalated to the coordinators");
    Ok(true)
}

/// A snooze ran out: the alert is open again and the workers hear of it.
pub async fn wake(conn: &mut AnyConnection, alert_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let woke = sqlx::query(
        "UPDATE alerts SET status = 'open', snoozed_until = NULL, updated_at = $1
         WHERE id = $2 AND status = 'snoozed' AND snoozed_until <= $1",
    )
    .bind(now)
    .bind(alert_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if woke {
        let membership_id: String =
            sqlx::query_scalar("SELECT membership_id FROM alerts WHERE id = $1")
                .bind(alert_id)
                .fetch_one(&mut *conn)
                .await?;
        if let Some(state) = load(conn, &membership_id).await? {
            let params = TextParams {
                count: (now - state.silence_start()) / 86_400_000,
                ..Default::default()
            };
            tell_workers(
                conn,
                &state,
                now,
                NotificationKind::Alert,
                alert_id,
                params,
                false,
            )
            .await?;
        }
    }
    Ok(woke)
}

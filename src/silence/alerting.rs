//! Alerting: opening an alert for a silence or a contact request, telling
//! the circle's workers in their working hours, escalating to the
//! coordinators, waking snoozed alerts, and the all clear. The schedule that
//! decides when is [`super::engine`].

use sqlx::AnyConnection;

use crate::circles::policy::EscalationPolicy;
use crate::notifications::produce::{Outgoing, notify};
use crate::notifications::texts::{AlertNote, TextParams};
use crate::push::payload::NotificationKind;
use crate::secrets::new_id;
use crate::silence::ladder::{Ladder, Step};
use crate::silence::timing::{WorkingHours, parse_work_days};

use super::member::{MemberState, load};

/// The all clear goes to every worker's inbox; it is pushed only to those
/// who were pushed about the alert (an alert resolved before its push went
/// out is never pushed, nor is its all clear).
pub(super) async fn all_clear(
    conn: &mut AnyConnection,
    state: &MemberState,
    alert_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    for worker in workers(conn, &state.circle_id).await? {
        let pushed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications n JOIN deliveries d ON d.notification_id = n.id
             WHERE n.alert_id = $1 AND n.account_id = $2 AND n.kind <> 'all_clear'
               AND d.status IN ('delivered', 'failed', 'dropped', 'expired')",
        )
        .bind(alert_id)
        .bind(&worker.account_id)
        .fetch_one(&mut *conn)
        .await?;
        let mut out = alert_notice(
            state,
            worker.account_id.clone(),
            NotificationKind::AllClear,
            alert_id,
            TextParams::default(),
            worker.hours.next_working(now),
        );
        out.inbox_only = pushed == 0;
        notify(conn, now, &out).await?;
    }
    Ok(())
}

/// A staff member who is told about alerts, with their working hours.
struct Recipient {
    account_id: String,
    hours: WorkingHours,
}

async fn recipients(
    conn: &mut AnyConnection,
    sql: &'static str,
    key: &str,
) -> Result<Vec<Recipient>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64, i64)> =
        sqlx::query_as(sql).bind(key).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(|(account_id, tz, days, start, end)| Recipient {
            account_id,
            hours: working_hours(tz, &days, start, end),
        })
        .collect())
}

/// The circle's active workers.
async fn workers(conn: &mut AnyConnection, circle_id: &str) -> Result<Vec<Recipient>, sqlx::Error> {
    recipients(
        conn,
        "SELECT a.id, a.time_zone, a.work_days, a.work_start_min, a.work_end_min
         FROM memberships m JOIN accounts a ON a.id = m.account_id
         WHERE m.circle_id = $1 AND m.role = 'worker' AND m.left_at IS NULL AND a.deactivated_at IS NULL
         ORDER BY m.joined_at, m.id",
        circle_id,
    )
    .await
}

/// The working hours that count for a circle's escalation: those of its
/// first worker (a circle without workers uses office hours in Amsterdam).
async fn circle_working_hours(
    conn: &mut AnyConnection,
    circle_id: &str,
) -> Result<WorkingHours, sqlx::Error> {
    Ok(match workers(conn, circle_id).await?.into_iter().next() {
        Some(first) => first.hours,
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

async fn escalate_at(
    conn: &mut AnyConnection,
    circle_id: &str,
    policy: &EscalationPolicy,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    Ok(match policy.coordinator_after_working_hours {
        Some(hours) => Some(
            circle_working_hours(conn, circle_id)
                .await?
                .add_working_hours(now, hours),
        ),
        None => None,
    })
}

/// An alert step: opens an alert, or, while one is still open, tells the
/// workers again on it ("still quiet"). A snoozed alert stays snoozed.
pub(super) async fn alert(
    conn: &mut AnyConnection,
    state: &MemberState,
    policy: &EscalationPolicy,
    ladder: &Ladder<'_>,
    step: Step,
    start: i64,
    now: i64,
) -> Result<(&'static str, Option<String>), sqlx::Error> {
    let params = TextParams {
        quiet_ms: now - start,
        note: Some(if ladder.is_repeat(step.after_hours) {
            AlertNote::StillQuiet
        } else {
            AlertNote::Silence
        }),
        ..Default::default()
    };
    let existing: Option<(String, String)> = sqlx::query_as(
        "SELECT id, status FROM alerts WHERE membership_id = $1 AND reason = 'silence' AND status <> 'resolved'
         ORDER BY opened_at DESC LIMIT 1",
    )
    .bind(&state.id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id, status)) = existing {
        if status == "snoozed" {
            return Ok(("snoozed", Some(id)));
        }
        // Something new about an open alert: the workers hear it, and an
        // unacknowledged alert whose escalation a break paused gets it back.
        let escalate = escalate_at(conn, &state.circle_id, policy, now).await?;
        sqlx::query(
            "UPDATE alerts SET last_notified_at = $1, updated_at = $1,
                    escalate_at = CASE WHEN acknowledged_at IS NULL AND escalated_at IS NULL AND escalate_at IS NULL
                                       THEN $2 ELSE escalate_at END
             WHERE id = $3",
        )
        .bind(now)
        .bind(escalate)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        let params = TextParams {
            note: Some(AlertNote::StillQuiet),
            ..params
        };
        tell_workers(conn, state, now, &id, params, false).await?;
        return Ok(("renotified", Some(id)));
    }
    let id = open_alert(conn, state, policy, "silence", Some(start), now).await?;
    tell_workers(conn, state, now, &id, params, false).await?;
    Ok(("alerted", Some(id)))
}

async fn open_alert(
    conn: &mut AnyConnection,
    state: &MemberState,
    policy: &EscalationPolicy,
    reason: &str,
    silence_start: Option<i64>,
    now: i64,
) -> Result<String, sqlx::Error> {
    let escalate_at = escalate_at(conn, &state.circle_id, policy, now).await?;
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

/// Notifies every active worker of the circle about an alert: inside each
/// worker's own working hours, urgent ones at once.
async fn tell_workers(
    conn: &mut AnyConnection,
    state: &MemberState,
    now: i64,
    alert_id: &str,
    params: TextParams,
    urgent: bool,
) -> Result<(), sqlx::Error> {
    for worker in workers(conn, &state.circle_id).await? {
        let at = if urgent {
            now
        } else {
            worker.hours.next_working(now)
        };
        let out = alert_notice(
            state,
            worker.account_id,
            NotificationKind::Alert,
            alert_id,
            params.clone(),
            at,
        );
        notify(conn, now, &out).await?;
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
        inbox_only: false,
    }
}

/// "I would like contact": every request opens an alert of its own and
/// reaches the workers at once, whatever the hour, also while an earlier
/// request is still open or the member is on a break (they asked).
pub async fn contact_request(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(state) = load(conn, membership_id).await? else {
        return Ok(());
    };
    let policy = state
        .policy()
        .unwrap_or_else(|| EscalationPolicy::default_for(2));
    let id = open_alert(conn, &state, &policy, "contact_request", None, now).await?;
    let params = TextParams {
        note: Some(AlertNote::ContactRequest),
        ..Default::default()
    };
    tell_workers(conn, &state, now, &id, params, true).await
}

/// The alert's membership, and whether it is a silence alert.
async fn alert_subject(
    conn: &mut AnyConnection,
    alert_id: &str,
) -> Result<Option<(MemberState, bool)>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT membership_id, reason FROM alerts WHERE id = $1")
            .bind(alert_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((membership_id, reason)) = row else {
        return Ok(None);
    };
    Ok(load(conn, &membership_id)
        .await?
        .map(|s| (s, reason == "silence")))
}

/// Alerts nobody acknowledged in time go to the coordinators, once, each
/// inside their own working hours. A silence alert about a member on a break
/// does not escalate: its escalation pauses until the workers are told
/// something new about it.
pub async fn escalate(
    conn: &mut AnyConnection,
    alert_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let Some((state, silence)) = alert_subject(conn, alert_id).await? else {
        return Ok(false);
    };
    if silence && state.away_at(now) {
        sqlx::query("UPDATE alerts SET escalate_at = NULL, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(alert_id)
            .execute(&mut *conn)
            .await?;
        return Ok(false);
    }
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
    let coordinators = recipients(
        conn,
        "SELECT id, time_zone, work_days, work_start_min, work_end_min FROM accounts
         WHERE organisation_id = $1 AND role = 'coordinator' AND deactivated_at IS NULL",
        &state.organisation_id,
    )
    .await?;
    for coordinator in coordinators {
        let at = coordinator.hours.next_working(now);
        let out = alert_notice(
            &state,
            coordinator.account_id,
            NotificationKind::AlertEscalated,
            alert_id,
            TextParams::default(),
            at,
        );
        notify(conn, now, &out).await?;
    }
    tracing::info!(alert_id, "alert escalated to the coordinators");
    Ok(true)
}

/// A snooze ran out: the alert is open again and the workers hear of it. A
/// silence alert about a member on a break wakes when the break ends.
pub async fn wake(conn: &mut AnyConnection, alert_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let Some((state, silence)) = alert_subject(conn, alert_id).await? else {
        return Ok(false);
    };
    if silence && let Some(until) = state.away_until.filter(|&a| a > now) {
        sqlx::query(
            "UPDATE alerts SET snoozed_until = $1, updated_at = $2 WHERE id = $3 AND status = 'snoozed'",
        )
        .bind(until)
        .bind(now)
        .bind(alert_id)
        .execute(&mut *conn)
        .await?;
        return Ok(false);
    }
    let woke = sqlx::query(
        "UPDATE alerts SET status = 'open', snoozed_until = NULL, last_notified_at = $1, updated_at = $1
         WHERE id = $2 AND status = 'snoozed' AND snoozed_until <= $1",
    )
    .bind(now)
    .bind(alert_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if woke {
        let params = TextParams {
            note: Some(AlertNote::SnoozeOver),
            ..Default::default()
        };
        tell_workers(conn, &state, now, alert_id, params, false).await?;
    }
    Ok(woke)
}

//! The schedule: every membership keeps the moment its next step is due
//! (`next_step_due_at`, indexed). [`reschedule`] computes it whenever
//! something changes; [`fire_due`] fires what is due, exactly once per
//! (membership, silence, step), in the same transaction as the
//! notifications it causes.
//!
//! The rules (README, "The silence engine"):
//! - Each kind of step keeps its own time. An alert step fires at the
//!   policy's time; a nudge waits for the member's allowed moment (quiet
//!   hours, reminder time, one nudge a day). A waiting nudge never holds back
//!   an alert, and is still sent at its moment after the alert fired.
//! - Steps already past due (after a policy change, or a late scheduler)
//!   fire as one: the latest of them, with the others recorded as merged.
//!   Nudges past due after a policy change wait for the member's next
//!   allowed moment counted from the change.
//! - Progress maps by time ([`super::ladder`]): a policy change neither
//!   drops nor repeats a step.
//! - A silence starts at the last activity or at the end of a break,
//!   however the break ends. While away: no steps, no wake-ups, no
//!   escalation.

use sqlx::AnyConnection;

use crate::circles::policy::StepAction;
use crate::notifications::day;
use crate::notifications::produce::{Outgoing, notify};
use crate::notifications::texts::{NUDGES_EN, NUDGES_NL, TextParams};
use crate::push::payload::NotificationKind;
use crate::silence::ladder::{Ladder, Step};

use super::member::{MemberState, Progress, load, progress};

// Alerting lives beside it; its entry points keep their old path.
use super::alerting::{alert, all_clear};
pub use super::alerting::{contact_request, escalate, wake, working_hours};

/// Recomputes a membership's next due step: after a step fired, a change to
/// away-until or settings, or a change to the circle's policy.
pub async fn reschedule(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(state) = load(conn, membership_id).await? else {
        return Ok(());
    };
    let start = state.silence_start();
    let done = progress(conn, &state, start).await?;
    write_schedule(conn, &state, start, done, now).await
}

async fn write_schedule(
    conn: &mut AnyConnection,
    state: &MemberState,
    start: i64,
    done: Progress,
    now: i64,
) -> Result<(), sqlx::Error> {
    let next = match (state.watched(), state.policy()) {
        (true, Some(policy)) => {
            let ladder = Ladder::new(&policy);
            let nudge = state.next_nudge(&ladder, start, done, now);
            let alert = MemberState::next_alert(&ladder, start, done);
            nudge.into_iter().chain(alert).min()
        }
        _ => None,
    };
    // `last_activity_at` goes along: activity changes it in memory first
    // (see `on_activity`), so one statement records both. Never backwards:
    // a scheduler holding an older copy must not undo newer activity.
    sqlx::query(
        "UPDATE memberships SET silence_start_at = $1, next_step_index = 0, next_step_due_at = $2,
                schedule_lease_until = NULL,
                last_activity_at = CASE WHEN last_activity_at > $3 THEN last_activity_at ELSE $3 END,
                updated_at = CASE WHEN updated_at > $4 THEN updated_at ELSE $4 END
         WHERE id = $5",
    )
    .bind(start)
    .bind(next)
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
    now: i64,
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM memberships WHERE account_id = $1 AND left_at IS NULL")
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in ids {
        reschedule(conn, &id, now).await?;
    }
    Ok(())
}

/// Sets a circle's escalation policy (validated JSON): steps already past
/// due count from now, and every membership is rescheduled (its progress
/// maps onto the new policy by time).
pub async fn set_policy(
    conn: &mut AnyConnection,
    circle_id: &str,
    policy_json: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE circles SET escalation_policy = $1, policy_changed_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(policy_json)
    .bind(now)
    .bind(circle_id)
        .execute(&mut *conn)
        .await?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM memberships WHERE circle_id = $1 AND left_at IS NULL")
            .bind(circle_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in ids {
        reschedule(conn, &id, now).await?;
    }
    Ok(())
}

/// Sets or ends a break. `None` ends it now (the silence starts again now);
/// a break that begins withdraws the pushes about this silence still
/// waiting, since nothing about a member goes out while they are away (the
/// inbox keeps them).
pub async fn set_away(
    conn: &mut AnyConnection,
    membership_id: &str,
    until: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    match until {
        Some(until) => {
            sqlx::query("UPDATE memberships SET away_until = $1, updated_at = $2 WHERE id = $3")
                .bind(until)
                .bind(now)
                .bind(membership_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE deliveries SET status = 'superseded', outcome = 'member_away', updated_at = $1
                 WHERE status = 'pending' AND notification_id IN (
                     SELECT n.id FROM notifications n
                     WHERE n.membership_id = $2 AND (n.kind = 'nudge'
                        OR (n.kind IN ('alert', 'alert_escalated') AND EXISTS (
                            SELECT 1 FROM alerts al WHERE al.id = n.alert_id AND al.reason = 'silence'))))",
            )
            .bind(now)
            .bind(membership_id)
            .execute(&mut *conn)
            .await?;
        }
        // Ending a break that is on: it ends now. No break: nothing changes.
        None => {
            sqlx::query(
                "UPDATE memberships SET away_until = $1, updated_at = $1 WHERE id = $2 AND away_until > $1",
            )
            .bind(now)
            .bind(membership_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    reschedule(conn, membership_id, now).await
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
        all_clear(conn, &state, &alert_id, now).await?;
    }
    let start = state.silence_start();
    let done = progress(conn, &state, start).await?;
    write_schedule(conn, &state, start, done, now).await
}

/// Records a step (and the earlier ones it stands for) as fired. Returns
/// false when another scheduler, or an earlier try, already fired it.
async fn claim_step(
    conn: &mut AnyConnection,
    state: &MemberState,
    start: i64,
    step: Step,
    covered: &[Step],
    outcome: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    // The exactly-once gate: a second scheduler, or a retry after a crash,
    // finds the row and fires nothing.
    let claimed = insert_step(conn, &state.id, start, step, outcome, now).await?;
    if claimed {
        for &earlier in covered {
            insert_step(conn, &state.id, start, earlier, "merged", now).await?;
        }
    }
    Ok(claimed)
}

async fn insert_step(
    conn: &mut AnyConnection,
    membership_id: &str,
    start: i64,
    step: Step,
    outcome: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO silence_steps (membership_id, silence_start, step_key, action, outcome, fired_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (membership_id, silence_start, step_key) DO NOTHING",
    )
    .bind(membership_id)
    .bind(start)
    .bind(step.key())
    .bind(step.action_name())
    .bind(outcome)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

async fn record_step(
    conn: &mut AnyConnection,
    membership_id: &str,
    start: i64,
    step: Step,
    outcome: &str,
    notification_id: Option<String>,
    alert_id: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE silence_steps SET outcome = $1, notification_id = $2, alert_id = $3
         WHERE membership_id = $4 AND silence_start = $5 AND step_key = $6",
    )
    .bind(outcome)
    .bind(notification_id)
    .bind(alert_id)
    .bind(membership_id)
    .bind(start)
    .bind(step.key())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Fires the membership's steps that are due. Returns whether one fired.
pub async fn fire_due(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let Some(mut state) = load(conn, membership_id).await? else {
        return Ok(false);
    };
    let start = state.silence_start();
    let mut done = progress(conn, &state, start).await?;
    let (Some(policy), true) = (state.policy(), state.watched()) else {
        write_schedule(conn, &state, start, done, now).await?;
        return Ok(false);
    };
    let ladder = Ladder::new(&policy);
    let mut fired = false;

    // Alerts first: they never wait for a nudge.
    if let Some((step, covered)) = ladder.due_by(StepAction::AlertWorker, done.alert, now - start) {
        if claim_step(conn, &state, start, step, &covered, "pending", now).await? {
            let (outcome, alert_id) =
                alert(conn, &state, &policy, &ladder, step, start, now).await?;
            record_step(conn, &state.id, start, step, outcome, None, alert_id).await?;
            fired = true;
        }
        done.advance(step);
    }

    if let Some(moment) = state.next_nudge(&ladder, start, done, now)
        && moment <= now
        && let Some((step, covered)) = ladder.due_by(StepAction::Nudge, done.nudge, now - start)
    {
        // The account's message of the day, unless another message (an
        // ask, another instance's nudge) took it since `state` was read.
        let read = state.last_nudge_at;
        if day::take(conn, &state.account_id, read, now).await? {
            if claim_step(conn, &state, start, step, &covered, "pending", now).await? {
                let notification_id = nudge(conn, &state, now).await?;
                record_step(
                    conn,
                    &state.id,
                    start,
                    step,
                    "nudged",
                    Some(notification_id),
                    None,
                )
                .await?;
                fired = true;
                // The next nudge counts from this one.
                state.last_nudge_at = Some(now);
            } else {
                day::give_back(conn, &state.account_id, read, now).await?;
            }
            done.advance(step);
        } else {
            // Taken: this nudge waits for the member's next moment.
            state.last_nudge_at = day::last(conn, &state.account_id).await?;
        }
    }

    write_schedule(conn, &state, start, done, now).await?;
    Ok(fired)
}

/// A gentle reminder, at most one a day per member across their circles
/// (the caller took the day): other circles whose nudge is due now go in
/// the same message (and are recorded as merged there); a later one waits
/// for the next day.
async fn nudge(
    conn: &mut AnyConnection,
    state: &MemberState,
    now: i64,
) -> Result<String, sqlx::Error> {
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT m.id FROM memberships m JOIN circles c ON c.id = m.circle_id
         WHERE m.account_id = $1 AND m.id <> $2 AND m.left_at IS NULL AND m.role = 'member'
           AND m.nudges_enabled = 1 AND (m.away_until IS NULL OR m.away_until <= $3)
           AND m.next_step_due_at IS NOT NULL AND m.next_step_due_at <= $3
         ORDER BY c.name",
    )
    .bind(&state.account_id)
    .bind(&state.id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut names = vec![state.circle_name.clone()];
    for other_id in others {
        if let Some(name) = merge_nudge(conn, &other_id, state.last_nudge_at, now).await? {
            names.push(name);
        }
    }
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
    // Questionnaires due now ride along: one message a day, not two.
    let questionnaires = crate::questionnaires::schedule::ride_with_nudge(
        conn,
        &state.account_id,
        state.last_nudge_at,
        now,
    )
    .await?;
    let mut message = texts
        .get(usize::try_from(pick).unwrap_or(0))
        .map(|t| (*t).to_owned());
    if questionnaires > 0 {
        message = message.map(|m| format!("{m} {}", also_a_questionnaire(&state.locale)));
    }
    let out = Outgoing {
        account_id: state.account_id.clone(),
        kind: NotificationKind::Nudge,
        params: TextParams {
            circle_name: names.join(", "),
            message,
            ..Default::default()
        },
        circle_id: Some(state.circle_id.clone()),
        post_id: None,
        membership_id: Some(state.id.clone()),
        alert_id: None,
        deliver_at: None,
        inbox_only: false,
    };
    let id = notify(conn, now, &out).await?;
    sqlx::query("UPDATE accounts SET last_nudge_text = $1 WHERE id = $2")
        .bind(pick)
        .bind(&state.account_id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Said in a nudge that a questionnaire's ask rode along in.
fn also_a_questionnaire(locale: &str) -> &'static str {
    if locale == "en" {
        "A short questionnaire is waiting for you too, if you like."
    } else {
        "Er staat ook een korte vragenlijst voor je klaar, als je wilt."
    }
}

/// Another circle's nudge due now rides along in this one: recorded as
/// merged; returns the circle's name when it did. Whether it is due is
/// judged with the account's day as it was before this message took it
/// (`day_free_since`).
async fn merge_nudge(
    conn: &mut AnyConnection,
    membership_id: &str,
    day_free_since: Option<i64>,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let Some(mut state) = load(conn, membership_id).await? else {
        return Ok(None);
    };
    state.last_nudge_at = day_free_since;
    let Some(policy) = state.policy() else {
        return Ok(None);
    };
    let ladder = Ladder::new(&policy);
    let start = state.silence_start();
    let mut done = progress(conn, &state, start).await?;
    let ready = state
        .next_nudge(&ladder, start, done, now)
        .is_some_and(|m| m <= now);
    let Some((step, covered)) = ladder
        .due_by(StepAction::Nudge, done.nudge, now - start)
        .filter(|_| ready && state.watched())
    else {
        return Ok(None);
    };
    if !claim_step(conn, &state, start, step, &covered, "merged", now).await? {
        return Ok(None);
    }
    done.advance(step);
    // Its next nudge counts from this message.
    state.last_nudge_at = Some(now);
    write_schedule(conn, &state, start, done, now).await?;
    Ok(Some(state.circle_name))
}

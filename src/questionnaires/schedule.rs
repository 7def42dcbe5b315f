//! The questionnaire job's work: making each due questionnaire once, and
//! asking, reminding and expiring it at the member's moments.
//!
//! - **Made once.** A questionnaire is made when its moment has come and
//!   its answering window is still open, for active members (not workers,
//!   not after leaving, not once the member turned measurement off, not in
//!   an archived circle). Members who are away still get it made (the
//!   moment is tied to their join); only the asking waits. The unique key
//!   (membership, instrument, moment) with `ON CONFLICT DO NOTHING` makes
//!   it exactly once across instances and crashes.
//! - **At the join**, what is due at once (the intake) is made in the
//!   join's transaction and shown by the app straight away: that is its
//!   ask (no message; `open`, `prompts_sent` 1), and reminders follow.
//! - **Asked gently.** The ask goes out at the member's reminder time,
//!   outside quiet hours, never while away, and shares the one message a
//!   day with silence nudges (`accounts.last_nudge_at`): questionnaires of
//!   one account due together go in one message, and an ask due when a
//!   nudge goes out rides in the nudge ([`ride_with_nudge`]). Asks and
//!   nudges take the day through [`crate::notifications::day::take`], only
//!   if no other message took it since they read it, so a nudge and an ask
//!   decided at once by two instances send one message. At most two
//!   reminders follow if unanswered: [`REMINDER_GAPS_DAYS`] after the ask.
//! - **Expires.** [`WINDOW_DAYS`] after its moment a questionnaire can no
//!   longer be answered: one that was asked becomes `expired`; one never
//!   asked (the member was away or had turned measurement off all along)
//!   stays `scheduled`, which reports count as not invited.
//! - Answered, declined, opted out or left: never asked or reminded again.
//!
//! Every write to a questionnaire row is conditional on what was read
//! (status and `prompts_sent`), so two instances working on one row, or a
//! member answering meanwhile, cannot ask twice or undo an answer.

use sqlx::AnyConnection;

use crate::notifications::day;
use crate::notifications::produce::{Outgoing, notify};
use crate::notifications::texts::TextParams;
use crate::notifications::timing::QuietWindow;
use crate::push::payload::NotificationKind;
use crate::secrets::new_id;
use crate::silence::timing::message_moment;
use crate::state::AppState;
use crate::store::claim::Queue;

use crate::clock::DAY_MS;
use crate::outcomes::catalogue;

/// Days after its moment that a questionnaire can be answered.
pub const WINDOW_DAYS: i64 = 14;
/// The ask and at most two reminders.
pub const MAX_PROMPTS: i64 = 3;
/// Days from the ask to the first reminder, and from it to the second (3
/// and 7 days after the ask).
pub const REMINDER_GAPS_DAYS: [i64; 2] = [3, 4];
/// How long a claim on a questionnaire lasts.
pub const LEASE_MS: i64 = 60_000;
/// Rows made or claimed per round.
const BATCH: i64 = 200;

/// Questionnaires wait for their next ask, reminder or expiry in
/// `next_action_at` (NULL once finished).
pub const QUEUE: Queue = Queue {
    table: "questionnaires",
    key: "id",
    due: "next_action_at",
    lease: "lease_until",
    lease_ms: LEASE_MS,
    waiting: None,
    claimable: None,
    on_claim: None,
};

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub made: usize,
    pub claimed: usize,
    pub messages: usize,
}

impl crate::jobs::Progress for Round {
    fn is_idle(&self) -> bool {
        self.made == 0 && self.claimed == 0
    }

    fn add(&mut self, other: Self) {
        self.made += other.made;
        self.claimed += other.claimed;
        self.messages += other.messages;
    }
}

/// One round: make what is due, then act on what waits.
pub async fn round(state: &AppState) -> Result<Round, sqlx::Error> {
    let now = state.now_ms();
    let made = make_due(state, now).await?;
    let ids = state.store.claim_due(&QUEUE, now, BATCH, None).await?;
    let mut messages = 0;
    for id in &ids {
        let mut tx = state.store.begin().await?;
        if act(&mut tx, id, now).await? {
            messages += 1;
        }
        tx.commit().await?;
    }
    Ok(Round {
        made,
        claimed: ids.len(),
        messages,
    })
}

#[derive(sqlx::FromRow)]
struct Candidate {
    membership_id: String,
    account_id: String,
    circle_id: String,
    organisation_id: String,
    instrument_key: String,
    moment: String,
    due_at: i64,
}

/// The moment of a planned questionnaire, in SQL: from the join or the
/// circle's end.
const DUE_AT: &str = "(CASE WHEN mm.anchor = 'join' THEN m.joined_at ELSE c.ends_at END) + mm.offset_days * 86400000";

/// The planned questionnaires whose moment has come, whose window is still
/// open and which were not made yet, of active members (or of one
/// membership).
async fn candidates(
    conn: &mut AnyConnection,
    now: i64,
    membership_id: Option<&str>,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let sql = format!(
        "SELECT m.id AS membership_id, m.account_id, m.circle_id, c.organisation_id,
                mm.instrument_key, mm.moment, {DUE_AT} AS due_at
         FROM measurement_moments mm
         JOIN circles c ON c.id = mm.circle_id
         JOIN memberships m ON m.circle_id = mm.circle_id
         WHERE m.role = 'member' AND m.left_at IS NULL AND m.measurement_off_at IS NULL
           AND c.archived_at IS NULL AND (mm.anchor = 'join' OR c.ends_at IS NOT NULL)
           AND {DUE_AT} <= $1 AND {DUE_AT} > $2 AND ($4 = '' OR m.id = $4)
           AND NOT EXISTS (SELECT 1 FROM questionnaires q
                           WHERE q.membership_id = m.id AND q.instrument_key = mm.instrument_key
                             AND q.moment = mm.moment)
         ORDER BY m.id
         LIMIT $3"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(now - WINDOW_DAYS * DAY_MS)
        .bind(BATCH)
        .bind(membership_id.unwrap_or_default())
        .fetch_all(&mut *conn)
        .await
}

/// Makes the questionnaires whose moment has come; returns how many it
/// made.
async fn make_due(state: &AppState, now: i64) -> Result<usize, sqlx::Error> {
    let due = candidates(&mut *state.store.pool().acquire().await?, now, None).await?;
    let mut made = 0;
    for candidate in due {
        let mut conn = state.store.pool().acquire().await?;
        if make(&mut conn, &candidate, now, false).await? {
            made += 1;
        }
    }
    Ok(made)
}

/// A member joined: what is due at once (the intake) is made in the join's
/// transaction, so the app can show it straight away. Being shown in the
/// app at the join is its ask: it is made `open` with no message, and the
/// reminders follow as for any ask.
pub async fn on_join(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    for candidate in candidates(conn, now, Some(membership_id)).await? {
        make(conn, &candidate, now, true).await?;
    }
    Ok(())
}

/// Makes one questionnaire, `shown` at the join or waiting for its ask;
/// false when it exists already (another instance made it) or its
/// instrument is unknown.
async fn make(
    conn: &mut AnyConnection,
    c: &Candidate,
    now: i64,
    shown: bool,
) -> Result<bool, sqlx::Error> {
    let Some(instrument) = catalogue::find(conn, &c.organisation_id, &c.instrument_key)
        .await?
        .map(|a| a.instrument)
    else {
        tracing::warn!(instrument = %c.instrument_key, circle_id = %c.circle_id, "planned instrument unknown");
        return Ok(false);
    };
    let expires_at = c.due_at + WINDOW_DAYS * DAY_MS;
    let (status, prompts, next) = if shown {
        let first_reminder = (now + REMINDER_GAPS_DAYS[0] * DAY_MS).min(expires_at);
        ("open", 1, first_reminder)
    } else {
        ("scheduled", 0, c.due_at)
    };
    let inserted = sqlx::query(
        "INSERT INTO questionnaires (id, membership_id, account_id, circle_id, organisation_id,
                                     instrument_key, instrument_version, moment, due_at, expires_at,
                                     status, prompts_sent, next_action_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (membership_id, instrument_key, moment) DO NOTHING",
    )
    .bind(new_id())
    .bind(&c.membership_id)
    .bind(&c.account_id)
    .bind(&c.circle_id)
    .bind(&c.organisation_id)
    .bind(&c.instrument_key)
    .bind(i64::from(instrument.version))
    .bind(&c.moment)
    .bind(c.due_at)
    .bind(expires_at)
    .bind(status)
    .bind(prompts)
    .bind(next)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A questionnaire as the job sees it, with its member.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Waiting {
    pub id: String,
    pub membership_id: String,
    pub account_id: String,
    pub circle_id: String,
    pub status: String,
    pub prompts_sent: i64,
    pub next_action_at: Option<i64>,
    pub expires_at: i64,
    pub left_at: Option<i64>,
    pub measurement_off_at: Option<i64>,
    pub away_until: Option<i64>,
    pub archived_at: Option<i64>,
    pub circle_name: String,
    pub time_zone: String,
    pub quiet_start_min: i64,
    pub quiet_end_min: i64,
    pub reminder_time_min: Option<i64>,
    pub last_nudge_at: Option<i64>,
}

const WAITING: &str = "SELECT q.id, q.membership_id, q.account_id, q.circle_id, q.status, q.prompts_sent,
        q.next_action_at, q.expires_at, m.left_at, m.measurement_off_at, m.away_until, c.archived_at,
        c.name AS circle_name, a.time_zone, a.quiet_start_min, a.quiet_end_min, a.reminder_time_min,
        a.last_nudge_at
 FROM questionnaires q JOIN memberships m ON m.id = q.membership_id
 JOIN circles c ON c.id = q.circle_id JOIN accounts a ON a.id = q.account_id";

/// What to do with a waiting questionnaire now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Its window is over: `expired` if it was asked; never asked, it
    /// stays `scheduled`. Finished either way.
    Expire,
    /// Nothing more to do (answered, declined, or never asked and the
    /// member is gone or opted out).
    Finish,
    /// Look again then.
    WaitUntil(i64),
    /// Ask or remind now.
    Send,
}

impl Waiting {
    fn active(&self) -> bool {
        self.left_at.is_none() && self.measurement_off_at.is_none() && self.archived_at.is_none()
    }

    fn quiet(&self) -> QuietWindow {
        QuietWindow {
            time_zone: self.time_zone.clone(),
            start_min: self.quiet_start_min,
            end_min: self.quiet_end_min,
        }
    }

    /// The decision, from what was read: the rules of the module doc.
    pub fn next(&self, now: i64) -> Next {
        let pending = self.status == "scheduled" || self.status == "open";
        if !pending {
            return Next::Finish;
        }
        if now >= self.expires_at {
            return Next::Expire;
        }
        if !self.active() || self.prompts_sent >= MAX_PROMPTS {
            // Asked already: only its expiry is left. Never asked: done.
            return if self.status == "open" {
                Next::WaitUntil(self.expires_at)
            } else {
                Next::Finish
            };
        }
        if let Some(away) = self.away_until.filter(|&a| a > now) {
            return Next::WaitUntil(away.min(self.expires_at));
        }
        let target = self.next_action_at.unwrap_or(now);
        let moment = message_moment(
            target,
            now,
            &self.quiet(),
            self.reminder_time_min,
            self.last_nudge_at,
        );
        if moment >= self.expires_at {
            Next::WaitUntil(self.expires_at)
        } else if moment > now {
            Next::WaitUntil(moment)
        } else {
            Next::Send
        }
    }

    /// When to look again after this message went out: the next reminder,
    /// or the expiry after the last.
    fn after_message(&self, now: i64) -> i64 {
        let gap = usize::try_from(self.prompts_sent)
            .ok()
            .and_then(|sent| REMINDER_GAPS_DAYS.get(sent));
        gap.map_or(self.expires_at, |days| {
            (now + days * DAY_MS).min(self.expires_at)
        })
    }
}

async fn load(conn: &mut AnyConnection, id: &str) -> Result<Option<Waiting>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{WAITING} WHERE q.id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// Acts on one claimed questionnaire, in the caller's transaction;
/// returns whether a message went out.
pub async fn act(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let Some(q) = load(conn, id).await? else {
        return Ok(false);
    };
    match q.next(now) {
        Next::Finish => {
            move_on(conn, &q, None).await?;
            Ok(false)
        }
        Next::WaitUntil(at) => {
            move_on(conn, &q, Some(at)).await?;
            Ok(false)
        }
        Next::Expire => {
            expire(conn, &q).await?;
            Ok(false)
        }
        Next::Send => send(conn, &q, now).await,
    }
}

/// Sets when to look again (NULL: never), if the row is as it was read.
async fn move_on(
    conn: &mut AnyConnection,
    q: &Waiting,
    at: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE questionnaires SET next_action_at = $1, lease_until = NULL
         WHERE id = $2 AND status = $3 AND prompts_sent = $4",
    )
    .bind(at)
    .bind(&q.id)
    .bind(&q.status)
    .bind(q.prompts_sent)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn expire(conn: &mut AnyConnection, q: &Waiting) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE questionnaires
         SET status = CASE WHEN status = 'open' THEN 'expired' ELSE status END,
             next_action_at = NULL, lease_until = NULL
         WHERE id = $1 AND status IN ('scheduled', 'open')",
    )
    .bind(&q.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Asks or reminds: this questionnaire and the account's others due now go
/// in one message, which takes the account's message of the day. If
/// another message took the day meanwhile, nothing is sent and the
/// questionnaire waits for its next moment.
async fn send(conn: &mut AnyConnection, q: &Waiting, now: i64) -> Result<bool, sqlx::Error> {
    if !day::take(conn, &q.account_id, q.last_nudge_at, now).await? {
        move_on(conn, q, q.next_action_at).await?;
        return Ok(false);
    }
    let mut asked = vec![q.clone()];
    asked.extend(riding_along(conn, q, now).await?);
    let mut sent = Vec::new();
    for each in asked {
        if mark_sent(conn, &each, now).await? {
            sent.push(each);
        }
    }
    if sent.is_empty() {
        day::give_back(conn, &q.account_id, q.last_nudge_at, now).await?;
        return Ok(false);
    }
    let out = message(&sent, q, false);
    notify(conn, now, &out).await?;
    Ok(true)
}

/// The account's other questionnaires whose ask or reminder is due now.
async fn riding_along(
    conn: &mut AnyConnection,
    q: &Waiting,
    now: i64,
) -> Result<Vec<Waiting>, sqlx::Error> {
    due_asks(conn, &q.account_id, &q.id, q.last_nudge_at, now).await
}

/// The account's questionnaires (but `except`) whose ask or reminder
/// would go out now if the day's message were free (`day_free_since`: the
/// last message before this one).
async fn due_asks(
    conn: &mut AnyConnection,
    account_id: &str,
    except: &str,
    day_free_since: Option<i64>,
    now: i64,
) -> Result<Vec<Waiting>, sqlx::Error> {
    let others: Vec<Waiting> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{WAITING} WHERE q.account_id = $1 AND q.id <> $2 AND q.status IN ('scheduled', 'open')
           AND q.next_action_at IS NOT NULL AND q.next_action_at <= $3
         ORDER BY q.due_at, q.id"
    )))
    .bind(account_id)
    .bind(except)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(others
        .into_iter()
        .filter(|o| {
            let free = Waiting {
                last_nudge_at: day_free_since,
                ..o.clone()
            };
            free.next(now) == Next::Send
        })
        .collect())
}

/// A silence nudge goes out to the account now, taking the day's message:
/// the questionnaires whose ask or reminder is due ride along in it (one
/// message, not two), recorded as sent, with an inbox item of their own
/// and no push of their own. Returns how many rode along. Call it in the
/// nudge's transaction, after the nudge took the day, with the
/// `last_nudge_at` read before it did.
pub async fn ride_with_nudge(
    conn: &mut AnyConnection,
    account_id: &str,
    last_message_at: Option<i64>,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut sent = Vec::new();
    for q in due_asks(conn, account_id, "", last_message_at, now).await? {
        if mark_sent(conn, &q, now).await? {
            sent.push(q);
        }
    }
    if let Some(first) = sent.first() {
        let out = message(&sent, first, true);
        notify(conn, now, &out).await?;
    }
    Ok(sent.len())
}

/// The inbox item (and push, unless `inbox_only`) about `sent`.
fn message(sent: &[Waiting], first: &Waiting, inbox_only: bool) -> Outgoing {
    let mut names: Vec<String> = sent.iter().map(|s| s.circle_name.clone()).collect();
    names.dedup();
    Outgoing {
        account_id: first.account_id.clone(),
        kind: NotificationKind::Questionnaire,
        params: TextParams {
            circle_name: names.join(", "),
            count: i64::try_from(sent.len()).unwrap_or(1),
            reminder: sent.iter().all(|s| s.prompts_sent > 0),
            ..Default::default()
        },
        circle_id: Some(first.circle_id.clone()),
        post_id: None,
        membership_id: Some(first.membership_id.clone()),
        alert_id: None,
        deliver_at: None,
        inbox_only,
    }
}

/// Records an ask or reminder, if the row is as it was read.
async fn mark_sent(conn: &mut AnyConnection, q: &Waiting, now: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE questionnaires SET status = 'open', prompts_sent = prompts_sent + 1,
                next_action_at = $1, lease_until = NULL
         WHERE id = $2 AND status = $3 AND prompts_sent = $4",
    )
    .bind(q.after_message(now))
    .bind(&q.id)
    .bind(&q.status)
    .bind(q.prompts_sent)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    /// Scheduled, due Monday 2 March 2026 10:00 in Amsterdam (09:00Z).
    fn waiting() -> Waiting {
        let due = ms("2026-03-02T09:00:00Z");
        Waiting {
            id: "q".into(),
            membership_id: "m".into(),
            account_id: "a".into(),
            circle_id: "c".into(),
            status: "scheduled".into(),
            prompts_sent: 0,
            next_action_at: Some(due),
            expires_at: due + WINDOW_DAYS * DAY_MS,
            left_at: None,
            measurement_off_at: None,
            away_until: None,
            archived_at: None,
            circle_name: "Kring".into(),
            time_zone: "Europe/Amsterdam".into(),
            quiet_start_min: 21 * 60,
            quiet_end_min: 9 * 60,
            reminder_time_min: None,
            last_nudge_at: None,
        }
    }

    #[test]
    fn asked_at_its_moment_outside_quiet_hours() {
        let q = waiting();
        assert_eq!(q.next(ms("2026-03-02T09:00:00Z")), Next::Send);
        // Made at 22:30 local: waits for 09:00 the next morning.
        let late = Waiting {
            next_action_at: Some(ms("2026-03-02T21:30:00Z")),
            ..waiting()
        };
        assert_eq!(
            late.next(ms("2026-03-02T21:30:00Z")),
            Next::WaitUntil(ms("2026-03-03T08:00:00Z"))
        );
    }

    #[test]
    fn a_nudge_today_moves_the_ask_to_tomorrow() {
        let q = Waiting {
            last_nudge_at: Some(ms("2026-03-02T08:30:00Z")),
            ..waiting()
        };
        assert_eq!(
            q.next(ms("2026-03-02T09:00:00Z")),
            Next::WaitUntil(ms("2026-03-03T08:00:00Z"))
        );
    }

    #[test]
    fn never_while_away_opted_out_or_after_three() {
        let now = ms("2026-03-02T09:00:00Z");
        let away = Waiting {
            away_until: Some(now + 2 * DAY_MS),
            ..waiting()
        };
        assert_eq!(away.next(now), Next::WaitUntil(now + 2 * DAY_MS));
        let off = Waiting {
            measurement_off_at: Some(now),
            ..waiting()
        };
        assert_eq!(off.next(now), Next::Finish);
        let asked_off = Waiting {
            status: "open".into(),
            prompts_sent: 1,
            ..off
        };
        assert_eq!(asked_off.next(now), Next::WaitUntil(asked_off.expires_at));
        let thrice = Waiting {
            status: "open".into(),
            prompts_sent: 3,
            ..waiting()
        };
        assert_eq!(thrice.next(now), Next::WaitUntil(thrice.expires_at));
        assert_eq!(thrice.next(thrice.expires_at), Next::Expire);
    }

    #[test]
    fn reminders_three_and_seven_days_after_the_ask() {
        let now = ms("2026-03-02T09:00:00Z");
        let q = waiting();
        assert_eq!(q.after_message(now), now + 3 * DAY_MS);
        let once = Waiting {
            prompts_sent: 1,
            ..waiting()
        };
        assert_eq!(once.after_message(now + 3 * DAY_MS), now + 7 * DAY_MS);
        let twice = Waiting {
            prompts_sent: 2,
            ..waiting()
        };
        assert_eq!(twice.after_message(now + 7 * DAY_MS), q.expires_at);
    }
}

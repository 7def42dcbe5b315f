//! A seeded simulation of questionnaires over about 200 days: members in
//! four time zones join over the first four months (some with a preferred
//! reminder time), answer, decline, ignore, turn measurement off, and check
//! in now and then (so silence nudges compete for the one message a day);
//! one circle ends on day 100 and asks a follow-up three months later. The
//! silence scheduler and the questionnaire job run at once (as two
//! instances would) on the injected clock every three hours, and after
//! every step the invariants are checked
//! against what Kring wrote:
//!
//! 1. one questionnaire per membership × instrument × moment, and every
//!    due one made (for members who never turned measurement off);
//! 2. at most the ask and two reminders (`prompts_sent` ≤ 3);
//! 3. no gentle message (ask, reminder, nudge) written in quiet hours;
//! 4. at most one such message per member per local day;
//! 5. nothing asked or reminded after answering, declining or opting out;
//! 6. no questionnaire still `open` past its window.
//!
//! Size: `KRING_QSIM_MEMBERS` (default 24), `KRING_QSIM_DAYS` (default
//! 200), `KRING_QSIM_SEED` (default 5).

use std::collections::{BTreeMap, HashMap};

use jiff::SignedDuration;
use kring::notifications::timing::QuietWindow;
use kring::silence::timing::local_day;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Person, TestApp};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const STEP: i64 = 3 * HOUR;
const ZONES: [&str; 4] = [
    "Europe/Amsterdam",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
];
const OPTIONS: [&str; 6] = [
    "all_of_the_time",
    "most_of_the_time",
    "more_than_half",
    "less_than_half",
    "some_of_the_time",
    "at_no_time",
];
/// The default plan's moments counted from the join, in days.
const FROM_JOIN: [(&str, i64); 4] = [
    ("intake", 0),
    ("week_6", 42),
    ("month_3", 91),
    ("month_6", 182),
];

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Member {
    name: String,
    circle: usize,
    zone: &'static str,
    reminder: Option<&'static str>,
    join_at: i64,
    person: Option<Person>,
    joined_at: i64,
    off: bool,
    /// Questionnaire id → its `prompts_sent` when it was answered or
    /// declined, or measurement was turned off: it never grows after.
    frozen: HashMap<String, i64>,
}

struct Sim {
    app: TestApp,
    rng: fastrand::Rng,
    worker: Person,
    circles: Vec<String>,
    circle_end: i64,
    members: Vec<Member>,
    /// (account, local day) → gentle messages seen.
    per_day: HashMap<(String, String), usize>,
    checked_until: i64,
    tally: BTreeMap<&'static str, usize>,
}

impl Sim {
    async fn join(&mut self, i: usize) {
        let (circle, name, zone, reminder) = {
            let m = &self.members[i];
            (
                self.circles[m.circle].clone(),
                m.name.clone(),
                m.zone,
                m.reminder,
            )
        };
        let app = &self.app;
        let code = app.invite(&self.worker, &circle, 1).await;
        let version = app
            .get(&format!("/v1/invites/{code}"), None)
            .await
            .expect(200)
            .body["agreement"]["version"]
            .clone();
        let r = app
            .post(
                "/v1/join",
                None,
                json!({"code": code, "pseudonym": name, "consent_version": version, "time_zone": zone}),
            )
            .await
            .expect(201);
        let mut p = Person::from_auth(&r);
        p.membership_id = Some(r.str("/membership/id"));
        if let Some(at) = reminder {
            app.patch("/v1/me", p.token(), json!({"preferred_reminder_time": at}))
                .await
                .expect(200);
        }
        let token = format!("fcm-token-{name}-000000000000000");
        app.post(
            "/v1/devices",
            p.token(),
            json!({"kind": "fcm", "token": token}),
        )
        .await
        .expect(201);
        let m = &mut self.members[i];
        m.joined_at = app.now_ms();
        m.person = Some(p);
    }

    async fn prompts(&self, id: &str) -> i64 {
        sqlx::query_scalar("SELECT prompts_sent FROM questionnaires WHERE id = $1")
            .bind(id)
            .fetch_one(self.app.state.store.pool())
            .await
            .unwrap()
    }

    /// One member's random doings in a step.
    async fn act(&mut self, i: usize) {
        let Some(p) = self.members[i].person.clone() else {
            return;
        };
        let app = &self.app;
        if self.rng.f64() < 0.04 {
            app.post("/v1/me/im-ok", p.token(), json!({}))
                .await
                .expect(201);
        }
        if !self.members[i].off && self.rng.f64() < 0.0003 {
            let circle = &self.circles[self.members[i].circle];
            app.put(
                &format!("/v1/circles/{circle}/membership/measurement"),
                p.token(),
                Some(json!({"on": false})),
            )
            .await
            .expect(200);
            self.members[i].off = true;
            *self.tally.entry("opted out").or_default() += 1;
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id FROM questionnaires WHERE account_id = $1")
                    .bind(&p.account_id)
                    .fetch_all(app.state.store.pool())
                    .await
                    .unwrap();
            for id in ids {
                let sent = self.prompts(&id).await;
                self.members[i].frozen.entry(id).or_insert(sent);
            }
            return;
        }
        if self.rng.f64() >= 0.06 {
            return;
        }
        let open = app
            .get("/v1/me/questionnaires", p.token())
            .await
            .expect(200);
        for q in open.body["items"].as_array().unwrap().clone() {
            let id = q["id"].as_str().unwrap().to_owned();
            let roll = self.rng.f64();
            if roll < 0.3 {
                let mut answers = serde_json::Map::new();
                for n in 1..=5 {
                    if self.rng.f64() < 0.9 {
                        let pick = OPTIONS[self.rng.usize(..OPTIONS.len())];
                        answers.insert(format!("who5_{n}"), Value::from(pick));
                    }
                }
                if answers.is_empty() {
                    answers.insert("who5_1".into(), Value::from("at_no_time"));
                }
                app.post(
                    &format!("/v1/me/questionnaires/{id}/answers"),
                    p.token(),
                    json!({"answers": answers}),
                )
                .await
                .expect(200);
                *self.tally.entry("answered").or_default() += 1;
            } else if roll < 0.45 {
                app.post(
                    &format!("/v1/me/questionnaires/{id}/decline"),
                    p.token(),
                    json!({}),
                )
                .await
                .expect(200);
                *self.tally.entry("declined").or_default() += 1;
            } else {
                continue;
            }
            let sent = self.prompts(&id).await;
            self.members[i].frozen.insert(id, sent);
        }
    }

    /// The silence scheduler and the questionnaire job at once, as two
    /// instances would run them: nudges and asks compete for the same day.
    async fn run_jobs(&self) {
        let (silence, questionnaires) = tokio::join!(
            kring::jobs::silence::run_until_idle(&self.app.state),
            kring::jobs::run_until_idle(
                &kring::jobs::questionnaires::Questionnaires,
                &self.app.state,
            )
        );
        silence.unwrap();
        questionnaires.unwrap();
    }

    async fn check(&mut self) {
        let now = self.app.now_ms();
        let pool = self.app.state.store.pool();
        // 1. Once, and every due one made.
        let twice: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT membership_id FROM questionnaires
             GROUP BY membership_id, instrument_key, moment HAVING COUNT(*) > 1) t",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(twice, 0, "a questionnaire made twice");
        for m in self.members.iter().filter(|m| !m.off) {
            let Some(p) = &m.person else { continue };
            let made: Vec<String> =
                sqlx::query_scalar("SELECT moment FROM questionnaires WHERE membership_id = $1")
                    .bind(p.membership())
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let mut due: Vec<&str> = FROM_JOIN
                .iter()
                .filter(|(_, d)| m.joined_at + d * DAY <= now)
                .map(|(name, _)| *name)
                .collect();
            if m.circle == 0 && self.circle_end + 91 * DAY <= now {
                due.push("follow_up");
            }
            for moment in due {
                assert!(
                    made.iter().any(|x| x == moment),
                    "{}: {moment} due but not made (made {made:?})",
                    m.name
                );
            }
        }
        // 2. The ask and at most two reminders.
        let most: Option<i64> = sqlx::query_scalar("SELECT MAX(prompts_sent) FROM questionnaires")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(most.unwrap_or(0) <= 3, "more than two reminders: {most:?}");
        // 5. Nothing after answering, declining or opting out.
        for m in &self.members {
            for (id, &sent) in &m.frozen {
                let now_sent: i64 =
                    sqlx::query_scalar("SELECT prompts_sent FROM questionnaires WHERE id = $1")
                        .bind(id)
                        .fetch_one(pool)
                        .await
                        .unwrap();
                assert_eq!(
                    now_sent, sent,
                    "{}: {id} asked again after it was settled",
                    m.name
                );
            }
        }
        // 6. Nothing open past its window.
        let stale: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM questionnaires WHERE status = 'open' AND expires_at <= $1",
        )
        .bind(now)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(stale, 0, "open questionnaires past their window");
        // 3 and 4. Gentle messages since the last check.
        let new: Vec<(String, String, i64, String, i64, i64)> = sqlx::query_as(
            "SELECT n.account_id, n.kind, n.created_at, a.time_zone, a.quiet_start_min, a.quiet_end_min
             FROM notifications n JOIN accounts a ON a.id = n.account_id
             WHERE n.kind IN ('nudge', 'questionnaire') AND n.created_at > $1
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)",
        )
        .bind(self.checked_until)
        .fetch_all(pool)
        .await
        .unwrap();
        for (account, kind, at, zone, start, end) in new {
            let quiet = QuietWindow {
                time_zone: zone.clone(),
                start_min: start,
                end_min: end,
            };
            assert!(
                !quiet.is_quiet(at),
                "{kind} for {account} in quiet hours at {at}"
            );
            let day = local_day(at, &zone).to_string();
            let seen = self
                .per_day
                .entry((account.clone(), day.clone()))
                .or_default();
            *seen += 1;
            assert!(
                *seen <= 1,
                "two gentle messages for {account} on {day} (the last a {kind})"
            );
            *self
                .tally
                .entry(if kind == "nudge" {
                    "nudges"
                } else {
                    "asks and reminders"
                })
                .or_default() += 1;
        }
        self.checked_until = now;
    }
}

both_backends!(questionnaires_over_two_hundred_days);
async fn questionnaires_over_two_hundred_days(backend: Backend) {
    let members = env_or("KRING_QSIM_MEMBERS", 24);
    let days = env_or("KRING_QSIM_DAYS", 200);
    let seed = env_or("KRING_QSIM_SEED", 5);
    let app = TestApp::spawn_with(backend, |c| c.access_token_ttl_secs = 400 * 86_400).await;
    let org = app.organisation("Welzijn", "coord@example.org").await;
    let worker = app.worker(&org, "worker@example.org").await;
    let mut circles = Vec::new();
    for name in ["Eindig", "Doorlopend"] {
        circles.push(app.circle(&worker, name).await);
    }
    let start = app.now_ms();
    let circle_end = start + 100 * DAY;
    let end_text = kring::clock::from_ms(circle_end).to_string();
    let plan = app
        .get(
            &format!("/v1/circles/{}/measurement-plan", circles[0]),
            worker.token(),
        )
        .await
        .expect(200)
        .body;
    app.put(
        &format!("/v1/circles/{}/measurement-plan", circles[0]),
        worker.token(),
        Some(json!({"ends_at": end_text, "moments": plan["moments"]})),
    )
    .await
    .expect(200);
    let mut rng = fastrand::Rng::with_seed(u64::try_from(seed).unwrap_or(5));
    let roster = (0..members)
        .map(|i| Member {
            name: format!("Lid{i}"),
            circle: usize::try_from(i % 2).unwrap_or(0),
            zone: ZONES[rng.usize(..ZONES.len())],
            reminder: [None, None, Some("10:30"), Some("19:45")][rng.usize(..4)],
            // Half at the start, the rest over four months.
            join_at: if i % 2 == 0 {
                start
            } else {
                start + rng.i64(0..120) * DAY + rng.i64(0..24) * HOUR
            },
            person: None,
            joined_at: 0,
            off: false,
            frozen: HashMap::new(),
        })
        .collect();
    let mut sim = Sim {
        app,
        rng,
        worker,
        circles,
        circle_end,
        members: roster,
        per_day: HashMap::new(),
        checked_until: 0,
        tally: BTreeMap::new(),
    };
    let steps = days * DAY / STEP;
    for _ in 0..steps {
        let now = sim.app.now_ms();
        for i in 0..sim.members.len() {
            if sim.members[i].person.is_none() && sim.members[i].join_at <= now {
                sim.join(i).await;
            }
            sim.act(i).await;
        }
        sim.app.advance(SignedDuration::from_millis(STEP));
        sim.run_jobs().await;
        sim.check().await;
    }
    let pool = sim.app.state.store.pool();
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM questionnaires GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let reminded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM questionnaires WHERE prompts_sent = 3")
            .fetch_one(pool)
            .await
            .unwrap();
    eprintln!(
        "questionnaire simulation: {:?}, {statuses:?}, {reminded} reminded twice",
        sim.tally
    );
    // The run exercised what it checks.
    let status = |s: &str| statuses.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    assert!(status("answered") > 0 && status("declined") > 0 && status("expired") > 0);
    assert!(reminded > 0);
    for what in ["opted out", "nudges", "asks and reminders"] {
        assert!(sim.tally.get(what).copied().unwrap_or(0) > 0, "no {what}");
    }
    sim.app.stop().await;
}

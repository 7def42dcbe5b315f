//! A seeded simulation of long real use of the silence engine: members in
//! seven time zones across a daylight-saving change, who write, check in,
//! take breaks (and end them early), turn nudges off, ask for contact at
//! night; workers who acknowledge, snooze, resolve or do nothing; policies
//! that change mid-silence. Everything goes through the API and the
//! scheduler on the injected clock, and after every step the invariants of
//! the README's silence rules are checked against what Kring wrote.
//!
//! Size: `KRING_SIM_MEMBERS` (default 140), `KRING_SIM_DAYS` (default 35),
//! `KRING_SIM_SEED` (default 11). A larger run, on demand:
//! `KRING_SIM_MEMBERS=1000 KRING_SIM_DAYS=60 cargo test --test api simulation -- --nocapture`.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use kring::circles::policy::{EscalationPolicy, StepAction};
use kring::notifications::timing::QuietWindow;
use kring::silence::engine::working_hours;
use kring::silence::ladder::{HOUR_MS, Ladder, Step};
use kring::silence::timing::local_day;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, Person, TestApp};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Actors act on a half-hour grid; the engine's own due times and the
/// oracle's deadlines are visited exactly in between.
const GRID_MS: i64 = 30 * MINUTE_MS;

const ZONES: [&str; 7] = [
    "Europe/Amsterdam",
    "Europe/London",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Kolkata",
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hhmm(min: i64) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

struct Member {
    person: Person,
    circle: usize,
    zone: &'static str,
    quiet: (i64, i64),
    /// Chance of some activity on a given day: some members vanish.
    daily: f64,
    last_activity: i64,
    /// Breaks as [start, end); the last may still be running.
    breaks: Vec<(i64, i64)>,
    nudges_on: bool,
    /// Alert deadlines of the current silence already verified.
    verified: Vec<i64>,
}

impl Member {
    fn away_at(&self, t: i64) -> bool {
        self.breaks.iter().any(|&(s, e)| s <= t && t < e)
    }

    /// The silence starts at the last activity or at the end of a break.
    fn silence_start(&self) -> i64 {
        self.breaks
            .iter()
            .map(|&(_, e)| e)
            .fold(self.last_activity, |s, e| if e > s { e } else { s })
    }

    fn quiet(&self) -> QuietWindow {
        QuietWindow {
            time_zone: self.zone.into(),
            start_min: self.quiet.0,
            end_min: self.quiet.1,
        }
    }
}

struct Circle {
    id: String,
    worker: usize,
    policy: EscalationPolicy,
    changed_at: i64,
}

struct Worker {
    person: Person,
}

pub struct Sim {
    app: TestApp,
    rng: fastrand::Rng,
    members: Vec<Member>,
    circles: Vec<Circle>,
    workers: Vec<Worker>,
    by_membership: HashMap<String, usize>,
    /// Nudge inbox items per (account, local day).
    nudge_days: HashMap<(String, jiff::civil::Date), u32>,
    /// "I would like contact" check-ins: (member, time).
    contact_requests: Vec<(usize, i64)>,
    stats: BTreeMap<&'static str, u64>,
    pub checked_to: i64,
}

async fn world(backend: Backend, members: usize, seed: u64) -> Sim {
    let app = TestApp::spawn_with(backend, |c| c.access_token_ttl_secs = 400 * 86_400).await;
    // Friday 20 March 2026, 09:00 UTC: Europe moves its clocks on the 29th,
    // Sydney on 5 April.
    app.clock.set("2026-03-20T09:00:00Z".parse().expect("time"));
    let mut rng = fastrand::Rng::with_seed(seed);
    let org = app.organisation("Simulatie", "coord@sim.example").await;
    let mut workers = Vec::new();
    for (i, zone) in ["Europe/Amsterdam", "Europe/London", "America/New_York"]
        .iter()
        .enumerate()
    {
        let person = app.worker(&org, &format!("w{i}@sim.example")).await;
        app.patch("/v1/me", person.token(), json!({"time_zone": zone}))
            .await
            .expect(200);
        app.post(
            "/v1/devices",
            person.token(),
            json!({"kind": "fcm", "token": format!("worker-device-{i}-0123456789abcdef")}),
        )
        .await
        .expect(201);
        workers.push(Worker { person });
    }
    app.patch(
        "/v1/me",
        org.coordinator.token(),
        json!({"time_zone": "Asia/Tokyo"}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/devices",
        org.coordinator.token(),
        json!({"kind": "fcm", "token": "coordinator-device-0123456789abcdef"}),
    )
    .await
    .expect(201);
    let circle_count = members.div_ceil(12).max(2);
    let mut circles = Vec::new();
    for c in 0..circle_count {
        let worker = c % workers.len();
        let id = app
            .circle(&workers[worker].person, &format!("Kring {c}"))
            .await;
        let rhythm = [1, 2, 2, 3][c % 4];
        let r = app
            .patch(
                &format!("/v1/circles/{id}"),
                workers[worker].person.token(),
                json!({"rhythm_days": rhythm}),
            )
            .await
            .expect(200);
        let policy: EscalationPolicy =
            serde_json::from_value(r.body["escalation_policy"].clone()).expect("policy");
        circles.push(Circle {
            id,
            worker,
            policy,
            changed_at: 0,
        });
    }
    let now = app.now_ms();
    let mut list = Vec::new();
    let mut by_membership = HashMap::new();
    for i in 0..members {
        let circle = i % circle_count;
        let person = app
            .member(
                &workers[circles[circle].worker].person,
                &circles[circle].id,
                &format!("Lid {i}"),
            )
            .await;
        let zone = ZONES[i % ZONES.len()];
        let quiet = match rng.u8(0..4) {
            0 => (22 * 60, 8 * 60),
            1 => (20 * 60 + 30, 9 * 60 + 30),
            _ => (21 * 60, 9 * 60),
        };
        let mut settings = json!({"time_zone": zone, "quiet_hours": {"start": hhmm(quiet.0), "end": hhmm(quiet.1)}});
        if rng.u8(0..3) == 0 {
            settings["preferred_reminder_time"] =
                json!(hhmm([10 * 60, 12 * 60 + 30, 19 * 60 + 15][rng.usize(0..3)]));
        }
        app.patch("/v1/me", person.token(), settings)
            .await
            .expect(200);
        app.post(
            "/v1/devices",
            person.token(),
            json!({"kind": "fcm", "token": format!("member-device-{i}-0123456789abcdef")}),
        )
        .await
        .expect(201);
        by_membership.insert(person.membership().to_owned(), i);
        let daily = [0.0, 0.15, 0.35, 0.6, 0.85][rng.usize(0..5)];
        list.push(Member {
            person,
            circle,
            zone,
            quiet,
            daily,
            last_activity: now,
            breaks: Vec::new(),
            nudges_on: true,
            verified: Vec::new(),
        });
    }
    Sim {
        app,
        rng,
        members: list,
        circles,
        workers,
        by_membership,
        nudge_days: HashMap::new(),
        contact_requests: Vec::new(),
        stats: BTreeMap::new(),
        checked_to: now,
    }
}

impl Sim {
    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn local_hour(&self, zone: &str, t: i64) -> i8 {
        Timestamp::from_millisecond(t)
            .expect("time")
            .to_zoned(jiff::tz::TimeZone::get(zone).expect("zone"))
            .hour()
    }

    /// What the members, workers and the organisation do at a grid time.
    async fn act(&mut self, t: i64) {
        for i in 0..self.members.len() {
            let hour = self.local_hour(self.members[i].zone, t);
            let awake = (8..23).contains(&hour);
            // About one action per active day, spread over waking hours.
            let chance = if awake {
                self.members[i].daily / 30.0
            } else {
                0.0
            };
            if self.rng.f64() < chance {
                self.activity(i, t).await;
            }
            // A contact request in the small hours, now and then.
            if !awake && self.rng.f64() < 0.0006 {
                self.checkin(i, t, json!({"mood": 1, "wants_contact": true}))
                    .await;
                self.contact_requests.push((i, t));
                self.count("contact requests");
            }
            if self.rng.f64() < 1.0 / (20.0 * 48.0) {
                self.break_change(i, t).await;
            }
            if self.rng.f64() < 1.0 / (60.0 * 48.0) {
                let on = !self.members[i].nudges_on;
                self.membership(i, json!({"nudges_enabled": on})).await;
                self.members[i].nudges_on = on;
                self.count("nudge settings");
            }
        }
        for w in 0..self.workers.len() {
            if self.rng.f64() < 1.0 / 16.0 {
                self.worker_round(w, t).await;
            }
        }
        if self.rng.f64() < 1.0 / (4.0 * 48.0) {
            self.policy_change(t).await;
        }
    }

    async fn checkin(&mut self, i: usize, t: i64, body: serde_json::Value) {
        let circle = self.circles[self.members[i].circle].id.clone();
        self.app
            .post(
                &format!("/v1/circles/{circle}/checkins"),
                self.members[i].person.token(),
                body,
            )
            .await
            .expect(201);
        self.members[i].last_activity = t;
        self.members[i].verified.clear();
    }

    async fn activity(&mut self, i: usize, t: i64) {
        let circle = self.circles[self.members[i].circle].id.clone();
        let token = self.members[i].person.access.clone();
        match self.rng.u8(0..10) {
            0 => {
                self.app
                    .post(
                        &format!("/v1/circles/{circle}/posts"),
                        Some(&token),
                        json!({"body": "Een goede dag vandaag."}),
                    )
                    .await
                    .expect(201);
                self.members[i].last_activity = t;
                self.members[i].verified.clear();
            }
            1 => {
                self.app
                    .post("/v1/me/im-ok", Some(&token), json!({}))
                    .await
                    .expect(201);
                self.members[i].last_activity = t;
                self.members[i].verified.clear();
            }
            _ => {
                let mood = self.rng.i64(1..=5);
                self.checkin(i, t, json!({"mood": mood})).await;
            }
        }
        self.count("activities");
    }

    async fn membership(&mut self, i: usize, body: serde_json::Value) {
        let circle = self.circles[self.members[i].circle].id.clone();
        self.app
            .patch(
                &format!("/v1/circles/{circle}/membership"),
                self.members[i].person.token(),
                body,
            )
            .await
            .expect(200);
    }

    /// A break begins, or one running ends early or is shortened.
    async fn break_change(&mut self, i: usize, t: i64) {
        let running = self.members[i]
            .breaks
            .last()
            .copied()
            .filter(|&(_, e)| e > t);
        match running {
            None => {
                let until = t + self.rng.i64(1..=10) * DAY_MS + self.rng.i64(0..48) * GRID_MS;
                let at = Timestamp::from_millisecond(until)
                    .expect("time")
                    .to_string();
                self.membership(i, json!({"away_until": at})).await;
                self.members[i].breaks.push((t, until));
                self.members[i].verified.clear();
                self.count("breaks");
            }
            Some((start, end)) => {
                let n = self.members[i].breaks.len() - 1;
                if self.rng.bool() || end - t <= HOUR_MS {
                    self.membership(i, json!({"away_until": null})).await;
                    self.members[i].breaks[n] = (start, t);
                    self.count("breaks ended early");
                } else {
                    let until = t + self.rng.i64(HOUR_MS..end - t);
                    let at = Timestamp::from_millisecond(until)
                        .expect("time")
                        .to_string();
                    self.membership(i, json!({"away_until": at})).await;
                    self.members[i].breaks[n] = (start, until);
                    self.count("breaks shortened");
                }
                self.members[i].verified.clear();
            }
        }
    }

    /// A worker goes through their alerts: acknowledges, snoozes, resolves
    /// or leaves each.
    async fn worker_round(&mut self, w: usize, t: i64) {
        let token = self.workers[w].person.access.clone();
        let mut cursor: Option<String> = None;
        let mut alerts = Vec::new();
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/alerts?limit=50&cursor={c}"),
                None => "/v1/alerts?limit=50".to_owned(),
            };
            let r = self.app.get(&path, Some(&token)).await.expect(200);
            for a in r.body["items"].as_array().expect("items") {
                let key = |f: &str| a[f].as_str().unwrap_or_default().to_owned();
                alerts.push((key("opened_at"), key("pseudonym"), key("reason"), key("id")));
            }
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        // Ids are random: the order that draws from the seed is by what the
        // worker sees, so a run repeats exactly.
        alerts.sort();
        for (_, _, _, id) in alerts {
            match self.rng.u8(0..10) {
                0..=2 => {
                    self.app
                        .post(
                            &format!("/v1/alerts/{id}/acknowledge"),
                            Some(&token),
                            json!({}),
                        )
                        .await
                        .expect(200);
                    self.count("acknowledged");
                }
                3 | 4 => {
                    let until = t + self.rng.i64(6..=72) * HOUR_MS;
                    let at = Timestamp::from_millisecond(until)
                        .expect("time")
                        .to_string();
                    self.app
                        .post(
                            &format!("/v1/alerts/{id}/snooze"),
                            Some(&token),
                            json!({"until": at}),
                        )
                        .await
                        .expect(200);
                    self.count("snoozed");
                }
                5 | 6 => {
                    let outcome = ["no_answer", "reached", "not_needed"][self.rng.usize(0..3)];
                    self.app
                        .post(
                            &format!("/v1/alerts/{id}/resolve"),
                            Some(&token),
                            json!({"outcome": outcome}),
                        )
                        .await
                        .expect(200);
                    self.count("resolved by hand");
                }
                _ => {}
            }
        }
    }

    /// A worker changes a circle's rhythm or its policy, mid-silence for many.
    async fn policy_change(&mut self, t: i64) {
        let c = self.rng.usize(0..self.circles.len());
        let body = if self.rng.bool() {
            json!({"rhythm_days": self.rng.i64(1..=4)})
        } else {
            let mut steps = Vec::new();
            let mut h = 0;
            for _ in 0..self.rng.usize(2..=5) {
                h += self.rng.i64(12..=36);
                steps.push(json!({"after_hours": h, "action": "nudge"}));
            }
            let alert = self.rng.usize(1..steps.len());
            steps[alert]["action"] = json!("alert_worker");
            json!({"escalation_policy": {
                "steps": steps,
                "coordinator_after_working_hours": 4,
                "realert_after_days": self.rng.i64(2..=7)
            }})
        };
        let worker = self.workers[self.circles[c].worker].person.access.clone();
        let r = self
            .app
            .patch(
                &format!("/v1/circles/{}", self.circles[c].id),
                Some(&worker),
                body,
            )
            .await
            .expect(200);
        self.circles[c].policy =
            serde_json::from_value(r.body["escalation_policy"].clone()).expect("policy");
        self.circles[c].changed_at = t;
        for m in self.members.iter_mut().filter(|m| m.circle == c) {
            m.verified.clear();
        }
        self.count("policy changes");
    }

    /// The alert deadlines of a member's current silence up to `until`: every
    /// alert step of the ladder (policy and repeats) at its policy time.
    /// After a policy change in the silence only the first is promised
    /// (earlier progress maps onto it by time).
    pub fn deadlines(&self, i: usize, until: i64) -> Vec<i64> {
        let m = &self.members[i];
        let circle = &self.circles[m.circle];
        let start = m.silence_start();
        let ladder = Ladder::new(&circle.policy);
        let mut out = Vec::new();
        let mut after = None;
        while let Some(step) = ladder.next_after(StepAction::AlertWorker, after) {
            let due = (start + step.after_hours * HOUR_MS).max(circle.changed_at);
            if due > until {
                break;
            }
            out.push(due);
            if circle.changed_at > start {
                break;
            }
            after = Some(step.after_hours);
        }
        out
    }

    fn next_deadline(&self, after: i64, horizon: i64) -> Option<i64> {
        (0..self.members.len())
            .flat_map(|i| self.deadlines(i, horizon))
            .filter(|&d| d > after)
            .min()
    }

    /// The next moment anything is due in Kring itself.
    async fn next_engine_time(&self) -> Option<i64> {
        let pool = self.app.state.store.pool();
        let mut best: Option<i64> = None;
        for sql in [
            "SELECT MIN(next_step_due_at) FROM memberships",
            "SELECT MIN(escalate_at) FROM alerts WHERE escalated_at IS NULL AND status = 'open'",
            "SELECT MIN(snoozed_until) FROM alerts WHERE status = 'snoozed'",
            "SELECT MIN(not_before) FROM deliveries WHERE status = 'pending'",
        ] {
            let t: Option<i64> = sqlx::query_scalar(sql).fetch_one(pool).await.expect("min");
            best = match (best, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        best
    }

    /// Two scheduler instances at once (they split the due memberships
    /// between them by lease), then delivery.
    async fn settle(&self) {
        let (one, two) = tokio::join!(
            kring::jobs::silence::run_until_idle(&self.app.state),
            kring::jobs::silence::run_until_idle(&self.app.state)
        );
        one.expect("scheduler");
        two.expect("second scheduler");
        kring::jobs::delivery::run_until_idle(&self.app.state)
            .await
            .expect("delivery");
    }

    /// Runs the simulation to `end`, checking after every step.
    pub async fn run(&mut self, end: i64) {
        let mut t = self.app.now_ms();
        let mut next_grid = t + GRID_MS;
        while t < end {
            let engine = self.next_engine_time().await.filter(|&e| e > t);
            let oracle = self.next_deadline(t, next_grid);
            let next = [Some(next_grid), engine, oracle]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_grid);
            t = next;
            self.app
                .clock
                .set(Timestamp::from_millisecond(t).expect("time"));
            if t == next_grid {
                self.act(t).await;
                next_grid += GRID_MS;
            }
            self.settle().await;
            let violations = self.check(t).await;
            assert!(
                violations.is_empty(),
                "at {}: {violations:#?}",
                Timestamp::from_millisecond(t).expect("time")
            );
            self.count("steps");
        }
    }

    /// Checks every invariant over what Kring wrote since the last check,
    /// up to `t`. Returns the violations (empty: all hold).
    pub async fn check(&mut self, t: i64) -> Vec<String> {
        let from = self.checked_to;
        self.checked_to = t;
        let pool = self.app.state.store.pool().clone();
        let mut bad = Vec::new();

        // Nudges: never in quiet hours, at most one a local day, never while
        // away, never earlier than the policy (checked on the steps below).
        let nudges: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT account_id, membership_id, created_at FROM notifications
             WHERE kind = 'nudge' AND created_at > $1 AND created_at <= $2",
        )
        .bind(from)
        .bind(t)
        .fetch_all(&pool)
        .await
        .expect("nudges");
        for (account, membership, at) in nudges {
            let Some(&i) = self.by_membership.get(&membership) else {
                bad.push(format!("nudge for an unknown membership {membership}"));
                continue;
            };
            let m = &self.members[i];
            if m.quiet().is_quiet(at) {
                bad.push(format!("quiet hours: nudge to member {i} at {at}"));
            }
            if m.away_at(at) {
                bad.push(format!("away: nudge to member {i} at {at}"));
            }
            let day = local_day(at, m.zone);
            let n = self.nudge_days.entry((account, day)).or_default();
            *n += 1;
            if *n > 1 {
                bad.push(format!("daily cap: {n} nudges to member {i} on {day}"));
            }
        }

        // Pushes sent in this window: nudges outside quiet hours and breaks;
        // silence news to staff inside the recipient's working hours.
        type Push = (String, Option<String>, String, Option<String>, i64);
        let pushes: Vec<Push> = sqlx::query_as(
            "SELECT n.kind, n.membership_id, n.account_id, al.reason, d.sent_at
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             LEFT JOIN alerts al ON al.id = n.alert_id
             WHERE d.status = 'delivered' AND d.sent_at > $1 AND d.sent_at <= $2
               AND n.kind IN ('nudge', 'alert', 'alert_escalated', 'all_clear')",
        )
        .bind(from)
        .bind(t)
        .fetch_all(&pool)
        .await
        .expect("pushes");
        for (kind, membership, account, reason, sent) in pushes {
            let member = membership
                .as_deref()
                .and_then(|m| self.by_membership.get(m))
                .copied();
            if kind == "nudge" {
                if let Some(i) = member
                    && (self.members[i].quiet().is_quiet(sent) || self.members[i].away_at(sent))
                {
                    bad.push(format!(
                        "nudge push to member {i} at {sent} in quiet hours or away"
                    ));
                }
                continue;
            }
            if reason.as_deref() == Some("silence") {
                if let Some(i) = member
                    && kind != "all_clear"
                    && self.members[i].away_at(sent)
                {
                    bad.push(format!("away: {kind} push about member {i} at {sent}"));
                }
                let (tz, days, start, end): (String, String, i64, i64) = sqlx::query_as(
                    "SELECT time_zone, work_days, work_start_min, work_end_min FROM accounts WHERE id = $1",
                )
                .bind(&account)
                .fetch_one(&pool)
                .await
                .expect("account");
                if working_hours(tz, &days, start, end).next_working(sent) != sent {
                    bad.push(format!("working hours: {kind} push to {account} at {sent}"));
                }
            }
        }

        // Silence news written while the member was away.
        let news: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT n.kind, n.membership_id, n.created_at FROM notifications n
             JOIN alerts al ON al.id = n.alert_id
             WHERE n.kind IN ('alert', 'alert_escalated') AND al.reason = 'silence'
               AND n.created_at > $1 AND n.created_at <= $2",
        )
        .bind(from)
        .bind(t)
        .fetch_all(&pool)
        .await
        .expect("news");
        for (kind, membership, at) in news {
            if let Some(&i) = self.by_membership.get(&membership)
                && self.members[i].away_at(at)
            {
                bad.push(format!("away: {kind} about member {i} at {at}"));
            }
        }

        // Steps: never earlier than the policy; alerts never twice at once.
        let steps: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT membership_id, silence_start, step_key, fired_at FROM silence_steps
             WHERE fired_at > $1 AND fired_at <= $2",
        )
        .bind(from)
        .bind(t)
        .fetch_all(&pool)
        .await
        .expect("steps");
        for (membership, start, key, fired) in steps {
            if let Some(step) = Step::from_key(key)
                && fired < start + step.after_hours * HOUR_MS
            {
                bad.push(format!(
                    "early: step {key} of {membership} fired at {fired}, due {}",
                    start + step.after_hours * HOUR_MS
                ));
            }
        }
        let doubles: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT account_id, alert_id, created_at FROM notifications
             WHERE kind = 'alert' AND created_at > $1 AND created_at <= $2
             GROUP BY account_id, alert_id, created_at HAVING COUNT(*) > 1) d",
        )
        .bind(from)
        .bind(t)
        .fetch_one(&pool)
        .await
        .expect("doubles");
        if doubles > 0 {
            bad.push(format!("twice: {doubles} alert notices sent twice"));
        }
        let open_twice: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT membership_id FROM alerts
             WHERE reason = 'silence' AND status <> 'resolved' GROUP BY membership_id HAVING COUNT(*) > 1) d",
        )
        .fetch_one(&pool)
        .await
        .expect("open twice");
        if open_twice > 0 {
            bad.push(format!(
                "twice: {open_twice} members with two open silence alerts"
            ));
        }

        // Every alert step reached: the workers were told at its due time
        // (after a policy change in the silence: by then), unless the open
        // alert is snoozed past it.
        for i in 0..self.members.len() {
            let due: Vec<i64> = self
                .deadlines(i, t)
                .into_iter()
                .filter(|d| !self.members[i].verified.contains(d))
                .collect();
            let start = self.members[i].silence_start();
            let changed = self.circles[self.members[i].circle].changed_at > start;
            for d in due {
                let membership = self.members[i].person.membership().to_owned();
                let told: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notifications n JOIN alerts al ON al.id = n.alert_id
                     WHERE n.membership_id = $1 AND n.kind = 'alert' AND al.reason = 'silence'
                       AND n.created_at >= $2 AND n.created_at <= $3",
                )
                .bind(&membership)
                .bind(if changed { start } else { d })
                .bind(d)
                .fetch_one(&pool)
                .await
                .expect("told");
                let snoozed: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM alerts WHERE membership_id = $1 AND reason = 'silence'
                       AND status = 'snoozed' AND snoozed_until > $2",
                )
                .bind(&membership)
                .bind(d)
                .fetch_one(&pool)
                .await
                .expect("snoozed");
                if told == 0 && snoozed == 0 {
                    bad.push(format!(
                        "late: member {i}, silent since {start}, not told by {d}"
                    ));
                }
                self.members[i].verified.push(d);
                self.count("alert deadlines met");
            }
        }

        // Every contact request: an alert of its own, told at once.
        let requests: Vec<(usize, i64)> = self
            .contact_requests
            .iter()
            .copied()
            .filter(|&(_, at)| at > from && at <= t)
            .collect();
        for (i, at) in requests {
            let pushed_at: Vec<i64> = sqlx::query_scalar(
                "SELECT d.not_before FROM alerts al JOIN notifications n ON n.alert_id = al.id
                 JOIN deliveries d ON d.notification_id = n.id
                 WHERE al.membership_id = $1 AND al.reason = 'contact_request' AND al.opened_at = $2",
            )
            .bind(self.members[i].person.membership())
            .bind(at)
            .fetch_all(&pool)
            .await
            .expect("contact");
            if pushed_at.is_empty() || pushed_at.iter().any(|&p| p != at) {
                bad.push(format!(
                    "contact: member {i}'s request at {at} pushed at {pushed_at:?}"
                ));
            }
        }

        // All clears: an alert resolved by the member's return tells every
        // worker of the circle.
        let cleared: Vec<(String, String)> = sqlx::query_as(
            "SELECT al.id, al.circle_id FROM alerts al
             WHERE al.resolution_outcome = 'member_active' AND al.resolved_at > $1 AND al.resolved_at <= $2",
        )
        .bind(from)
        .bind(t)
        .fetch_all(&pool)
        .await
        .expect("cleared");
        for (alert, circle) in cleared {
            let (workers, told): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM memberships WHERE circle_id = $1 AND role = 'worker' AND left_at IS NULL),
                        (SELECT COUNT(*) FROM notifications WHERE alert_id = $2 AND kind = 'all_clear')",
            )
            .bind(&circle)
            .bind(&alert)
            .fetch_one(&pool)
            .await
            .expect("all clear");
            if told < workers {
                bad.push(format!(
                    "all clear: alert {alert} told {told} of {workers} workers"
                ));
            }
        }
        bad
    }
}

async fn silence_over_weeks(backend: Backend) {
    let members = usize::try_from(env_or("KRING_SIM_MEMBERS", 140)).unwrap_or(140);
    let days = i64::try_from(env_or("KRING_SIM_DAYS", 35)).unwrap_or(35);
    let seed = env_or("KRING_SIM_SEED", 11);
    let mut sim = world(backend, members, seed).await;
    let end = sim.app.now_ms() + days * DAY_MS;
    sim.run(end).await;
    // The run must have exercised what it claims to.
    let alerts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE reason = 'silence'")
        .fetch_one(sim.app.state.store.pool())
        .await
        .expect("alerts");
    let nudges: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE kind = 'nudge'")
        .fetch_one(sim.app.state.store.pool())
        .await
        .expect("nudges");
    eprintln!(
        "simulation ({backend:?}, {members} members, {days} days, seed {seed}): {alerts} silence alerts, {nudges} nudges, {:?}",
        sim.stats
    );
    for what in [
        "breaks",
        "breaks ended early",
        "policy changes",
        "acknowledged",
        "snoozed",
        "resolved by hand",
        "alert deadlines met",
    ] {
        assert!(
            sim.stats.get(what).is_some_and(|&n| n > 0),
            "no {what}: {:?}",
            sim.stats
        );
    }
    if members >= 100 {
        assert!(sim.stats.get("contact requests").is_some_and(|&n| n > 0));
    }
    assert!(alerts > 0 && nudges > 0);
    sim.app.stop().await;
}
both_backends!(silence_over_weeks);

/// Each invariant bites: a short run, then one planted violation of each
/// kind, written as a faulty engine would have written it.
async fn the_invariants_bite(backend: Backend) {
    let mut sim = world(backend, 14, 5).await;
    let start = sim.app.now_ms();
    sim.run(start + 9 * DAY_MS).await;
    let pool = sim.app.state.store.pool().clone();
    let t = sim.app.now_ms();

    // A member who vanished: the first with an alert.
    let (membership, account, alert_id, circle_id): (String, String, String, String) = sqlx::query_as(
        "SELECT al.membership_id, m.account_id, al.id, al.circle_id FROM alerts al
         JOIN memberships m ON m.id = al.membership_id WHERE al.reason = 'silence' ORDER BY al.opened_at LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("an alert in nine days");
    let i = sim.by_membership[&membership];
    let zone = sim.members[i].zone;
    let local = |t: i64, hour: i8| -> i64 {
        let day = local_day(t, zone);
        day.to_datetime(jiff::civil::Time::new(hour, 0, 0, 0).expect("time"))
            .to_zoned(jiff::tz::TimeZone::get(zone).expect("zone"))
            .expect("zoned")
            .timestamp()
            .as_millisecond()
    };
    let plant_nudge = |at: i64| {
        let (pool, account, membership) = (pool.clone(), account.clone(), membership.clone());
        async move {
            sqlx::query(
                "INSERT INTO notifications (id, account_id, kind, locale, title, body, deep_link, membership_id,
                                            created_at, updated_at)
                 VALUES ($1, $2, 'nudge', 'nl', 't', 'b', 'kring://inbox', $3, $4, $4)",
            )
            .bind(kring::secrets::new_id())
            .bind(account)
            .bind(membership)
            .bind(at)
            .execute(&pool)
            .await
            .expect("plant");
        }
    };
    let expect = |sim_bad: Vec<String>, what: &str| {
        assert!(
            sim_bad.iter().any(|b| b.starts_with(what)),
            "the {what} invariant did not bite: {sim_bad:?}"
        );
    };

    // Quiet hours: a nudge at 03:00 local, the day after tomorrow.
    let at = local(t + 2 * DAY_MS, 3);
    plant_nudge(at).await;
    expect(check_window(&mut sim, at).await, "quiet hours");
    // The daily cap: two nudges at noon and one in the afternoon.
    let noon = local(t + 4 * DAY_MS, 12);
    plant_nudge(noon).await;
    plant_nudge(noon + HOUR_MS).await;
    expect(check_window(&mut sim, noon + HOUR_MS).await, "daily cap");
    // Away: a break in the model covering a planted nudge.
    let later = local(t + 6 * DAY_MS, 12);
    sim.members[i]
        .breaks
        .push((later - HOUR_MS, later + HOUR_MS));
    plant_nudge(later).await;
    expect(check_window(&mut sim, later).await, "away");
    sim.members[i].breaks.pop();
    // Earlier than the policy: a step fired before it was due.
    sqlx::query(
        "INSERT INTO silence_steps (membership_id, silence_start, step_key, action, outcome, fired_at)
         VALUES ($1, $2, $3, 'nudge', 'nudged', $4)",
    )
    .bind(&membership)
    .bind(later)
    .bind(Step { action: StepAction::Nudge, after_hours: 24 }.key())
    .bind(later + HOUR_MS)
    .execute(&pool)
    .await
    .expect("plant step");
    expect(check_window(&mut sim, later + HOUR_MS).await, "early");
    // A contact request nobody heard of.
    sim.contact_requests.push((i, later + 2 * HOUR_MS));
    expect(check_window(&mut sim, later + 2 * HOUR_MS).await, "contact");
    // A return without an all clear.
    sqlx::query(
        "UPDATE alerts SET status = 'resolved', resolution_outcome = 'member_active', resolved_at = $1 WHERE id = $2",
    )
    .bind(later + 3 * HOUR_MS)
    .bind(&alert_id)
    .execute(&pool)
    .await
    .expect("resolve");
    sqlx::query("DELETE FROM notifications WHERE alert_id = $1 AND kind = 'all_clear'")
        .bind(&alert_id)
        .execute(&pool)
        .await
        .expect("forget");
    expect(
        check_window(&mut sim, later + 3 * HOUR_MS).await,
        "all clear",
    );
    // A late alert: the member's alert notices vanish.
    sqlx::query("DELETE FROM deliveries WHERE notification_id IN (SELECT id FROM notifications WHERE membership_id = $1 AND kind = 'alert')")
        .bind(&membership)
        .execute(&pool)
        .await
        .expect("forget deliveries");
    sqlx::query("DELETE FROM notifications WHERE membership_id = $1 AND kind = 'alert'")
        .bind(&membership)
        .execute(&pool)
        .await
        .expect("forget notices");
    sqlx::query("UPDATE alerts SET status = 'resolved' WHERE membership_id = $1")
        .bind(&membership)
        .execute(&pool)
        .await
        .expect("resolve all");
    sim.members[i].verified.clear();
    sim.members[i].breaks.clear();
    sim.members[i].last_activity = start;
    expect(check_window(&mut sim, later + 4 * HOUR_MS).await, "late");
    // Working hours: an alert push delivered to the worker at 03:00 in Amsterdam.
    let worker: String = sqlx::query_scalar(
        "SELECT account_id FROM memberships WHERE circle_id = $1 AND role = 'worker' LIMIT 1",
    )
    .bind(&circle_id)
    .fetch_one(&pool)
    .await
    .expect("worker");
    let night = amsterdam_3am_after(later + 5 * HOUR_MS);
    let notice = kring::secrets::new_id();
    sqlx::query(
        "INSERT INTO notifications (id, account_id, kind, locale, title, body, deep_link, membership_id, alert_id,
                                    created_at, updated_at)
         VALUES ($1, $2, 'alert', 'nl', 't', 'b', 'kring://inbox', $3, $4, $5, $5)",
    )
    .bind(&notice)
    .bind(&worker)
    .bind(&membership)
    .bind(&alert_id)
    .bind(night)
    .execute(&pool)
    .await
    .expect("plant notice");
    let device: String = sqlx::query_scalar("SELECT id FROM devices WHERE account_id = $1 LIMIT 1")
        .bind(&worker)
        .fetch_one(&pool)
        .await
        .expect("device");
    sqlx::query(
        "INSERT INTO deliveries (id, notification_id, device_id, provider, status, not_before, expires_at, ttl_secs,
                                 urgency, created_at, updated_at, sent_at)
         VALUES ($1, $2, $3, 'fcm', 'delivered', $4, $4, 60, 'high', $4, $4, $4)",
    )
    .bind(kring::secrets::new_id())
    .bind(&notice)
    .bind(&device)
    .bind(night)
    .execute(&pool)
    .await
    .expect("plant push");
    expect(check_window(&mut sim, night).await, "working hours");
    sim.app.stop().await;
}
both_backends!(the_invariants_bite);

/// The first 03:00 in Amsterdam after `t`.
fn amsterdam_3am_after(t: i64) -> i64 {
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("zone");
    let day = local_day(t, "Europe/Amsterdam");
    [day, day.tomorrow().expect("day")]
        .into_iter()
        .map(|d| {
            d.to_datetime(jiff::civil::Time::new(3, 0, 0, 0).expect("time"))
                .to_zoned(zone.clone())
                .expect("zoned")
                .timestamp()
                .as_millisecond()
        })
        .find(|&at| at > t)
        .expect("a night")
}

/// Checks the window up to `t` (the planted rows lie in it).
async fn check_window(sim: &mut Sim, t: i64) -> Vec<String> {
    sim.app
        .clock
        .set(Timestamp::from_millisecond(t).expect("time"));
    sim.check(t).await
}

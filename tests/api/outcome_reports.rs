//! Outcome reports (issue 14, phase 2b): every figure of a fixed cohort
//! against arithmetic written out here; small-cell suppression (k − 1
//! against k, secondary suppression, `KRING_REPORT_MIN_CELL=1`, a circle's
//! own unsuppressed report and who may read it); the CSV against the JSON;
//! circle and join-period filters; a comparison cohort's difference; an
//! instrument that needs a permission; and bad parameters.
//!
//! Fixtures are inserted directly: memberships come from joining, their
//! questionnaires (status, moment, score) are rows, as the questionnaire
//! job and the answering API would leave them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Org, Person, Resp, TestApp};

struct World {
    app: TestApp,
    org: Org,
    worker: Person,
    circle: String,
}

impl World {
    async fn new(backend: Backend, min_cell: Option<u32>) -> Self {
        let app = TestApp::spawn_with(backend, |c| {
            if let Some(k) = min_cell {
                c.report_min_cell = k;
            }
        })
        .await;
        let org = app.organisation("Buurtwerk", "coord@example.org").await;
        let worker = app.worker(&org, "worker@example.org").await;
        let circle = app.circle(&worker, "Samen sterk").await;
        plan(&app, &circle).await;
        Self {
            app,
            org,
            worker,
            circle,
        }
    }

    async fn members(&self, circle: &str, prefix: &str, n: usize) -> Vec<Person> {
        let mut people = Vec::new();
        for i in 0..n {
            let name = format!("{prefix}{i:02}");
            let person = self.app.member(&self.worker, circle, &name).await;
            // Joining made the intake questionnaire; the fixtures write
            // every row themselves.
            sqlx::query("DELETE FROM questionnaires WHERE membership_id = $1")
                .bind(person.membership())
                .execute(self.app.state.store.pool())
                .await
                .unwrap();
            people.push(person);
        }
        people
    }

    async fn report(&self, query: &str) -> Value {
        self.app
            .get(
                &format!("/v1/organisation/outcomes?{query}"),
                self.org.coordinator.token(),
            )
            .await
            .expect(200)
            .body
    }

    async fn csv(&self, path: &str, who: &Person) -> Resp {
        self.app
            .request_with(
                Method::GET,
                path,
                who.token(),
                None,
                &[("accept", "text/csv")],
            )
            .await
            .expect(200)
    }
}

/// WHO-5 at intake and after six weeks, instead of the default plan.
async fn plan(app: &TestApp, circle: &str) {
    sqlx::query("DELETE FROM measurement_moments WHERE circle_id = $1")
        .bind(circle)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    for (moment, offset) in [("intake", 0), ("week_6", 42)] {
        sqlx::query(
            "INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
             VALUES ($1, 'who5', $2, 'join', $3)",
        )
        .bind(circle)
        .bind(moment)
        .bind(offset)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    }
}

/// The WHO-5 band of a percentage score: 0–28 very low, 29–50 low, 51–100
/// no sign of low well-being (instruments/who5.json).
fn who5_band(scaled: i64) -> &'static str {
    match scaled {
        0..=28 => "very_low",
        29..=50 => "low",
        _ => "no_sign_of_low",
    }
}

/// One questionnaire row, as the job and the answering API leave it.
async fn questionnaire(
    app: &TestApp,
    person: &Person,
    instrument: &str,
    moment: &str,
    status: &str,
    scaled: Option<i64>,
) {
    let (circle, organisation): (String, String) = sqlx::query_as(
        "SELECT m.circle_id, c.organisation_id FROM memberships m JOIN circles c ON c.id = m.circle_id
         WHERE m.id = $1",
    )
    .bind(person.membership())
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    let band = scaled.filter(|_| instrument == "who5").map(who5_band);
    sqlx::query(
        "INSERT INTO questionnaires (id, membership_id, account_id, circle_id, organisation_id,
             instrument_key, instrument_version, moment, due_at, expires_at, status, raw_score,
             scaled_score, band, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, 0, 0, $8, $9, $10, $11, 0)",
    )
    .bind(kring::secrets::new_id())
    .bind(person.membership())
    .bind(&person.account_id)
    .bind(&circle)
    .bind(&organisation)
    .bind(instrument)
    .bind(moment)
    .bind(status)
    .bind(scaled.map(|s| if instrument == "who5" { s / 4 } else { s }))
    .bind(scaled)
    .bind(band)
    .execute(app.state.store.pool())
    .await
    .unwrap();
}

/// Answered with this score.
async fn answered(app: &TestApp, p: &Person, moment: &str, scaled: i64) {
    questionnaire(app, p, "who5", moment, "answered", Some(scaled)).await;
}

/// A comparison cohort, recorded directly: intake (30, 45, 15) and week 6
/// (25, 50, 16) with a paired change (25, 4, 12).
async fn cohort(app: &TestApp, org: &Org, instrument: &str) -> String {
    let id = kring::secrets::new_id();
    sqlx::query(
        "INSERT INTO comparison_cohorts (id, organisation_id, instrument_key, description, created_by, created_at)
         VALUES ($1, $2, $3, 'Face-to-face, Noord 2025', $4, 0)",
    )
    .bind(&id)
    .bind(&org.id)
    .bind(instrument)
    .bind(&org.coordinator.account_id)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    for (moment, n, mean, sd, change) in [
        ("intake", 30, 45.0, 15.0, None),
        ("week_6", 25, 50.0, 16.0, Some((25, 4.0, 12.0))),
    ] {
        sqlx::query(
            "INSERT INTO comparison_figures (cohort_id, moment, n, mean, sd, change_n, change_mean, change_sd)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(moment)
        .bind(n)
        .bind(mean)
        .bind(sd)
        .bind(change.map(|c: (i64, f64, f64)| c.0))
        .bind(change.map(|c| c.1))
        .bind(change.map(|c| c.2))
        .execute(app.state.store.pool())
        .await
        .unwrap();
    }
    id
}

/// The figure at `pointer` (a `{value}` object or a bare number).
fn num(v: &Value, pointer: &str) -> f64 {
    let x = v
        .pointer(pointer)
        .unwrap_or_else(|| panic!("nothing at {pointer} in {v}"));
    let x = if x.is_object() { &x["value"] } else { x };
    x.as_f64()
        .unwrap_or_else(|| panic!("no number at {pointer}: {x}"))
}

#[track_caller]
fn close(v: &Value, pointer: &str, expected: f64) {
    let got = num(v, pointer);
    // Figures are rounded to two decimals.
    assert!(
        (got - expected).abs() <= 0.005 + 1e-9,
        "{pointer} = {got}, expected {expected}"
    );
}

/// The reason a cell is hidden, or None when it is shown.
fn hidden(v: &Value, pointer: &str) -> Option<String> {
    let cell = v
        .pointer(pointer)
        .unwrap_or_else(|| panic!("nothing at {pointer} in {v}"));
    if cell["value"].is_null() {
        Some(
            cell["suppressed"]
                .as_str()
                .unwrap_or("not_computable")
                .to_owned(),
        )
    } else {
        assert!(cell.get("suppressed").is_none(), "{pointer}: {cell}");
        None
    }
}

fn moment<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["moments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["moment"] == name)
        .unwrap_or_else(|| panic!("no moment {name} in {report}"))
}

/// The seven members of the hand-checked cohort and their scores:
///
/// | member | intake          | week 6            |
/// |--------|-----------------|-------------------|
/// | 0      | 40 (low)        | 60 (no sign)      |
/// | 1      | 48 (low)        | 52 (no sign)      |
/// | 2      | 44 (low)        | 40 (low)          |
/// | 3      | 56 (no sign)    | 72 (no sign)      |
/// | 4      | 52 (no sign)    | 68 (no sign)      |
/// | 5      | 36 (low)        | expired           |
/// | 6      | declined        | scheduled (not yet prompted) |
async fn seven(w: &World, circle: &str, prefix: &str) -> Vec<Person> {
    let people = w.members(circle, prefix, 7).await;
    let app = &w.app;
    for (p, (intake, later)) in
        people
            .iter()
            .zip([(40, 60), (48, 52), (44, 40), (56, 72), (52, 68)])
    {
        answered(app, p, "intake", intake).await;
        answered(app, p, "week_6", later).await;
    }
    answered(app, &people[5], "intake", 36).await;
    questionnaire(app, &people[5], "who5", "week_6", "expired", None).await;
    questionnaire(app, &people[6], "who5", "intake", "declined", None).await;
    questionnaire(app, &people[6], "who5", "week_6", "scheduled", None).await;
    people
}

/// Every figure of the seven, with k = 1 (nothing hidden), against
/// arithmetic done by hand.
async fn figures_match_hand_arithmetic(backend: Backend) {
    let w = World::new(backend, Some(1)).await;
    seven(&w, &w.circle, "Lid").await;
    let cohort = cohort(&w.app, &w.org, "who5").await;
    let r = w
        .report(&format!("instrument=who5&comparison_cohort_id={cohort}"))
        .await;
    assert_eq!(r["min_cell"], 1);
    let names: Vec<&str> = r["moments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["moment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["intake", "week_6"]);

    // Intake: invited 7 (all but `scheduled`), answered 6, rate 6 / 7 =
    // 85.714 %. Scores 40, 48, 44, 56, 52, 36: mean 276 / 6 = 46;
    // deviations −6, 2, −2, 10, 6, −10, squares 36 + 4 + 4 + 100 + 36 + 100
    // = 280, SD √(280 / 5) = √56 = 7.4833.
    let i = moment(&r, "intake");
    assert_eq!(
        (i["anchor"].as_str(), i["offset_days"].as_i64()),
        (Some("join"), Some(0))
    );
    close(i, "/invited", 7.0);
    close(i, "/answered", 6.0);
    close(i, "/not_answered", 1.0);
    close(i, "/response_rate", 85.71);
    close(i, "/score/n", 6.0);
    close(i, "/score/without_score", 0.0);
    close(i, "/score/mean", 46.0);
    close(i, "/score/sd", 7.48);
    assert!(i.get("change").is_none(), "no change at intake");
    close(i, "/comparison/n", 30.0);
    close(i, "/comparison/mean", 45.0);

    // Week 6: invited 6 (member 6 is only scheduled), answered 5, rate
    // 83.33 %. Scores 60, 52, 40, 72, 68: mean 292 / 5 = 58.4; deviations
    // 1.6, −6.4, −18.4, 13.6, 9.6, squares 2.56 + 40.96 + 338.56 + 184.96 +
    // 92.16 = 659.2, SD √(659.2 / 4) = √164.8 = 12.8375.
    let m = moment(&r, "week_6");
    close(m, "/invited", 6.0);
    close(m, "/answered", 5.0);
    close(m, "/not_answered", 1.0);
    close(m, "/response_rate", 83.33);
    close(m, "/score/mean", 58.4);
    close(m, "/score/sd", 12.84);

    // Change, members 0–4: 20, 4, −4, 16, 16; mean 52 / 5 = 10.4;
    // deviations 9.6, −6.4, −14.4, 5.6, 5.6, squares 92.16 + 40.96 + 207.36
    // + 31.36 + 31.36 = 403.2, SD √(403.2 / 4) = √100.8 = 10.0399.
    // CI: t(4, 0.975) = 2.776445 (any t table); 2.776445 · 10.0399 / √5 =
    // 12.4662; 10.4 ± 12.4662 = −2.0662 … 22.8662.
    close(m, "/change/n", 5.0);
    close(m, "/change/without_intake", 0.0);
    close(m, "/change/intake_only", 1.0); // member 5
    close(m, "/change/mean", 10.4);
    close(m, "/change/sd", 10.04);
    close(m, "/change/ci_low", -2.07);
    close(m, "/change/ci_high", 22.87);
    // d = 10.4 / SD at intake of the five (40, 48, 44, 56, 52: mean 48,
    // squares 64 + 0 + 16 + 64 + 16 = 160, SD √40 = 6.3246) = 1.6444.
    close(m, "/change/effect_size", 1.64);
    // Reliable change, r = 0.85: √2 · 6.3246 · √0.15 = 3.4641; 1.96 ·
    // 3.4641 = 6.79 points. 20, 16, 16 improved; 4 and −4 unchanged.
    close(m, "/change/reliable_change/improved/count", 3.0);
    close(m, "/change/reliable_change/improved/percent", 60.0);
    close(m, "/change/reliable_change/unchanged/count", 2.0);
    close(m, "/change/reliable_change/unchanged/percent", 40.0);
    close(m, "/change/reliable_change/deteriorated/count", 0.0);
    close(m, "/change/reliable_change/deteriorated/percent", 0.0);
    // Bands: low → no sign (members 0, 1) better; low → low, no sign → no
    // sign (2, 3, 4) not: 2 / 5 = 40 %.
    close(m, "/change/band_moves/n", 5.0);
    close(m, "/change/band_moves/without_band", 0.0);
    close(m, "/change/band_moves/to_better/count", 2.0);
    close(m, "/change/band_moves/to_better/percent", 40.0);
    close(m, "/change/band_moves/other", 3.0);

    // The comparison: 10.4 − 4 = 6.4; variance 100.8 / 5 + 12² / 25 =
    // 20.16 + 5.76 = 25.92; Welch df = 25.92² / (20.16² / 4 + 5.76² / 24)
    // = 671.8464 / (101.6064 + 1.3824) = 6.5235; half width t(6.5235) ·
    // √25.92, t between t(7) = 2.365 and t(6) = 2.447.
    close(m, "/comparison/n", 25.0);
    close(m, "/comparison/change/mean", 4.0);
    close(m, "/change/difference/value", 6.4);
    close(m, "/change/difference/df", 6.52);
    close(m, "/change/difference/comparison_change", 4.0);
    assert_eq!(m["change"]["difference"]["derived_from_moments"], false);
    let t = kring::outcomes::stats::t_975(671.8464 / 102.9888).unwrap();
    assert!(t > 2.365 && t < 2.447, "{t}");
    let half = t * 25.92f64.sqrt();
    close(m, "/change/difference/ci_low", 6.4 - half);
    close(m, "/change/difference/ci_high", 6.4 + half);
    assert!(
        r["comparison"]["label"]
            .as_str()
            .unwrap()
            .starts_with("Non-randomised"),
        "{}",
        r["comparison"]
    );
    assert_eq!(
        r["formulas"]["effect_size"],
        kring::outcomes::stats::EFFECT_SIZE_FORMULA
    );
    assert_eq!(
        r["formulas"]["comparison"],
        kring::outcomes::stats::COMPARISON_FORMULA
    );
    assert_eq!(r["instrument"]["licence"]["permission_required"], false);

    // The CSV holds the same figures.
    let csv = w
        .csv(
            &format!("/v1/organisation/outcomes?instrument=who5&comparison_cohort_id={cohort}"),
            &w.org.coordinator,
        )
        .await;
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let table = parse_csv(csv.body.as_str().unwrap());
    assert_eq!(
        table[0],
        [
            "moment",
            "anchor",
            "offset_days",
            "figure",
            "value",
            "suppressed"
        ]
    );
    let rows = &table[1..];
    assert!(rows.iter().all(|row| row.len() == 6), "{rows:?}");
    let cell = |moment: &str, figure: &str| -> String {
        rows.iter()
            .find(|row| row[0] == moment && row[3] == figure)
            .unwrap_or_else(|| panic!("no {moment} {figure} in the CSV"))[4]
            .clone()
    };
    assert_eq!(cell("", "instrument"), "who5");
    assert!(cell("", "comparison_label").starts_with("Non-randomised"));
    for (moment_name, figure, pointer) in [
        ("intake", "invited", "/invited"),
        ("intake", "response_rate_percent", "/response_rate"),
        ("intake", "score_sd", "/score/sd"),
        ("week_6", "change_mean", "/change/mean"),
        ("week_6", "change_ci_low", "/change/ci_low"),
        ("week_6", "effect_size_d", "/change/effect_size"),
        (
            "week_6",
            "reliable_improved_percent",
            "/change/reliable_change/improved/percent",
        ),
        (
            "week_6",
            "band_to_better_percent",
            "/change/band_moves/to_better/percent",
        ),
        ("week_6", "difference_ci_high", "/change/difference/ci_high"),
        ("week_6", "comparison_mean", "/comparison/mean"),
    ] {
        let from_csv: f64 = cell(moment_name, figure).parse().unwrap();
        assert_eq!(
            from_csv,
            num(moment(&r, moment_name), pointer),
            "{moment_name} {figure}"
        );
    }
    w.app.stop().await;
}
both_backends!(figures_match_hand_arithmetic);

/// RFC 4180, as a spreadsheet reads it.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    assert!(row.is_empty() && field.is_empty(), "CSV ends with CRLF");
    rows
}

/// k = 10: nine members are hidden, ten are shown.
async fn k_minus_one_is_hidden_and_k_is_shown(backend: Backend) {
    let w = World::new(backend, None).await;
    let people = w.members(&w.circle, "Lid", 10).await;
    for p in &people[..9] {
        answered(&w.app, p, "intake", 52).await;
    }
    let r = w.report("instrument=who5").await;
    assert_eq!(r["min_cell"], 10);
    let i = moment(&r, "intake");
    for cell in [
        "/invited",
        "/answered",
        "/score/n",
        "/score/mean",
        "/score/sd",
        "/response_rate",
    ] {
        assert_eq!(
            hidden(i, cell).as_deref(),
            Some("fewer_than_k"),
            "{cell}: {i}"
        );
    }
    // Nobody did not answer: a cell of no one stays.
    assert_eq!(hidden(i, "/not_answered"), None);
    assert_eq!(
        i["invited"],
        json!({"value": null, "suppressed": "fewer_than_k"})
    );

    answered(&w.app, &people[9], "intake", 60).await;
    let r = w.report("instrument=who5").await;
    let i = moment(&r, "intake");
    close(i, "/invited", 10.0);
    close(i, "/answered", 10.0);
    // (9 · 52 + 60) / 10 = 52.8.
    close(i, "/score/mean", 52.8);
    close(i, "/response_rate", 100.0);

    // A selection of nobody: its zeros describe no one and show.
    let r = w.report("instrument=who5&joined_until=2000-01-01").await;
    close(moment(&r, "intake"), "/invited", 0.0);
    assert_eq!(
        hidden(moment(&r, "intake"), "/score/mean").as_deref(),
        Some("not_computable")
    );
    w.app.stop().await;
}
both_backends!(k_minus_one_is_hidden_and_k_is_shown);

/// Twelve members: all answer at intake; at six weeks two let it expire.
/// The 2 who did not answer are hidden, and so is every cell from which
/// they could be recovered: answered (12 − 10), the scored 10 (answered =
/// scored + 0 unscored), the paired 10 and everything resting on them.
/// With k = 1, or in the circle's own report, everything shows.
async fn secondary_suppression_and_the_circles_own_report(backend: Backend) {
    let w = World::new(backend, None).await;
    let people = w.members(&w.circle, "Lid", 12).await;
    for (n, p) in people.iter().enumerate() {
        let intake = 40 + 4 * i64::try_from(n % 3).unwrap();
        answered(&w.app, p, "intake", intake).await;
        if n < 10 {
            answered(&w.app, p, "week_6", intake + 20).await;
        } else {
            questionnaire(&w.app, p, "who5", "week_6", "expired", None).await;
        }
    }
    let r = w.report("instrument=who5").await;
    let i = moment(&r, "intake");
    close(i, "/invited", 12.0);
    close(i, "/answered", 12.0);
    assert_eq!(hidden(i, "/score/mean"), None);
    let m = moment(&r, "week_6");
    close(m, "/invited", 12.0);
    assert_eq!(hidden(m, "/not_answered").as_deref(), Some("fewer_than_k"));
    assert_eq!(
        hidden(m, "/answered").as_deref(),
        Some("protects_another_cell")
    );
    assert_eq!(
        hidden(m, "/response_rate").as_deref(),
        Some("protects_another_cell")
    );
    // answered = scored + without score (0): the scored 10 goes, not the 0.
    assert_eq!(
        hidden(m, "/score/n").as_deref(),
        Some("protects_another_cell")
    );
    assert_eq!(
        hidden(m, "/score/mean").as_deref(),
        Some("protects_another_cell")
    );
    assert_eq!(hidden(m, "/score/without_score"), None);
    // intake scored 12 = paired 10 + intake only 2.
    assert_eq!(
        hidden(m, "/change/intake_only").as_deref(),
        Some("fewer_than_k")
    );
    for cell in [
        "/change/n",
        "/change/mean",
        "/change/ci_low",
        "/change/effect_size",
    ] {
        assert!(hidden(m, cell).is_some(), "{cell}: {m}");
    }
    // No relation is left with exactly one hidden cell among the shown ones.
    let shown_invited = num(m, "/invited");
    assert!(m["answered"]["value"].is_null() && m["not_answered"]["value"].is_null());
    assert_eq!(shown_invited, 12.0);

    // The CSV: empty value, the reason beside it.
    let csv = w
        .csv(
            "/v1/organisation/outcomes?instrument=who5",
            &w.org.coordinator,
        )
        .await;
    let table = parse_csv(csv.body.as_str().unwrap());
    let row = table
        .iter()
        .find(|r| r[0] == "week_6" && r[3] == "not_answered")
        .unwrap();
    assert_eq!((row[4].as_str(), row[5].as_str()), ("", "fewer_than_k"));
    let row = table
        .iter()
        .find(|r| r[0] == "week_6" && r[3] == "answered")
        .unwrap();
    assert_eq!(
        (row[4].as_str(), row[5].as_str()),
        ("", "protects_another_cell")
    );

    // The circle's worker sees it all: 10 paired, each +20.
    let path = format!("/v1/circles/{}/outcomes/report?instrument=who5", w.circle);
    let r = w.app.get(&path, w.worker.token()).await.expect(200).body;
    assert_eq!(r["min_cell"], 1);
    let m = moment(&r, "week_6");
    close(m, "/answered", 10.0);
    close(m, "/not_answered", 2.0);
    close(m, "/change/n", 10.0);
    close(m, "/change/mean", 20.0);
    close(m, "/change/intake_only", 2.0);
    // A coordinator too; the CSV as well.
    w.app
        .get(&path, w.org.coordinator.token())
        .await
        .expect(200);
    let csv = w.csv(&path, &w.worker).await;
    let table = parse_csv(csv.body.as_str().unwrap());
    assert!(
        table
            .iter()
            .any(|r| r[0] == "week_6" && r[3] == "not_answered" && r[4] == "2")
    );

    // A worker of another circle, and a member, get 404.
    let other = w.app.worker(&w.org, "other@example.org").await;
    w.app.circle(&other, "Elders").await;
    w.app
        .get(&path, other.token())
        .await
        .expect_problem(404, "not_found");
    w.app
        .get(&path, people[0].token())
        .await
        .expect_problem(403, "staff_only");
    // Neither may read the organisation's report.
    w.app
        .get(
            "/v1/organisation/outcomes?instrument=who5",
            w.worker.token(),
        )
        .await
        .expect_problem(403, "coordinator_only");
    // The circle's report is in the access log, one entry per member with answers.
    let logged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM access_log WHERE kind = 'outcomes' AND actor_account_id = $1",
    )
    .bind(&w.worker.account_id)
    .fetch_one(w.app.state.store.pool())
    .await
    .unwrap();
    // Two reads by the worker (JSON and CSV), twelve members each.
    assert_eq!(logged, 24);
    w.app.stop().await;

    // KRING_REPORT_MIN_CELL=1: the organisation report shows everything.
    let w = World::new(backend, Some(1)).await;
    let people = w.members(&w.circle, "Lid", 3).await;
    answered(&w.app, &people[0], "intake", 40).await;
    answered(&w.app, &people[1], "intake", 44).await;
    questionnaire(&w.app, &people[2], "who5", "intake", "expired", None).await;
    let r = w.report("instrument=who5").await;
    let i = moment(&r, "intake");
    close(i, "/invited", 3.0);
    close(i, "/answered", 2.0);
    close(i, "/not_answered", 1.0);
    close(i, "/score/mean", 42.0);
    w.app.stop().await;
}
both_backends!(secondary_suppression_and_the_circles_own_report);

/// Circles (one, repeated, a comma list) and the join period select the
/// members; a report counts only theirs.
async fn filters_select_circles_and_join_period(backend: Backend) {
    let w = World::new(backend, Some(1)).await;
    let second = w.app.circle(&w.worker, "Tweede kring").await;
    plan(&w.app, &second).await;
    let a = w.members(&w.circle, "Aa", 3).await;
    let b = w.members(&second, "Bb", 2).await;
    for p in a.iter().chain(&b) {
        answered(&w.app, p, "intake", 48).await;
    }
    // Member a[0] joined in 2025, the rest at the test's start (2026-03-02).
    sqlx::query("UPDATE memberships SET joined_at = $1 WHERE id = $2")
        .bind(1_735_689_600_000i64) // 2025-01-01T00:00:00Z
        .bind(a[0].membership())
        .execute(w.app.state.store.pool())
        .await
        .unwrap();
    let invited = |r: &Value| num(moment(r, "intake"), "/invited");
    assert_eq!(invited(&w.report("instrument=who5").await), 5.0);
    let r = w
        .report(&format!("instrument=who5&circle_id={}", w.circle))
        .await;
    assert_eq!(invited(&r), 3.0);
    assert_eq!(r["selection"]["circle_ids"], json!([w.circle]));
    let both = format!("instrument=who5&circle_id={}&circle_id={second}", w.circle);
    assert_eq!(invited(&w.report(&both).await), 5.0);
    let comma = format!("instrument=who5&circle_id={},{second}", w.circle);
    assert_eq!(invited(&w.report(&comma).await), 5.0);
    assert_eq!(
        invited(
            &w.report(&format!("instrument=who5&circle_id={second}"))
                .await
        ),
        2.0
    );
    let r = w.report("instrument=who5&joined_from=2026-01-01").await;
    assert_eq!(invited(&r), 4.0);
    assert_eq!(r["selection"]["joined_from"], "2026-01-01T00:00:00Z");
    let r = w
        .report("instrument=who5&joined_until=2026-01-01T00:00:00Z")
        .await;
    assert_eq!(invited(&r), 1.0);
    let r = w
        .report(&format!(
            "instrument=who5&joined_from=2026-01-01&circle_id={}",
            w.circle
        ))
        .await;
    assert_eq!(invited(&r), 2.0);
    w.app.stop().await;
}
both_backends!(filters_select_circles_and_join_period);

/// The De Jong Gierveld scale needs the authors' permission: the report
/// says so, and shows the permission once recorded.
async fn an_instrument_needing_permission_is_reported_as_such(backend: Backend) {
    let w = World::new(backend, Some(1)).await;
    let r = w.report("instrument=djg6").await;
    let licence = &r["instrument"]["licence"];
    assert_eq!(licence["permission_required"], true);
    assert!(licence["permission"].is_null());
    assert!(!licence["citation"].as_str().unwrap().is_empty());
    sqlx::query(
        "INSERT INTO instrument_permissions (organisation_id, instrument_key, statement, recorded_by, recorded_at)
         VALUES ($1, 'djg6', 'Letter from the authors, 2026-02-01', $2, $3)",
    )
    .bind(&w.org.id)
    .bind(&w.org.coordinator.account_id)
    .bind(w.app.now_ms())
    .execute(w.app.state.store.pool())
    .await
    .unwrap();
    let r = w.report("instrument=djg6").await;
    let permission = &r["instrument"]["licence"]["permission"];
    assert_eq!(
        permission["statement"],
        "Letter from the authors, 2026-02-01"
    );
    assert_eq!(
        permission["recorded_by"],
        w.org.coordinator.account_id.as_str()
    );
    // WHO-5 needs none.
    let r = w.report("instrument=who5").await;
    assert_eq!(r["instrument"]["licence"]["permission_required"], false);
    w.app.stop().await;
}
both_backends!(an_instrument_needing_permission_is_reported_as_such);

/// Bad parameters are 422s naming the parameter.
async fn bad_parameters_are_refused(backend: Backend) {
    let w = World::new(backend, None).await;
    let djg_cohort = cohort(&w.app, &w.org, "djg6").await;
    let coordinator = w.org.coordinator.token();
    for (query, field) in [
        ("", "instrument"),
        ("instrument=phq9", "instrument"),
        ("instrument=who5&circle_id=nope", "circle_id"),
        ("instrument=who5&joined_from=yesterday", "joined_from"),
        (
            "instrument=who5&joined_from=2026-02-01&joined_until=2026-01-01",
            "joined_until",
        ),
        (
            "instrument=who5&comparison_cohort_id=nope",
            "comparison_cohort_id",
        ),
        (
            &format!("instrument=who5&comparison_cohort_id={djg_cohort}"),
            "comparison_cohort_id",
        ),
        ("instrument=who5&colour=red", "colour"),
    ] {
        let r = w
            .app
            .get(&format!("/v1/organisation/outcomes?{query}"), coordinator)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), [field], "{query}");
    }
    // The circle's own report takes no circle_id.
    let r = w
        .app
        .get(
            &format!(
                "/v1/circles/{}/outcomes/report?instrument=who5&circle_id=x",
                w.circle
            ),
            w.worker.token(),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), ["circle_id"]);
    w.app.stop().await;
}
both_backends!(bad_parameters_are_refused);

fn cohort_body() -> Value {
    json!({
        "instrument": "who5",
        "description": "Face-to-face groups Noord, 2025",
        "moments": [
            {"moment": "intake", "n": 30, "mean": 45.0, "sd": 15.0,
             "band_counts": {"very_low": 5, "low": 15, "no_sign_of_low": 10}},
            {"moment": "week_6", "n": 25, "mean": 50.0, "sd": 16.0,
             "change": {"n": 25, "mean": 4.0, "sd": 12.0}}
        ]
    })
}

/// Coordinators record, list, read and delete cohorts; the report compares
/// with one recorded through the API; bad figures are 422s naming them.
async fn comparison_cohorts_are_recorded_and_checked(backend: Backend) {
    let w = World::new(backend, Some(1)).await;
    let app = &w.app;
    let coordinator = w.org.coordinator.token();
    let base = "/v1/organisation/comparison-cohorts";
    let r = app.post(base, coordinator, cohort_body()).await.expect(201);
    let id = r.str("/id");
    assert_eq!(r.body["instrument"], "who5");
    assert_eq!(r.body["created_by"], w.org.coordinator.account_id.as_str());
    let moments = r.body["moments"].as_array().unwrap();
    assert_eq!(moments.len(), 2);
    let week_6 = moments.iter().find(|m| m["moment"] == "week_6").unwrap();
    assert_eq!(week_6["change"], json!({"n": 25, "mean": 4.0, "sd": 12.0}));
    let intake = moments.iter().find(|m| m["moment"] == "intake").unwrap();
    assert_eq!(intake["band_counts"]["low"], 15);
    let list = app.get(base, coordinator).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let one = app
        .get(&format!("{base}/{id}"), coordinator)
        .await
        .expect(200);
    assert_eq!(one.body, r.body);

    // The report uses it: with the seven, the difference is 10.4 − 4 = 6.4
    // (see figures_match_hand_arithmetic), the cohort's bands beside it.
    seven(&w, &w.circle, "Lid").await;
    let report = w
        .report(&format!("instrument=who5&comparison_cohort_id={id}"))
        .await;
    close(moment(&report, "week_6"), "/change/difference/value", 6.4);
    assert_eq!(
        moment(&report, "intake")["comparison"]["band_counts"]["very_low"],
        5
    );
    assert_eq!(
        report["comparison"]["description"],
        "Face-to-face groups Noord, 2025"
    );

    // Only coordinators.
    app.get(base, w.worker.token())
        .await
        .expect_problem(403, "coordinator_only");
    app.post(base, w.worker.token(), cohort_body())
        .await
        .expect_problem(403, "coordinator_only");

    // Every figure is checked.
    let bad = |path: &str, value: Value| {
        let mut body = cohort_body();
        let (parent, key) = path.rsplit_once('/').unwrap();
        body.pointer_mut(parent).unwrap()[key] = value;
        body
    };
    let cases: Vec<(Value, &[&str])> = vec![
        // n 1 at week 6 is also less than its change's n.
        (bad("/instrument", json!("phq9")), &["instrument"]),
        (bad("/description", json!("  ")), &["description"]),
        (bad("/moments", json!([])), &["moments"]),
        (
            bad("/moments/1/n", json!(1)),
            &["moments[1].n", "moments[1].change.n"],
        ),
        (bad("/moments/1/sd", json!(-0.5)), &["moments[1].sd"]),
        (bad("/moments/1/mean", json!(101.0)), &["moments[1].mean"]),
        (
            bad("/moments/1/moment", json!("Week 6")),
            &["moments[1].moment"],
        ),
        (
            bad("/moments/1/moment", json!("intake")),
            // Given twice, and an intake has no change.
            &["moments[1].moment", "moments[1].change"],
        ),
        (
            bad("/moments/1/change/n", json!(26)),
            &["moments[1].change.n"],
        ),
        (
            bad("/moments/1/change/sd", json!(-1.0)),
            &["moments[1].change.sd"],
        ),
        (
            bad(
                "/moments/0/change",
                json!({"n": 30, "mean": 0.0, "sd": 1.0}),
            ),
            &["moments[0].change"],
        ),
        (
            bad(
                "/moments/0/band_counts",
                json!({"very_low": 5, "low": 15, "no_sign_of_low": 9}),
            ),
            &["moments[0].band_counts"],
        ),
        (
            bad(
                "/moments/0/band_counts",
                json!({"very_low": 5, "low": 15, "great": 10}),
            ),
            &["moments[0].band_counts.great"],
        ),
    ];
    for (body, field) in cases {
        let r = app
            .post(base, coordinator, body.clone())
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), field, "{body}");
    }

    // Delete: gone, and another organisation never sees it.
    let other = app.organisation("Elders", "coord@elders.example").await;
    app.get(&format!("{base}/{id}"), other.coordinator.token())
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("{base}/{id}"), other.coordinator.token())
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("{base}/{id}"), coordinator)
        .await
        .expect(204);
    app.get(&format!("{base}/{id}"), coordinator)
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("{base}/{id}"), coordinator)
        .await
        .expect_problem(404, "not_found");
    let r = app
        .get(
            &format!("/v1/organisation/outcomes?instrument=who5&comparison_cohort_id={id}"),
            coordinator,
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), ["comparison_cohort_id"]);
    w.app.stop().await;
}
both_backends!(comparison_cohorts_are_recorded_and_checked);

/// The WHO-5 definition under another key, as an organisation's own.
fn own_instrument(key: &str, version: u32) -> String {
    let mut def: Value =
        serde_json::from_str(kring::outcomes::SHIPPED[0]).expect("who5.json is JSON");
    def["key"] = json!(key);
    def["version"] = json!(version);
    def.to_string()
}

/// Staff list the instruments; coordinators record and withdraw a
/// permission; `kring admin import-instrument` adds an organisation's own.
async fn instruments_permissions_and_imports(backend: Backend) {
    let w = World::new(backend, Some(1)).await;
    let app = &w.app;
    let coordinator = w.org.coordinator.token();
    let list = |r: &Resp| r.body["items"].as_array().unwrap().clone();
    let find = |items: &[Value], key: &str| {
        items
            .iter()
            .find(|i| i["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {items:?}"))
            .clone()
    };
    let r = app
        .get("/v1/organisation/instruments", w.worker.token())
        .await
        .expect(200);
    let items = list(&r);
    let keys: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["who5", "djg6"]);
    let djg = find(&items, "djg6");
    assert_eq!(
        (&djg["permission_required"], &djg["usable"], &djg["origin"]),
        (&json!(true), &json!(false), &json!("shipped"))
    );
    assert!(djg["permission"].is_null());
    assert_eq!(find(&items, "who5")["usable"], true);
    let member = w.members(&w.circle, "Lid", 1).await.remove(0);
    app.get("/v1/organisation/instruments", member.token())
        .await
        .expect_problem(403, "staff_only");

    // Recording the permission makes djg6 usable, for the organisation only.
    let path = "/v1/organisation/instruments/djg6/permission";
    let statement = json!({"statement": "Permission of the authors, letter of 2026-02-01"});
    app.put(path, w.worker.token(), Some(statement.clone()))
        .await
        .expect_problem(403, "coordinator_only");
    app.put(path, coordinator, Some(json!({"statement": "  "})))
        .await
        .expect_problem(422, "validation_failed");
    app.put(
        "/v1/organisation/instruments/phq9/permission",
        coordinator,
        Some(statement.clone()),
    )
    .await
    .expect_problem(404, "not_found");
    let r = app
        .put(path, coordinator, Some(statement))
        .await
        .expect(200);
    assert_eq!(r.body["usable"], true);
    assert_eq!(
        r.body["permission"]["statement"],
        "Permission of the authors, letter of 2026-02-01"
    );
    assert_eq!(
        r.body["permission"]["recorded_by"],
        w.org.coordinator.account_id.as_str()
    );
    let available = {
        let mut conn = app.state.store.pool().acquire().await.unwrap();
        kring::outcomes::catalogue::available(&mut conn, &w.org.id)
            .await
            .unwrap()
    };
    assert!(available.iter().all(|a| a.usable()));
    let usable = |org: String| async move {
        let mut conn = app.state.store.pool().acquire().await.unwrap();
        kring::outcomes::catalogue::usable(&mut conn, &org, "djg6")
            .await
            .unwrap()
            .is_some()
    };
    assert!(usable(w.org.id.clone()).await);
    let other = app.organisation("Elders", "coord@elders.example").await;
    let r = app
        .get("/v1/organisation/instruments", other.coordinator.token())
        .await
        .expect(200);
    assert_eq!(find(&list(&r), "djg6")["usable"], false);
    assert!(!usable(other.id.clone()).await);
    // Recording again replaces the statement.
    let r = app
        .put(
            path,
            coordinator,
            Some(json!({"statement": "Renewed 2027"})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["permission"]["statement"], "Renewed 2027");
    app.delete(path, coordinator).await.expect(204);
    app.delete(path, coordinator)
        .await
        .expect_problem(404, "not_found");
    let r = app
        .get("/v1/organisation/instruments", coordinator)
        .await
        .expect(200);
    assert_eq!(find(&list(&r), "djg6")["usable"], false);

    // Importing: valid, then refused for a shipped key, the same version,
    // an invalid definition or an unknown organisation.
    let store = &app.state.store;
    let now = app.now_ms();
    let import = kring::outcomes::instruments_api::import;
    let made = import(store, now, &w.org.id, &own_instrument("mine", 1))
        .await
        .unwrap();
    assert_eq!((made.key.as_str(), made.version), ("mine", 1));
    let e = import(store, now, &w.org.id, &own_instrument("who5", 7))
        .await
        .unwrap_err();
    assert!(e.contains("ships with Kring"), "{e}");
    let e = import(store, now, &w.org.id, &own_instrument("mine", 1))
        .await
        .unwrap_err();
    assert!(e.contains("already imported"), "{e}");
    let mut broken: Value = serde_json::from_str(&own_instrument("mine", 3)).unwrap();
    broken["reliability"]["r"] = json!(1.5);
    let e = import(store, now, &w.org.id, &broken.to_string())
        .await
        .unwrap_err();
    assert!(e.contains("reliability"), "{e}");
    let e = import(store, now, "nope", &own_instrument("mine", 4))
        .await
        .unwrap_err();
    assert!(e.contains("no organisation"), "{e}");
    // The command line does the same.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), own_instrument("mine", 2)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kring"))
        .args([
            "admin",
            "import-instrument",
            "--organisation",
            &w.org.id,
            "--database-url",
            &app.state.config.database_url(),
        ])
        .arg(file.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported mine version 2"));
    let r = app
        .get("/v1/organisation/instruments", coordinator)
        .await
        .expect(200);
    let versions: Vec<(String, i64, String)> = list(&r)
        .iter()
        .filter(|i| i["key"] == "mine")
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_owned(),
                i["version"].as_i64().unwrap(),
                i["origin"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("mine".to_owned(), 1, "imported".to_owned()),
            ("mine".to_owned(), 2, "imported".to_owned())
        ]
    );
    // The report knows it (the newest version), with no answers yet.
    let r = w.report("instrument=mine").await;
    assert_eq!(
        (&r["instrument"]["key"], &r["instrument"]["version"]),
        (&json!("mine"), &json!(2))
    );
    w.app.stop().await;
}
both_backends!(instruments_permissions_and_imports);

/// Parallel writes: eight identical permission records leave one row;
/// eight retries of one cohort with the same Idempotency-Key record it once.
async fn parallel_writes_record_once(backend: Backend) {
    let w = World::new(backend, None).await;
    let app = &w.app;
    let coordinator = w.org.coordinator.token();
    let answers = futures_util::future::join_all((0..8).map(|i| {
        app.put(
            "/v1/organisation/instruments/djg6/permission",
            coordinator,
            Some(json!({"statement": format!("Letter {i}")})),
        )
    }))
    .await;
    assert!(answers.iter().all(|r| r.status == 200), "{answers:?}");
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM instrument_permissions WHERE organisation_id = $1",
    )
    .bind(&w.org.id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(rows, 1);

    let key = [("idempotency-key", "cohort-noord-2025")];
    let answers = futures_util::future::join_all((0..8).map(|_| {
        app.request_with(
            Method::POST,
            "/v1/organisation/comparison-cohorts",
            coordinator,
            Some(cohort_body()),
            &key,
        )
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.str("/id"))
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|r| r.status == 201 || r.body["code"] == "idempotency_in_progress"),
        "{answers:?}"
    );
    let cohorts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM comparison_cohorts")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(cohorts, 1);
    w.app.stop().await;
}
both_backends!(parallel_writes_record_once);

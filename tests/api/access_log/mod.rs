//! The access log (issue 17, part 1): every staff access to a member's data
//! is logged, members read their own entries and coordinators the
//! organisation's, the chain holds under concurrency and shows tampering,
//! and retention keeps it verifiable.

mod chain;
mod completeness;
mod reading;

use kring::access_log::chain::{COLUMNS, Entry};
use kring::access_log::verify::{Broken, Verified};
use serde_json::{Value, json};

use crate::support::{Backend, Org, Person, TestApp};

/// The User-Agent every staff request in these tests sends.
pub const CLIENT: &str = "KringWorker/1.4 (test)";

/// An organisation with a worker and a circle of two members, with the
/// read caches on (so reads served from them are seen to be logged) and
/// access tokens that outlive the days these tests let pass.
pub struct World {
    pub app: TestApp,
    pub org: Org,
    pub worker: Person,
    pub circle: String,
    pub zon: Person,
    pub maan: Person,
}

impl World {
    pub async fn new(backend: Backend) -> Self {
        Self::with(backend, |_| {}).await
    }

    pub async fn with(
        backend: Backend,
        configure: impl FnOnce(&mut kring::config::Config),
    ) -> Self {
        let app = TestApp::spawn_with(backend, |c| {
            c.read_cache = kring::config::ReadCache::On;
            c.access_token_ttl_secs = 90 * 86_400;
            configure(c);
        })
        .await;
        let org = app
            .organisation("Buurtwerk", "anna@buurtwerk.example")
            .await;
        let worker = app.worker(&org, "sam@buurtwerk.example").await;
        let circle = app.circle(&worker, "Samen sterk").await;
        let zon = app.member(&worker, &circle, "Zon").await;
        let maan = app.member(&worker, &circle, "Maan").await;
        Self {
            app,
            org,
            worker,
            circle,
            zon,
            maan,
        }
    }

    /// A mood check-in by `member`.
    pub async fn checkin(&self, member: &Person, mood: i64) {
        self.app
            .post(
                &format!("/v1/circles/{}/checkins", self.circle),
                member.token(),
                json!({"mood": mood}),
            )
            .await
            .expect(201);
    }

    /// A staff read that logs one entry per member: the check-ins, after
    /// both members checked in once.
    pub async fn read_checkins(&self, staff: &Person) -> Value {
        self.app
            .request_with(
                reqwest::Method::GET,
                &format!("/v1/circles/{}/checkins", self.circle),
                staff.token(),
                None,
                &[("user-agent", CLIENT)],
            )
            .await
            .expect(200)
            .body
    }
}

/// Every entry, by organisation and number.
pub async fn entries(app: &TestApp) -> Vec<Entry> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM access_log ORDER BY organisation_id, seq"
    )))
    .fetch_all(app.state.store.pool())
    .await
    .unwrap()
}

pub async fn verify(app: &TestApp) -> Result<Verified, Broken> {
    kring::access_log::verify::verify(&app.state.store)
        .await
        .unwrap()
}

/// An entry as the tests compare it: kind, action, the member (membership,
/// or account when there is none) and the count.
pub type Seen = (String, String, String, Option<i64>);

pub fn seen(entries: &[Entry]) -> Vec<Seen> {
    let mut seen: Vec<Seen> = entries
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.action.clone(),
                e.subject_membership_id
                    .clone()
                    .unwrap_or_else(|| e.subject_account_id.clone()),
                e.result_count,
            )
        })
        .collect();
    seen.sort();
    seen
}

/// Expected entries, in the same form.
pub fn expect(kind: &str, action: &str, members: &[(&str, Option<i64>)]) -> Vec<Seen> {
    let mut expected: Vec<Seen> = members
        .iter()
        .map(|(m, n)| (kind.to_owned(), action.to_owned(), (*m).to_owned(), *n))
        .collect();
    expected.sort();
    expected
}

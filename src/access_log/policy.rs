//! The access log's decision for every operation of the API: which entries
//! it writes when staff call it, or why it shows no member's data to staff.
//!
//! Keyed by method and path (operation ids come from the spec). A test
//! checks that this list and the spec name the same operations, so a new
//! operation without a decision fails it; the completeness test calls each
//! logging operation as staff and checks its entries. The logging ones are
//! documented in the spec as `x-kring-access-log` ([`Documented`]).

use serde_json::json;
use utoipa::Modify;

use super::{Action, Kind};

/// What an operation does with member data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Staff calling it see or change member data: it writes entries of
    /// these kinds and actions, one per member concerned.
    Logs(&'static [(Kind, Action)]),
    /// It shows staff no member's data; why.
    Exempt(&'static str),
}

/// One operation's decision.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    pub method: &'static str,
    pub path: &'static str,
    pub decision: Decision,
}

const fn logs(
    method: &'static str,
    path: &'static str,
    entries: &'static [(Kind, Action)],
) -> Declared {
    Declared {
        method,
        path,
        decision: Decision::Logs(entries),
    }
}

const fn exempt(method: &'static str, path: &'static str, why: &'static str) -> Declared {
    Declared {
        method,
        path,
        decision: Decision::Exempt(why),
    }
}

const OWN: &str = "the caller's own account, sessions or settings";
const NO_ONE: &str = "no data about any person";
const MEMBERS_ONLY: &str = "members only, about themselves";
const CIRCLE: &str = "the circle itself: its settings, agreement and workers, no member's data";
const STAFF: &str = "the organisation and its staff, no member's data";
const INSTRUMENTS: &str = "the organisation's questionnaires and their licences, no member's data";
const COHORTS: &str =
    "a face-to-face cohort's aggregate figures, as a coordinator recorded them: no member's data";
const OWN_POST: &str = "only the author may, and it answers with their own post";

/// Every operation of the API.
pub const POLICY: &[Declared] = &[
    // Operations.
    exempt("GET", "/healthz", NO_ONE),
    exempt("GET", "/readyz", NO_ONE),
    exempt("GET", "/metrics", "counts only, about no person"),
    exempt("GET", "/openapi.json", NO_ONE),
    // Accounts and sessions.
    exempt("POST", "/v1/auth/login", OWN),
    exempt("POST", "/v1/auth/logout", OWN),
    exempt("POST", "/v1/auth/logout-all", OWN),
    exempt("POST", "/v1/auth/recover", OWN),
    exempt("POST", "/v1/auth/refresh", OWN),
    exempt("POST", "/v1/auth/setup", OWN),
    exempt("GET", "/v1/me", OWN),
    exempt("PATCH", "/v1/me", OWN),
    exempt("POST", "/v1/me/im-ok", MEMBERS_ONLY),
    exempt("GET", "/v1/me/notification-preferences", OWN),
    exempt("PATCH", "/v1/me/notification-preferences", OWN),
    exempt(
        "GET",
        "/v1/me/access-log",
        "the caller's own entries: a member reading about themselves",
    ),
    exempt("POST", "/v1/me/export", MEMBERS_ONLY),
    exempt("GET", "/v1/me/exports", OWN),
    exempt("GET", "/v1/me/exports/{export_id}", OWN),
    exempt("GET", "/v1/me/exports/{export_id}/download", OWN),
    exempt("GET", "/v1/devices", OWN),
    exempt("POST", "/v1/devices", OWN),
    exempt("PUT", "/v1/devices/{device_id}", OWN),
    exempt("DELETE", "/v1/devices/{device_id}", OWN),
    exempt(
        "GET",
        "/v1/notifications",
        "the caller's own inbox: what Kring sent them (an alert opened from it is logged)",
    ),
    exempt("GET", "/v1/notifications/unread-count", OWN),
    exempt("POST", "/v1/notifications/read-all", OWN),
    exempt("POST", "/v1/notifications/{notification_id}/read", OWN),
    // The organisation.
    exempt("GET", "/v1/organisation", STAFF),
    exempt("GET", "/v1/organisation/staff", STAFF),
    exempt("POST", "/v1/organisation/staff", STAFF),
    exempt("DELETE", "/v1/organisation/staff/{account_id}", STAFF),
    exempt(
        "POST",
        "/v1/organisation/staff/{account_id}/setup-code",
        STAFF,
    ),
    logs(
        "GET",
        "/v1/organisation/access-log",
        &[(Kind::AccessLog, Action::List)],
    ),
    exempt("POST", "/v1/me/erasure", MEMBERS_ONLY),
    exempt("GET", "/v1/me/erasure", MEMBERS_ONLY),
    exempt("DELETE", "/v1/me/erasure", MEMBERS_ONLY),
    logs(
        "POST",
        "/v1/organisation/members/{account_id}/erasure",
        &[(Kind::Erasure, Action::Create)],
    ),
    logs(
        "DELETE",
        "/v1/organisation/members/{account_id}/erasure",
        &[(Kind::Erasure, Action::Delete)],
    ),
    logs(
        "POST",
        "/v1/organisation/members/{account_id}/export",
        &[(Kind::Export, Action::Export)],
    ),
    exempt(
        "GET",
        "/v1/organisation/members/{account_id}/exports/{export_id}",
        "an export's status and times, of one the coordinator started (which is logged); the download is logged",
    ),
    logs(
        "GET",
        "/v1/organisation/members/{account_id}/exports/{export_id}/download",
        &[(Kind::Export, Action::Read)],
    ),
    // Circles, invites, staffing.
    exempt("GET", "/v1/circles", CIRCLE),
    exempt("POST", "/v1/circles", CIRCLE),
    exempt("GET", "/v1/circles/{circle_id}", CIRCLE),
    exempt("PATCH", "/v1/circles/{circle_id}", CIRCLE),
    exempt("POST", "/v1/circles/{circle_id}/workers", CIRCLE),
    exempt(
        "DELETE",
        "/v1/circles/{circle_id}/workers/{account_id}",
        CIRCLE,
    ),
    exempt(
        "GET",
        "/v1/circles/{circle_id}/invites",
        "invites: codes' hints, limits and use counts, no member's data",
    ),
    exempt("POST", "/v1/circles/{circle_id}/invites", CIRCLE),
    exempt(
        "DELETE",
        "/v1/circles/{circle_id}/invites/{invite_id}",
        CIRCLE,
    ),
    exempt(
        "GET",
        "/v1/invites/{code}",
        "public: a circle's name and agreement",
    ),
    exempt("POST", "/v1/join", MEMBERS_ONLY),
    // Memberships.
    logs(
        "GET",
        "/v1/circles/{circle_id}/members",
        &[(Kind::MemberList, Action::List)],
    ),
    exempt("GET", "/v1/circles/{circle_id}/membership", OWN),
    exempt("PATCH", "/v1/circles/{circle_id}/membership", OWN),
    exempt(
        "POST",
        "/v1/circles/{circle_id}/membership/consent",
        MEMBERS_ONLY,
    ),
    exempt("POST", "/v1/circles/{circle_id}/membership/leave", OWN),
    logs(
        "POST",
        "/v1/circles/{circle_id}/members/{membership_id}/recovery-code",
        &[(Kind::RecoveryCode, Action::Create)],
    ),
    logs(
        "GET",
        "/v1/circles/{circle_id}/members/{membership_id}/recovery-codes",
        &[(Kind::RecoveryCode, Action::List)],
    ),
    logs(
        "POST",
        "/v1/circles/{circle_id}/members/{membership_id}/messages",
        &[(Kind::PersonalMessage, Action::Create)],
    ),
    // Posts.
    logs(
        "GET",
        "/v1/circles/{circle_id}/posts",
        &[(Kind::Feed, Action::List)],
    ),
    exempt(
        "POST",
        "/v1/circles/{circle_id}/posts",
        "answers with the caller's own new post",
    ),
    exempt(
        "PUT",
        "/v1/circles/{circle_id}/read-position",
        "the caller's own read position",
    ),
    logs("GET", "/v1/posts/{post_id}", &[(Kind::Feed, Action::Read)]),
    exempt("PATCH", "/v1/posts/{post_id}", OWN_POST),
    exempt("DELETE", "/v1/posts/{post_id}", OWN_POST),
    logs(
        "POST",
        "/v1/posts/{post_id}/hide",
        &[(Kind::Feed, Action::Change)],
    ),
    logs(
        "DELETE",
        "/v1/posts/{post_id}/hide",
        &[(Kind::Feed, Action::Change)],
    ),
    logs(
        "PUT",
        "/v1/posts/{post_id}/reactions/{kind}",
        &[(Kind::Feed, Action::Read)],
    ),
    logs(
        "DELETE",
        "/v1/posts/{post_id}/reactions/{kind}",
        &[(Kind::Feed, Action::Read)],
    ),
    // Check-ins.
    logs(
        "GET",
        "/v1/circles/{circle_id}/checkins",
        &[(Kind::Checkins, Action::List)],
    ),
    exempt("POST", "/v1/circles/{circle_id}/checkins", MEMBERS_ONLY),
    exempt("POST", "/v1/circles/{circle_id}/checkins/ok", MEMBERS_ONLY),
    // Questionnaires and outcomes.
    exempt("GET", "/v1/circles/{circle_id}/measurement-plan", CIRCLE),
    exempt("PUT", "/v1/circles/{circle_id}/measurement-plan", CIRCLE),
    exempt(
        "PUT",
        "/v1/circles/{circle_id}/membership/measurement",
        MEMBERS_ONLY,
    ),
    exempt("GET", "/v1/me/questionnaires", MEMBERS_ONLY),
    exempt(
        "GET",
        "/v1/me/questionnaires/{questionnaire_id}",
        MEMBERS_ONLY,
    ),
    exempt(
        "POST",
        "/v1/me/questionnaires/{questionnaire_id}/answers",
        MEMBERS_ONLY,
    ),
    exempt(
        "POST",
        "/v1/me/questionnaires/{questionnaire_id}/decline",
        MEMBERS_ONLY,
    ),
    exempt("GET", "/v1/me/outcomes", MEMBERS_ONLY),
    logs(
        "GET",
        "/v1/circles/{circle_id}/outcomes",
        &[(Kind::Outcomes, Action::List)],
    ),
    // Alerts and the overview.
    logs("GET", "/v1/alerts", &[(Kind::Alerts, Action::List)]),
    logs(
        "GET",
        "/v1/alerts/{alert_id}",
        &[(Kind::Alerts, Action::Read)],
    ),
    logs(
        "POST",
        "/v1/alerts/{alert_id}/acknowledge",
        &[(Kind::Alerts, Action::Change)],
    ),
    logs(
        "POST",
        "/v1/alerts/{alert_id}/snooze",
        &[(Kind::Alerts, Action::Change)],
    ),
    logs(
        "POST",
        "/v1/alerts/{alert_id}/resolve",
        &[(Kind::Alerts, Action::Change)],
    ),
    logs(
        "GET",
        "/v1/circles/{circle_id}/overview",
        &[(Kind::Overview, Action::List)],
    ),
    // Outcome reports.
    exempt("GET", "/v1/organisation/instruments", INSTRUMENTS),
    exempt(
        "PUT",
        "/v1/organisation/instruments/{key}/permission",
        INSTRUMENTS,
    ),
    exempt(
        "DELETE",
        "/v1/organisation/instruments/{key}/permission",
        INSTRUMENTS,
    ),
    exempt("GET", "/v1/organisation/comparison-cohorts", COHORTS),
    exempt("POST", "/v1/organisation/comparison-cohorts", COHORTS),
    exempt(
        "GET",
        "/v1/organisation/comparison-cohorts/{cohort_id}",
        COHORTS,
    ),
    exempt(
        "DELETE",
        "/v1/organisation/comparison-cohorts/{cohort_id}",
        COHORTS,
    ),
    exempt(
        "GET",
        "/v1/organisation/outcomes",
        "aggregates only: every cell resting on fewer than KRING_REPORT_MIN_CELL members is suppressed, with secondary suppression, so it shows no member's data",
    ),
    logs(
        "GET",
        "/v1/circles/{circle_id}/outcomes/report",
        &[(Kind::Outcomes, Action::List)],
    ),
];

/// The decision for an operation, if it has one.
pub fn decision(method: &str, path: &str) -> Option<&'static Decision> {
    POLICY
        .iter()
        .find(|d| d.method.eq_ignore_ascii_case(method) && d.path == path)
        .map(|d| &d.decision)
}

/// The spec extension that documents what a logging operation writes.
pub const EXTENSION: &str = "x-kring-access-log";

/// Adds [`EXTENSION`] to every operation whose policy logs: the kinds and
/// actions of the entries it writes when staff call it, one per member.
pub struct Documented;

impl Modify for Documented {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("GET", item.get.as_mut()),
                ("PUT", item.put.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
                ("PATCH", item.patch.as_mut()),
            ];
            for (method, op) in operations {
                let (Some(op), Some(Decision::Logs(entries))) = (op, decision(method, path)) else {
                    continue;
                };
                let entries: Vec<_> = entries
                    .iter()
                    .map(|(kind, action)| json!({"kind": kind.as_str(), "action": action.as_str()}))
                    .collect();
                let value = json!({
                    "when": "a worker or coordinator calls it",
                    "per": "member whose data it shows or changes",
                    "entries": entries,
                });
                op.extensions
                    .get_or_insert_with(Default::default)
                    .insert(EXTENSION.to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for d in POLICY {
            assert!(
                seen.insert((d.method, d.path)),
                "{} {} is declared twice",
                d.method,
                d.path
            );
            if let Decision::Exempt(why) = d.decision {
                assert!(!why.is_empty());
            }
        }
    }
}

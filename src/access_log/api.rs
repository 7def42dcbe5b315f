//! Reading the access log: a member's own entries, and the organisation's
//! for its coordinators (which is itself logged).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Action, Audit, Kind, Subject};
use crate::clock::from_ms;
use crate::error::{ApiResult, Code, Validator};
use crate::http::cursor::{Cursor, Page, next_cursor, parse_limit};
use crate::http::time::parse_timestamp;
use crate::http::{Caller, Query, Role};
use crate::state::AppState;

/// A period and a page, for both lists.
struct Period {
    from: i64,
    until: i64,
    page: Page,
}

fn parse_period(
    v: &mut Validator,
    from: Option<&str>,
    until: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Option<Period> {
    let mut time = |field: &str, value: Option<&str>, default: i64| match value {
        None => Some(default),
        Some(s) => v.check(field, parse_timestamp(s).map(|t| t.as_millisecond())),
    };
    let from = time("from", from, i64::MIN);
    let until = time("until", until, i64::MAX);
    // `until` at or before `from` is an empty period: an empty page, not
    // an error (each bound is valid on its own).
    let limit = v.check("limit", parse_limit(limit));
    let cursor = match cursor {
        None => Some(None),
        Some(c) => v.check("cursor", Cursor::decode(c)).map(Some),
    };
    Some(Period {
        from: from?,
        until: until?,
        page: Page {
            limit: limit?,
            cursor: cursor?,
        },
    })
}

/// The staff member behind an entry, as a member sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessedBy {
    /// Their name in the organisation.
    #[schema(example = "Sam Jansen")]
    pub display_name: Option<String>,
    /// Their role when they accessed the data.
    pub role: Role,
}

/// Where an access came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessPoint {
    /// The API operation (its `operationId` in this spec).
    #[schema(example = "circle_checkins_list")]
    pub operation: String,
}

/// One access to your data by staff.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "accessed_at": "2026-11-21T10:02:00Z",
    "staff": {"display_name": "Sam Jansen", "role": "worker"},
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
    "kind": "checkins",
    "action": "list",
    "result_count": 3,
    "on_your_behalf": false,
    "access_point": {"operation": "circle_checkins_list"}
}))]
pub struct MyAccessEntry {
    /// The entry's id.
    pub id: String,
    /// When the staff member accessed your data.
    #[schema(value_type = String, format = DateTime)]
    pub accessed_at: jiff::Timestamp,
    /// Who accessed it.
    pub staff: AccessedBy,
    /// The circle the data belongs to; null for data about your account.
    pub circle_id: Option<String>,
    /// Your membership of that circle.
    pub membership_id: Option<String>,
    /// Which kind of data.
    pub kind: Kind,
    /// What they did with it.
    pub action: Action,
    /// For `list`: how many items about you the list held.
    #[schema(example = 3)]
    pub result_count: Option<i64>,
    /// True when the staff member acted at your request (an export of your
    /// data that a coordinator started for you, or an erasure they asked
    /// for or took back for you).
    pub on_your_behalf: bool,
    /// Where the access came from.
    pub access_point: AccessPoint,
}

/// A page of accesses to your data.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "accessed_at": "2026-11-21T10:02:00Z",
    "staff": {"display_name": "Sam Jansen", "role": "worker"},
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
    "kind": "checkins",
    "action": "list",
    "result_count": 3,
    "on_your_behalf": false,
    "access_point": {"operation": "circle_checkins_list"}
}], "next_cursor": null}))]
pub struct MyAccessLogPage {
    /// Accesses to your data, newest first.
    pub items: Vec<MyAccessEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `from`, `until`, `limit` and `cursor` for `GET /v1/me/access-log`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyAccessLogQuery {
    /// Only accesses at or after this time (RFC 3339).
    #[param(format = DateTime, example = "2026-11-01T00:00:00Z")]
    pub from: Option<String>,
    /// Only accesses before this time (RFC 3339); after `from`.
    #[param(format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub until: Option<String>,
    /// How many entries to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,200}$")]
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    seq: i64,
    accessed_at: i64,
    actor_account_id: String,
    actor_name: Option<String>,
    actor_role: String,
    on_behalf_of: Option<String>,
    subject_account_id: String,
    subject_membership_id: Option<String>,
    circle_id: Option<String>,
    kind: String,
    action: String,
    result_count: Option<i64>,
    operation: String,
    client: Option<String>,
    session_id: Option<String>,
}

const SELECT: &str =
    "SELECT l.id, l.seq, l.accessed_at, l.actor_account_id, a.display_name AS actor_name,
        l.actor_role, l.on_behalf_of, l.subject_account_id, l.subject_membership_id, l.circle_id,
        l.kind, l.action, l.result_count, l.operation, l.client, l.session_id
    FROM access_log l LEFT JOIN accounts a ON a.id = l.actor_account_id";

/// The keyset condition for a page newest first: `$n` the time, `$n+1` the id.
fn older_than(n: usize) -> String {
    format!(
        "(l.accessed_at < ${n} OR (l.accessed_at = ${n} AND l.id < ${}))",
        n + 1
    )
}

impl Row {
    fn parts(&self) -> ApiResult<(Role, Kind, Action)> {
        let bad = |what: &str| crate::error::ApiError::Internal(format!("stored {what}"));
        Ok((
            Role::parse(&self.actor_role).map_err(|_| bad("role"))?,
            Kind::parse(&self.kind).ok_or_else(|| bad("kind"))?,
            Action::parse(&self.action).ok_or_else(|| bad("action"))?,
        ))
    }

    fn position(&self) -> Cursor {
        Cursor {
            at_ms: self.accessed_at,
            id: self.id.clone(),
        }
    }
}

/// The cursor's position, or the start of a list newest first.
fn start(page: &Page) -> (i64, String) {
    page.cursor
        .as_ref()
        .map_or((i64::MAX, String::new()), |c| (c.at_ms, c.id.clone()))
}

/// Who looked at your data, newest first.
///
/// Every time a worker or coordinator read or changed data about you.
/// One entry per access: when, who (their name and role), which kind of
/// data (check-ins, posts, the overview, alerts, the member list, recovery
/// codes, personal messages, exports), what they did (read, list, create,
/// change, export; `on_your_behalf` when they did it at your request)
/// and, for a list, how many of its items were about you. Your own use of
/// Kring and other members reading the circle are not in it; reading this
/// list is not logged. Entries are kept for the organisation's retention
/// period (by default five years). Filter by period with `from` and `until`;
/// page with `limit` and `cursor`.
#[utoipa::path(
    get, path = "/v1/me/access-log", tag = "access_log",
    operation_id = "me_access_log_list",
    security(("bearer" = [])),
    params(MyAccessLogQuery),
    responses(
        (status = 200, description = "Accesses to your data, newest first", body = MyAccessLogPage),
    )
)]
pub async fn my_access_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<MyAccessLogQuery>,
) -> ApiResult<axum::Json<MyAccessLogPage>> {
    let mut v = Validator::default();
    let period = parse_period(
        &mut v,
        query.from.as_deref(),
        query.until.as_deref(),
        query.limit,
        query.cursor.as_deref(),
    );
    let Some(period) = period.filter(|_| v.is_ok()) else {
        return Err(v.into_error());
    };
    let (at, id) = start(&period.page);
    let mut rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT}
         WHERE l.subject_account_id = $1 AND l.accessed_at >= $2 AND l.accessed_at < $3 AND {}
         ORDER BY l.accessed_at DESC, l.id DESC LIMIT $6",
        older_than(4)
    )))
    .bind(&caller.account_id)
    .bind(period.from)
    .bind(period.until)
    .bind(at)
    .bind(id)
    .bind(period.page.limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let next_cursor = next_cursor(&mut rows, period.page.limit, Row::position);
    let items = rows
        .into_iter()
        .map(|r| {
            let (role, kind, action) = r.parts()?;
            Ok(MyAccessEntry {
                id: r.id,
                accessed_at: from_ms(r.accessed_at),
                staff: AccessedBy {
                    display_name: r.actor_name,
                    role,
                },
                circle_id: r.circle_id,
                membership_id: r.subject_membership_id,
                kind,
                action,
                result_count: r.result_count,
                on_your_behalf: r.on_behalf_of.as_deref() == Some(r.subject_account_id.as_str()),
                access_point: AccessPoint {
                    operation: r.operation,
                },
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(axum::Json(MyAccessLogPage { items, next_cursor }))
}

/// A staff member as the organisation's log names them.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffActor {
    /// The staff member's account id.
    pub account_id: String,
    /// Their name in the organisation.
    #[schema(example = "Sam Jansen")]
    pub display_name: Option<String>,
    /// Their role when they accessed the data.
    pub role: Role,
}

/// The member whose data it was.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessedMember {
    /// The member's account id.
    pub account_id: String,
    /// Their membership, when the data belongs to a circle.
    pub membership_id: Option<String>,
}

/// Where an access came from, in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct FullAccessPoint {
    /// The API operation (its `operationId` in this spec).
    #[schema(example = "circle_checkins_list")]
    pub operation: String,
    /// The client's User-Agent, printable ASCII, at most 120 characters.
    #[schema(example = "KringWorker/1.4 (Android 15)")]
    pub client: Option<String>,
    /// The staff member's session: one sign-in on one device.
    pub session_id: Option<String>,
}

/// One access by staff to a member's data.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "seq": 1042,
    "accessed_at": "2026-11-21T10:02:00Z",
    "staff": {"account_id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f", "display_name": "Sam Jansen", "role": "worker"},
    "on_behalf_of": null,
    "member": {"account_id": "0194f1a4b0c17c2d9e8f7a6b5c4d3e2f", "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f"},
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "kind": "checkins",
    "action": "list",
    "result_count": 3,
    "access_point": {"operation": "circle_checkins_list", "client": "KringWorker/1.4 (Android 15)", "session_id": "0194f1a4c0c17c2d9e8f7a6b5c4d3e2f"}
}))]
pub struct AccessEntry {
    /// The entry's id.
    pub id: String,
    /// The entry's number in the organisation's hash chain.
    pub seq: i64,
    /// When the staff member accessed the data.
    #[schema(value_type = String, format = DateTime)]
    pub accessed_at: jiff::Timestamp,
    /// Who accessed it.
    pub staff: StaffActor,
    /// The account the staff member acted for, when not on their own
    /// account (set by operations done at a member's request).
    pub on_behalf_of: Option<String>,
    /// Whose data it was.
    pub member: AccessedMember,
    /// The circle the data belongs to; null for data about the account.
    pub circle_id: Option<String>,
    /// Which kind of data.
    pub kind: Kind,
    /// What they did with it.
    pub action: Action,
    /// For `list`: how many items about the member the list held.
    pub result_count: Option<i64>,
    /// Where the access came from.
    pub access_point: FullAccessPoint,
}

/// A page of accesses to members' data.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "seq": 1042,
    "accessed_at": "2026-11-21T10:02:00Z",
    "staff": {"account_id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f", "display_name": "Sam Jansen", "role": "worker"},
    "on_behalf_of": null,
    "member": {"account_id": "0194f1a4b0c17c2d9e8f7a6b5c4d3e2f", "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f"},
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "kind": "checkins",
    "action": "list",
    "result_count": 3,
    "access_point": {"operation": "circle_checkins_list", "client": "KringWorker/1.4 (Android 15)", "session_id": "0194f1a4c0c17c2d9e8f7a6b5c4d3e2f"}
}], "next_cursor": "MTc2MzcxOTMyMDAwMDowMTk0ZjFkMGUxZjI"}))]
pub struct AccessLogPage {
    /// Accesses to members' data, newest first.
    pub items: Vec<AccessEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and a page for `GET /v1/organisation/access-log`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogQuery {
    /// Only accesses by this staff member (account id).
    #[param(pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub staff_id: Option<String>,
    /// Only accesses to this member's data (account id).
    #[param(pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub member_id: Option<String>,
    /// Only this kind of data.
    #[param(value_type = Option<Kind>, inline)]
    pub kind: Option<String>,
    /// Only accesses at or after this time (RFC 3339).
    #[param(format = DateTime, example = "2026-11-01T00:00:00Z")]
    pub from: Option<String>,
    /// Only accesses before this time (RFC 3339); after `from`.
    #[param(format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub until: Option<String>,
    /// How many entries to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,200}$")]
    pub cursor: Option<String>,
}

/// Coordinators: every access by staff to members' data, newest first.
///
/// The whole organisation's log.
/// Filter by staff member (`staff_id`), member (`member_id`, an account
/// id), kind of data (`kind`) and period (`from`, `until`); page with
/// `limit` and `cursor`. Each entry names the staff member, their role,
/// the member and membership, the kind of data, the action, the API
/// operation, the client and session, and for a list the count of items
/// about the member. Reading this list is itself logged: one `access_log`
/// entry per member it shows (and one for a `member_id` it shows nothing
/// about), which that member then sees in their own log.
#[utoipa::path(
    get, path = "/v1/organisation/access-log", tag = "access_log",
    operation_id = "organisation_access_log_list",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(AccessLogQuery),
    responses(
        (status = 200, description = "Accesses to members' data, newest first", body = AccessLogPage),
    )
)]
pub async fn organisation_access_log(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Query(query): Query<AccessLogQuery>,
) -> ApiResult<axum::Json<AccessLogPage>> {
    caller.require_coordinator()?;
    let mut v = Validator::default();
    let kind = match query.kind.as_deref() {
        None => Some(None),
        Some(k) => v
            .check(
                "kind",
                Kind::parse(k).ok_or_else(|| "is not a kind of data the log names".to_owned()),
            )
            .map(Some),
    };
    let period = parse_period(
        &mut v,
        query.from.as_deref(),
        query.until.as_deref(),
        query.limit,
        query.cursor.as_deref(),
    );
    let (Some(period), Some(kind), true) = (period, kind, v.is_ok()) else {
        return Err(v.into_error());
    };
    let (at, id) = start(&period.page);
    let mut rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT}
         WHERE l.organisation_id = $1 AND l.accessed_at >= $2 AND l.accessed_at < $3 AND {}
           AND ($6 = '' OR l.actor_account_id = $6)
           AND ($7 = '' OR l.subject_account_id = $7)
           AND ($8 = '' OR l.kind = $8)
         ORDER BY l.accessed_at DESC, l.id DESC LIMIT $9",
        older_than(4)
    )))
    .bind(&caller.organisation_id)
    .bind(period.from)
    .bind(period.until)
    .bind(at)
    .bind(id)
    .bind(query.staff_id.clone().unwrap_or_default())
    .bind(query.member_id.clone().unwrap_or_default())
    .bind(kind.map(Kind::as_str).unwrap_or_default())
    .bind(period.page.limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let next_cursor = next_cursor(&mut rows, period.page.limit, Row::position);

    // Each member the page shows, and the member asked about even if it
    // shows nothing of theirs.
    let mut shown: Vec<(Subject, i64)> = Vec::new();
    for r in &rows {
        let subject = match &r.subject_membership_id {
            Some(m) => Subject::membership(m),
            None => Subject::account(&r.subject_account_id),
        };
        match shown.iter_mut().find(|(s, _)| *s == subject) {
            Some((_, n)) => *n += 1,
            None => shown.push((subject, 1)),
        }
    }
    if let Some(member) = query.member_id.as_deref().filter(|m| !m.is_empty())
        && !rows.iter().any(|r| r.subject_account_id == member)
    {
        shown.push((Subject::account(member), 0));
    }
    audit.shown_counted(Kind::AccessLog, Action::List, shown);

    let items = rows
        .into_iter()
        .map(|r| {
            let (role, kind, action) = r.parts()?;
            Ok(AccessEntry {
                id: r.id,
                seq: r.seq,
                accessed_at: from_ms(r.accessed_at),
                staff: StaffActor {
                    account_id: r.actor_account_id,
                    display_name: r.actor_name,
                    role,
                },
                on_behalf_of: r.on_behalf_of,
                member: AccessedMember {
                    account_id: r.subject_account_id,
                    membership_id: r.subject_membership_id,
                },
                circle_id: r.circle_id,
                kind,
                action,
                result_count: r.result_count,
                access_point: FullAccessPoint {
                    operation: r.operation,
                    client: r.client,
                    session_id: r.session_id,
                },
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(axum::Json(AccessLogPage { items, next_cursor }))
}

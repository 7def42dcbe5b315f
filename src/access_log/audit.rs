//! Recording accesses: the [`Audit`] extractor handlers use, and the
//! [`middleware`] that writes what a request showed and checks that every
//! handler of a logged operation accounted for its response.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::AnyConnection;

use super::chain::{self, Entry};
use super::policy::{self, Decision};
use super::{Action, Kind, Subject};
use crate::error::ApiError;
use crate::http::Caller;
use crate::state::AppState;
use crate::store::Tx;

/// The longest client description kept (a User-Agent, shortened).
const MAX_CLIENT_CHARS: usize = 120;

/// One access, before its subject is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Access {
    kind: Kind,
    action: Action,
    subject: Subject,
    count: Option<i64>,
    /// The account the staff member acted for, if any.
    on_behalf_of: Option<String>,
}

/// What one request did with member data so far.
#[derive(Debug, Default)]
struct Ledger {
    /// The handler used its [`Audit`] (said what it showed or changed).
    accounted: bool,
    /// Shown data, written once the handler has succeeded.
    reads: Vec<Access>,
    caller: Option<Caller>,
}

/// Where a request came in: set by [`middleware`] for every operation of
/// the spec.
#[derive(Clone)]
struct Point {
    operation: Arc<str>,
    client: Option<String>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Point {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The access log for one request. A handler that shows or changes data
/// about members takes this and says what it showed or changed; for a
/// caller who is not staff it records nothing. An operation whose policy
/// logs must use it on every successful answer (an empty list included),
/// or [`middleware`] answers 500 instead.
pub struct Audit {
    point: Point,
    caller: Caller,
    state: AppState,
}

impl FromRequestParts<AppState> for Audit {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let point = parts.extensions.get::<Point>().cloned().ok_or_else(|| {
            ApiError::Internal("the access log layer is not in front of this route".into())
        })?;
        let caller = Caller::from_request_parts(parts, state).await?;
        point.ledger().caller = Some(caller.clone());
        Ok(Self {
            point,
            caller,
            state: state.clone(),
        })
    }
}

impl Audit {
    /// The response shows data of `kind` about `subjects`, one item each
    /// (a subject may come several times: a list counts them). Written
    /// when the handler has succeeded, before the response goes out.
    pub fn shown(&self, kind: Kind, action: Action, subjects: impl IntoIterator<Item = Subject>) {
        let mut counts: Vec<(Subject, i64)> = Vec::new();
        for subject in subjects {
            match counts.iter_mut().find(|(s, _)| *s == subject) {
                Some((_, n)) => *n += 1,
                None => counts.push((subject, 1)),
            }
        }
        self.shown_counted(kind, action, counts);
    }

    /// As [`Audit::shown`], with each subject's count given (a list filtered
    /// on a member that shows none of their items still shows that there
    /// are none: count 0).
    pub fn shown_counted(
        &self,
        kind: Kind,
        action: Action,
        counts: impl IntoIterator<Item = (Subject, i64)>,
    ) {
        let mut ledger = self.point.ledger();
        ledger.accounted = true;
        if !self.caller.role.is_staff() {
            return;
        }
        for (subject, n) in counts {
            ledger.reads.push(Access {
                kind,
                action,
                subject,
                count: (action == Action::List).then_some(n),
                on_behalf_of: None,
            });
        }
    }

    /// The handler changed (or created) data of `kind` about `subject` in
    /// `tx`: the entry is written in that transaction, so it commits or
    /// rolls back with the change. Call it last, just before the commit
    /// (see [`chain`] on lock order).
    pub async fn changed(
        &self,
        tx: &mut Tx,
        kind: Kind,
        action: Action,
        subject: Subject,
    ) -> Result<(), ApiError> {
        self.changed_on_behalf(tx, kind, action, subject, None)
            .await
    }

    /// As [`Audit::changed`], for a change the staff member made at
    /// someone's request (an export started for a member): the entry names
    /// that account in `on_behalf_of`.
    pub async fn changed_on_behalf(
        &self,
        tx: &mut Tx,
        kind: Kind,
        action: Action,
        subject: Subject,
        on_behalf_of: Option<String>,
    ) -> Result<(), ApiError> {
        self.point.ledger().accounted = true;
        if !self.caller.role.is_staff() {
            return Ok(());
        }
        let access = Access {
            kind,
            action,
            subject,
            count: None,
            on_behalf_of,
        };
        write(
            &mut *tx,
            &self.caller,
            &self.point,
            self.state.now_ms(),
            &[access],
        )
        .await?;
        Ok(())
    }
}

/// Writes `accesses` by `caller` at `point`: resolves each subject to a
/// member of the caller's organisation (others are dropped) and appends one
/// entry per access.
async fn write(
    conn: &mut AnyConnection,
    caller: &Caller,
    point: &Point,
    now: i64,
    accesses: &[Access],
) -> Result<(), sqlx::Error> {
    let members = resolve(conn, &caller.organisation_id, accesses).await?;
    let entries: Vec<Entry> = accesses
        .iter()
        .filter_map(|a| {
            let (account, membership, circle) = members.get(&a.subject)?.clone();
            Some(Entry {
                id: crate::secrets::new_id(),
                organisation_id: caller.organisation_id.clone(),
                seq: 0,
                accessed_at: now,
                actor_account_id: caller.account_id.clone(),
                actor_role: caller.role.as_str().to_owned(),
                on_behalf_of: a.on_behalf_of.clone(),
                subject_account_id: account,
                subject_membership_id: membership,
                circle_id: circle,
                kind: a.kind.as_str().to_owned(),
                action: a.action.as_str().to_owned(),
                operation: point.operation.to_string(),
                client: point.client.clone(),
                session_id: Some(caller.session_id.clone()),
                result_count: a.count,
                prev_hash: String::new(),
                hash: String::new(),
            })
        })
        .collect();
    chain::append(conn, &caller.organisation_id, entries).await
}

/// Account, membership and circle of each subject that is a member of the
/// organisation.
type Resolved = HashMap<Subject, (String, Option<String>, Option<String>)>;

async fn resolve(
    conn: &mut AnyConnection,
    organisation_id: &str,
    accesses: &[Access],
) -> Result<Resolved, sqlx::Error> {
    let mut memberships = HashSet::new();
    let mut accounts = HashSet::new();
    for a in accesses {
        match &a.subject {
            Subject::Membership(id) => memberships.insert(id.as_str()),
            Subject::Account(id) => accounts.insert(id.as_str()),
        };
    }
    let mut found = Resolved::new();
    if !memberships.is_empty() {
        let ids: Vec<&str> = memberships.into_iter().collect();
        let sql = format!(
            "SELECT m.id, m.account_id, m.circle_id FROM memberships m
             JOIN circles c ON c.id = m.circle_id
             WHERE c.organisation_id = $1 AND m.role = 'member' AND m.id IN ({})",
            placeholders(2, ids.len())
        );
        let mut query = sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql))
            .bind(organisation_id.to_owned());
        for id in ids {
            query = query.bind(id.to_owned());
        }
        for (id, account, circle) in query.fetch_all(&mut *conn).await? {
            found.insert(
                Subject::Membership(id.clone()),
                (account, Some(id), Some(circle)),
            );
        }
    }
    if !accounts.is_empty() {
        let ids: Vec<&str> = accounts.into_iter().collect();
        let sql = format!(
            "SELECT id FROM accounts WHERE organisation_id = $1 AND role = 'member' AND id IN ({})",
            placeholders(2, ids.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .bind(organisation_id.to_owned());
        for id in ids {
            query = query.bind(id.to_owned());
        }
        for id in query.fetch_all(&mut *conn).await? {
            found.insert(Subject::Account(id.clone()), (id, None, None));
        }
    }
    Ok(found)
}

/// `$from, $from+1, …` for `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every operation of the spec by method and path: its id and whether its
/// policy logs. Made once from the generated spec, so no operation id is
/// written twice.
#[derive(Debug, Default)]
pub struct Operations {
    by_route: HashMap<(String, String), (Arc<str>, bool)>,
}

impl Operations {
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let mut by_route = HashMap::new();
        let json = serde_json::to_value(spec).unwrap_or_default();
        for (path, item) in json["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                let method = method.to_ascii_uppercase();
                let logs = matches!(policy::decision(&method, path), Some(Decision::Logs(_)));
                by_route.insert((method, path.clone()), (Arc::from(id), logs));
            }
        }
        Self { by_route }
    }

    fn get(&self, method: &str, path: &str) -> Option<&(Arc<str>, bool)> {
        self.by_route.get(&(method.to_owned(), path.to_owned()))
    }
}

/// The client as the entry names it: the User-Agent, printable ASCII only,
/// at most [`MAX_CLIENT_CHARS`] characters.
fn client_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let agent = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let cleaned: String = agent
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_CLIENT_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// The access log's layer, next to the handlers (inside the idempotency
/// layer, so a replayed response, which repeats what was logged when it was
/// first made, passes by). For every operation of the spec it gives the
/// handler its [`Audit`]; after a successful handler it writes what the
/// response showed to staff, in a transaction of its own, before the
/// response goes out (if that fails, the caller gets a 500 instead of the
/// data). A successful response of an operation whose policy logs but
/// whose handler never used its [`Audit`] is replaced by a 500: a handler
/// that forgets cannot show member data unlogged.
pub async fn middleware(
    State((state, operations)): State<(AppState, Arc<Operations>)>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some((operation, logs)) = matched
        .as_ref()
        .and_then(|m| operations.get(req.method().as_str(), m.as_str()))
        .cloned()
    else {
        return next.run(req).await;
    };
    let point = Point {
        operation,
        client: client_of(req.headers()),
        ledger: Arc::default(),
    };
    req.extensions_mut().insert(point.clone());
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let (accounted, reads, caller) = {
        let mut ledger = point.ledger();
        (
            ledger.accounted,
            std::mem::take(&mut ledger.reads),
            ledger.caller.take(),
        )
    };
    if logs && !accounted {
        return ApiError::Internal(format!(
            "{} answered without accounting for the member data it shows",
            point.operation
        ))
        .into_response();
    }
    if let Some(caller) = caller.filter(|c| c.role.is_staff() && !reads.is_empty())
        && let Err(err) = write_reads(&state, &caller, &point, &reads).await
    {
        return err.into_response();
    }
    response
}

async fn write_reads(
    state: &AppState,
    caller: &Caller,
    point: &Point,
    reads: &[Access],
) -> Result<(), ApiError> {
    let mut tx = state.store.begin().await?;
    write(&mut tx, caller, point, state.now_ms(), reads).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_printable_and_short() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(client_of(&headers), None);
        headers.insert(header::USER_AGENT, "KringApp/2.1 (iOS 18)".parse().unwrap());
        assert_eq!(
            client_of(&headers).as_deref(),
            Some("KringApp/2.1 (iOS 18)")
        );
        headers.insert(header::USER_AGENT, "x".repeat(500).parse().unwrap());
        assert_eq!(client_of(&headers).map(|c| c.len()), Some(MAX_CLIENT_CHARS));
        headers.insert(header::USER_AGENT, "a\tb".parse().unwrap());
        assert_eq!(client_of(&headers).as_deref(), Some("ab"));
    }
}

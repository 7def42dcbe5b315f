//! Check-ins: how a member is doing (mood 1–5, a note, "I would like
//! contact"), and the one-tap "I'm OK". Each is activity and ends a silence.
//! Whether the circle sees them or only its workers is set per circle.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::{CircleAccess, cached_access, record_activity};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::sync::{SyncList, SyncQuery};
use crate::http::{Caller, Json, Query};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::Tx;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_checkins, create_checkin))
        .routes(routes!(im_ok))
        .routes(routes!(im_ok_everywhere))
}

/// How a member feels, 1 (bad) to 5 (good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mood(i64);

impl Mood {
    pub fn parse(n: i64) -> Result<Self, String> {
        if (1..=5).contains(&n) {
            Ok(Self(n))
        } else {
            Err("must be 1 to 5".into())
        }
    }
}

/// What kind of check-in: `mood` (a mood from 1 to 5, maybe with a note)
/// or `ok` (the one-tap "I'm OK").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckinKind {
    /// A mood check-in.
    Mood,
    /// The one-tap "I'm OK".
    Ok,
}

/// A member's check-in: how they are doing.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1c0d1e27f3a8b9c0d1e2f3a4b5c",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
    "pseudonym": "Zonnebloem",
    "kind": "mood",
    "mood": 4,
    "note": "Goed geslapen.",
    "wants_contact": false,
    "created_at": "2026-11-21T08:30:00Z",
    "removed_at": null
}))]
pub struct Checkin {
    /// The check-in's id.
    pub id: String,
    /// Its circle.
    pub circle_id: String,
    /// The member's membership.
    pub membership_id: String,
    /// The member's name in the circle.
    #[schema(example = "Zonnebloem")]
    pub pseudonym: String,
    /// A mood, or "I'm OK".
    pub kind: CheckinKind,
    /// 1 (bad) to 5 (good); null for "I'm OK".
    #[schema(example = 4, minimum = 1, maximum = 5)]
    pub mood: Option<i64>,
    /// What the member added; null for none.
    #[schema(example = "Goed geslapen.")]
    pub note: Option<String>,
    /// The member asked for contact with their worker.
    pub wants_contact: bool,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Set when the check-in was removed at the member's request (they
    /// left Kring and asked for their data to be erased): drop your copy.
    /// Its `mood` and `note` are then null and `wants_contact` false. Only
    /// a sync (`since`) returns removed check-ins.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed_at: Option<jiff::Timestamp>,
}

/// A page of a circle's check-ins, with the token to sync from.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "0194f1c0d1e27f3a8b9c0d1e2f3a4b5c",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "pseudonym": "Zonnebloem",
        "kind": "mood",
        "mood": 4,
        "note": "Goed geslapen.",
        "wants_contact": false,
        "created_at": "2026-11-21T08:30:00Z",
        "removed_at": null
    }],
    "next_cursor": null,
    "sync_token": "MTIuMDE5NGYxYTJiM2M0N2Q1ZThmOTAxYTJiM2M0ZDVlNmY"
}))]
pub struct CheckinPage {
    /// Newest first; with `since`, oldest change first.
    pub items: Vec<Checkin>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
    /// Keep the latest one you received and pass it as `since` to fetch
    /// every check-in after this page. Every page of one listing carries the
    /// same token as its first page.
    #[schema(example = "MTIuMDE5NGYxYTJiM2M0N2Q1ZThmOTAxYTJiM2M0ZDVlNmY")]
    pub sync_token: String,
}

#[derive(sqlx::FromRow)]
struct CheckinRow {
    id: String,
    circle_id: String,
    membership_id: String,
    pseudonym: String,
    kind: String,
    mood: Option<i64>,
    note: Option<String>,
    wants_contact: i64,
    created_at: i64,
    change_seq: i64,
    removed_at: Option<i64>,
}

impl CheckinRow {
    fn into_view(self) -> Checkin {
        Checkin {
            kind: if self.kind == "ok" {
                CheckinKind::Ok
            } else {
                CheckinKind::Mood
            },
            id: self.id,
            circle_id: self.circle_id,
            membership_id: self.membership_id,
            pseudonym: self.pseudonym,
            mood: self.mood,
            note: self.note,
            wants_contact: self.wants_contact != 0,
            created_at: from_ms(self.created_at),
            removed_at: self.removed_at.map(from_ms),
        }
    }
}

const CHECKIN_SELECT: &str =
    "SELECT c.id, c.circle_id, c.membership_id, m.pseudonym, c.kind, c.mood, c.note,
        c.wants_contact, c.created_at, c.change_seq, c.removed_at
    FROM checkins c JOIN memberships m ON m.id = c.membership_id";

/// A mood check-in.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"mood": 2, "note": "Zware dag.", "wants_contact": true}))]
pub struct CreateCheckin {
    /// 1 (bad) to 5 (good).
    #[schema(example = 4, minimum = 1, maximum = 5)]
    pub mood: i64,
    /// Anything the member wants to add; stored trimmed.
    #[schema(value_type = Option<crate::openapi::Note>)]
    pub note: Option<String>,
    /// Ask your worker to get in touch. Every check-in with this flag opens
    /// a `contact_request` alert of its own and pushes every worker of the
    /// circle at once, whatever the hour, also while an earlier request is
    /// still open.
    #[serde(default)]
    pub wants_contact: bool,
}

/// What a member checks in with.
struct Entry {
    kind: &'static str,
    mood: Option<Mood>,
    note: Option<String>,
    wants_contact: bool,
}

/// The one-tap "I'm OK".
const IM_OK: Entry = Entry {
    kind: "ok",
    mood: None,
    note: None,
    wants_contact: false,
};

/// Writes a check-in for the caller's `access` to a circle. The access is
/// read before the transaction begins (through the read cache where it is
/// on): a read from the pool while a transaction holds a connection would
/// let concurrent requests hold every connection and wait for one more.
async fn insert(
    state: &AppState,
    tx: &mut Tx,
    access: CircleAccess,
    entry: Entry,
) -> ApiResult<Checkin> {
    let Entry {
        kind,
        mood,
        note,
        wants_contact,
    } = entry;
    // The insert itself requires the membership to still be active.
    let membership_id = access.member_membership_id()?.to_owned();
    let now = state.now_ms();
    let id = new_id();
    let inserted = sqlx::query(
        "INSERT INTO checkins (id, circle_id, membership_id, kind, mood, note, wants_contact, created_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
         WHERE EXISTS (SELECT 1 FROM memberships WHERE id = $3 AND left_at IS NULL)",
    )
    .bind(&id)
    .bind(&access.circle_id)
    .bind(&membership_id)
    .bind(kind)
    .bind(mood.map(|m| m.0))
    .bind(note.as_deref())
    .bind(i64::from(wants_contact))
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // They left the circle a moment ago.
        return Err(ApiError::NotFound("circle"));
    }
    record_activity(tx, &membership_id, now).await?;
    if wants_contact {
        crate::silence::engine::contact_request(tx, &membership_id, now).await?;
    }
    Ok(CheckinRow {
        id,
        circle_id: access.circle_id,
        membership_id,
        pseudonym: access.pseudonym.unwrap_or_default(),
        kind: kind.to_owned(),
        mood: mood.map(|m| m.0),
        note,
        wants_contact: i64::from(wants_contact),
        created_at: now,
        change_seq: 0,
        removed_at: None,
    }
    .into_view())
}

/// Members: check in with your mood, a note, and whether you would like contact.
///
/// Counts as activity.
/// Members of the circle only (workers get 403 `members_only`). Ends the
/// member's silence: reminders start over and an open silence alert
/// resolves with an "all clear" to the workers. With `wants_contact`, the
/// circle's workers get an alert and a push at once, whatever the hour.
/// Who sees the check-in follows the circle's `checkin_visibility`. Send an
/// `Idempotency-Key`: a retry never checks in twice.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/checkins", tag = "checkins",
    operation_id = "circle_checkins_create",
    extensions(("x-problem-codes" = json!([Code::MembersOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), IdempotencyKey),
    request_body = CreateCheckin,
    responses(
        (status = 201, description = "Checked in", body = Checkin),
    )
)]
pub async fn create_checkin(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotent,
    Path(circle_id): Path<String>,
    Json(req): Json<CreateCheckin>,
) -> ApiResult<Response> {
    let mut v = Validator::default();
    let mood = v.check("mood", Mood::parse(req.mood));
    // At most 1000 characters as sent (`crate::openapi::Note`), then trimmed.
    let note = match req.note.as_deref() {
        Some(n) if n.chars().count() > 1000 => {
            v.fail("note", "must be at most 1000 characters");
            None
        }
        Some(n) if !n.trim().is_empty() => Some(Some(n.trim().to_owned())),
        _ => Some(None),
    };
    let (Some(mood), Some(note)) = (mood, note) else {
        return Err(v.into_error());
    };
    let access = cached_access(&state, &caller, &circle_id).await?;
    let mut tx = idem.begin(&state.store).await?;
    let checkin = insert(
        &state,
        &mut tx,
        access,
        Entry {
            kind: "mood",
            mood: Some(mood),
            note,
            wants_contact: req.wants_contact,
        },
    )
    .await?;
    idem.commit(tx, (StatusCode::CREATED, axum::Json(checkin)))
        .await
}

/// Members: the one-tap "I'm OK" in this circle.
///
/// Also sent straight from a reminder's notification action. Counts as
/// activity.
/// Members of the circle only (workers get 403 `members_only`). A check-in
/// of kind `ok` without a mood: it ends the member's silence like any
/// activity. For the action of a nudge, which may name several circles,
/// use `me_im_ok`. Send an `Idempotency-Key`: a retry never checks in twice.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/checkins/ok", tag = "checkins",
    operation_id = "circle_checkins_im_ok",
    extensions(("x-problem-codes" = json!([Code::MembersOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), IdempotencyKey),
    responses(
        (status = 201, description = "Checked in", body = Checkin),
    )
)]
pub async fn im_ok(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotent,
    Path(circle_id): Path<String>,
) -> ApiResult<Response> {
    let access = cached_access(&state, &caller, &circle_id).await?;
    let mut tx = idem.begin(&state.store).await?;
    let checkin = insert(&state, &mut tx, access, IM_OK).await?;
    idem.commit(tx, (StatusCode::CREATED, axum::Json(checkin)))
        .await
}

/// Check-ins made at once, one per circle.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1c0d1e27f3a8b9c0d1e2f3a4b5d",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
    "pseudonym": "Zonnebloem",
    "kind": "ok",
    "mood": null,
    "note": null,
    "wants_contact": false,
    "created_at": "2026-11-21T10:00:00Z"
}]}))]
pub struct CheckinList {
    /// One check-in per circle, in the order the member joined them.
    pub items: Vec<Checkin>,
}

/// Members: "I'm OK" in every circle you are in.
///
/// The action of a nudge, which may name several circles. Counts as
/// activity in each.
/// Members only (staff get 403 `members_only`). One transaction: the
/// check-in lands in every circle or in none. A member in no circle gets an
/// empty list. Send an `Idempotency-Key` (the app may send it from the
/// notification's action while offline): a retry never checks in twice.
#[utoipa::path(
    post, path = "/v1/me/im-ok", tag = "checkins",
    operation_id = "me_im_ok",
    extensions(("x-problem-codes" = json!([Code::MembersOnly, Code::NotFound]))),
    security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Checked in, one check-in per circle", body = CheckinList),
    )
)]
pub async fn im_ok_everywhere(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotent,
) -> ApiResult<Response> {
    if caller.role != crate::http::Role::Member {
        return Err(crate::error::ApiError::new(
            Code::MembersOnly,
            "Only members of a circle do this",
        ));
    }
    let circles: Vec<String> = sqlx::query_scalar(
        "SELECT m.circle_id FROM memberships m JOIN circles c ON c.id = m.circle_id
         WHERE m.account_id = $1 AND m.role = 'member' AND m.left_at IS NULL AND c.archived_at IS NULL
         ORDER BY m.joined_at, m.id",
    )
    .bind(&caller.account_id)
    .fetch_all(state.store.pool())
    .await?;
    let mut accesses = Vec::with_capacity(circles.len());
    for circle_id in &circles {
        accesses.push(cached_access(&state, &caller, circle_id).await?);
    }
    // One transaction: "I'm OK" lands in every circle or in none.
    let mut tx = idem.begin(&state.store).await?;
    let mut items = Vec::with_capacity(accesses.len());
    for access in accesses {
        items.push(insert(&state, &mut tx, access, IM_OK).await?);
    }
    idem.commit(tx, (StatusCode::CREATED, axum::Json(CheckinList { items })))
        .await
}

/// Check-ins in the circle, newest first, or those made since a sync token.
///
/// With `since` (a `sync_token`): every check-in after it, oldest first.
/// Every response carries the `sync_token` to pass next time. When the
/// circle shares check-ins with workers only, members see just their own.
///
/// Anyone who can see the circle: its members and workers, and the
/// organisation's coordinators. Paginated (`limit`, `cursor` →
/// `next_cursor`); a `since` ahead of the server answers 410
/// `resync_required`. Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/checkins", tag = "checkins",
    operation_id = "circle_checkins_list",
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), SyncQuery),
    responses(
        (status = 200, description = "A page of check-ins", body = CheckinPage),
    )
)]
pub async fn list_checkins(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(circle_id): Path<String>,
    Query(query): Query<SyncQuery>,
) -> ApiResult<axum::Json<CheckinPage>> {
    let page = query.parse(&circle_id)?;
    let access = cached_access(&state, &caller, &circle_id).await?;
    let only = own_only(&access).unwrap_or_default();
    let head = SyncList::checkins(&access.circle_id)
        .catch_up(&state.store)
        .await?;
    page.check_head(head)?;
    let k = page.keyset("c.created_at", "c.change_seq", "c.id", 3);
    // Removed check-ins only reach apps that hold a copy: a sync.
    let shown = if page.is_sync() {
        "1 = 1"
    } else {
        "c.removed_at IS NULL"
    };
    let mut rows: Vec<CheckinRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CHECKIN_SELECT} WHERE c.circle_id = $1 AND ($2 = '' OR c.membership_id = $2) AND {shown} AND {} ORDER BY {} LIMIT $5",
        k.condition, k.order
    )))
    .bind(&access.circle_id)
    .bind(&only)
    .bind(k.at_ms)
    .bind(k.id)
    .bind(page.limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let (next_cursor, sync_token) = page.finish(&mut rows, head, &access.circle_id, |r| {
        (r.created_at, r.change_seq, r.id.clone())
    });
    audit.shown(
        Kind::Checkins,
        Action::List,
        rows.iter().map(|r| Subject::membership(&r.membership_id)),
    );
    Ok(axum::Json(CheckinPage {
        items: rows.into_iter().map(CheckinRow::into_view).collect(),
        next_cursor,
        sync_token,
    }))
}

/// For a member in a workers-only circle: their own membership id, the only
/// one whose check-ins they may see. `None`: they see all.
fn own_only(access: &CircleAccess) -> Option<String> {
    match &access.relation {
        crate::circles::Relation::Member { membership_id }
            if access.checkin_visibility == "workers" =>
        {
            Some(membership_id.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moods_are_one_to_five() {
        assert!(Mood::parse(1).is_ok() && Mood::parse(5).is_ok());
        assert!(Mood::parse(0).is_err() && Mood::parse(6).is_err());
    }
}

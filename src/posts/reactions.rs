//! Reactions to posts, and each member's read position for unread counts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::{access, record_activity};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code};
use crate::http::{Caller, Json};
use crate::posts::{Post, ReactionKind, load_post, post_access};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::cache::Scope;

fn parse_kind(kind: &str) -> ApiResult<ReactionKind> {
    ReactionKind::parse(kind).map_err(|m| ApiError::field("kind", m))
}

/// React to a post (heart, hug, strong, thanks).
///
/// Counts as activity; reacting twice with the same kind changes nothing.
/// Members and workers of the post's circle (a coordinator outside it gets
/// 403 `not_in_circle`); a deleted or hidden post takes no reactions (409
/// `post_unavailable`). Ends the reacting member's silence; a new reaction
/// tells the post's author (`reaction`, by their preferences). Answers the
/// post with its reactions.
#[utoipa::path(
    put, path = "/v1/posts/{post_id}/reactions/{kind}", tag = "posts",
    operation_id = "post_reaction_add",
    extensions(("x-problem-codes" = json!([Code::NotInCircle, Code::PostUnavailable, Code::ValidationFailed]))),
    security(("bearer" = [])),
    params(
        ("post_id" = String, Path, description = "The post's id"),
        ("kind" = ReactionKind, Path, description = "The reaction"),
    ),
    responses(
        (status = 200, description = "The post with its reactions", body = Post),
    )
)]
pub async fn add_reaction(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((post_id, kind)): Path<(String, String)>,
) -> ApiResult<axum::Json<Post>> {
    let kind = parse_kind(&kind)?;
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let (row, access) = post_access(&mut tx, &caller, &post_id).await?;
    let membership_id = access.membership_id()?.to_owned();
    if row.deleted_at.is_some() || row.hidden_at.is_some() {
        return Err(ApiError::new(
            Code::PostUnavailable,
            "This post was deleted or hidden",
        ));
    }
    let added = add(&mut tx, &row.circle_id, &row.id, &membership_id, kind, now).await?;
    if added {
        crate::notifications::on_reaction(&mut tx, now, &row.id, &membership_id, kind.as_str())
            .await?;
    }
    record_activity(&mut tx, &membership_id, now).await?;
    let post = load_post(&mut tx, &caller, &row.id).await?;
    tx.commit().await?;
    // The answer shows the post.
    audit.shown(
        Kind::Feed,
        Action::Read,
        [Subject::membership(&post.author.membership_id)],
    );
    Ok(axum::Json(post))
}

/// Take back your reaction.
///
/// Members and workers of the post's circle (a coordinator outside it gets
/// 403 `not_in_circle`). Taking back a reaction you did not give changes
/// nothing. Not activity. Answers the post with its reactions.
#[utoipa::path(
    delete, path = "/v1/posts/{post_id}/reactions/{kind}", tag = "posts",
    operation_id = "post_reaction_remove",
    extensions(("x-problem-codes" = json!([Code::NotInCircle, Code::ValidationFailed]))),
    security(("bearer" = [])),
    params(
        ("post_id" = String, Path, description = "The post's id"),
        ("kind" = ReactionKind, Path, description = "The reaction"),
    ),
    responses(
        (status = 200, description = "The post with its reactions", body = Post),
    )
)]
pub async fn remove_reaction(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((post_id, kind)): Path<(String, String)>,
) -> ApiResult<axum::Json<Post>> {
    let kind = parse_kind(&kind)?;
    let mut tx = state.store.begin().await?;
    let (row, access) = post_access(&mut tx, &caller, &post_id).await?;
    let membership_id = access.membership_id()?.to_owned();
    remove(&mut tx, &row.circle_id, &row.id, &membership_id, kind).await?;
    let post = load_post(&mut tx, &caller, &row.id).await?;
    tx.commit().await?;
    // The answer shows the post.
    audit.shown(
        Kind::Feed,
        Action::Read,
        [Subject::membership(&post.author.membership_id)],
    );
    Ok(axum::Json(post))
}

/// How far you have read.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"post_id": "0194f1b0c1d27e3f8a9b0c1d2e3f4a5b"}))]
pub struct ReadPositionRequest {
    /// The newest post you have seen; your position never moves backwards.
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub post_id: String,
}

/// Your read position in a circle.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"last_read_at": "2026-11-20T18:12:00Z", "unread_count": 0}))]
pub struct ReadPosition {
    /// The time of the newest post you have read.
    #[schema(value_type = String, format = DateTime)]
    pub last_read_at: jiff::Timestamp,
    /// Posts by others after your read position.
    #[schema(example = 0)]
    pub unread_count: i64,
}

/// Mark the circle read up to a post.
///
/// Members and workers of the circle (a coordinator outside it gets 403
/// `not_in_circle`); the post must be in this circle (422 on `post_id`).
/// The position never moves backwards: an older post leaves it where it
/// is. Sets the circle's `unread_count`; not activity.
#[utoipa::path(
    put, path = "/v1/circles/{circle_id}/read-position", tag = "posts",
    operation_id = "circle_read_position_set",
    extensions(("x-problem-codes" = json!([Code::NotInCircle]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    request_body = ReadPositionRequest,
    responses(
        (status = 200, description = "Your read position and unread count", body = ReadPosition),
    )
)]
pub async fn set_read_position(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<ReadPositionRequest>,
) -> ApiResult<(StatusCode, axum::Json<ReadPosition>)> {
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    let membership_id = access.membership_id()?.to_owned();
    let created_at: Option<i64> =
        sqlx::query_scalar("SELECT created_at FROM posts WHERE id = $1 AND circle_id = $2")
            .bind(&req.post_id)
            .bind(&access.circle_id)
            .fetch_optional(&mut *tx)
            .await?;
    let created_at =
        created_at.ok_or_else(|| ApiError::field("post_id", "is not a post in this circle"))?;
    sqlx::query("UPDATE memberships SET last_read_at = $1 WHERE id = $2 AND last_read_at < $1")
        .bind(created_at)
        .bind(&membership_id)
        .execute(&mut *tx)
        .await?;
    let (last_read_at, unread_count): (i64, i64) = sqlx::query_as(
        "SELECT m.last_read_at,
                (SELECT COUNT(*) FROM posts p
                 WHERE p.circle_id = m.circle_id AND p.created_at > m.last_read_at
                   AND p.deleted_at IS NULL AND p.author_membership_id <> m.id) AS unread_count
         FROM memberships m WHERE m.id = $1",
    )
    .bind(&membership_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::OK,
        axum::Json(ReadPosition {
            last_read_at: from_ms(last_read_at),
            unread_count,
        }),
    ))
}

/// Adds a reaction (once per member and kind); returns whether it is new.
/// The circle's cached feed shows reactions, so it is marked.
async fn add(
    tx: &mut Tx,
    circle_id: &str,
    post_id: &str,
    membership_id: &str,
    kind: ReactionKind,
    now: i64,
) -> Result<bool, sqlx::Error> {
    tx.touch(Scope::Circle(circle_id.to_owned()));
    let added = sqlx::query(
        "INSERT INTO reactions (post_id, membership_id, kind, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (post_id, membership_id, kind) DO NOTHING",
    )
    .bind(post_id)
    .bind(membership_id)
    .bind(kind.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(added == 1)
}

/// Takes a reaction back; the circle's cached feed is marked.
async fn remove(
    tx: &mut Tx,
    circle_id: &str,
    post_id: &str,
    membership_id: &str,
    kind: ReactionKind,
) -> Result<(), sqlx::Error> {
    tx.touch(Scope::Circle(circle_id.to_owned()));
    sqlx::query("DELETE FROM reactions WHERE post_id = $1 AND membership_id = $2 AND kind = $3")
        .bind(post_id)
        .bind(membership_id)
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

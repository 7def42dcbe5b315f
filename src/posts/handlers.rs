//! Writing and reading posts.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::{access, cached_access, record_activity};
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::cursor::parse_limit;
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json, Query};
use crate::posts::{
    FeedMark, FirstPage, POST_SELECT, POST_SELECT_WITH_SYNC, Post, PostPage, PostRow,
    as_one_json_row, load_post, next_change, post_access, reactions_of, render,
};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::Backend;
use crate::store::cache::{Loaded, Scope, Shelf};

/// The longest post, in characters.
pub const MAX_BODY_CHARS: usize = 4000;

/// A post's body as `crate::openapi::PostBody` states it: the limit counts
/// characters as sent; the body is stored trimmed.
fn validate_body(body: &str) -> Result<String, String> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(format!("must be at most {MAX_BODY_CHARS} characters"));
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// `limit`, `cursor` and `since` for a circle's feed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// How many posts to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,200}$")]
    pub cursor: Option<String>,
    /// Incremental sync: the `sync_token` of an earlier response. Returns
    /// every post created or changed after it, oldest change first,
    /// including deleted and hidden ones as tombstones.
    #[param(pattern = "^[A-Za-z0-9_-]{1,200}$")]
    pub since: Option<String>,
}

struct Feed {
    limit: i64,
    cursor: Option<FeedMark>,
    since: Option<FeedMark>,
}

impl FeedQuery {
    fn parse(&self, circle_id: &str) -> ApiResult<Feed> {
        let mut v = Validator::default();
        let limit = v.check("limit", parse_limit(self.limit));
        let mut mark = |field: &str, value: &Option<String>, what: &str| match value {
            None => Some(None),
            Some(s) => v.check(
                field,
                FeedMark::decode(s, circle_id)
                    .map(Some)
                    .ok_or_else(|| format!("is not a {what} this server returned for this circle")),
            ),
        };
        let cursor = mark("cursor", &self.cursor, "next_cursor");
        let since = mark("since", &self.since, "sync_token");
        match (limit, cursor, since) {
            (Some(limit), Some(cursor), Some(since)) => Ok(Feed {
                limit,
                cursor,
                since,
            }),
            _ => Err(v.into_error()),
        }
    }
}

/// The circle's posts. Without `since`: newest first, without deleted posts.
///
/// Anyone who can see the circle: its members and workers, and the
/// organisation's coordinators. Members see no body of a hidden post;
/// staff see it with the reason. Reading changes nothing (the read position
/// moves only with `circle_read_position_set`). Paginated (`limit`,
/// `cursor` → `next_cursor`).
///
/// With `since` (a `sync_token`): everything created or changed after it,
/// oldest change first, deleted and hidden posts included as tombstones, so
/// an app can bring its copy up to date. Every response carries the
/// `sync_token` to pass as `since` next time; together they miss nothing,
/// even while posts arrive. A token ahead of the server (after a restore
/// from a backup) answers 410 `resync_required`: drop the copy and list
/// again without `since`.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/posts", tag = "posts",
    operation_id = "circle_posts_list",
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), FeedQuery),
    responses(
        (status = 200, description = "A page of posts", body = PostPage),
    )
)]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(circle_id): Path<String>,
    Query(query): Query<FeedQuery>,
) -> ApiResult<Response> {
    let feed = query.parse(&circle_id)?;
    let access = cached_access(&state, &caller, &circle_id).await?;
    let circle = access.circle_id.as_str();
    let viewer = access.membership_id().ok();
    let staff = access.is_staff();
    let fetch = usize::try_from(feed.limit).unwrap_or(100);
    // A listing, newest first; its pages share the first page's token.
    let listing_marks = |rows: &[PostRow], sync: i64| {
        // One row past the page says there is more; the page's last row is
        // where the next one starts.
        let last_shown = fetch.checked_sub(1).and_then(|i| rows.get(i));
        let next_cursor = last_shown.filter(|_| rows.len() > fetch).map(|r| {
            FeedMark {
                position: r.created_seq,
                sync,
            }
            .encode(circle)
        });
        (next_cursor, FeedMark::at(sync).encode(circle))
    };
    match (feed.since, feed.cursor) {
        // The first page, the one every app opens with: from the cache,
        // its posts already serialized.
        (None, None) => {
            let page = first_page(&state, circle, feed.limit).await?;
            shown_authors(&audit, page.rows.iter().take(fetch));
            let (next_cursor, sync_token) = listing_marks(&page.rows, page.sync);
            let out = PostPageJson {
                items: page.items(fetch, viewer, staff)?,
                next_cursor,
                sync_token,
            };
            let body = serde_json::to_vec(&out).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
        }
        // A sync: changes after the token (or after the previous page),
        // oldest change first.
        (Some(since), cursor) => {
            let mut conn = state.store.pool().acquire().await?;
            let after = cursor.map_or(since.position, |c| c.position);
            let mut rows: Vec<PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{POST_SELECT} WHERE p.circle_id = $1 AND p.change_seq > $2
                 ORDER BY p.change_seq LIMIT $3"
            )))
            .bind(circle)
            .bind(after)
            .bind(feed.limit + 1)
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                // Nothing after the token: it may be ahead of the circle (a
                // database restored from an older backup). The counter only
                // grows, so reading it after the posts cannot misjudge.
                let head: i64 = sqlx::query_scalar("SELECT change_seq FROM circles WHERE id = $1")
                    .bind(circle)
                    .fetch_one(&mut *conn)
                    .await?;
                if after > head {
                    return Err(crate::http::sync::resync_required());
                }
            }
            let more = rows.len() > fetch;
            rows.truncate(fetch);
            shown_authors(&audit, &rows);
            let reactions = reactions_of(&mut conn, &rows).await?;
            let last = rows.last().map_or(after, |r| r.change_seq);
            Ok(axum::Json(PostPage {
                next_cursor: more.then(|| FeedMark::at(last).encode(circle)),
                sync_token: FeedMark::at(last).encode(circle),
                items: render(&rows, &reactions, viewer, staff)?,
            })
            .into_response())
        }
        // A later page of a listing: its cursor carries the sync position.
        (None, Some(cursor)) => {
            let mut conn = state.store.pool().acquire().await?;
            let backend = state.store.backend();
            let mut rows =
                listing_page(&mut conn, backend, circle, cursor.position, feed.limit + 1).await?;
            let (next_cursor, sync_token) = listing_marks(&rows, cursor.sync);
            rows.truncate(fetch);
            shown_authors(&audit, &rows);
            let reactions = reactions_of(&mut conn, &rows).await?;
            Ok(axum::Json(PostPage {
                items: render(&rows, &reactions, viewer, staff)?,
                next_cursor,
                sync_token,
            })
            .into_response())
        }
    }
}

/// The feed shows each post's author's posts (for staff, hidden ones in
/// full): one access per author, counting their posts on the page.
fn shown_authors<'a>(audit: &Audit, rows: impl IntoIterator<Item = &'a PostRow>) {
    audit.shown(
        Kind::Feed,
        Action::List,
        rows.into_iter()
            .map(|r| Subject::membership(&r.author_membership_id)),
    );
}

/// [`PostPage`] with its posts already serialized.
#[derive(Serialize)]
struct PostPageJson<'a> {
    items: Vec<Cow<'a, RawValue>>,
    next_cursor: Option<String>,
    sync_token: String,
}

/// A circle's first feed page of `limit` posts, cached until a post,
/// reaction or membership of the circle changes.
async fn first_page(state: &AppState, circle_id: &str, limit: i64) -> ApiResult<Arc<FirstPage>> {
    let key = (circle_id.to_owned(), limit);
    state
        .caches
        .shelf::<FirstPageCache>()
        .0
        .get_or_load(state.store.generations(), key, async || {
            let backend = state.store.backend();
            let mut conn = state.store.pool().acquire().await?;
            // The first page reads the sync position in the same statement, so the
            // two agree.
            let rows = listing_page(&mut conn, backend, circle_id, i64::MAX, limit + 1).await?;
            let (rows, sync, reactions) = match rows.first() {
                Some(first) => {
                    let sync = first.sync_seq;
                    let reactions = reactions_of(&mut conn, &rows).await?;
                    (rows, sync, reactions)
                }
                // No row carries the position: read both in one snapshot.
                None => {
                    drop(conn);
                    let mut tx = state.store.begin_snapshot().await?;
                    let sync: i64 =
                        sqlx::query_scalar("SELECT change_seq FROM circles WHERE id = $1")
                            .bind(circle_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    let rows =
                        listing_page(&mut tx, backend, circle_id, i64::MAX, limit + 1).await?;
                    let reactions = reactions_of(&mut tx, &rows).await?;
                    tx.commit().await?;
                    (rows, sync, reactions)
                }
            };
            let page = Arc::new(FirstPage::new(rows, reactions, sync)?);
            Ok::<_, ApiError>(Loaded {
                scopes: vec![Scope::Circle(circle_id.to_owned())],
                cost: page.bytes(),
                value: page,
            })
        })
        .await
}

/// (circle, page size) → the circle's newest posts, as the feed's first
/// page (at most 64 MiB: posts are up to 4,000 characters and a page up to
/// 100 posts, so a count bound could hold gigabytes).
pub struct FirstPageCache(pub Shelf<(String, i64), Arc<FirstPage>>);

impl Default for FirstPageCache {
    fn default() -> Self {
        // A backstop only: writes invalidate entries as they commit.
        Self(Shelf::new(64 << 20, std::time::Duration::from_secs(60)))
    }
}

/// Posts of a circle created before `before`, newest first, not deleted,
/// each with the circle's change number.
async fn listing_page(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    circle_id: &str,
    before: i64,
    limit: i64,
) -> Result<Vec<PostRow>, sqlx::Error> {
    // Built once per backend: this is the feed's hot path.
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
        let query = format!(
            "{POST_SELECT_WITH_SYNC} WHERE p.circle_id = $1 AND p.deleted_at IS NULL
             AND p.created_seq < $2 ORDER BY p.created_seq DESC LIMIT $3"
        );
        [Backend::Sqlite, Backend::Postgres].map(|b| as_one_json_row(b, &query))
    });
    let sql = match backend {
        Backend::Sqlite => &SQL[0],
        Backend::Postgres => &SQL[1],
    };
    let page: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(circle_id)
        .bind(before)
        .bind(limit)
        .fetch_one(conn)
        .await?;
    let mut rows: Vec<PostRow> =
        serde_json::from_str(&page).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    // Aggregates keep the subquery's order on both databases; be sure.
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_seq));
    Ok(rows)
}

/// A new post or reply.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"body": "Vandaag voor het eerst weer een wandeling gemaakt.", "reply_to_id": null}))]
pub struct CreatePost {
    /// The text; stored trimmed.
    #[schema(value_type = crate::openapi::PostBody)]
    pub body: String,
    /// Reply to this post (in the same circle).
    pub reply_to_id: Option<String>,
}

/// Write a post or a reply in the circle. Counts as activity.
///
/// Members and workers of the circle (a coordinator outside it gets 403
/// `not_in_circle`). A reply names a post of the same circle that is not
/// deleted (422 on `reply_to_id` otherwise). Ends the writer's silence (an
/// open alert about them resolves with an "all clear"), moves their read
/// position past their own post, tells the replied-to author (`reply`) and
/// the others by their preferences (`new_post` or a `post_digest`), and
/// takes the circle's next change number, so the post comes with the next
/// sync. Send an `Idempotency-Key`: a retry never posts twice.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/posts", tag = "posts",
    operation_id = "circle_posts_create",
    extensions(("x-problem-codes" = json!([Code::NotInCircle]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), IdempotencyKey),
    request_body = CreatePost,
    responses(
        (status = 201, description = "The new post", body = Post),
    )
)]
pub async fn create_post(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotent,
    Path(circle_id): Path<String>,
    Json(req): Json<CreatePost>,
) -> ApiResult<Response> {
    let mut v = Validator::default();
    let body = v.check("body", validate_body(&req.body));
    let Some(body) = body else {
        return Err(v.into_error());
    };
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    let membership_id = access.membership_id()?.to_owned();
    if let Some(reply_to) = &req.reply_to_id {
        let parent: Option<String> = sqlx::query_scalar(
            "SELECT id FROM posts WHERE id = $1 AND circle_id = $2 AND deleted_at IS NULL",
        )
        .bind(reply_to)
        .bind(&access.circle_id)
        .fetch_optional(&mut *tx)
        .await?;
        if parent.is_none() {
            return Err(ApiError::field(
                "reply_to_id",
                "is not a post in this circle",
            ));
        }
    }
    let id = new_id();
    let seq = next_change(&mut tx, &access.circle_id).await?;
    sqlx::query(
        "INSERT INTO posts (id, circle_id, author_membership_id, reply_to_id, body, created_at, updated_at, created_seq, change_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7)",
    )
    .bind(&id)
    .bind(&access.circle_id)
    .bind(&membership_id)
    .bind(req.reply_to_id.as_deref())
    .bind(&body)
    .bind(now)
    .bind(seq)
    .execute(&mut *tx)
    .await?;
    // Your own post is read by you.
    sqlx::query("UPDATE memberships SET last_read_at = $1 WHERE id = $2 AND last_read_at < $1")
        .bind(now)
        .bind(&membership_id)
        .execute(&mut *tx)
        .await?;
    record_activity(&mut tx, &membership_id, now).await?;
    crate::notifications::on_post_created(&mut tx, now, &id, req.reply_to_id.as_deref()).await?;
    let post = load_post(&mut tx, &caller, &id).await?;
    idem.commit(tx, (StatusCode::CREATED, axum::Json(post)))
        .await
}

/// One post.
///
/// Anyone who can see its circle; for anyone else it does not exist (404).
/// Deleted posts come as tombstones; members see no body of a hidden post.
/// Changes nothing.
#[utoipa::path(
    get, path = "/v1/posts/{post_id}", tag = "posts",
    operation_id = "post_get",
    security(("bearer" = [])),
    params(("post_id" = String, Path, description = "The post's id")),
    responses(
        (status = 200, description = "The post", body = Post),
    )
)]
pub async fn get_post(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(post_id): Path<String>,
) -> ApiResult<axum::Json<Post>> {
    let mut conn = state.store.pool().acquire().await?;
    let post = load_post(&mut conn, &caller, &post_id).await?;
    audit.shown(
        Kind::Feed,
        Action::Read,
        [Subject::membership(&post.author.membership_id)],
    );
    Ok(axum::Json(post))
}

/// A post's new text.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"body": "Vandaag voor het eerst weer een lange wandeling gemaakt."}))]
pub struct EditPost {
    /// The new text; stored trimmed.
    #[schema(value_type = crate::openapi::PostBody)]
    pub body: String,
}

/// The author: change a post's text.
///
/// Only its author (403 `not_author`); a deleted post cannot change (409
/// `post_deleted`). Sets `edited_at` and takes the circle's next change
/// number, so other apps get the new text with their next sync. Editing is
/// not activity and tells no one.
#[utoipa::path(
    patch, path = "/v1/posts/{post_id}", tag = "posts",
    operation_id = "post_update",
    extensions(("x-problem-codes" = json!([Code::PostDeleted, Code::NotAuthor]))),
    security(("bearer" = [])),
    params(("post_id" = String, Path, description = "The post's id")),
    request_body = EditPost,
    responses(
        (status = 200, description = "The edited post", body = Post),
    )
)]
pub async fn edit_post(
    State(state): State<AppState>,
    caller: Caller,
    Path(post_id): Path<String>,
    Json(req): Json<EditPost>,
) -> ApiResult<axum::Json<Post>> {
    let body = validate_body(&req.body).map_err(|m| ApiError::field("body", m))?;
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let (row, access) = post_access(&mut tx, &caller, &post_id).await?;
    require_author(&row, access.membership_id().ok())?;
    if row.deleted_at.is_some() {
        return Err(ApiError::new(Code::PostDeleted, "This post was deleted"));
    }
    let seq = next_change(&mut tx, &row.circle_id).await?;
    sqlx::query(
        "UPDATE posts SET body = $1, edited_at = $2, updated_at = $2, change_seq = $3 WHERE id = $4",
    )
    .bind(&body)
    .bind(now)
    .bind(seq)
    .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    let post = load_post(&mut tx, &caller, &row.id).await?;
    tx.commit().await?;
    Ok(axum::Json(post))
}

/// The author: delete a post.
///
/// Its text is erased; a tombstone remains so replies keep their place.
/// Only its author (403 `not_author`, also for staff: they hide posts
/// instead). Erases the text and the post's reactions, and takes the
/// circle's next change number: other apps get the tombstone with their
/// next sync. Deleting a deleted post again answers 204 and changes
/// nothing.
#[utoipa::path(
    delete, path = "/v1/posts/{post_id}", tag = "posts",
    operation_id = "post_delete",
    extensions(("x-problem-codes" = json!([Code::NotAuthor]))),
    security(("bearer" = [])),
    params(("post_id" = String, Path, description = "The post's id")),
    responses(
        (status = 204, description = "Deleted"),
    )
)]
pub async fn delete_post(
    State(state): State<AppState>,
    caller: Caller,
    Path(post_id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let (row, access) = post_access(&mut tx, &caller, &post_id).await?;
    require_author(&row, access.membership_id().ok())?;
    if row.deleted_at.is_none() {
        let seq = next_change(&mut tx, &row.circle_id).await?;
        sqlx::query(
            "UPDATE posts SET body = '', deleted_at = $1, updated_at = $1, change_seq = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(seq)
        .bind(&row.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM reactions WHERE post_id = $1")
            .bind(&row.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_author(row: &PostRow, membership_id: Option<&str>) -> ApiResult<()> {
    if membership_id == Some(row.author_membership_id.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::NotAuthor,
            "Only the author may change this post",
        ))
    }
}

/// Why a post is hidden.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "Persoonlijke gegevens van een ander lid"}))]
pub struct HidePost {
    /// Shown to the circle's staff, never to members.
    #[schema(value_type = crate::openapi::HideReason)]
    pub reason: String,
}

/// Staff: hide a post from members, with a reason.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`); a deleted post cannot be hidden (409 `post_deleted`).
/// Members then see the post without its body; staff still see body and
/// reason. Takes the circle's next change number, so apps get the change
/// with their next sync. Hiding a hidden post again replaces the reason.
#[utoipa::path(
    post, path = "/v1/posts/{post_id}/hide", tag = "posts",
    operation_id = "post_hide",
    extensions(("x-problem-codes" = json!([Code::StaffOnly, Code::PostDeleted]))),
    security(("bearer" = [])),
    params(("post_id" = String, Path, description = "The post's id")),
    request_body = HidePost,
    responses(
        (status = 200, description = "The hidden post", body = Post),
    )
)]
pub async fn hide_post(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(post_id): Path<String>,
    Json(req): Json<HidePost>,
) -> ApiResult<axum::Json<Post>> {
    // At most 500 characters as sent (`crate::openapi::HideReason`), then trimmed.
    let len = req.reason.chars().count();
    let reason = req.reason.trim().to_owned();
    if len > 500 || reason.is_empty() {
        return Err(ApiError::field("reason", "must be 1 to 500 characters"));
    }
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let (row, access) = post_access(&mut tx, &caller, &post_id).await?;
    access.require_staff()?;
    if row.deleted_at.is_some() {
        return Err(ApiError::new(Code::PostDeleted, "This post was deleted"));
    }
    let seq = next_change(&mut tx, &row.circle_id).await?;
    sqlx::query("UPDATE posts SET hidden_at = $1, hidden_reason = $2, hidden_by = $3, updated_at = $1, change_seq = $5 WHERE id = $4")
        .bind(now)
        .bind(&reason)
        .bind(access.membership_id().ok())
        .bind(&row.id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    tracing::info!(post_id = %row.id, "post hidden by staff");
    let post = load_post(&mut tx, &caller, &row.id).await?;
    let author = Subject::membership(&row.author_membership_id);
    audit
        .changed(&mut tx, Kind::Feed, Action::Change, author)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(post))
}

/// Staff: show a hidden post again.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`). Members see the body again; the change comes with the
/// next sync. Unhiding a post that is not hidden changes nothing.
#[utoipa::path(
    delete, path = "/v1/posts/{post_id}/hide", tag = "posts",
    operation_id = "post_unhide",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("post_id" = String, Path, description = "The post's id")),
    responses(
        (status = 200, description = "The post, visible again", body = Post),
    )
)]
pub async fn unhide_post(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(post_id): Path<String>,
) -> ApiResult<axum::Json<Post>> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let (row, access) = post_access(&mut tx, &caller, &post_id).await?;
    access.require_staff()?;
    if row.hidden_at.is_some() {
        let seq = next_change(&mut tx, &row.circle_id).await?;
        sqlx::query(
            "UPDATE posts SET hidden_at = NULL, hidden_reason = NULL, hidden_by = NULL, updated_at = $1, change_seq = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(seq)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    }
    let post = load_post(&mut tx, &caller, &row.id).await?;
    let author = Subject::membership(&row.author_membership_id);
    audit
        .changed(&mut tx, Kind::Feed, Action::Change, author)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(post))
}

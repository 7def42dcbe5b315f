//! The inbox API, preferences, and a worker's personal message.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::access;
use crate::clock::{from_ms, opt_from_ms};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::sync::{SyncList, SyncQuery};
use crate::http::{Caller, Json, Query};
use crate::notifications::produce::{Outgoing, notify, preferences};
use crate::notifications::texts::TextParams;
use crate::push::payload::NotificationKind;
use crate::state::AppState;

/// An inbox item.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1e0f1a27b3c8d9e0f1a2b3c4d5e",
    "kind": "post_digest",
    "title": "3 nieuwe berichten in Samen sterk",
    "body": "Kijk wat er gedeeld is.",
    "deep_link": "kring://circles/0194f1a2b3c47d5e8f901a2b3c4d5e6f/posts/0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "post_id": "0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
    "membership_id": null,
    "alert_id": null,
    "item_count": 3,
    "read": false,
    "read_at": null,
    "created_at": "2026-11-22T09:00:00Z",
    "updated_at": "2026-11-22T09:40:00Z"
}))]
pub struct Notification {
    /// The item's id; a push of it carries the same `notification_id`.
    pub id: String,
    /// What it is about.
    pub kind: NotificationKind,
    /// A short title in your language.
    #[schema(example = "3 nieuwe berichten in Samen sterk")]
    pub title: String,
    /// The text in your language.
    #[schema(example = "Kijk wat er gedeeld is.")]
    pub body: String,
    /// Where the app should open, e.g. `kring://circles/{id}/posts/{id}`.
    pub deep_link: String,
    /// The circle it is about, if any.
    pub circle_id: Option<String>,
    /// The post it is about, if any.
    pub post_id: Option<String>,
    /// The membership it is about, if any (an alert's member).
    pub membership_id: Option<String>,
    /// The alert it is about, if any.
    pub alert_id: Option<String>,
    /// For digests: how many posts it stands for.
    pub item_count: i64,
    /// Whether you have read it.
    pub read: bool,
    /// When you read it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<jiff::Timestamp>,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Changes when a digest grows or the item is read.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
}

/// A page of your inbox, with the token to sync from.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "0194f1e0f1a27b3c8d9e0f1a2b3c4d5e",
        "kind": "reply",
        "title": "Maan reageerde op je bericht",
        "body": "In Samen sterk",
        "deep_link": "kring://circles/0194f1a2b3c47d5e8f901a2b3c4d5e6f/posts/0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "post_id": "0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
        "membership_id": null,
        "alert_id": null,
        "item_count": 1,
        "read": false,
        "read_at": null,
        "created_at": "2026-11-22T09:00:00Z",
        "updated_at": "2026-11-22T09:00:00Z"
    }],
    "next_cursor": null,
    "sync_token": "MTIuMDE5NGYxYTJiM2M0N2Q1ZThmOTAxYTJiM2M0ZDVlNmY"
}))]
pub struct NotificationPage {
    /// Newest first; with `since`, oldest change first.
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
    /// Keep the latest one you received and pass it as `since` to fetch
    /// every item created or changed after this page. Every page of one
    /// listing carries the same token as its first page.
    #[schema(example = "MTIuMDE5NGYxYTJiM2M0N2Q1ZThmOTAxYTJiM2M0ZDVlNmY")]
    pub sync_token: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    title: String,
    body: String,
    deep_link: String,
    circle_id: Option<String>,
    post_id: Option<String>,
    membership_id: Option<String>,
    alert_id: Option<String>,
    item_count: i64,
    read_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    change_seq: i64,
}

impl Row {
    fn into_view(self) -> ApiResult<Notification> {
        Ok(Notification {
            kind: NotificationKind::parse(&self.kind).map_err(ApiError::Internal)?,
            id: self.id,
            title: self.title,
            body: self.body,
            deep_link: self.deep_link,
            circle_id: self.circle_id,
            post_id: self.post_id,
            membership_id: self.membership_id,
            alert_id: self.alert_id,
            item_count: self.item_count,
            read: self.read_at.is_some(),
            read_at: opt_from_ms(self.read_at),
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
        })
    }
}

const SELECT: &str =
    "SELECT id, kind, title, body, deep_link, circle_id, post_id, membership_id, alert_id,
        item_count, read_at, created_at, updated_at, change_seq FROM notifications";

/// Your inbox, newest first, or what changed since a sync token.
///
/// Any signed-in person; only their own items. With `since` (a
/// `sync_token`): every item created or changed after it (a digest that
/// grew, an item read), oldest change first; an item may come again,
/// replace it by `id`. Every response carries the `sync_token` to pass next
/// time; a token ahead of the server answers 410 `resync_required`. The
/// inbox is the truth (pushes can be lost): read it when the app opens.
/// Paginated (`limit`, `cursor` → `next_cursor`). Changes nothing.
#[utoipa::path(
    get, path = "/v1/notifications", tag = "notifications",
    operation_id = "notifications_list",
    security(("bearer" = [])),
    params(SyncQuery),
    responses(
        (status = 200, description = "A page of inbox items", body = NotificationPage),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SyncQuery>,
) -> ApiResult<axum::Json<NotificationPage>> {
    let account = caller.account_id.as_str();
    let page = query.parse(account)?;
    let head = SyncList::inbox(account).catch_up(&state.store).await?;
    page.check_head(head)?;
    let k = page.keyset("created_at", "change_seq", "id", 2);
    let mut rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE account_id = $1 AND {} ORDER BY {} LIMIT $4",
        k.condition, k.order
    )))
    .bind(&caller.account_id)
    .bind(k.at_ms)
    .bind(k.id)
    .bind(page.limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let (next_cursor, sync_token) = page.finish(&mut rows, head, account, |r| {
        (r.created_at, r.change_seq, r.id.clone())
    });
    Ok(axum::Json(NotificationPage {
        items: rows
            .into_iter()
            .map(Row::into_view)
            .collect::<ApiResult<_>>()?,
        next_cursor,
        sync_token,
    }))
}

/// How many inbox items are unread.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"unread_count": 2}))]
pub struct UnreadCount {
    /// Unread inbox items: the app icon's badge.
    #[schema(example = 2)]
    pub unread_count: i64,
}

async fn count_unread(state: &AppState, account_id: &str) -> ApiResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM notifications WHERE account_id = $1 AND read_at IS NULL",
    )
    .bind(account_id)
    .fetch_one(state.store.pool())
    .await?)
}

/// How many inbox items you have not read.
///
/// Any signed-in person. The same number as a push's `badge`. Changes
/// nothing.
#[utoipa::path(
    get, path = "/v1/notifications/unread-count", tag = "notifications",
    operation_id = "notifications_unread_count_get",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your unread count", body = UnreadCount),
    )
)]
pub async fn unread_count(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<UnreadCount>> {
    Ok(axum::Json(UnreadCount {
        unread_count: count_unread(&state, &caller.account_id).await?,
    }))
}

/// Mark one inbox item read.
///
/// Only its owner (404 otherwise). Marking it read again changes nothing.
/// The change comes with the next inbox sync on your other devices.
/// Answers the item.
#[utoipa::path(
    post, path = "/v1/notifications/{notification_id}/read", tag = "notifications",
    operation_id = "notification_read",
    security(("bearer" = [])),
    params(("notification_id" = String, Path, description = "The inbox item's id")),
    responses(
        (status = 200, description = "The item, read", body = Notification),
    )
)]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(notification_id): Path<String>,
) -> ApiResult<axum::Json<Notification>> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    sqlx::query("UPDATE notifications SET read_at = $1, updated_at = $1, change_seq = 0 WHERE id = $2 AND account_id = $3 AND read_at IS NULL")
        .bind(now)
        .bind(&notification_id)
        .bind(&caller.account_id)
        .execute(&mut *tx)
        .await?;
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE id = $1 AND account_id = $2"
    )))
    .bind(&notification_id)
    .bind(&caller.account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or(ApiError::NotFound("notification"))?;
    tx.commit().await?;
    Ok(axum::Json(row.into_view()?))
}

/// Mark your whole inbox read.
///
/// Any signed-in person, for their own inbox. Every unread item becomes
/// read; the changes come with the next inbox sync. Answers the unread
/// count, now 0.
#[utoipa::path(
    post, path = "/v1/notifications/read-all", tag = "notifications",
    operation_id = "notifications_read_all",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your unread count, now 0", body = UnreadCount),
    )
)]
pub async fn mark_all_read(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<UnreadCount>> {
    let now = state.now_ms();
    sqlx::query("UPDATE notifications SET read_at = $1, updated_at = $1, change_seq = 0 WHERE account_id = $2 AND read_at IS NULL")
        .bind(now)
        .bind(&caller.account_id)
        .execute(state.store.pool())
        .await?;
    Ok(axum::Json(UnreadCount {
        unread_count: count_unread(&state, &caller.account_id).await?,
    }))
}

/// How new posts in your circles reach you: `immediate` (a push for every
/// post), `digest` (one inbox item per circle that counts the new posts,
/// pushed an hour after the first) or `off` (no inbox item, no push).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewPosts {
    /// A push for every post.
    Immediate,
    /// One inbox item per circle that counts the new posts, pushed an hour
    /// after the first.
    Digest,
    /// Nothing: no inbox item and no push.
    Off,
}

/// What you want to be told about, in every circle.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"new_posts": "digest", "replies": true, "reactions": true}))]
pub struct NotificationPreferences {
    /// New posts in your circles: `immediate`, `digest` (one summary after an
    /// hour) or `off`.
    #[schema(example = "digest")]
    #[schema(value_type = crate::notifications::inbox::NewPosts)]
    pub new_posts: String,
    /// Replies to your posts.
    pub replies: bool,
    /// Reactions to your posts.
    pub reactions: bool,
}

/// Your notification preferences.
///
/// Any signed-in person. They hold for every circle you are in. Reminders
/// (nudges), alerts and personal messages always come; these choose only
/// about posts, replies and reactions. Changes nothing.
#[utoipa::path(
    get, path = "/v1/me/notification-preferences", tag = "notifications",
    operation_id = "me_notification_preferences_get",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your preferences", body = NotificationPreferences),
    )
)]
pub async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<NotificationPreferences>> {
    let mut conn = state.store.pool().acquire().await?;
    let p = preferences(&mut conn, &caller.account_id).await?;
    Ok(axum::Json(NotificationPreferences {
        new_posts: p.new_posts,
        replies: p.replies,
        reactions: p.reactions,
    }))
}

/// Changes to your notification preferences.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"new_posts": "immediate"}))]
pub struct UpdatePreferences {
    /// `immediate`, `digest` or `off`.
    #[schema(value_type = Option<crate::notifications::inbox::NewPosts>)]
    pub new_posts: Option<String>,
    /// Be told about replies to your posts.
    pub replies: Option<bool>,
    /// Be told about reactions to your posts.
    pub reactions: Option<bool>,
}

/// Change what you want to be told about; absent fields stay as they are.
///
/// Any signed-in person. Holds from the next post, reply or reaction on;
/// items already in your inbox stay. Answers the preferences as they are
/// now.
#[utoipa::path(
    patch, path = "/v1/me/notification-preferences", tag = "notifications",
    operation_id = "me_notification_preferences_update",
    security(("bearer" = [])),
    request_body = UpdatePreferences,
    responses(
        (status = 200, description = "Your preferences", body = NotificationPreferences),
    )
)]
pub async fn update_preferences(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<UpdatePreferences>,
) -> ApiResult<axum::Json<NotificationPreferences>> {
    if let Some(n) = &req.new_posts
        && !["immediate", "digest", "off"].contains(&n.as_str())
    {
        return Err(ApiError::field(
            "new_posts",
            "must be immediate, digest or off",
        ));
    }
    let mut tx = state.store.begin().await?;
    let current = preferences(&mut tx, &caller.account_id).await?;
    let next = NotificationPreferences {
        new_posts: req.new_posts.unwrap_or(current.new_posts),
        replies: req.replies.unwrap_or(current.replies),
        reactions: req.reactions.unwrap_or(current.reactions),
    };
    sqlx::query(
        "INSERT INTO notification_preferences (account_id, new_posts, replies, reactions, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id) DO UPDATE SET new_posts = excluded.new_posts, replies = excluded.replies,
             reactions = excluded.reactions, updated_at = excluded.updated_at",
    )
    .bind(&caller.account_id)
    .bind(&next.new_posts)
    .bind(i64::from(next.replies))
    .bind(i64::from(next.reactions))
    .bind(state.now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(next))
}

/// A personal message to a member.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"text": "Ik dacht even aan je. Hoe gaat het?"}))]
pub struct PersonalMessage {
    /// Shown to the member as the notification's body.
    #[schema(value_type = crate::openapi::MessageText)]
    pub text: String,
}

/// A personal message, delivered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"notification_id": "0194f1e0f1a27b3c8d9e0f1a2b3c4d5f"}))]
pub struct PersonalMessageSent {
    /// The member's inbox item.
    pub notification_id: String,
}

/// Workers: a personal "thinking of you" to a member of the circle.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`); 404 for a membership that is not a current member of
/// this circle. Puts a `personal_message` item in the member's inbox and
/// pushes it to their devices. Not visible to the rest of the circle. Send an `Idempotency-Key`: a retry
/// never sends twice.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/members/{membership_id}/messages", tag = "notifications",
    operation_id = "circle_member_messages_create",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(
        ("circle_id" = String, Path, description = "The circle's id"),
        ("membership_id" = String, Path, description = "The member's membership id"),
        IdempotencyKey,
    ),
    request_body = PersonalMessage,
    responses(
        (status = 201, description = "Sent to the member's inbox and devices", body = PersonalMessageSent),
    )
)]
pub async fn personal_message(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    audit: Audit,
    Path((circle_id, membership_id)): Path<(String, String)>,
    Json(req): Json<PersonalMessage>,
) -> ApiResult<Response> {
    // At most 500 characters as sent (`crate::openapi::MessageText`), then trimmed.
    let len = req.text.chars().count();
    let text = req.text.trim().to_owned();
    if len > 500 || text.is_empty() || text.contains('\0') {
        return Err(ApiError::field("text", "must be 1 to 500 characters"));
    }
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    access.require_staff()?;
    let sender = match access.membership_id() {
        Ok(id) => {
            sqlx::query_scalar::<_, String>("SELECT pseudonym FROM memberships WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
        }
        Err(_) => sqlx::query_scalar::<_, Option<String>>(
            "SELECT display_name FROM accounts WHERE id = $1",
        )
        .bind(&caller.account_id)
        .fetch_one(&mut *tx)
        .await?
        .unwrap_or_else(|| "Kring".into()),
    };
    let (account_id, circle_name): (String, String) = sqlx::query_as(
        "SELECT m.account_id, c.name FROM memberships m JOIN circles c ON c.id = m.circle_id
         WHERE m.id = $1 AND m.circle_id = $2 AND m.left_at IS NULL AND m.role = 'member'",
    )
    .bind(&membership_id)
    .bind(&access.circle_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("member"))?;
    let out = Outgoing {
        account_id,
        kind: NotificationKind::PersonalMessage,
        params: TextParams {
            circle_name,
            actor: sender,
            message: Some(text),
            ..Default::default()
        },
        circle_id: Some(access.circle_id.clone()),
        post_id: None,
        membership_id: Some(membership_id.clone()),
        alert_id: None,
        deliver_at: None,
        inbox_only: false,
    };
    let notification_id = notify(&mut tx, now, &out).await?;
    // Who wrote to whom, never what.
    let member = Subject::membership(membership_id);
    audit
        .changed(&mut tx, Kind::PersonalMessage, Action::Create, member)
        .await?;
    idem.commit(
        tx,
        (
            StatusCode::CREATED,
            axum::Json(PersonalMessageSent { notification_id }),
        ),
    )
    .await
}

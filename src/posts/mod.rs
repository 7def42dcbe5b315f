//! Posts in a circle: the feed, replies, edits and deletes by the author,
//! hiding by staff, reactions, and each member's read position.

pub mod handlers;
pub mod reactions;

pub use handlers::FirstPageCache;

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::AnyConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::circles::members::MembershipRole;
use crate::circles::{CircleAccess, access};
use crate::clock::{from_ms, opt_from_ms};
use crate::error::{ApiError, ApiResult};
use crate::http::Caller;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::cache::Scope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::feed, handlers::create_post))
        .routes(routes!(
            handlers::get_post,
            handlers::edit_post,
            handlers::delete_post
        ))
        .routes(routes!(handlers::hide_post, handlers::unhide_post))
        .routes(routes!(reactions::add_reaction, reactions::remove_reaction))
        .routes(routes!(reactions::set_read_position))
}

/// Who wrote a post, as the circle sees them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Author {
    /// The author's membership in the circle.
    pub membership_id: String,
    /// Their name in the circle, as it is now.
    #[schema(example = "Zonnebloem")]
    pub pseudonym: String,
    /// Member or worker.
    pub role: MembershipRole,
}

/// Where a post stands: `visible`, `deleted` (by its author: a tombstone
/// without a body) or `hidden` (by staff: members see no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    Visible,
    /// Deleted by its author: a tombstone without a body.
    Deleted,
    /// Removed at the member's request when they left Kring (their data
    /// was erased): a tombstone without a body, so replies still read.
    Removed,
    /// Hidden by a worker; members see no body.
    Hidden,
}

/// The supportive reactions a post can get: `heart`, `hug`, `strong`,
/// `thanks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReactionKind {
    Heart,
    Hug,
    Strong,
    Thanks,
}

impl ReactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Heart => "heart",
            Self::Hug => "hug",
            Self::Strong => "strong",
            Self::Thanks => "thanks",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "heart" => Ok(Self::Heart),
            "hug" => Ok(Self::Hug),
            "strong" => Ok(Self::Strong),
            "thanks" => Ok(Self::Thanks),
            _ => Err("must be one of heart, hug, strong, thanks".into()),
        }
    }
}

/// How many gave one kind of reaction to a post.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReactionCount {
    /// The reaction.
    pub kind: ReactionKind,
    /// How many people gave it.
    #[schema(example = 3)]
    pub count: i64,
    /// Whether you gave this reaction.
    pub mine: bool,
}

/// A post or reply in a circle, as the caller may see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "author": {"membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f", "pseudonym": "Zonnebloem", "role": "member"},
    "reply_to_id": null,
    "body": "Vandaag voor het eerst weer een wandeling gemaakt.",
    "status": "visible",
    "hidden_reason": null,
    "reactions": [{"kind": "hug", "count": 2, "mine": true}],
    "created_at": "2026-11-20T18:12:00Z",
    "updated_at": "2026-11-20T18:12:00Z",
    "edited_at": null
}))]
pub struct Post {
    /// The post's id.
    pub id: String,
    /// Its circle.
    pub circle_id: String,
    /// Who wrote it.
    pub author: Author,
    /// The post this replies to.
    pub reply_to_id: Option<String>,
    /// Null when deleted, or hidden and you are not staff.
    #[schema(example = "Vandaag voor het eerst weer een wandeling gemaakt.")]
    pub body: Option<String>,
    /// Visible, deleted or hidden.
    pub status: PostStatus,
    /// Staff only: why it was hidden.
    pub hidden_reason: Option<String>,
    /// Reactions per kind, only kinds someone gave; empty for deleted posts.
    pub reactions: Vec<ReactionCount>,
    /// When it was written.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Changes with every edit, delete, hide or unhide.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
    /// When its author last changed the text; null if never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<jiff::Timestamp>,
}

/// A page of a circle's feed, with the token to sync from.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "author": {"membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f", "pseudonym": "Zonnebloem", "role": "member"},
        "reply_to_id": null,
        "body": "Vandaag voor het eerst weer een wandeling gemaakt.",
        "status": "visible",
        "hidden_reason": null,
        "reactions": [{"kind": "hug", "count": 2, "mine": true}],
        "created_at": "2026-11-20T18:12:00Z",
        "updated_at": "2026-11-20T18:12:00Z",
        "edited_at": null
    }],
    "next_cursor": "MTIuMTIuMDE5NGYxYjBjMWQyN2UzZjhhOWIwYzFkMmUzZjRhNWI",
    "sync_token": "MTIuMDE5NGYxYTJiM2M0N2Q1ZThmOTAxYTJiM2M0ZDVlNmY"
}))]
pub struct PostPage {
    /// Newest first; with `since`, oldest change first.
    pub items: Vec<Post>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
    /// Keep the latest one you received and pass it as `since` to fetch
    /// every change after this listing. Every page of one listing carries
    /// the same token as its first page.
    #[schema(example = "MTIuMTIuMDE5NGYxYTJiM2M0N2Q1ZThmOTAxYTJiM2M0ZDVlNmY")]
    pub sync_token: String,
}

/// The circle's next change number. Taken inside the writing transaction,
/// it holds the circle's row until commit, so a circle's changes commit in
/// the order of their numbers and a sync from a number misses nothing. The
/// circle's cached feed is forgotten at commit.
pub(crate) async fn next_change(tx: &mut Tx, circle_id: &str) -> Result<i64, sqlx::Error> {
    tx.touch(Scope::Circle(circle_id.to_owned()));
    sqlx::query_scalar(
        "UPDATE circles SET change_seq = change_seq + 1 WHERE id = $1 RETURNING change_seq",
    )
    .bind(circle_id)
    .fetch_one(&mut **tx)
    .await
}

/// A position in a circle's feed, opaque to apps: a `next_cursor` (where the
/// listing continues, and the sync position it started from) or a
/// `sync_token` (a sync position). Bound to its circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FeedMark {
    pub position: i64,
    pub sync: i64,
}

impl FeedMark {
    /// A sync position.
    pub fn at(seq: i64) -> Self {
        Self {
            position: seq,
            sync: seq,
        }
    }

    pub fn encode(self, circle_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}.{circle_id}", self.position, self.sync))
    }

    pub fn decode(s: &str, circle_id: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(3, '.');
        let position = parts.next()?.parse().ok()?;
        let sync = parts.next()?.parse().ok()?;
        // No circle's counter reaches i64::MAX: such a mark was made up.
        let in_range = |n: i64| (0..i64::MAX).contains(&n);
        (parts.next()? == circle_id && in_range(position) && in_range(sync))
            .then_some(Self { position, sync })
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Deserialize)]
pub(crate) struct PostRow {
    pub id: String,
    pub circle_id: String,
    pub author_membership_id: String,
    pub author_pseudonym: String,
    pub author_role: String,
    pub reply_to_id: Option<String>,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub erased_at: Option<i64>,
    pub hidden_at: Option<i64>,
    pub hidden_reason: Option<String>,
    pub created_seq: i64,
    pub change_seq: i64,
    /// The circle's change number, read by the same statement as the row
    /// (the feed's listing); 0 where not selected.
    #[sqlx(default)]
    #[serde(default)]
    pub sync_seq: i64,
}

/// The columns of [`PostRow`], as [`POST_SELECT_WITH_SYNC`] names them.
const POST_ROW_FIELDS: [&str; 17] = [
    "id",
    "circle_id",
    "author_membership_id",
    "author_pseudonym",
    "author_role",
    "reply_to_id",
    "body",
    "created_at",
    "updated_at",
    "edited_at",
    "deleted_at",
    "erased_at",
    "hidden_at",
    "hidden_reason",
    "created_seq",
    "change_seq",
    "sync_seq",
];

/// Wraps a query over [`POST_SELECT_WITH_SYNC`] so that the database
/// answers with one row: the page as a JSON array, in the query's order.
/// sqlx's SQLite driver hands each row from its connection thread to the
/// caller separately; one row instead of 21 is most of a feed page's cost.
pub(crate) fn as_one_json_row(backend: crate::store::Backend, query: &str) -> String {
    let pairs = POST_ROW_FIELDS
        .iter()
        .map(|f| format!("'{f}', t.{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    match backend {
        crate::store::Backend::Sqlite => {
            format!("SELECT json_group_array(json_object({pairs})) FROM ({query}) t")
        }
        crate::store::Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_object({pairs})), '[]'::json)::text FROM ({query}) t"
        ),
    }
}

macro_rules! post_columns {
    () => {
        "SELECT p.id, p.circle_id, p.author_membership_id, m.pseudonym AS author_pseudonym,
                m.role AS author_role, p.reply_to_id, p.body, p.created_at, p.updated_at, p.edited_at,
                p.deleted_at, p.erased_at, p.hidden_at, p.hidden_reason, p.created_seq, p.change_seq"
    };
}

macro_rules! post_from {
    () => {
        " FROM posts p JOIN memberships m ON m.id = p.author_membership_id"
    };
}

pub(crate) const POST_SELECT: &str = concat!(post_columns!(), post_from!());

/// [`POST_SELECT`] plus `sync_seq`, the circle's (`$1`) change number, read
/// by the same statement: one snapshot on both databases.
pub(crate) const POST_SELECT_WITH_SYNC: &str = concat!(
    post_columns!(),
    ", (SELECT change_seq FROM circles WHERE id = $1) AS sync_seq",
    post_from!()
);

/// One reaction given to a post.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReactionRow {
    post_id: String,
    kind: String,
    membership_id: String,
}

/// The reactions given to `rows`, by post and kind.
pub(crate) async fn reactions_of(
    conn: &mut AnyConnection,
    rows: &[PostRow],
) -> Result<Vec<ReactionRow>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT post_id, kind, membership_id FROM reactions WHERE post_id IN ({})
         ORDER BY post_id, kind",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, ReactionRow>(sqlx::AssertSqlSafe(sql));
    for row in rows {
        query = query.bind(row.id.clone());
    }
    query.fetch_all(conn).await
}

/// A circle's newest posts with their reactions: the feed's first page as
/// read from the database, and each post already serialized for a member
/// and for staff who gave none of its reactions (everyone else's "mine" is
/// false). Cached per circle and page size (see [`handlers::FirstPageCache`]).
#[derive(Debug)]
pub struct FirstPage {
    /// Up to the page size plus one (whether there is more).
    pub(crate) rows: Vec<PostRow>,
    reactions: Vec<ReactionRow>,
    /// The circle's change number the rows were read at.
    pub(crate) sync: i64,
    /// `rows` as JSON: for members, and for staff.
    as_json: [Vec<Box<RawValue>>; 2],
}

impl FirstPage {
    pub(crate) fn new(
        rows: Vec<PostRow>,
        reactions: Vec<ReactionRow>,
        sync: i64,
    ) -> ApiResult<Self> {
        let as_json = |staff: bool| {
            render(&rows, &reactions, None, staff)?
                .iter()
                .map(|post| {
                    serde_json::value::to_raw_value(post)
                        .map_err(|e| ApiError::Internal(e.to_string()))
                })
                .collect::<ApiResult<Vec<_>>>()
        };
        let as_json = [as_json(false)?, as_json(true)?];
        Ok(Self {
            rows,
            reactions,
            sync,
            as_json,
        })
    }

    /// About how much memory the page holds, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        const PER_POST: usize = 256;
        let rows: usize = self
            .rows
            .iter()
            .map(|r| PER_POST + r.body.len() + r.author_pseudonym.len())
            .sum();
        let json: usize = self.as_json.iter().flatten().map(|j| j.get().len()).sum();
        rows + json + self.reactions.len() * 100
    }

    /// The first `count` posts as JSON, as `viewer` sees them: serialized
    /// again only where the viewer gave one of the post's reactions.
    pub(crate) fn items(
        &self,
        count: usize,
        viewer_membership: Option<&str>,
        staff: bool,
    ) -> ApiResult<Vec<Cow<'_, RawValue>>> {
        let cached = &self.as_json[usize::from(staff)];
        self.rows
            .iter()
            .zip(cached)
            .take(count)
            .map(|(row, json)| {
                let reacted = viewer_membership.is_some_and(|viewer| {
                    self.reactions
                        .iter()
                        .any(|r| r.post_id == row.id && r.membership_id == viewer)
                });
                if !reacted {
                    return Ok(Cow::Borrowed(json.as_ref()));
                }
                let post = render_one(row, &self.reactions, viewer_membership, staff)?;
                serde_json::value::to_raw_value(&post)
                    .map(Cow::Owned)
                    .map_err(|e| ApiError::Internal(e.to_string()))
            })
            .collect()
    }
}

/// Reads rows' reactions and turns them into views, as `viewer` may see them.
pub(crate) async fn views(
    conn: &mut AnyConnection,
    rows: Vec<PostRow>,
    viewer_membership: Option<&str>,
    staff: bool,
) -> ApiResult<Vec<Post>> {
    let reactions = reactions_of(conn, &rows).await?;
    render(&rows, &reactions, viewer_membership, staff)
}

/// Posts as `viewer` sees them: bodies per status and role, reactions
/// counted per kind with whether the viewer gave one.
pub(crate) fn render(
    rows: &[PostRow],
    reactions: &[ReactionRow],
    viewer_membership: Option<&str>,
    staff: bool,
) -> ApiResult<Vec<Post>> {
    rows.iter()
        .map(|row| render_one(row, reactions, viewer_membership, staff))
        .collect()
}

/// One post as `viewer` sees it; `reactions` may include other posts'.
fn render_one(
    row: &PostRow,
    reactions: &[ReactionRow],
    viewer_membership: Option<&str>,
    staff: bool,
) -> ApiResult<Post> {
    let mut counts: Vec<ReactionCount> = Vec::new();
    // Sorted by post and kind: each kind's reactions are adjacent.
    for r in reactions.iter().filter(|r| r.post_id == row.id) {
        let kind = ReactionKind::parse(&r.kind).map_err(ApiError::Internal)?;
        let mine = viewer_membership == Some(r.membership_id.as_str());
        match counts.last_mut() {
            Some(last) if last.kind == kind => {
                last.count += 1;
                last.mine |= mine;
            }
            _ => counts.push(ReactionCount {
                kind,
                count: 1,
                mine,
            }),
        }
    }
    view(row, counts, staff)
}

fn view(row: &PostRow, reactions: Vec<ReactionCount>, staff: bool) -> ApiResult<Post> {
    let status = if row.erased_at.is_some() {
        PostStatus::Removed
    } else if row.deleted_at.is_some() {
        PostStatus::Deleted
    } else if row.hidden_at.is_some() {
        PostStatus::Hidden
    } else {
        PostStatus::Visible
    };
    let body = match status {
        PostStatus::Visible => Some(row.body.clone()),
        PostStatus::Hidden if staff => Some(row.body.clone()),
        _ => None,
    };
    Ok(Post {
        id: row.id.clone(),
        circle_id: row.circle_id.clone(),
        author: Author {
            membership_id: row.author_membership_id.clone(),
            pseudonym: row.author_pseudonym.clone(),
            role: MembershipRole::parse(&row.author_role).map_err(ApiError::Internal)?,
        },
        reply_to_id: row.reply_to_id.clone(),
        body,
        status,
        hidden_reason: if staff {
            row.hidden_reason.clone()
        } else {
            None
        },
        reactions: if matches!(status, PostStatus::Deleted | PostStatus::Removed) {
            Vec::new()
        } else {
            reactions
        },
        created_at: from_ms(row.created_at),
        updated_at: from_ms(row.updated_at),
        edited_at: opt_from_ms(row.edited_at),
    })
}

/// A post the caller may see, with their access to its circle.
pub(crate) async fn post_access(
    conn: &mut AnyConnection,
    caller: &Caller,
    post_id: &str,
) -> ApiResult<(PostRow, CircleAccess)> {
    let row: Option<PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{POST_SELECT} WHERE p.id = $1"
    )))
    .bind(post_id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(ApiError::NotFound("post"))?;
    let access = access(&mut *conn, caller, &row.circle_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::NotFound("post"),
            other => other,
        })?;
    Ok((row, access))
}

/// One post as the caller sees it.
pub(crate) async fn load_post(
    conn: &mut AnyConnection,
    caller: &Caller,
    post_id: &str,
) -> ApiResult<Post> {
    let (row, access) = post_access(conn, caller, post_id).await?;
    let viewer = access.membership_id().ok().map(str::to_owned);
    let mut posts = views(conn, vec![row], viewer.as_deref(), access.is_staff()).await?;
    posts.pop().ok_or(ApiError::NotFound("post"))
}

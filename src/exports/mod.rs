//! Exports (GDPR art. 15 and 20): a member asks for a copy of everything
//! Kring holds about them, or a coordinator asks on their behalf (logged);
//! a job builds the document ([`document`]) and keeps it for download
//! until it expires (`KRING_EXPORT_TTL_HOURS`), when upkeep deletes it.
//!
//! - [`api`]: the routes.
//! - [`document`]: the [`document::DataExport`] schema and how it is read.
//! - [`build_once`]: one round of the builder ([`crate::jobs::exports`]),
//!   claimed under a lease with [`crate::store::Store::claim_due`]; a build
//!   is finished only by the claim that is still current, so a build that
//!   outlived its lease cannot overwrite a newer one.
//!
//! One export in progress per account: the database refuses a second
//! pending row (a partial unique index), so concurrent requests cannot
//! both start one.

pub mod api;
pub mod document;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::{from_ms, opt_from_ms};
use crate::error::{ApiError, ApiResult};
use crate::http::Role;
use crate::state::AppState;
use crate::store::claim::Queue;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::start_my_export))
        .routes(routes!(api::my_exports))
        .routes(routes!(api::my_export))
        .routes(routes!(api::download_my_export))
        .routes(routes!(api::start_member_export))
        .routes(routes!(api::member_export))
        .routes(routes!(api::download_member_export))
}

/// How long a build's claim lasts: a build that takes longer (or whose
/// instance crashed) is claimed again after this.
pub const LEASE_MS: i64 = 5 * 60_000;
/// Builds claimed per round.
const BATCH: i64 = 4;
/// A build that failed this many times ends as `failed`, so the member can
/// ask again.
pub const MAX_ATTEMPTS: i64 = 5;

/// Pending exports wait in `build_due_at`.
pub const QUEUE: Queue = Queue {
    table: "exports",
    key: "id",
    due: "build_due_at",
    lease: "lease_until",
    lease_ms: LEASE_MS,
    waiting: Some("status = 'pending'"),
    claimable: None,
    on_claim: Some("attempts = attempts + 1"),
};

/// Where an export stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Being built; usually within a minute.
    Pending,
    /// Ready to download until `expires_at`.
    Ready,
    /// The download period is over and the document was deleted; ask for a
    /// new export.
    Expired,
    /// It could not be built; ask again.
    Failed,
}

/// An export of a member's data.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "status": "ready",
    "requested_by": "member",
    "requested_at": "2026-11-21T10:00:00Z",
    "ready_at": "2026-11-21T10:00:05Z",
    "expires_at": "2026-11-24T10:00:05Z",
    "download": "/v1/me/exports/0194f1e0a1b27c3d8e9f0a1b2c3d4e5f/download"
}))]
pub struct Export {
    /// The export's id.
    pub id: String,
    /// `pending` while it is built, then `ready`, `failed` or `expired`.
    pub status: ExportStatus,
    /// Who asked for it: `member` (the member themselves) or `coordinator`
    /// (on the member's behalf).
    pub requested_by: Role,
    /// When the export was asked for.
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: jiff::Timestamp,
    /// When the document was built.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ready_at: Option<jiff::Timestamp>,
    /// When the download ends and the document is deleted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<jiff::Timestamp>,
    /// While `ready`: the path of the document (`application/json`,
    /// schema `DataExport`).
    pub download: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: String,
    requested_role: String,
    status: String,
    requested_at: i64,
    ready_at: Option<i64>,
    expires_at: Option<i64>,
}

const SELECT: &str = "SELECT e.id, r.role AS requested_role, e.status,
        e.requested_at, e.ready_at, e.expires_at
    FROM exports e JOIN accounts r ON r.id = e.requested_by";

impl ExportRow {
    /// The status at `now`: a ready export past its expiry is expired even
    /// before upkeep has deleted the document.
    fn status(&self, now: i64) -> ApiResult<ExportStatus> {
        Ok(match self.status.as_str() {
            "pending" => ExportStatus::Pending,
            "ready" if self.expires_at.is_some_and(|t| t <= now) => ExportStatus::Expired,
            "ready" => ExportStatus::Ready,
            "expired" => ExportStatus::Expired,
            "failed" => ExportStatus::Failed,
            _ => return Err(ApiError::Internal("stored export status".into())),
        })
    }

    /// The resource; `base` is the path it is read at.
    fn resource(&self, now: i64, base: &str) -> ApiResult<Export> {
        let status = self.status(now)?;
        Ok(Export {
            id: self.id.clone(),
            status,
            requested_by: Role::parse(&self.requested_role).map_err(ApiError::Internal)?,
            requested_at: from_ms(self.requested_at),
            ready_at: opt_from_ms(self.ready_at),
            expires_at: opt_from_ms(self.expires_at),
            download: (status == ExportStatus::Ready).then(|| format!("{base}/download")),
        })
    }
}

/// One round of the builder: claims pending exports and builds each.
/// Returns how many it claimed.
pub async fn build_once(state: &AppState) -> Result<usize, sqlx::Error> {
    let now = state.now_ms();
    let ids = state.store.claim_due(&QUEUE, now, BATCH, None).await?;
    for id in &ids {
        // The lease this claim set: finishing checks it is still ours.
        let lease = now + LEASE_MS;
        if let Err(err) = build_one(state, id, lease, now).await {
            // Retried when the lease runs out; ids only in the log.
            tracing::warn!(export_id = %id, error = %err, "building an export failed; will retry");
        }
    }
    Ok(ids.len())
}

async fn build_one(state: &AppState, id: &str, lease: i64, now: i64) -> Result<(), sqlx::Error> {
    let pool = state.store.pool();
    let (account_id, attempts): (String, i64) =
        sqlx::query_as("SELECT account_id, attempts FROM exports WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    if attempts > MAX_ATTEMPTS {
        sqlx::query(
            "UPDATE exports SET status = 'failed', build_due_at = NULL, lease_until = NULL,
                    updated_at = $1
             WHERE id = $2 AND status = 'pending' AND lease_until = $3",
        )
        .bind(now)
        .bind(id)
        .bind(lease)
        .execute(pool)
        .await?;
        tracing::warn!(export_id = %id, attempts, "an export failed too often; given up");
        return Ok(());
    }
    let doc = {
        let mut snapshot = state.store.begin_snapshot().await?;
        let doc = document::build(&mut snapshot, id, &account_id, now).await?;
        snapshot.commit().await?;
        doc
    };
    let json = serde_json::to_string(&doc)
        .map_err(|e| sqlx::Error::Protocol(format!("serialising an export: {e}")))?;
    let expires = now + i64::from(state.config.export_ttl_hours) * 3_600_000;
    let finished = sqlx::query(
        "UPDATE exports SET status = 'ready', document = $1, ready_at = $2, expires_at = $3,
                build_due_at = NULL, lease_until = NULL, updated_at = $2
         WHERE id = $4 AND status = 'pending' AND lease_until = $5",
    )
    .bind(json)
    .bind(now)
    .bind(expires)
    .bind(id)
    .bind(lease)
    .execute(pool)
    .await?
    .rows_affected();
    if finished == 1 {
        tracing::info!(export_id = %id, "export ready");
    }
    Ok(())
}

/// Deletes the documents of exports past their expiry (upkeep). Returns
/// how many it expired.
pub async fn expire(state: &AppState) -> Result<u64, sqlx::Error> {
    let now = state.now_ms();
    Ok(sqlx::query(
        "UPDATE exports SET status = 'expired', document = NULL, updated_at = $1
         WHERE status = 'ready' AND expires_at <= $1",
    )
    .bind(now)
    .execute(state.store.pool())
    .await?
    .rows_affected())
}

//! Circles and everything about belonging to one: the circle itself with its
//! rhythm and escalation policy, invites and joining, memberships, and the
//! recovery codes staff issue for members.
//!
//! [`access`] is the one gate: a circle is visible to its active members and
//! workers and to its organisation's coordinators; to anyone else it does not
//! exist (404).

pub mod agreement;
pub mod handlers;
pub mod invites;
pub mod members;
pub mod membership;
pub mod policy;
pub mod pseudonym;
pub mod recovery;
pub mod settings;
pub mod staffing;

use sqlx::AnyConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Code};
use crate::http::{Caller, Role};
use crate::state::AppState;
use crate::store::cache::{Loaded, Scope, Shelf};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_circles, handlers::create_circle))
        .routes(routes!(handlers::get_circle, handlers::update_circle))
        .routes(routes!(staffing::add_worker))
        .routes(routes!(staffing::remove_worker))
        .routes(routes!(invites::list_invites, invites::create_invite))
        .routes(routes!(invites::revoke_invite))
        .routes(routes!(invites::preview_invite))
        .routes(routes!(invites::join))
        .routes(routes!(members::list_members))
        .routes(routes!(members::get_membership, members::update_membership))
        .routes(routes!(members::consent))
        .routes(routes!(members::leave))
        .routes(routes!(recovery::recovery_code))
        .routes(routes!(recovery::list_recovery_codes))
}

/// How the caller relates to a circle they can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A coordinator of the circle's organisation who is not in the circle.
    Coordinator,
    /// One of the circle's workers.
    Worker { membership_id: String },
    /// An active member.
    Member { membership_id: String },
}

/// A circle the caller may see, and how they relate to it.
#[derive(Debug, Clone)]
pub struct CircleAccess {
    pub circle_id: String,
    pub organisation_id: String,
    pub checkin_visibility: String,
    pub agreement_version: i64,
    pub relation: Relation,
    /// The caller's pseudonym in the circle; none for a coordinator outside it.
    pub pseudonym: Option<String>,
}

impl CircleAccess {
    /// Workers of the circle and coordinators of its organisation.
    pub fn is_staff(&self) -> bool {
        !matches!(self.relation, Relation::Member { .. })
    }

    pub fn require_staff(&self) -> ApiResult<()> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::StaffOnly,
                "Only the circle's workers and coordinators may do this",
            ))
        }
    }

    /// The caller's own membership, for acting inside the circle.
    pub fn membership_id(&self) -> ApiResult<&str> {
        match &self.relation {
            Relation::Worker { membership_id } | Relation::Member { membership_id } => {
                Ok(membership_id)
            }
            Relation::Coordinator => Err(ApiError::new(
                Code::NotInCircle,
                "Join the circle as a worker to take part in it",
            )),
        }
    }

    /// The caller's membership when they are a member (not a worker).
    pub fn member_membership_id(&self) -> ApiResult<&str> {
        match &self.relation {
            Relation::Member { membership_id } => Ok(membership_id),
            _ => Err(ApiError::new(
                Code::MembersOnly,
                "Only members of the circle do this",
            )),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    id: String,
    organisation_id: String,
    checkin_visibility: String,
    agreement_version: i64,
    membership_id: Option<String>,
    membership_role: Option<String>,
    pseudonym: Option<String>,
}

/// The gate for everything inside a circle.
pub async fn access(
    conn: &mut AnyConnection,
    caller: &Caller,
    circle_id: &str,
) -> ApiResult<CircleAccess> {
    let row: Option<AccessRow> = sqlx::query_as(
        "SELECT c.id, c.organisation_id, c.checkin_visibility, c.agreement_version,
                m.id AS membership_id, m.role AS membership_role, m.pseudonym
         FROM circles c
         LEFT JOIN memberships m ON m.circle_id = c.id AND m.account_id = $2 AND m.left_at IS NULL
         WHERE c.id = $1 AND c.organisation_id = $3 AND c.archived_at IS NULL",
    )
    .bind(circle_id)
    .bind(&caller.account_id)
    .bind(&caller.organisation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(ApiError::NotFound("circle"))?;
    let relation = match (row.membership_id, row.membership_role.as_deref()) {
        (Some(membership_id), Some("worker")) => Relation::Worker { membership_id },
        (Some(membership_id), Some(_)) => Relation::Member { membership_id },
        _ if caller.role == Role::Coordinator => Relation::Coordinator,
        _ => return Err(ApiError::NotFound("circle")),
    };
    Ok(CircleAccess {
        circle_id: row.id,
        organisation_id: row.organisation_id,
        checkin_visibility: row.checkin_visibility,
        agreement_version: row.agreement_version,
        relation,
        pseudonym: row.pseudonym,
    })
}

/// [`access`] through the read cache: for hot reads outside a transaction.
/// Membership changes touch the circle, deactivation touches the account.
pub async fn cached_access(
    state: &AppState,
    caller: &Caller,
    circle_id: &str,
) -> ApiResult<CircleAccess> {
    let key = (caller.account_id.clone(), circle_id.to_owned());
    state
        .caches
        .shelf::<AccessCache>()
        .0
        .get_or_load(state.store.generations(), key, async || {
            let mut conn = state.store.pool().acquire().await?;
            let found = access(&mut conn, caller, circle_id).await?;
            Ok::<_, ApiError>(Loaded {
                scopes: vec![
                    Scope::Circle(found.circle_id.clone()),
                    Scope::Account(caller.account_id.clone()),
                ],
                cost: 1,
                value: found,
            })
        })
        .await
}

/// (account, circle) → the account's access to the circle (at most 50,000).
pub struct AccessCache(pub Shelf<(String, String), CircleAccess>);

impl Default for AccessCache {
    fn default() -> Self {
        // A backstop only: writes invalidate entries as they commit.
        Self(Shelf::new(50_000, std::time::Duration::from_secs(60)))
    }
}

/// Records activity by a member: it ends their silence. Call in the same
/// transaction as the post, reaction or check-in that is the activity.
pub async fn record_activity(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    // Activity ends the silence: the ladder restarts, open alerts clear. The
    // engine records the activity with the new schedule, in one statement.
    crate::silence::engine::on_activity(conn, membership_id, now).await
}

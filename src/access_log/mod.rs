//! The access log: one entry each time staff (a worker or a coordinator)
//! read or change data about a member (NEN 7513; Wabvpz art. 15d/15e).
//!
//! A layer like [`crate::http`]: it imports no feature; features plug into
//! it. The pieces:
//!
//! - [`Audit`], the extractor every handler that shows or changes member
//!   data takes: it says which members' data of which [`Kind`] a response
//!   shows ([`Audit::shown`], written at the request level when the handler
//!   has succeeded, so reads served from the read caches count too) or which
//!   it changed ([`Audit::changed`], written in the change's own
//!   transaction).
//! - [`policy`]: the decision for every operation of the API, logged or why
//!   not; a test checks it covers the spec, and [`middleware`] refuses to
//!   send a successful response of a logged operation whose handler did not
//!   account for it (a 500, never unlogged data).
//! - [`chain`]: the per-organisation hash chain and retention expiry;
//!   [`verify`]: checking it (`kring admin verify-access-log`).
//! - [`api`]: `GET /v1/me/access-log` (a member's own entries) and
//!   `GET /v1/organisation/access-log` (coordinators).
//!
//! Who is staff is the caller's account role; members' reads of their own
//! data and of their circle's posts are ordinary use and never logged.
//! Subjects are given as memberships or accounts and kept only when they
//! are members (role `member`) of the caller's organisation, so a handler
//! may pass every author on a page and workers drop out.

pub mod api;
pub mod audit;
pub mod chain;
pub mod policy;
pub mod verify;

pub use audit::{Audit, Operations, middleware};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::my_access_log))
        .routes(routes!(api::organisation_access_log))
}

/// What kind of data about a member was read or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AccessKind)]
pub enum Kind {
    /// Check-ins: moods, notes, "I would like contact".
    Checkins,
    /// Posts in a circle's feed, hidden posts included, and their moderation.
    Feed,
    /// The circle overview: how each member is doing.
    Overview,
    /// Alerts about a member's silence or request for contact.
    Alerts,
    /// The circle's member list as staff see it (state, activity, consent).
    MemberList,
    /// Recovery codes issued for the member's account.
    RecoveryCode,
    /// A personal message from staff to the member (never its text).
    PersonalMessage,
    /// The member's membership of a circle.
    Membership,
    /// The access log itself, read by a coordinator.
    AccessLog,
    /// An export of the member's data.
    Export,
    /// The erasure of the member's data.
    Erasure,
    /// Outcome questionnaires: the member's scores and their trend, also as
    /// part of a circle's outcome report.
    Outcomes,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checkins => "checkins",
            Self::Feed => "feed",
            Self::Overview => "overview",
            Self::Alerts => "alerts",
            Self::MemberList => "member_list",
            Self::RecoveryCode => "recovery_code",
            Self::PersonalMessage => "personal_message",
            Self::Membership => "membership",
            Self::AccessLog => "access_log",
            Self::Export => "export",
            Self::Erasure => "erasure",
            Self::Outcomes => "outcomes",
        }
    }

    pub const ALL: [Self; 12] = [
        Self::Checkins,
        Self::Feed,
        Self::Overview,
        Self::Alerts,
        Self::MemberList,
        Self::RecoveryCode,
        Self::PersonalMessage,
        Self::Membership,
        Self::AccessLog,
        Self::Export,
        Self::Erasure,
        Self::Outcomes,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What the staff member did with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AccessAction)]
pub enum Action {
    /// Looked at one item (a post, an alert).
    Read,
    /// Looked at a list that held the member's data; `result_count` says
    /// how many of its items were about the member.
    List,
    /// Made something about the member (a recovery code, a message).
    Create,
    /// Changed something about the member (hid a post, handled an alert).
    Change,
    /// Removed something about the member.
    Delete,
    /// Exported the member's data.
    Export,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Create => "create",
            Self::Change => "change",
            Self::Delete => "delete",
            Self::Export => "export",
        }
    }

    pub const ALL: [Self; 6] = [
        Self::Read,
        Self::List,
        Self::Create,
        Self::Change,
        Self::Delete,
        Self::Export,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Whose data it was: a membership (data within a circle) or an account.
/// Kept only when it is a member of the caller's organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Membership(String),
    Account(String),
}

impl Subject {
    pub fn membership(id: impl Into<String>) -> Self {
        Self::Membership(id.into())
    }

    pub fn account(id: impl Into<String>) -> Self {
        Self::Account(id.into())
    }
}

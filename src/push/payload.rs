//! The push payload: the documented contract between Kring and the apps.
//!
//! The same JSON goes to every provider: as the `data` of an FCM message, as
//! custom keys beside `aps` for APNs, and as the encrypted body of a Web Push
//! message. The JSON Schema is committed as `openapi/push-payload.schema.json`
//! and the spec carries it as the `PushPayload` schema.

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

/// What a notification is about: `reply` (someone replied to your post),
/// `new_post` (a new post in your circle), `post_digest` (new posts in your
/// circle, collapsed into one), `reaction` (someone reacted to your post),
/// `personal_message` (a worker's "thinking of you"), `nudge` (a gentle
/// reminder after a silence, with an "I'm OK" action), `alert` (to workers:
/// a member has been quiet for long, or asked for contact),
/// `alert_escalated` (to coordinators: an alert nobody acknowledged in
/// time), `all_clear` (to workers: the member of an open alert is active
/// again), `recovery_code_issued` (staff issued a recovery code for your
/// account), `account_recovered` (a recovery code moved your account to
/// a new phone) and `questionnaire` (a questionnaire of your circle is
/// ready, or a gentle reminder of one: `GET /v1/me/questionnaires`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Someone replied to your post.
    Reply,
    /// A new post in your circle (preference `immediate`).
    NewPost,
    /// New posts in your circle, collapsed into one (preference `digest`).
    PostDigest,
    /// Someone reacted to your post.
    Reaction,
    /// A worker's personal "thinking of you".
    PersonalMessage,
    /// A gentle reminder to a member who has been quiet; offers "I'm OK".
    Nudge,
    /// To workers: a member has been quiet for long, or asked for contact.
    Alert,
    /// To coordinators: an alert nobody acknowledged in time.
    AlertEscalated,
    /// To workers: the member of an open alert is active again.
    AllClear,
    /// To a member: staff issued a recovery code for your account (never
    /// the code itself). Someone with it can move the account to a new phone.
    RecoveryCodeIssued,
    /// To a member: a recovery code moved your account to a new phone and
    /// signed out every other device.
    AccountRecovered,
    /// To a member: a questionnaire is ready to answer (voluntary), or one
    /// of at most two gentle reminders of it; `GET /v1/me/questionnaires`.
    Questionnaire,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::NewPost => "new_post",
            Self::PostDigest => "post_digest",
            Self::Reaction => "reaction",
            Self::PersonalMessage => "personal_message",
            Self::Nudge => "nudge",
            Self::Alert => "alert",
            Self::AlertEscalated => "alert_escalated",
            Self::AllClear => "all_clear",
            Self::RecoveryCodeIssued => "recovery_code_issued",
            Self::AccountRecovered => "account_recovered",
            Self::Questionnaire => "questionnaire",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reply" => Ok(Self::Reply),
            "new_post" => Ok(Self::NewPost),
            "post_digest" => Ok(Self::PostDigest),
            "reaction" => Ok(Self::Reaction),
            "personal_message" => Ok(Self::PersonalMessage),
            "nudge" => Ok(Self::Nudge),
            "alert" => Ok(Self::Alert),
            "alert_escalated" => Ok(Self::AlertEscalated),
            "all_clear" => Ok(Self::AllClear),
            "recovery_code_issued" => Ok(Self::RecoveryCodeIssued),
            "account_recovered" => Ok(Self::AccountRecovered),
            "questionnaire" => Ok(Self::Questionnaire),
            other => Err(format!("unknown notification kind {other}")),
        }
    }
}

/// An action the notification offers, shown as a button: `im_ok` ("I'm
/// OK": `me_im_ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushAction {
    /// "I'm OK": `POST /v1/me/im-ok` (every circle the member is in), or
    /// `POST /v1/circles/{circle_id}/checkins/ok` for one circle.
    ImOk,
}

/// The data every push message carries, whatever the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "kind": "reply",
    "notification_id": "0194f1e0f1a27b3c8d9e0f1a2b3c4d5e",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "post_id": "0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
    "membership_id": null,
    "alert_id": null,
    "deep_link": "kring://circles/0194f1a2b3c47d5e8f901a2b3c4d5e6f/posts/0194f1b0c1d27e3f8a9b0c1d2e3f4a5b",
    "locale": "nl",
    "title": "Maan reageerde op je bericht",
    "body": "In Samen sterk",
    "discreet": false,
    "badge": 2,
    "actions": []
}))]
pub struct PushPayload {
    /// What the notification is about (see [`open_kind`]).
    #[schema(schema_with = open_kind)]
    pub kind: NotificationKind,
    /// The inbox item. Stable across retries: drop duplicates by this id.
    pub notification_id: String,
    /// The circle it is about, if any.
    pub circle_id: Option<String>,
    /// The post it is about, if any.
    pub post_id: Option<String>,
    /// The membership it is about, if any (an alert's member).
    pub membership_id: Option<String>,
    /// The alert it is about, if any.
    pub alert_id: Option<String>,
    /// Where the app should open, e.g. `kring://circles/{id}/posts/{id}`.
    pub deep_link: String,
    /// The language of `title` and body: `nl` or `en`.
    pub locale: String,
    /// The notification's title, in `locale`. For a discreet push
    /// (`discreet: true`) only "Kring" and the body "You have a new
    /// message." in the recipient's language: no circle name, pseudonym or
    /// message text.
    pub title: String,
    /// The notification's text, in `locale`.
    pub body: String,
    /// True when the push is discreet (the recipient's `discreet_pushes`
    /// setting and the circle's `sensitive` flag): the lock screen shows
    /// nothing about the circle, a person or a message. The inbox item
    /// (`notification_id`) keeps the full text: show that once the app is
    /// open.
    pub discreet: bool,
    /// Unread inbox items of the recipient, for the app icon.
    pub badge: i64,
    /// Buttons to show with the notification (see [`open_actions`]).
    #[schema(schema_with = open_actions)]
    pub actions: Vec<PushAction>,
}

/// `kind`: the kinds of [`NotificationKind`], open (the payload is read by
/// apps built before a new kind existed).
fn open_kind() -> RefOr<Schema> {
    crate::openapi::open_enum(
        NotificationKind::schema(),
        Some(
            "What the notification is about. For a kind the app does not know, it shows \
             `title` and `body` and opens the inbox on a tap.",
        ),
    )
}

/// `actions`: a list of [`PushAction`]s, open like `kind`.
fn open_actions() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(crate::openapi::open_enum(PushAction::schema(), None))
        .description(Some(
            "Buttons to show with the notification. The app leaves out an action it does \
             not know.",
        ))
        .into()
}

/// The payload's JSON Schema (draft 2020-12), as committed in
/// `openapi/push-payload.schema.json`.
pub fn json_schema() -> String {
    let schema = serde_json::to_value(PushPayload::schema()).unwrap_or_default();
    let mut doc = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "push-payload.schema.json",
        "title": "Kring push payload",
        "description": "The data of every Kring push notification: FCM `data`, the custom keys beside `aps` for APNs, and the decrypted Web Push body. Apps drop duplicates by `notification_id` (delivery is at least once)."
    });
    if let (Some(doc), Some(schema)) = (doc.as_object_mut(), schema.as_object()) {
        for (k, v) in schema {
            doc.insert(k.clone(), v.clone());
        }
    }
    let mut json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    json.push('\n');
    json
}

//! The export document ([`DataExport`]): everything Kring holds about one
//! member, read in one consistent snapshot.
//!
//! What is left out, on purpose: every secret (password hash, session,
//! access and refresh tokens, device tokens and Web Push keys, recovery
//! and setup codes, invite codes), and other people's content. Other
//! members appear by id only (a reply's parent post); staff appear by the
//! display name the member sees anyway (on alerts, recovery codes and the
//! access log).

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::accounts::types::{LocalTime, Locale};
use crate::clock::{from_ms, opt_from_ms};

/// The document's format; changes that remove or rename a field get a new
/// number.
pub const FORMAT: &str = "kring-export/1";

type Time = jiff::Timestamp;

/// A copy of everything Kring holds about you (GDPR art. 15 and 20), as
/// one JSON document. Other people appear only by pseudonym, id, or the
/// staff name you see in the app; no secret (password hash, tokens, codes,
/// device tokens) and no other member's post is ever in it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "format": "kring-export/1",
    "export_id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "generated_at": "2026-11-21T10:00:05Z",
    "language": "nl",
    "summary": "Dit zijn alle gegevens die Kring op 2026-11-21 over je bewaart. Je zit of zat in 1 kring(en): Samen sterk. Je schreef 1 bericht(en), gaf 0 reactie(s) en deed 1 check-in(s). Je inbox heeft 0 melding(en); 0 toestel(len) kregen je meldingen. Er zijn 0 signaal/signalen over je naar je begeleiders gegaan. Medewerkers hebben 1 keer je gegevens bekeken of gewijzigd (het toegangslog). Andere deelnemers staan er alleen met een id in; wachtwoorden, tokens en codes nooit.",
    "account": {
        "id": "0194f1a4b0c17c2d9e8f7a6b5c4d3e2f",
        "organisation_id": "0194f1a0c0de7a11b2c3d4e5f6a7b8c9",
        "organisation_name": "Buurtwerk Oost",
        "role": "member",
        "display_name": null,
        "email": null,
        "login_name": "zonnebloem58",
        "locale": "nl",
        "time_zone": "Europe/Amsterdam",
        "quiet_hours_start": "21:00",
        "quiet_hours_end": "09:00",
        "preferred_reminder_time": "10:00",
        "discreet_pushes": "sensitive_circles",
        "notification_preferences": null,
        "last_nudge_at": null,
        "created_at": "2026-11-02T10:00:00Z",
        "deactivated_at": null
    },
    "memberships": [{
        "id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "circle_name": "Samen sterk",
        "pseudonym": "Zonnebloem",
        "role": "member",
        "joined_at": "2026-11-02T10:00:00Z",
        "left_at": null,
        "away_until": null,
        "nudges_enabled": true,
        "last_activity_at": "2026-11-20T18:12:00Z",
        "last_read_at": "2026-11-20T18:12:00Z",
        "consent": {
            "version": 1,
            "consented_at": "2026-11-02T10:00:00Z",
            "agreement_text": "Jij bepaalt wanneer je schrijft.",
            "current_agreement_version": 1
        }
    }],
    "posts": [{
        "id": "0194f1b2c3d47e5f8a9b0c1d2e3f4a5b",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "reply_to_id": null,
        "body": "Vandaag even naar de markt geweest.",
        "created_at": "2026-11-20T18:12:00Z",
        "edited_at": null,
        "deleted_at": null,
        "hidden_at": null,
        "hidden_reason": null
    }],
    "reactions": [],
    "checkins": [{
        "id": "0194f1c2d3e47f5a8b9c0d1e2f3a4b5c",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "kind": "mood",
        "mood": 3,
        "note": null,
        "wants_contact": false,
        "created_at": "2026-11-19T09:30:00Z"
    }],
    "notifications": [],
    "devices": [],
    "sessions": [],
    "recovery_codes": [],
    "alerts": [],
    "silence_steps": [],
    "access_log": [{
        "accessed_at": "2026-11-21T10:02:00Z",
        "staff_name": "Sam Jansen",
        "staff_role": "worker",
        "on_your_behalf": false,
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "kind": "checkins",
        "action": "list",
        "result_count": 1,
        "operation": "circle_checkins_list"
    }],
    "questionnaires": [{
        "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "instrument": "who5",
        "instrument_version": 1,
        "moment": "intake",
        "status": "answered",
        "prompts_sent": 1,
        "due_at": "2026-11-02T10:00:00Z",
        "expires_at": "2026-11-16T10:00:00Z",
        "answered_at": "2026-11-02T10:05:00Z",
        "declined_at": null,
        "answers": {"who5_1": "more_than_half", "who5_2": "less_than_half", "who5_3": "less_than_half",
                    "who5_4": "some_of_the_time", "who5_5": "more_than_half"},
        "raw_score": 11,
        "scaled_score": 44,
        "band": "low",
        "subscales": []
    }]
}))]
pub struct DataExport {
    /// `kring-export/1`.
    #[schema(example = "kring-export/1")]
    pub format: String,
    /// The export's id.
    pub export_id: String,
    /// When the document was made.
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: Time,
    /// The language of `summary`: the account's language.
    pub language: Locale,
    /// A short overview in your language of what this document holds.
    pub summary: String,
    pub account: ExportAccount,
    /// Every circle you are or were in.
    pub memberships: Vec<ExportMembership>,
    /// Your own posts, with their text (a deleted post's text is gone).
    pub posts: Vec<ExportPost>,
    /// Reactions you gave, by post id.
    pub reactions: Vec<ExportReaction>,
    /// Your check-ins: moods, notes and requests for contact.
    pub checkins: Vec<ExportCheckin>,
    /// Your inbox: every notification Kring sent you.
    pub notifications: Vec<ExportNotification>,
    /// Devices that received your pushes: kind and label, never the token.
    pub devices: Vec<ExportDevice>,
    /// Sign-ins on your devices (never the tokens).
    pub sessions: Vec<ExportSession>,
    /// Recovery codes issued for your account (never the code).
    pub recovery_codes: Vec<ExportRecoveryCode>,
    /// Alerts your workers got about you: why, when, how they were
    /// handled, with the worker's note (see `ExportAlert.resolution_note`).
    pub alerts: Vec<ExportAlert>,
    /// The steps of your circles' reminder ladders that fired for you.
    pub silence_steps: Vec<ExportSilenceStep>,
    /// Every access by staff to your data, oldest first (the same entries as
    /// `GET /v1/me/access-log`).
    pub access_log: Vec<ExportAccessEntry>,
    /// Every questionnaire your circles made for you, with your answers and
    /// scores, oldest first.
    pub questionnaires: Vec<crate::questionnaires::export::ExportQuestionnaire>,
}

/// Your account and settings. No password or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAccount {
    /// Your account id.
    pub id: String,
    /// Your organisation's id.
    pub organisation_id: String,
    /// The organisation's name.
    pub organisation_name: String,
    /// `member`.
    pub role: String,
    /// Staff only; null for members.
    pub display_name: Option<String>,
    /// Staff only; null for members.
    pub email: Option<String>,
    /// Your login name, if you chose one.
    pub login_name: Option<String>,
    /// Your language: `nl` or `en`.
    pub locale: String,
    /// Your time zone (IANA name).
    pub time_zone: String,
    /// Quiet hours, local `HH:MM`.
    pub quiet_hours_start: String,
    /// The end of your quiet hours, local `HH:MM`.
    pub quiet_hours_end: String,
    /// Your preferred local time for reminders, `HH:MM`.
    pub preferred_reminder_time: Option<String>,
    /// `sensitive_circles`, `always` or `never`.
    pub discreet_pushes: String,
    /// Which notifications you get; null when you never changed them.
    pub notification_preferences: Option<ExportNotificationPreferences>,
    /// When Kring last sent you a reminder.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_nudge_at: Option<Time>,
    /// When your account was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    /// When your account was deactivated; null while it is in use.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deactivated_at: Option<Time>,
}

/// Which notifications you chose to get.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportNotificationPreferences {
    /// `immediate`, `digest` or `off`.
    pub new_posts: String,
    /// Whether you get a notification when someone replies to your post.
    pub replies: bool,
    /// Whether you get a notification when someone reacts to your post.
    pub reactions: bool,
    /// When you last changed these preferences.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
}

/// One circle you are or were in, under your pseudonym there.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportMembership {
    /// The membership id.
    pub id: String,
    /// The circle's id.
    pub circle_id: String,
    /// The circle's name.
    pub circle_name: String,
    /// The name you used in this circle.
    pub pseudonym: String,
    /// `member`.
    pub role: String,
    /// When you joined (or came back).
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: Time,
    /// When you left; null while you are in the circle.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub left_at: Option<Time>,
    /// The end of a break you took; null when not away.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub away_until: Option<Time>,
    /// Whether you get gentle reminders in this circle.
    pub nudges_enabled: bool,
    /// Your last post, reply, reaction or check-in in this circle.
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: Time,
    /// How far you had read the circle.
    #[schema(value_type = String, format = DateTime)]
    pub last_read_at: Time,
    /// Your consent to the circle's escalation agreement; null if none was
    /// recorded.
    pub consent: Option<ExportConsent>,
}

/// The consent you gave to a circle's escalation agreement.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportConsent {
    /// The agreement's version you consented to.
    pub version: i64,
    /// When you consented; null if not recorded.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub consented_at: Option<Time>,
    /// The agreement's text as you consented to it. Kring keeps only each
    /// circle's current text, so this is null when the circle has changed
    /// its agreement since (then `current_agreement_version` is newer).
    pub agreement_text: Option<String>,
    /// The circle's agreement version now.
    pub current_agreement_version: i64,
}

/// A post you wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportPost {
    /// The post's id.
    pub id: String,
    /// The circle it was posted in.
    pub circle_id: String,
    /// Your membership it was posted under.
    pub membership_id: String,
    /// The post this replies to, by id only: another member's post is not
    /// yours to export.
    pub reply_to_id: Option<String>,
    /// Empty when you deleted it (Kring then no longer has the text).
    pub body: String,
    /// When you wrote it.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    /// When you last changed it; null if never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<Time>,
    /// When you deleted it (or it was removed); null otherwise.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Time>,
    /// When a worker hid it, and why.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub hidden_at: Option<Time>,
    /// The worker's reason for hiding it; null when not hidden.
    pub hidden_reason: Option<String>,
}

/// A reaction you gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportReaction {
    /// The post you reacted to, by id only.
    pub post_id: String,
    /// The reaction: `heart`, `hug`, `thanks` or `strong`.
    pub kind: String,
    /// When you gave it.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

/// A check-in of yours.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportCheckin {
    /// The check-in's id.
    pub id: String,
    /// The circle you checked in with.
    pub circle_id: String,
    /// `mood` or `ok`.
    pub kind: String,
    /// 1 to 5.
    pub mood: Option<i64>,
    /// The note you wrote with it, if any.
    pub note: Option<String>,
    /// Whether you asked your worker to contact you.
    pub wants_contact: bool,
    /// When you checked in.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

/// A notification in your inbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportNotification {
    /// The inbox item's id.
    pub id: String,
    /// What it is about (as in `Notification.kind`).
    pub kind: String,
    /// Its title, as you saw it.
    pub title: String,
    /// Its text, as you saw it.
    pub body: String,
    /// The circle it is about, if any.
    pub circle_id: Option<String>,
    /// When Kring made it.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    /// When you read it; null while unread.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<Time>,
}

/// A device of yours: never its token or keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportDevice {
    /// The device's id.
    pub id: String,
    /// `apns`, `fcm` or `webpush`.
    pub kind: String,
    /// The name you gave the device, if any.
    pub label: Option<String>,
    /// When it was registered.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    /// When it was removed; null while it gets pushes.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed_at: Option<Time>,
    /// Why it was removed (for example the provider said its token was gone).
    pub removed_reason: Option<String>,
}

/// One sign-in of yours on one device.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportSession {
    /// When you signed in.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    /// When the session was last used.
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: Time,
    /// When it was signed out; null while open.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Time>,
    /// Why it was signed out (logout, sign-out everywhere, recovery, a reused token).
    pub revoked_reason: Option<String>,
}

/// A recovery code issued for your account; never the code.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportRecoveryCode {
    /// The staff member who issued it.
    pub issued_by: Option<String>,
    /// The circle whose worker issued it, if any.
    pub circle_id: Option<String>,
    /// When it was issued.
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Time,
    /// When it stopped (or stops) working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Time,
    /// When it was used; null if never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub used_at: Option<Time>,
}

/// An alert about you, as your workers saw it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAlert {
    /// The alert's id.
    pub id: String,
    /// The circle it was raised in.
    pub circle_id: String,
    /// Your membership it is about.
    pub membership_id: String,
    /// `silence` or `contact_request`.
    pub reason: String,
    /// `open`, `acknowledged`, `snoozed` or `resolved`.
    pub status: String,
    /// When it was raised.
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Time,
    /// When a worker acknowledged it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Time>,
    /// The staff member who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// Until when a worker snoozed it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub snoozed_until: Option<Time>,
    /// When it was passed on to a coordinator.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub escalated_at: Option<Time>,
    /// When it was resolved.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Time>,
    /// The staff member who resolved it.
    pub resolved_by: Option<String>,
    /// How it ended: `reached`, `no_answer`, `not_needed`, `referred` or `other`.
    pub resolution_outcome: Option<String>,
    /// The note the worker wrote when resolving it. It is about you, so the
    /// right of access (GDPR art. 15) gives it to you; the resolve
    /// operation tells workers so.
    pub resolution_note: Option<String>,
}

/// A step of a circle's reminder ladder that fired for you.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportSilenceStep {
    /// The membership the step was for.
    pub membership_id: String,
    /// `nudge`, `alert_worker` or `alert_coordinator`.
    pub action: String,
    /// `nudged`, `merged`, `skipped` or `alerted`.
    pub outcome: String,
    /// The start of the silence the step belonged to.
    #[schema(value_type = String, format = DateTime)]
    pub silence_started_at: Time,
    /// When the step fired.
    #[schema(value_type = String, format = DateTime)]
    pub fired_at: Time,
}

/// One access by staff to your data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAccessEntry {
    /// When the staff member accessed your data.
    #[schema(value_type = String, format = DateTime)]
    pub accessed_at: Time,
    /// The staff member's display name.
    pub staff_name: Option<String>,
    /// `worker` or `coordinator`.
    pub staff_role: String,
    /// True when they acted at your request (an export they started for you).
    pub on_your_behalf: bool,
    /// The circle the data belongs to, if any.
    pub circle_id: Option<String>,
    /// Which kind of data (as in `MyAccessEntry.kind`).
    pub kind: String,
    /// What they did (as in `MyAccessEntry.action`).
    pub action: String,
    /// For a list: how many of its items were about you.
    pub result_count: Option<i64>,
    /// The API operation used.
    pub operation: String,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    organisation_id: String,
    organisation_name: String,
    role: String,
    display_name: Option<String>,
    email: Option<String>,
    login_name: Option<String>,
    locale: String,
    time_zone: String,
    quiet_start_min: i64,
    quiet_end_min: i64,
    reminder_time_min: Option<i64>,
    discreet_pushes: String,
    last_nudge_at: Option<i64>,
    created_at: i64,
    deactivated_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    id: String,
    circle_id: String,
    circle_name: String,
    pseudonym: String,
    role: String,
    joined_at: i64,
    left_at: Option<i64>,
    away_until: Option<i64>,
    nudges_enabled: i64,
    last_activity_at: i64,
    last_read_at: i64,
    consent_version: Option<i64>,
    consented_at: Option<i64>,
    agreement_version: i64,
    agreement_text: String,
}

#[derive(sqlx::FromRow)]
struct PostRow {
    id: String,
    circle_id: String,
    author_membership_id: String,
    reply_to_id: Option<String>,
    body: String,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
    hidden_at: Option<i64>,
    hidden_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    circle_id: String,
    membership_id: String,
    reason: String,
    status: String,
    opened_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    snoozed_until: Option<i64>,
    escalated_at: Option<i64>,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
    resolution_outcome: Option<String>,
    resolution_note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    accessed_at: i64,
    staff_name: Option<String>,
    actor_role: String,
    on_behalf_of: Option<String>,
    circle_id: Option<String>,
    kind: String,
    action: String,
    result_count: Option<i64>,
    operation: String,
}

/// Builds the export `export_id` of `account_id` at `now`, reading through
/// `conn` (one snapshot, so the parts agree with each other).
pub async fn build(
    conn: &mut AnyConnection,
    export_id: &str,
    account_id: &str,
    now: i64,
) -> Result<DataExport, sqlx::Error> {
    let account = account(conn, account_id).await?;
    let mut doc = DataExport {
        format: FORMAT.to_owned(),
        export_id: export_id.to_owned(),
        generated_at: from_ms(now),
        language: Locale::parse(&account.locale).unwrap_or(Locale::Nl),
        summary: String::new(),
        account,
        memberships: memberships(conn, account_id).await?,
        posts: posts(conn, account_id).await?,
        reactions: reactions(conn, account_id).await?,
        checkins: checkins(conn, account_id).await?,
        notifications: notifications(conn, account_id).await?,
        devices: devices(conn, account_id).await?,
        sessions: sessions(conn, account_id).await?,
        recovery_codes: recovery_codes(conn, account_id).await?,
        alerts: alerts(conn, account_id).await?,
        silence_steps: silence_steps(conn, account_id).await?,
        access_log: access_log(conn, account_id).await?,
        questionnaires: crate::questionnaires::export::of_account(conn, account_id).await?,
    };
    doc.summary = summary(&doc);
    Ok(doc)
}

/// The account and its settings; no password or its hash.
async fn account(conn: &mut AnyConnection, account_id: &str) -> Result<ExportAccount, sqlx::Error> {
    let a: AccountRow = sqlx::query_as(
        "SELECT a.id, a.organisation_id, o.name AS organisation_name, a.role, a.display_name,
                a.email, a.login_name, a.locale, a.time_zone, a.quiet_start_min, a.quiet_end_min,
                a.reminder_time_min, a.discreet_pushes, a.last_nudge_at, a.created_at,
                a.deactivated_at
         FROM accounts a JOIN organisations o ON o.id = a.organisation_id
         WHERE a.id = $1",
    )
    .bind(account_id)
    .fetch_one(&mut *conn)
    .await?;
    let preferences: Option<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT new_posts, replies, reactions, updated_at
         FROM notification_preferences WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(ExportAccount {
        id: a.id,
        organisation_id: a.organisation_id,
        organisation_name: a.organisation_name,
        role: a.role,
        display_name: a.display_name,
        email: a.email,
        login_name: a.login_name,
        locale: a.locale,
        time_zone: a.time_zone,
        quiet_hours_start: LocalTime::format(a.quiet_start_min),
        quiet_hours_end: LocalTime::format(a.quiet_end_min),
        preferred_reminder_time: a.reminder_time_min.map(LocalTime::format),
        discreet_pushes: a.discreet_pushes,
        notification_preferences: preferences.map(|(new_posts, replies, reactions, at)| {
            ExportNotificationPreferences {
                new_posts,
                replies: replies != 0,
                reactions: reactions != 0,
                updated_at: from_ms(at),
            }
        }),
        last_nudge_at: opt_from_ms(a.last_nudge_at),
        created_at: from_ms(a.created_at),
        deactivated_at: opt_from_ms(a.deactivated_at),
    })
}

/// Every circle the account is or was in.
async fn memberships(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportMembership>, sqlx::Error> {
    let memberships: Vec<MembershipRow> = sqlx::query_as(
        "SELECT m.id, m.circle_id, c.name AS circle_name, m.pseudonym, m.role, m.joined_at,
                m.left_at, m.away_until, m.nudges_enabled, m.last_activity_at, m.last_read_at,
                m.consent_version, m.consented_at, c.agreement_version, c.agreement_text
         FROM memberships m JOIN circles c ON c.id = m.circle_id
         WHERE m.account_id = $1 ORDER BY m.joined_at, m.id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(memberships
        .into_iter()
        .map(|m| ExportMembership {
            consent: m.consent_version.map(|version| ExportConsent {
                version,
                consented_at: opt_from_ms(m.consented_at),
                agreement_text: (version == m.agreement_version).then(|| m.agreement_text.clone()),
                current_agreement_version: m.agreement_version,
            }),
            id: m.id,
            circle_id: m.circle_id,
            circle_name: m.circle_name,
            pseudonym: m.pseudonym,
            role: m.role,
            joined_at: from_ms(m.joined_at),
            left_at: opt_from_ms(m.left_at),
            away_until: opt_from_ms(m.away_until),
            nudges_enabled: m.nudges_enabled != 0,
            last_activity_at: from_ms(m.last_activity_at),
            last_read_at: from_ms(m.last_read_at),
        })
        .collect())
}

/// The account's own posts.
async fn posts(conn: &mut AnyConnection, account_id: &str) -> Result<Vec<ExportPost>, sqlx::Error> {
    let posts: Vec<PostRow> = sqlx::query_as(
        "SELECT p.id, p.circle_id, p.author_membership_id, p.reply_to_id, p.body, p.created_at,
                p.edited_at, p.deleted_at, p.hidden_at, p.hidden_reason
         FROM posts p JOIN memberships m ON m.id = p.author_membership_id
         WHERE m.account_id = $1 ORDER BY p.created_at, p.id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(posts
        .into_iter()
        .map(|p| ExportPost {
            id: p.id,
            circle_id: p.circle_id,
            membership_id: p.author_membership_id,
            reply_to_id: p.reply_to_id,
            body: p.body,
            created_at: from_ms(p.created_at),
            edited_at: opt_from_ms(p.edited_at),
            deleted_at: opt_from_ms(p.deleted_at),
            hidden_at: opt_from_ms(p.hidden_at),
            hidden_reason: p.hidden_reason,
        })
        .collect())
}

/// The reactions the account gave.
async fn reactions(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportReaction>, sqlx::Error> {
    let reactions: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT r.post_id, r.kind, r.created_at
         FROM reactions r JOIN memberships m ON m.id = r.membership_id
         WHERE m.account_id = $1 ORDER BY r.created_at, r.post_id, r.kind",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(reactions
        .into_iter()
        .map(|(post_id, kind, at)| ExportReaction {
            post_id,
            kind,
            created_at: from_ms(at),
        })
        .collect())
}

/// The account's check-ins (not tombstones).
async fn checkins(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportCheckin>, sqlx::Error> {
    type CheckinRow = (
        String,
        String,
        String,
        Option<i64>,
        Option<String>,
        i64,
        i64,
    );
    let checkins: Vec<CheckinRow> = sqlx::query_as(
        "SELECT c.id, c.circle_id, c.kind, c.mood, c.note, c.wants_contact, c.created_at
         FROM checkins c JOIN memberships m ON m.id = c.membership_id
         WHERE m.account_id = $1 AND c.removed_at IS NULL ORDER BY c.created_at, c.id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(checkins
        .into_iter()
        .map(
            |(id, circle_id, kind, mood, note, wants_contact, at)| ExportCheckin {
                id,
                circle_id,
                kind,
                mood,
                note,
                wants_contact: wants_contact != 0,
                created_at: from_ms(at),
            },
        )
        .collect())
}

/// The account's inbox.
async fn notifications(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportNotification>, sqlx::Error> {
    type NotificationRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        Option<i64>,
    );
    let notifications: Vec<NotificationRow> = sqlx::query_as(
        "SELECT id, kind, title, body, circle_id, created_at, read_at
         FROM notifications WHERE account_id = $1 ORDER BY created_at, id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(notifications
        .into_iter()
        .map(
            |(id, kind, title, body, circle_id, at, read_at)| ExportNotification {
                id,
                kind,
                title,
                body,
                circle_id,
                created_at: from_ms(at),
                read_at: opt_from_ms(read_at),
            },
        )
        .collect())
}

/// The account's devices, never their tokens.
async fn devices(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportDevice>, sqlx::Error> {
    type DeviceRow = (
        String,
        String,
        Option<String>,
        i64,
        Option<i64>,
        Option<String>,
    );
    let devices: Vec<DeviceRow> = sqlx::query_as(
        "SELECT id, kind, label, created_at, removed_at, removed_reason
         FROM devices WHERE account_id = $1 ORDER BY created_at, id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(devices
        .into_iter()
        .map(
            |(id, kind, label, at, removed_at, removed_reason)| ExportDevice {
                id,
                kind,
                label,
                created_at: from_ms(at),
                removed_at: opt_from_ms(removed_at),
                removed_reason,
            },
        )
        .collect())
}

/// The account's sign-ins, never their tokens.
async fn sessions(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportSession>, sqlx::Error> {
    let sessions: Vec<(i64, i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT created_at, last_used_at, revoked_at, revoked_reason
         FROM sessions WHERE account_id = $1 ORDER BY created_at, id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(sessions
        .into_iter()
        .map(|(at, used, revoked_at, revoked_reason)| ExportSession {
            created_at: from_ms(at),
            last_used_at: from_ms(used),
            revoked_at: opt_from_ms(revoked_at),
            revoked_reason,
        })
        .collect())
}

/// Recovery codes issued for the account, never the codes.
async fn recovery_codes(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportRecoveryCode>, sqlx::Error> {
    type CodeRow = (Option<String>, Option<String>, i64, i64, Option<i64>);
    let codes: Vec<CodeRow> = sqlx::query_as(
        "SELECT s.display_name, k.circle_id, k.created_at, k.expires_at, k.used_at
         FROM account_codes k LEFT JOIN accounts s ON s.id = k.created_by
         WHERE k.account_id = $1 AND k.purpose = 'recovery' ORDER BY k.created_at",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(codes
        .into_iter()
        .map(
            |(issued_by, circle_id, at, expires, used)| ExportRecoveryCode {
                issued_by,
                circle_id,
                issued_at: from_ms(at),
                expires_at: from_ms(expires),
                used_at: opt_from_ms(used),
            },
        )
        .collect())
}

/// Alerts about the account's memberships, with the workers' notes.
async fn alerts(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportAlert>, sqlx::Error> {
    let alerts: Vec<AlertRow> = sqlx::query_as(
        "SELECT al.id, al.circle_id, al.membership_id, al.reason, al.status, al.opened_at,
                al.acknowledged_at, ack.display_name AS acknowledged_by, al.snoozed_until,
                al.escalated_at, al.resolved_at, res.display_name AS resolved_by,
                al.resolution_outcome, al.resolution_note
         FROM alerts al JOIN memberships m ON m.id = al.membership_id
         LEFT JOIN accounts ack ON ack.id = al.acknowledged_by
         LEFT JOIN accounts res ON res.id = al.resolved_by
         WHERE m.account_id = $1 ORDER BY al.opened_at, al.id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(alerts
        .into_iter()
        .map(|r| ExportAlert {
            id: r.id,
            circle_id: r.circle_id,
            membership_id: r.membership_id,
            reason: r.reason,
            status: r.status,
            opened_at: from_ms(r.opened_at),
            acknowledged_at: opt_from_ms(r.acknowledged_at),
            acknowledged_by: r.acknowledged_by,
            snoozed_until: opt_from_ms(r.snoozed_until),
            escalated_at: opt_from_ms(r.escalated_at),
            resolved_at: opt_from_ms(r.resolved_at),
            resolved_by: r.resolved_by,
            resolution_outcome: r.resolution_outcome,
            resolution_note: r.resolution_note,
        })
        .collect())
}

/// The reminder-ladder steps that fired for the account.
async fn silence_steps(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportSilenceStep>, sqlx::Error> {
    let steps: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.membership_id, s.action, s.outcome, s.silence_start, s.fired_at
         FROM silence_steps s JOIN memberships m ON m.id = s.membership_id
         WHERE m.account_id = $1 ORDER BY s.fired_at, s.membership_id, s.step_key",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(steps
        .into_iter()
        .map(
            |(membership_id, action, outcome, start, fired)| ExportSilenceStep {
                membership_id,
                action,
                outcome,
                silence_started_at: from_ms(start),
                fired_at: from_ms(fired),
            },
        )
        .collect())
}

/// Every access by staff to the account's data, oldest first.
async fn access_log(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportAccessEntry>, sqlx::Error> {
    let access: Vec<AccessRow> = sqlx::query_as(
        "SELECT l.accessed_at, s.display_name AS staff_name, l.actor_role, l.on_behalf_of,
                l.circle_id, l.kind, l.action, l.result_count, l.operation
         FROM access_log l LEFT JOIN accounts s ON s.id = l.actor_account_id
         WHERE l.subject_account_id = $1 ORDER BY l.accessed_at, l.organisation_id, l.seq",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(access
        .into_iter()
        .map(|r| ExportAccessEntry {
            accessed_at: from_ms(r.accessed_at),
            staff_name: r.staff_name,
            staff_role: r.actor_role,
            on_your_behalf: r.on_behalf_of.as_deref() == Some(account_id),
            circle_id: r.circle_id,
            kind: r.kind,
            action: r.action,
            result_count: r.result_count,
            operation: r.operation,
        })
        .collect())
}

/// A few sentences in the member's language on what the document holds.
/// The date at `at` in the member's time zone (UTC for a zone the server
/// does not know): just after midnight in Amsterdam is still yesterday in
/// UTC.
fn local_date(at: Time, time_zone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    at.to_zoned(tz).strftime("%Y-%m-%d").to_string()
}

fn summary(doc: &DataExport) -> String {
    let date = local_date(doc.generated_at, &doc.account.time_zone);
    let circles: Vec<&str> = doc
        .memberships
        .iter()
        .map(|m| m.circle_name.as_str())
        .collect();
    let circles = circles.join(", ");
    let n = |v: usize| v.to_string();
    match doc.language {
        Locale::Nl => format!(
            "Dit zijn alle gegevens die Kring op {date} over je bewaart. \
             Je zit of zat in {} kring(en): {circles}. \
             Je schreef {} bericht(en), gaf {} reactie(s) en deed {} check-in(s). \
             Je inbox heeft {} melding(en); {} toestel(len) kregen je meldingen. \
             Er zijn {} signaal/signalen over je naar je begeleiders gegaan. \
             Medewerkers hebben {} keer je gegevens bekeken of gewijzigd (het toegangslog). \
             Andere deelnemers staan er alleen met een id in; wachtwoorden, tokens en codes nooit.",
            n(doc.memberships.len()),
            n(doc.posts.len()),
            n(doc.reactions.len()),
            n(doc.checkins.len()),
            n(doc.notifications.len()),
            n(doc.devices.len()),
            n(doc.alerts.len()),
            n(doc.access_log.len()),
        ),
        Locale::En => format!(
            "This is everything Kring holds about you on {date}. \
             You are or were in {} circle(s): {circles}. \
             You wrote {} post(s), gave {} reaction(s) and made {} check-in(s). \
             Your inbox holds {} notification(s); {} device(s) received your pushes. \
             {} alert(s) about you went to your workers. \
             Staff read or changed your data {} time(s) (the access log). \
             Other members appear only by id; passwords, tokens and codes never.",
            n(doc.memberships.len()),
            n(doc.posts.len()),
            n(doc.reactions.len()),
            n(doc.checkins.len()),
            n(doc.notifications.len()),
            n(doc.devices.len()),
            n(doc.alerts.len()),
            n(doc.access_log.len()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::local_date;

    #[test]
    fn the_summary_date_is_the_members_own() {
        let at: jiff::Timestamp = "2026-11-30T23:30:00Z".parse().unwrap_or_default();
        assert_eq!(local_date(at, "Europe/Amsterdam"), "2026-12-01");
        assert_eq!(local_date(at, "America/New_York"), "2026-11-30");
        assert_eq!(local_date(at, "Nowhere/Atlantis"), "2026-11-30");
    }
}

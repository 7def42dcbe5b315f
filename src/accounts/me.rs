//! The signed-in account's own profile and settings.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::accounts::types::{
    DiscreetPushes, LocalTime, Locale, QuietHours, TimeZoneName, WorkingHoursSetting,
};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Validator};
use crate::http::{Caller, Json, Role};
use crate::ids::AccountId;
use crate::state::AppState;
use crate::store::Tx;

/// An account as its owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a5b2c1d07e4f8a9b0c1d2e3f4a5b",
    "organisation_id": "0193a5b0c0de7a11b2c3d4e5f6a7b8c9",
    "role": "member",
    "display_name": null,
    "email": null,
    "login_name": "zonnebloem58",
    "locale": "nl",
    "time_zone": "Europe/Amsterdam",
    "quiet_hours": {"start": "21:00", "end": "09:00"},
    "preferred_reminder_time": "10:00",
    "working_hours": null,
    "discreet_pushes": "sensitive_circles",
    "created_at": "2026-11-02T09:00:00Z"
}))]
pub struct Me {
    /// The account's id.
    #[schema(example = "0193a5b2c1d07e4f8a9b0c1d2e3f4a5b")]
    pub id: String,
    /// The organisation the account belongs to; nothing crosses
    /// organisations.
    pub organisation_id: String,
    /// What the account may do in its organisation.
    pub role: Role,
    /// Staff only: the name colleagues see. Members appear under a pseudonym
    /// per circle instead.
    #[schema(example = "Anna de Vries")]
    pub display_name: Option<String>,
    /// Staff only.
    #[schema(example = "anna@buurtwerk.example")]
    pub email: Option<String>,
    /// The login name a member chose when joining, to sign in with a
    /// password on another device; null for staff and for members without
    /// one.
    #[schema(example = "zonnebloem58")]
    pub login_name: Option<String>,
    /// The language of notifications and reminders.
    pub locale: Locale,
    /// The zone in which quiet hours, the reminder time and working hours
    /// are read.
    #[schema(value_type = TimeZoneName)]
    pub time_zone: String,
    /// No nudge is sent inside them (21:00 to 09:00 unless changed).
    pub quiet_hours: QuietHours,
    /// The member's preferred local time for reminders, `HH:MM`; null for
    /// none (a reminder then comes when the quiet hours end).
    #[schema(value_type = Option<LocalTime>)]
    pub preferred_reminder_time: Option<String>,
    /// Staff only: when silence alerts may reach you.
    pub working_hours: Option<WorkingHoursSetting>,
    /// When your pushes are discreet ("Kring: you have a new message", with
    /// no circle name, pseudonym or message text on the lock screen).
    pub discreet_pushes: DiscreetPushes,
    /// When the account was made.
    #[schema(value_type = String, format = DateTime, example = "2026-11-02T09:00:00Z")]
    pub created_at: jiff::Timestamp,
}

#[derive(sqlx::FromRow)]
struct MeRow {
    id: String,
    organisation_id: String,
    role: String,
    display_name: Option<String>,
    email: Option<String>,
    login_name: Option<String>,
    locale: String,
    time_zone: String,
    quiet_start_min: i64,
    quiet_end_min: i64,
    reminder_time_min: Option<i64>,
    work_days: String,
    discreet_pushes: String,
    work_start_min: i64,
    work_end_min: i64,
    created_at: i64,
}

pub async fn load_me(conn: &mut AnyConnection, account_id: &str) -> ApiResult<Me> {
    let row: Option<MeRow> = sqlx::query_as(
        "SELECT id, organisation_id, role, display_name, email, login_name, locale, time_zone,
                quiet_start_min, quiet_end_min, reminder_time_min, work_days, work_start_min, work_end_min,
                discreet_pushes, created_at
         FROM accounts WHERE id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(ApiError::NotFound("account"))?;
    let role = Role::parse(&row.role).map_err(ApiError::Internal)?;
    let working_hours = role.is_staff().then(|| WorkingHoursSetting {
        days: crate::silence::timing::parse_work_days(&row.work_days)
            .into_iter()
            .map(i64::from)
            .collect(),
        start: LocalTime::format(row.work_start_min),
        end: LocalTime::format(row.work_end_min),
    });
    Ok(Me {
        id: row.id,
        organisation_id: row.organisation_id,
        role,
        working_hours,
        display_name: row.display_name,
        email: row.email,
        login_name: row.login_name,
        locale: Locale::parse(&row.locale).map_err(ApiError::Internal)?,
        discreet_pushes: DiscreetPushes::parse(&row.discreet_pushes).map_err(ApiError::Internal)?,
        time_zone: row.time_zone,
        quiet_hours: QuietHours {
            start: LocalTime::format(row.quiet_start_min),
            end: LocalTime::format(row.quiet_end_min),
        },
        preferred_reminder_time: row.reminder_time_min.map(LocalTime::format),
        created_at: from_ms(row.created_at),
    })
}

/// Your account and settings.
///
/// Any signed-in person: member, worker or coordinator. Changes nothing.
/// `display_name`, `email` and `working_hours` are null for members, who
/// appear under a pseudonym per circle instead (see `circle_membership_get`).
#[utoipa::path(
    get, path = "/v1/me", tag = "me",
    operation_id = "me_get",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your account", body = Me),
    )
)]
pub async fn get_me(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Me>> {
    let mut conn = state.store.pool().acquire().await?;
    Ok(axum::Json(load_me(&mut conn, &caller.account_id).await?))
}

/// Changes to your settings; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "locale": "nl",
    "time_zone": "Europe/Amsterdam",
    "quiet_hours": {"start": "21:00", "end": "09:00"},
    "preferred_reminder_time": "10:00"
}))]
pub struct UpdateMe {
    /// The language of notifications and reminders.
    #[schema(value_type = Option<Locale>)]
    pub locale: Option<String>,
    /// The zone the phone is set to.
    #[schema(value_type = Option<TimeZoneName>)]
    pub time_zone: Option<String>,
    /// When no nudge may come, in your own time zone.
    pub quiet_hours: Option<QuietHours>,
    /// `HH:MM`, or null to have no preference. Nudges come at this local
    /// time. It must lie outside your quiet hours (the ones sent with it, or
    /// the stored ones): otherwise 422 on this field.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<LocalTime>)]
    pub preferred_reminder_time: Option<Option<String>>,
    /// Staff only: the name colleagues see.
    #[schema(value_type = Option<crate::openapi::Name>)]
    pub display_name: Option<String>,
    /// Staff only: your working week.
    pub working_hours: Option<WorkingHoursSetting>,
    /// When your pushes are discreet: `sensitive_circles` (the default:
    /// pushes about circles your organisation marked sensitive), `always` or
    /// `never`. The inbox always keeps the full text.
    #[schema(value_type = Option<DiscreetPushes>)]
    pub discreet_pushes: Option<String>,
}

/// Change your locale, time zone, quiet hours, reminder time or discreet pushes.
///
/// Any signed-in person; `display_name` and `working_hours` are for staff
/// only (422 for a member). Absent fields stay as they are;
/// `preferred_reminder_time: null` removes the preference. A changed time
/// zone, quiet hours, reminder time or working hours reschedules the
/// pending reminders and alerts of every circle you are in, at once. A
/// changed `discreet_pushes` applies to pushes still waiting to be sent.
/// Every bad field is listed in one 422. Answers the account as it is now.
#[utoipa::path(
    patch, path = "/v1/me", tag = "me",
    operation_id = "me_update",
    security(("bearer" = [])),
    request_body = UpdateMe,
    responses(
        (status = 200, description = "Your updated account", body = Me),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<UpdateMe>,
) -> ApiResult<axum::Json<Me>> {
    let changes = parse_changes(&req, caller.role)?;
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    check_reminder_outside_quiet_hours(&mut tx, &caller.account_id, &changes).await?;
    write_settings(
        &mut tx,
        &AccountId::from(caller.account_id.as_str()),
        changes,
        now,
    )
    .await?;
    let me = load_me(&mut tx, &caller.account_id).await?;
    tx.commit().await?;
    Ok(axum::Json(me))
}

/// The request as one changes value; every field's problem at once (422).
fn parse_changes(req: &UpdateMe, role: Role) -> ApiResult<AccountChanges> {
    let mut v = Validator::default();
    let locale = req
        .locale
        .as_deref()
        .map(|l| v.check("locale", Locale::parse(l)));
    let tz = req
        .time_zone
        .as_deref()
        .map(|t| v.check("time_zone", TimeZoneName::parse(t)));
    let quiet = req.quiet_hours.as_ref().map(|q| {
        (
            v.check("quiet_hours.start", LocalTime::parse(&q.start)),
            v.check("quiet_hours.end", LocalTime::parse(&q.end)),
        )
    });
    let reminder = req.preferred_reminder_time.as_ref().map(|r| match r {
        Some(t) => v
            .check("preferred_reminder_time", LocalTime::parse(t))
            .map(Some),
        None => Some(None),
    });
    let display_name = req.display_name.as_deref().map(|n| {
        v.check(
            "display_name",
            if role.is_staff() {
                validate_display_name(n)
            } else {
                Err("members appear under their pseudonym per circle".into())
            },
        )
    });
    let discreet = req
        .discreet_pushes
        .as_deref()
        .map(|d| v.check("discreet_pushes", DiscreetPushes::parse(d)));
    let working = req.working_hours.as_ref().map(|w| {
        if role.is_staff() {
            parse_working_hours(&mut v, w)
        } else {
            v.fail("working_hours", "only staff have working hours");
            None
        }
    });
    if let Some((Some(start), Some(end))) = quiet
        && start == end
    {
        v.fail("quiet_hours", "start and end must differ");
    }
    v.finish()?;
    Ok(AccountChanges {
        locale: locale.flatten().map(Locale::as_str),
        time_zone: tz.flatten().map(|t| t.as_str().to_owned()),
        quiet_hours: match quiet {
            Some((Some(start), Some(end))) => Some((start.minutes(), end.minutes())),
            _ => None,
        },
        reminder_time: reminder.flatten().map(|r| r.map(LocalTime::minutes)),
        working_hours: working.flatten(),
        display_name: display_name.flatten(),
        discreet_pushes: discreet.flatten().map(DiscreetPushes::as_str),
    })
}

/// Working hours as weekdays (`"12345"`), start and end minute.
fn parse_working_hours(v: &mut Validator, w: &WorkingHoursSetting) -> Option<(String, i64, i64)> {
    let start = v.check("working_hours.start", LocalTime::parse(&w.start));
    let end = v.check("working_hours.end", LocalTime::parse(&w.end));
    if w.days.is_empty() || w.days.iter().any(|d| !(1..=7).contains(d)) {
        v.fail(
            "working_hours.days",
            "must list weekdays 1 (Monday) to 7 (Sunday)",
        );
    }
    match (start, end) {
        (Some(s), Some(e)) if s.minutes() < e.minutes() => {
            let mut days: Vec<i64> = w.days.clone();
            days.sort_unstable();
            days.dedup();
            Some((
                days.iter().map(i64::to_string).collect::<String>(),
                s.minutes(),
                e.minutes(),
            ))
        }
        (Some(_), Some(_)) => {
            v.fail("working_hours.end", "must be later than start");
            None
        }
        _ => None,
    }
}

/// A reminder inside one's own quiet hours could never be kept: refused
/// (422), whichever of the two changes.
async fn check_reminder_outside_quiet_hours(
    tx: &mut Tx,
    account_id: &str,
    changes: &AccountChanges,
) -> ApiResult<()> {
    if changes.quiet_hours.is_none() && !matches!(changes.reminder_time, Some(Some(_))) {
        return Ok(());
    }
    let (start, end, current): (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT quiet_start_min, quiet_end_min, reminder_time_min FROM accounts WHERE id = $1",
    )
    .bind(account_id)
    .fetch_one(&mut **tx)
    .await?;
    let (start, end) = changes.quiet_hours.unwrap_or((start, end));
    let reminder_min = changes.reminder_time.unwrap_or(current);
    let window = crate::notifications::timing::QuietWindow {
        time_zone: String::new(),
        start_min: start,
        end_min: end,
    };
    if reminder_min.is_some_and(|m| window.contains_minute(m)) {
        return Err(ApiError::field(
            "preferred_reminder_time",
            format!(
                "must be outside your quiet hours ({}–{})",
                LocalTime::format(start),
                LocalTime::format(end)
            ),
        ));
    }
    Ok(())
}

/// A staff member's name: at most 80 characters as sent, then trimmed, not
/// blank, in NFC and without control or invisible characters
/// (`crate::openapi::Name`).
pub fn validate_display_name(name: &str) -> Result<String, String> {
    let len = name.chars().count();
    let name = crate::http::text::name(name)?;
    let name = name.trim();
    if len > 80 || name.is_empty() {
        return Err("must be 1 to 80 characters".into());
    }
    Ok(name.to_owned())
}

/// What an account changes about itself; `None` leaves a setting.
#[derive(Debug, Default)]
pub struct AccountChanges {
    pub locale: Option<&'static str>,
    pub time_zone: Option<String>,
    /// Start and end, in minutes after midnight.
    pub quiet_hours: Option<(i64, i64)>,
    /// `Some(None)` clears the reminder time.
    pub reminder_time: Option<Option<i64>>,
    /// Weekdays (`"12345"`), start and end minute.
    pub working_hours: Option<(String, i64, i64)>,
    pub display_name: Option<String>,
    pub discreet_pushes: Option<&'static str>,
}

/// Writes an account's settings in one statement and reschedules every
/// membership of it (quiet hours, time zone and reminder time move nudges;
/// working hours move alerts), so no caller can forget.
pub async fn write_settings(
    tx: &mut Tx,
    account: &AccountId,
    changes: AccountChanges,
    now: i64,
) -> ApiResult<()> {
    let (quiet_start, quiet_end) = changes.quiet_hours.unzip();
    let (work_days, work_start, work_end) = match changes.working_hours {
        Some((days, start, end)) => (Some(days), Some(start), Some(end)),
        None => (None, None, None),
    };
    sqlx::query(
        "UPDATE accounts SET locale = COALESCE($1, locale), time_zone = COALESCE($2, time_zone),
                quiet_start_min = COALESCE($3, quiet_start_min),
                quiet_end_min = COALESCE($4, quiet_end_min),
                reminder_time_min = CASE WHEN $5 = 1 THEN $6 ELSE reminder_time_min END,
                work_days = COALESCE($7, work_days),
                work_start_min = COALESCE($8, work_start_min),
                work_end_min = COALESCE($9, work_end_min),
                display_name = COALESCE($10, display_name),
                discreet_pushes = COALESCE($11, discreet_pushes)
         WHERE id = $12",
    )
    .bind(changes.locale)
    .bind(changes.time_zone)
    .bind(quiet_start)
    .bind(quiet_end)
    .bind(i64::from(changes.reminder_time.is_some()))
    .bind(changes.reminder_time.flatten())
    .bind(work_days)
    .bind(work_start)
    .bind(work_end)
    .bind(changes.display_name)
    .bind(changes.discreet_pushes)
    .bind(account.as_str())
    .execute(&mut **tx)
    .await?;
    crate::silence::engine::reschedule_account(tx, account.as_str(), now).await?;
    Ok(())
}

//! Parsed account settings: locale, IANA time zone, local times of day.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// The languages Kring speaks: `nl` (Dutch) and `en` (English).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Nl,
    En,
}

impl Locale {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "nl" => Ok(Self::Nl),
            "en" => Ok(Self::En),
            _ => Err("must be nl or en".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nl => "nl",
            Self::En => "en",
        }
    }
}

/// When pushes are discreet: a neutral "Kring: you have a new message" on
/// the lock screen, with no circle name, pseudonym or message text (the
/// inbox item keeps the full text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscreetPushes {
    /// Discreet for circles the organisation marked `sensitive`; the default.
    SensitiveCircles,
    /// Every push is discreet.
    Always,
    /// No push is discreet, not even from a sensitive circle.
    Never,
}

impl DiscreetPushes {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "sensitive_circles" => Ok(Self::SensitiveCircles),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err("must be sensitive_circles, always or never".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SensitiveCircles => "sensitive_circles",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    /// Whether a push about a circle (sensitive or not; none for pushes
    /// about the account itself) is discreet.
    pub fn applies(self, circle_sensitive: bool) -> bool {
        match self {
            Self::SensitiveCircles => circle_sensitive,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// An IANA time zone name that this server knows, e.g. `Europe/Amsterdam`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 {
            return Err("must be an IANA time zone such as Europe/Amsterdam".into());
        }
        jiff::tz::TimeZone::get(s)
            .map(|_| Self(s.to_owned()))
            .map_err(|_| "must be an IANA time zone such as Europe/Amsterdam".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// In the spec: a string, not a list of zones. Apps are not tied to the
/// server's time zone database; the server checks the name (422 for one it
/// does not know).
impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(TIME_ZONE_DESCRIPTION))
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(TIME_ZONE_PATTERN))
            .examples(["Europe/Amsterdam"])
            .into()
    }
}

const TIME_ZONE_DESCRIPTION: &str = "An IANA time zone name, as in the tz database: `Area/Location` \
     such as `Europe/Amsterdam` or `America/Paramaribo`, or `UTC`. Send the zone the device is \
     set to (iOS `TimeZone.current.identifier`, Android `ZoneId.systemDefault().id`, JavaScript \
     `Intl.DateTimeFormat().resolvedOptions().timeZone`). The server checks the name against \
     its time zone database: a zone it does not know is refused with 422 `validation_failed` \
     naming the field. Quiet hours, reminder times and working hours are read in this zone.";

/// The characters of IANA zone names (`Etc/GMT+1`, `America/Port-au-Prince`).
const TIME_ZONE_PATTERN: &str = "^[A-Za-z0-9_+/-]+$";

impl ToSchema for TimeZoneName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TimeZone")
    }
}

/// A local time of day, `HH:MM`, stored as minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime(pub i64);

impl LocalTime {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || "must be a time of day as HH:MM, e.g. 09:00".to_owned();
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }

    pub fn minutes(self) -> i64 {
        self.0
    }

    pub fn format(minutes: i64) -> String {
        format!(
            "{:02}:{:02}",
            minutes.div_euclid(60) % 24,
            minutes.rem_euclid(60)
        )
    }
}

/// In the spec: `HH:MM`, 00:00 to 23:59.
impl utoipa::PartialSchema for LocalTime {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A local time of day, `HH:MM` (00:00 to 23:59)."))
            .pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9]$"))
            .examples(["09:00"])
            .into()
    }
}

impl ToSchema for LocalTime {}

/// When the person does not want to be disturbed, in their own time zone.
/// No nudge is written or pushed inside it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"start": "21:00", "end": "09:00"}))]
pub struct QuietHours {
    /// Start of the quiet window, local `HH:MM`.
    #[schema(value_type = LocalTime)]
    pub start: String,
    /// End of the quiet window, local `HH:MM`; may be earlier than `start`
    /// (the window then spans midnight), but not the same.
    #[schema(value_type = LocalTime)]
    pub end: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_parse_strictly() {
        assert_eq!(LocalTime::parse("09:30"), Ok(LocalTime(570)));
        assert_eq!(LocalTime::parse("23:59"), Ok(LocalTime(1439)));
        for bad in [
            "24:00", "9:30", "09:60", "0930", "", "ab:cd", "+9:30", "09:+5", "-0:00",
        ] {
            assert!(LocalTime::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(LocalTime::format(570), "09:30");
    }

    #[test]
    fn time_zones_must_exist() {
        assert!(TimeZoneName::parse("Europe/Amsterdam").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert!(TimeZoneName::parse("").is_err());
    }

    /// The spec's pattern admits every zone the server knows, so an app
    /// that validates against the spec never refuses a real zone.
    #[test]
    fn every_known_zone_fits_the_spec() {
        let fits = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+/-".contains(&b))
        };
        assert_eq!(TIME_ZONE_PATTERN, "^[A-Za-z0-9_+/-]+$");
        let mut count = 0;
        for name in jiff::tz::TimeZoneDatabase::bundled().available() {
            assert!(fits(name.as_str()), "{}", name.as_str());
            assert!(
                TimeZoneName::parse(name.as_str()).is_ok(),
                "{}",
                name.as_str()
            );
            count += 1;
        }
        assert!(count > 400, "only {count} zones");
    }
}

/// When a worker works, in their own time zone: alerts about silence reach
/// them only then, and escalation counts only these hours.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}))]
pub struct WorkingHoursSetting {
    /// ISO weekdays: 1 = Monday … 7 = Sunday.
    #[schema(value_type = Vec<crate::openapi::Weekday>, min_items = 1)]
    pub days: Vec<i64>,
    /// When the working day starts, local `HH:MM`.
    #[schema(value_type = LocalTime)]
    pub start: String,
    /// Later than `start`.
    #[schema(value_type = LocalTime)]
    pub end: String,
}

//! Parsed account settings: locale, IANA time zone, local times of day.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The languages Kring speaks.
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

/// A local time of day, `HH:MM`, stored as minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime(pub i64);

impl LocalTime {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || "must be a time of day as HH:MM, e.g. 09:00".to_owned();
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
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

/// When the person does not want to be disturbed, in their own time zone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuietHours {
    /// Start of the quiet window, local `HH:MM`.
    #[schema(example = "21:00", pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub start: String,
    /// End of the quiet window, local `HH:MM`; may be earlier than `start`
    /// (the window then spans midnight).
    #[schema(example = "09:00", pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub end: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_parse_strictly() {
        assert_eq!(LocalTime::parse("09:30"), Ok(LocalTime(570)));
        assert_eq!(LocalTime::parse("23:59"), Ok(LocalTime(1439)));
        for bad in ["24:00", "9:30", "09:60", "0930", "", "ab:cd"] {
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
}

/// When a worker works, in their own time zone: alerts about silence reach
/// them only then, and escalation counts only these hours.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}))]
pub struct WorkingHoursSetting {
    /// ISO weekdays: 1 = Monday … 7 = Sunday.
    pub days: Vec<i64>,
    #[schema(example = "09:00")]
    pub start: String,
    #[schema(example = "17:00")]
    pub end: String,
}

//! The words of notifications, in Dutch and English. Pushes name people by
//! pseudonym and circles by name, and never quote a post: lock screens are
//! seen by others.

use crate::accounts::types::Locale;
use crate::push::payload::NotificationKind;

/// What a text may mention.
#[derive(Debug, Default, Clone)]
pub struct TextParams {
    pub circle_name: String,
    pub actor: String,
    pub reaction: Option<String>,
    pub message: Option<String>,
    pub count: i64,
    /// Alerts: what the workers are told.
    pub note: Option<AlertNote>,
    /// Alerts: how long the member has been quiet, in milliseconds.
    pub quiet_ms: i64,
    /// Questionnaires: a reminder of one already asked, not the first ask.
    pub reminder: bool,
}

/// What an alert notice tells the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertNote {
    /// The policy's alert step: quiet for some days.
    Silence,
    /// Told again: a repeat after the ladder, or a silence after a break.
    StillQuiet,
    /// The member asked for contact.
    ContactRequest,
    /// A snooze ran out.
    SnoozeOver,
}

/// "about 4 days" as a worker would say it: whole days, rounded to the
/// nearest, never fewer than one, singular and plural right.
fn about_days(locale: Locale, quiet_ms: i64) -> String {
    let days = ((quiet_ms.max(0) + 12 * 3_600_000) / 86_400_000).max(1);
    match (locale, days) {
        (Locale::Nl, 1) => "ongeveer een dag".to_owned(),
        (Locale::Nl, d) => format!("ongeveer {d} dagen"),
        (Locale::En, 1) => "about a day".to_owned(),
        (Locale::En, d) => format!("about {d} days"),
    }
}

fn reaction_word(locale: Locale, kind: &str) -> &'static str {
    match (locale, kind) {
        (Locale::Nl, "heart") => "een hartje",
        (Locale::Nl, "hug") => "een knuffel",
        (Locale::Nl, "strong") => "sterkte",
        (Locale::Nl, _) => "een bedankje",
        (Locale::En, "heart") => "a heart",
        (Locale::En, "hug") => "a hug",
        (Locale::En, "strong") => "strength",
        (Locale::En, _) => "thanks",
    }
}

/// The warm texts of nudges; a member never gets the same one twice in a row.
pub const NUDGES_NL: &[&str] = &[
    "We denken aan je. Laat je even weten hoe het gaat?",
    "Het is een paar dagen stil. Alles goed? Een kort berichtje is genoeg.",
    "Je kring mist je. Zin om iets te delen?",
    "Even een zacht duwtje: hoe is het met je?",
    "Geen haast. Als je wilt, tik op 'Het gaat goed'.",
    "Fijn als je even van je laat horen, wanneer het jou uitkomt.",
];
pub const NUDGES_EN: &[&str] = &[
    "We're thinking of you. How are you doing?",
    "It's been quiet for a few days. All well? A short message is enough.",
    "Your circle misses you. Feel like sharing something?",
    "A gentle nudge: how are things?",
    "No rush. If you like, tap 'I'm OK'.",
    "It would be good to hear from you, whenever suits you.",
];

/// Title and body of a discreet push: nothing about the circle, a person
/// or a message, for a lock screen that others may see. The inbox item
/// keeps the full text.
pub fn discreet(locale: Locale) -> (&'static str, &'static str) {
    match locale {
        Locale::Nl => ("Kring", "Je hebt een nieuw bericht."),
        Locale::En => ("Kring", "You have a new message."),
    }
}

/// Title and body for a notification in the recipient's language.
pub fn render(kind: NotificationKind, locale: Locale, p: &TextParams) -> (String, String) {
    let circle = &p.circle_name;
    let actor = &p.actor;
    match (kind, locale) {
        (NotificationKind::Reply, Locale::Nl) => (
            format!("{actor} reageerde op je bericht"),
            format!("In {circle}"),
        ),
        (NotificationKind::Reply, Locale::En) => (
            format!("{actor} replied to your post"),
            format!("In {circle}"),
        ),
        (NotificationKind::NewPost, Locale::Nl) => (
            format!("Nieuw bericht in {circle}"),
            format!("{actor} schreef iets."),
        ),
        (NotificationKind::NewPost, Locale::En) => (
            format!("New post in {circle}"),
            format!("{actor} wrote something."),
        ),
        (NotificationKind::PostDigest, Locale::Nl) => (
            if p.count == 1 {
                format!("Nieuw bericht in {circle}")
            } else {
                format!("{} nieuwe berichten in {circle}", p.count)
            },
            "Kijk wat er gedeeld is.".to_owned(),
        ),
        (NotificationKind::PostDigest, Locale::En) => (
            if p.count == 1 {
                format!("New post in {circle}")
            } else {
                format!("{} new posts in {circle}", p.count)
            },
            "See what was shared.".to_owned(),
        ),
        (NotificationKind::Reaction, _) => {
            let word = reaction_word(locale, p.reaction.as_deref().unwrap_or(""));
            match locale {
                Locale::Nl => (
                    format!("{actor} stuurde je {word}"),
                    format!("Op je bericht in {circle}"),
                ),
                Locale::En => (
                    format!("{actor} sent you {word}"),
                    format!("On your post in {circle}"),
                ),
            }
        }
        (NotificationKind::PersonalMessage, Locale::Nl) => (
            format!("{actor} denkt aan je"),
            p.message.clone().unwrap_or_default(),
        ),
        (NotificationKind::PersonalMessage, Locale::En) => (
            format!("{actor} is thinking of you"),
            p.message.clone().unwrap_or_default(),
        ),
        (NotificationKind::Nudge, Locale::Nl) => (
            format!("Hoe gaat het? ({circle})"),
            p.message.clone().unwrap_or_default(),
        ),
        (NotificationKind::Nudge, Locale::En) => (
            format!("How are you? ({circle})"),
            p.message.clone().unwrap_or_default(),
        ),
        (NotificationKind::Alert, _) => {
            let days = about_days(locale, p.quiet_ms);
            let title = match (p.note.unwrap_or(AlertNote::Silence), locale) {
                (AlertNote::ContactRequest, Locale::Nl) => format!("{actor} wil graag contact"),
                (AlertNote::ContactRequest, Locale::En) => format!("{actor} would like contact"),
                (AlertNote::Silence, Locale::Nl) => format!("{actor} is al {days} stil"),
                (AlertNote::Silence, Locale::En) => {
                    format!("{actor} has been quiet for {days}")
                }
                (AlertNote::StillQuiet, Locale::Nl) => {
                    format!("{actor} is nog steeds stil, al {days}")
                }
                (AlertNote::StillQuiet, Locale::En) => {
                    format!("{actor} is still quiet, for {days} now")
                }
                (AlertNote::SnoozeOver, Locale::Nl) => {
                    format!("Herinnering: het signaal over {actor}")
                }
                (AlertNote::SnoozeOver, Locale::En) => format!("Reminder: the alert about {actor}"),
            };
            // "In" is the same word in both languages.
            (title, format!("In {circle}"))
        }
        (NotificationKind::AlertEscalated, Locale::Nl) => (
            format!("Signaal over {actor} is niet opgepakt"),
            format!("In {circle}; nog niemand heeft het signaal bevestigd."),
        ),
        (NotificationKind::AlertEscalated, Locale::En) => (
            format!("Alert about {actor} not acknowledged"),
            format!("In {circle}; nobody has acknowledged the alert yet."),
        ),
        (NotificationKind::AllClear, Locale::Nl) => (
            format!("{actor} is weer actief"),
            format!("Het signaal in {circle} is vanzelf opgelost."),
        ),
        (NotificationKind::AllClear, Locale::En) => (
            format!("{actor} is active again"),
            format!("The alert in {circle} resolved itself."),
        ),
        (NotificationKind::Questionnaire, _) => questionnaire(locale, p),
        // Security notices never hold the code: lock screens are seen by others.
        (NotificationKind::RecoveryCodeIssued, Locale::Nl) => (
            "Er is een herstelcode voor je account gemaakt".to_owned(),
            format!(
                "Door {actor} in {circle}. Heb jij daar niet om gevraagd? Neem dan contact op met je begeleider."
            ),
        ),
        (NotificationKind::RecoveryCodeIssued, Locale::En) => (
            "A recovery code was made for your account".to_owned(),
            format!(
                "By {actor} in {circle}. If you did not ask for it, contact your worker."
            ),
        ),
        (NotificationKind::AccountRecovered, Locale::Nl) => (
            "Je account is naar een nieuwe telefoon verhuisd".to_owned(),
            "Met een herstelcode; andere toestellen zijn afgemeld. Was jij dit niet? Neem dan contact op met je begeleider.".to_owned(),
        ),
        (NotificationKind::AccountRecovered, Locale::En) => (
            "Your account moved to a new phone".to_owned(),
            "With a recovery code; other devices were signed out. If this was not you, contact your worker.".to_owned(),
        ),
    }
}

/// A questionnaire's ask or reminder: gentle, saying it is voluntary, and
/// naming no instrument (a lock screen is seen by others).
fn questionnaire(locale: Locale, p: &TextParams) -> (String, String) {
    let circle = &p.circle_name;
    match (locale, p.reminder, p.count > 1) {
        (Locale::Nl, false, false) => (
            format!("Een korte vragenlijst ({circle})"),
            "Wil je vertellen hoe het met je gaat? Het duurt een paar minuten en is vrijwillig."
                .to_owned(),
        ),
        (Locale::Nl, false, true) => (
            format!("{} korte vragenlijsten ({circle})", p.count),
            "Wil je vertellen hoe het met je gaat? Het duurt een paar minuten en is vrijwillig."
                .to_owned(),
        ),
        (Locale::Nl, true, _) => (
            format!("Nog even: de vragenlijst ({circle})"),
            "Als je wilt, kun je hem nog invullen. Liever niet? Je kunt hem ook overslaan."
                .to_owned(),
        ),
        (Locale::En, false, false) => (
            format!("A short questionnaire ({circle})"),
            "Would you tell us how you are doing? It takes a few minutes and is voluntary."
                .to_owned(),
        ),
        (Locale::En, false, true) => (
            format!("{} short questionnaires ({circle})", p.count),
            "Would you tell us how you are doing? It takes a few minutes and is voluntary."
                .to_owned(),
        ),
        (Locale::En, true, _) => (
            format!("Still open: the questionnaire ({circle})"),
            "If you like, you can still fill it in. Rather not? You can skip it too.".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(note: AlertNote, hours: i64, locale: Locale) -> String {
        let p = TextParams {
            actor: "Zon".into(),
            circle_name: "Kring".into(),
            note: Some(note),
            quiet_ms: hours * 3_600_000,
            ..Default::default()
        };
        render(NotificationKind::Alert, locale, &p).0
    }

    #[test]
    fn alerts_count_days_as_a_worker_would() {
        use AlertNote::{Silence, StillQuiet};
        for (note, hours, locale, title) in [
            (Silence, 24, Locale::Nl, "Zon is al ongeveer een dag stil"),
            (
                Silence,
                24,
                Locale::En,
                "Zon has been quiet for about a day",
            ),
            // 47 hours is about two days, not one.
            (Silence, 47, Locale::Nl, "Zon is al ongeveer 2 dagen stil"),
            (
                Silence,
                47,
                Locale::En,
                "Zon has been quiet for about 2 days",
            ),
            (Silence, 2, Locale::En, "Zon has been quiet for about a day"),
            (
                StillQuiet,
                18 * 24,
                Locale::En,
                "Zon is still quiet, for about 18 days now",
            ),
            (
                StillQuiet,
                18 * 24,
                Locale::Nl,
                "Zon is nog steeds stil, al ongeveer 18 dagen",
            ),
            // Never negative.
            (Silence, -50, Locale::Nl, "Zon is al ongeveer een dag stil"),
        ] {
            assert_eq!(alert(note, hours, locale), title);
        }
    }

    #[test]
    fn digests_count_and_speak_both_languages() {
        let p = TextParams {
            circle_name: "Samen sterk".into(),
            count: 3,
            ..Default::default()
        };
        assert_eq!(
            render(NotificationKind::PostDigest, Locale::Nl, &p).0,
            "3 nieuwe berichten in Samen sterk"
        );
        assert_eq!(
            render(NotificationKind::PostDigest, Locale::En, &p).0,
            "3 new posts in Samen sterk"
        );
        let p = TextParams {
            actor: "Maan".into(),
            reaction: Some("hug".into()),
            circle_name: "X".into(),
            ..Default::default()
        };
        assert_eq!(
            render(NotificationKind::Reaction, Locale::Nl, &p).0,
            "Maan stuurde je een knuffel"
        );
    }
}

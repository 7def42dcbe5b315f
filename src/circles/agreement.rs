//! A circle's agreement text: what members consent to when they join, by
//! default a plain description, in the circle's language, of what the
//! escalation policy does.

use crate::accounts::types::Locale;
use crate::circles::policy::EscalationPolicy;

pub(super) fn validate_agreement(text: &str) -> Result<String, String> {
    let len = text.chars().count();
    let text = text.trim();
    if len > 4000 || text.is_empty() {
        return Err("must be 1 to 4000 characters".into());
    }
    Ok(text.to_owned())
}

/// The standard agreement text, saying in plain words what the policy does.
pub fn default_agreement(language: Locale, policy: &EscalationPolicy) -> String {
    use crate::circles::policy::StepAction;
    let days = |h: i64| {
        if h % 24 == 0 {
            match (language, h / 24) {
                (Locale::Nl, 1) => "1 dag".to_owned(),
                (Locale::Nl, d) => format!("{d} dagen"),
                (Locale::En, 1) => "1 day".to_owned(),
                (Locale::En, d) => format!("{d} days"),
            }
        } else {
            match language {
                Locale::Nl => format!("{h} uur"),
                Locale::En => format!("{h} hours"),
            }
        }
    };
    let mut lines = Vec::new();
    for step in &policy.steps {
        lines.push(match (language, step.action) {
            (Locale::Nl, StepAction::Nudge) => {
                format!(
                    "- Na {} stilte krijg je een vriendelijke herinnering.",
                    days(step.after_hours)
                )
            }
            (Locale::Nl, StepAction::AlertWorker) => {
                format!(
                    "- Na {} stilte laten we het je begeleider weten.",
                    days(step.after_hours)
                )
            }
            (Locale::En, StepAction::Nudge) => {
                format!(
                    "- After {} of silence you get a gentle reminder.",
                    days(step.after_hours)
                )
            }
            (Locale::En, StepAction::AlertWorker) => {
                format!(
                    "- After {} of silence we let your worker know.",
                    days(step.after_hours)
                )
            }
        });
    }
    let alerts = policy
        .steps
        .iter()
        .any(|s| s.action == StepAction::AlertWorker);
    let nudges = policy.steps.iter().any(|s| s.action == StepAction::Nudge);
    let every = days(policy.realert_after_days * 24);
    match (language, alerts) {
        (Locale::Nl, true) => lines.push(format!(
            "- Blijft het daarna stil, dan laten we het je begeleider elke {every} opnieuw weten."
        )),
        (Locale::En, true) => lines.push(format!(
            "- If it stays quiet after that, your worker is told again every {every}."
        )),
        _ => {}
    }
    match (language, nudges) {
        (Locale::Nl, true) => lines.push(
            "- Herinneringen worden dan zeldzamer: na een week nog een, daarna eens per twee weken."
                .to_owned(),
        ),
        (Locale::En, true) => lines.push(
            "- Reminders then become rarer: one after a week, then one every two weeks.".to_owned(),
        ),
        _ => {}
    }
    match language {
        Locale::Nl => lines.push(
            "- Tijdens een pauze krijg je geen herinneringen en wordt niemand ingelicht; \
             daarna begint de stilte opnieuw te tellen."
                .to_owned(),
        ),
        Locale::En => lines.push(
            "- During a break you get no reminders and nobody is told; \
             afterwards the silence starts counting again."
                .to_owned(),
        ),
    }
    let text = match language {
        Locale::Nl => format!(
            "Jij bepaalt wanneer je schrijft. Als het een tijd stil is, houden we een oogje in het zeil:\n{}\n\
             Herinneringen kun je uitzetten, en je kunt een pauze nemen ('afwezig tot'). \
             Je begeleider wordt wel ingelicht als het lang stil blijft; daar stem je mee in.",
            lines.join("\n")
        ),
        Locale::En => format!(
            "You decide when you write. When it has been quiet for a while, we keep an eye out:\n{}\n\
             You can turn reminders off, and you can take a break ('away until'). \
             Your worker is still told when the silence lasts; that is what you agree to.",
            lines.join("\n")
        ),
    };
    format!("{text}\n\n{}", measurement(language))
}

/// What the default measurement plan asks, when and why, and that it is
/// voluntary (`crate::questionnaires::plan::DEFAULT_PLAN`).
fn measurement(language: Locale) -> &'static str {
    match language {
        Locale::Nl => {
            "Metingen: we vragen je af en toe een korte vragenlijst over je welbevinden (de WHO-5, \
             vijf vragen): bij de start, na 6 weken, na 3 en na 6 maanden, en 3 maanden na het einde \
             van de kring. Zo kan je organisatie laten zien wat deze groep oplevert; anderen dan jij \
             en je begeleider zien alleen anonieme groepscijfers. Invullen is vrijwillig: je kunt een \
             vragenlijst overslaan of de metingen voor jezelf uitzetten."
        }
        Locale::En => {
            "Measurement: now and then we ask you a short questionnaire about your well-being (the \
             WHO-5, five questions): at the start, after 6 weeks, after 3 and 6 months, and 3 months \
             after the circle ends. It lets your organisation show what this group achieves; anyone \
             but you and your worker sees only anonymous group figures. Answering is voluntary: you \
             can skip a questionnaire or turn measurement off for yourself."
        }
    }
}

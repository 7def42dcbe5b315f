//! A circle's escalation policy: what happens, and when, as a member's silence
//! lasts. Validated and stored here; the silence engine acts on it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Validator;

/// What a step does: `nudge` (a gentle reminder to the member, with an
/// "I'm OK" action) or `alert_worker` (an alert to the circle's workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// A gentle reminder to the member, with an "I'm OK" action.
    Nudge,
    /// An alert to the circle's workers.
    AlertWorker,
}

/// One step: an action, some hours after the member's last activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyStep {
    /// Hours after the start of the silence, 1 to 1440 (60 days).
    #[schema(minimum = 1, maximum = 1440, example = 48)]
    pub after_hours: i64,
    /// What happens then.
    pub action: StepAction,
}

/// The ordered steps of a silence, and when an unacknowledged alert goes to
/// the coordinators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "steps": [
        {"after_hours": 48, "action": "nudge"},
        {"after_hours": 72, "action": "nudge"},
        {"after_hours": 96, "action": "alert_worker"}
    ],
    "coordinator_after_working_hours": 8,
    "realert_after_days": 7
}))]
pub struct EscalationPolicy {
    /// 1 to 10 steps, in strictly increasing `after_hours`.
    #[schema(min_items = 1, max_items = 10)]
    pub steps: Vec<PolicyStep>,
    /// When nobody has acknowledged a worker alert within this many working
    /// hours (1 to 80), the coordinators are alerted; null: never. Needs an
    /// `alert_worker` step.
    #[schema(minimum = 1, maximum = 80, example = 8)]
    pub coordinator_after_working_hours: Option<i64>,
    /// A silence is never forgotten: after the last step, while the member
    /// stays silent and is not away, the workers are told again ("still
    /// quiet") every this many days, 1 to 60 (default 7), when the policy
    /// alerts workers at all. Nudges to the member back off on their own:
    /// one a week after the last step, then one every two weeks.
    #[serde(default = "default_realert_days")]
    #[schema(minimum = 1, maximum = 60, default = 7, example = 7)]
    pub realert_after_days: i64,
}

fn default_realert_days() -> i64 {
    7
}

impl EscalationPolicy {
    /// The default for a rhythm of `rhythm_days`: nudge at the rhythm, nudge
    /// again at one and a half times it, alert the worker at twice it, and
    /// the coordinators after one working day without acknowledgement.
    /// For the default rhythm of 2 days: 2 days, 3 days, 4 days.
    pub fn default_for(rhythm_days: i64) -> Self {
        let day = 24;
        Self {
            steps: vec![
                PolicyStep {
                    after_hours: rhythm_days * day,
                    action: StepAction::Nudge,
                },
                PolicyStep {
                    after_hours: rhythm_days * day * 3 / 2,
                    action: StepAction::Nudge,
                },
                PolicyStep {
                    after_hours: rhythm_days * day * 2,
                    action: StepAction::AlertWorker,
                },
            ],
            coordinator_after_working_hours: Some(8),
            realert_after_days: default_realert_days(),
        }
    }

    /// Checks the rules, recording failures under `field`.
    pub fn validate(&self, field: &str, v: &mut Validator) {
        if self.steps.is_empty() || self.steps.len() > 10 {
            v.fail(&format!("{field}.steps"), "must have 1 to 10 steps");
        }
        let mut previous = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if !(1..=1440).contains(&step.after_hours) {
                v.fail(
                    &format!("{field}.steps[{i}].after_hours"),
                    "must be 1 to 1440 hours",
                );
            } else if step.after_hours <= previous {
                v.fail(
                    &format!("{field}.steps[{i}].after_hours"),
                    "must be later than the step before",
                );
            }
            previous = step.after_hours;
        }
        if !(1..=60).contains(&self.realert_after_days) {
            v.fail(
                &format!("{field}.realert_after_days"),
                "must be 1 to 60 days",
            );
        }
        match self.coordinator_after_working_hours {
            Some(h) if !(1..=80).contains(&h) => v.fail(
                &format!("{field}.coordinator_after_working_hours"),
                "must be 1 to 80 hours, or null",
            ),
            Some(_)
                if !self
                    .steps
                    .iter()
                    .any(|s| s.action == StepAction::AlertWorker) =>
            {
                v.fail(
                    &format!("{field}.coordinator_after_working_hours"),
                    "needs an alert_worker step to escalate from",
                )
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_for_two_days_matches_the_product_brief() {
        let p = EscalationPolicy::default_for(2);
        let hours: Vec<_> = p.steps.iter().map(|s| (s.after_hours, s.action)).collect();
        assert_eq!(
            hours,
            vec![
                (48, StepAction::Nudge),
                (72, StepAction::Nudge),
                (96, StepAction::AlertWorker)
            ]
        );
        assert_eq!(p.coordinator_after_working_hours, Some(8));
        let mut v = Validator::default();
        p.validate("escalation_policy", &mut v);
        assert!(v.is_ok());
    }

    #[test]
    fn steps_must_increase_and_escalation_needs_an_alert() {
        let p = EscalationPolicy {
            steps: vec![
                PolicyStep {
                    after_hours: 48,
                    action: StepAction::Nudge,
                },
                PolicyStep {
                    after_hours: 48,
                    action: StepAction::Nudge,
                },
            ],
            coordinator_after_working_hours: Some(8),
            realert_after_days: 7,
        };
        let mut v = Validator::default();
        p.validate("p", &mut v);
        let ApiErrorFields(fields) = fields(v);
        assert_eq!(
            fields,
            vec![
                "p.steps[1].after_hours",
                "p.coordinator_after_working_hours"
            ]
        );
    }

    struct ApiErrorFields(Vec<String>);

    fn fields(v: Validator) -> ApiErrorFields {
        match v.into_error() {
            crate::error::ApiError::Validation(errors) => {
                ApiErrorFields(errors.into_iter().map(|e| e.field).collect())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

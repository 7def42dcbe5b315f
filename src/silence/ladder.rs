//! The ladder of a silence: the policy's steps, then the repeats after its
//! last step, as pure arithmetic on hours since the silence began.
//!
//! Steps are identified by what they do and when ([`Step::key`]), never by
//! their place in the policy, so a policy change maps a silence's progress
//! by time: a step at or before the latest fired step of its kind counts as
//! done; a later one is still to come.
//!
//! The repeats, while the member stays silent and is not away:
//! - workers: a "still quiet" alert every `realert_after_days` after the
//!   last step (only when the policy alerts workers at all);
//! - the member: a nudge one week after the last step, then every two weeks
//!   (only when the policy nudges at all). Reminders that keep their pace
//!   lose their effect and start to feel like pressure; see the README.

use crate::circles::policy::{EscalationPolicy, StepAction};

/// The first repeated nudge, in hours after the last step.
pub const FIRST_NUDGE_REPEAT_H: i64 = 7 * 24;
/// The interval between later repeated nudges, in hours.
pub const NUDGE_REPEAT_H: i64 = 14 * 24;

/// A step of a silence: an action at some hours after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub action: StepAction,
    pub after_hours: i64,
}

impl Step {
    /// The exactly-once key: 2 × hours, plus 1 for an alert.
    pub fn key(self) -> i64 {
        self.after_hours * 2 + i64::from(self.action == StepAction::AlertWorker)
    }

    /// The step a stored key stands for; legacy negative keys stand for none.
    pub fn from_key(key: i64) -> Option<Self> {
        (key >= 0).then_some(Self {
            action: if key % 2 == 1 {
                StepAction::AlertWorker
            } else {
                StepAction::Nudge
            },
            after_hours: key / 2,
        })
    }

    pub fn action_name(self) -> &'static str {
        match self.action {
            StepAction::Nudge => "nudge",
            StepAction::AlertWorker => "alert_worker",
        }
    }
}

/// A policy seen as an endless ladder.
pub struct Ladder<'a> {
    policy: &'a EscalationPolicy,
}

impl<'a> Ladder<'a> {
    pub fn new(policy: &'a EscalationPolicy) -> Self {
        Self { policy }
    }

    /// The last step of the policy itself, in hours.
    pub fn last_policy_hours(&self) -> i64 {
        self.policy.steps.last().map_or(0, |s| s.after_hours)
    }

    /// Whether a step at `after_hours` repeats the ladder (comes after it).
    pub fn is_repeat(&self, after_hours: i64) -> bool {
        after_hours > self.last_policy_hours()
    }

    /// The first step of `action` strictly after `after` hours (`None`: no
    /// step fired yet), the policy's first, then its repeats.
    pub fn next_after(&self, action: StepAction, after: Option<i64>) -> Option<Step> {
        let after = after.unwrap_or(-1);
        let mut of_kind = self.policy.steps.iter().filter(|s| s.action == action);
        if let Some(step) = of_kind.clone().find(|s| s.after_hours > after) {
            return Some(Step {
                action,
                after_hours: step.after_hours,
            });
        }
        of_kind.next()?;
        let last = self.last_policy_hours();
        let since = (after - last).max(0);
        let offset = match action {
            StepAction::AlertWorker => {
                let every = self.policy.realert_after_days * 24;
                (since / every + 1) * every
            }
            StepAction::Nudge if since < FIRST_NUDGE_REPEAT_H => FIRST_NUDGE_REPEAT_H,
            StepAction::Nudge => {
                FIRST_NUDGE_REPEAT_H
                    + ((since - FIRST_NUDGE_REPEAT_H) / NUDGE_REPEAT_H + 1) * NUDGE_REPEAT_H
            }
        };
        Some(Step {
            action,
            after_hours: last + offset,
        })
    }

    /// The latest step of `action` after `after` whose time has come by
    /// `elapsed_hours`, and the earlier ones it stands for (coalesced: they
    /// fire as one).
    pub fn due_by(
        &self,
        action: StepAction,
        after: Option<i64>,
        elapsed_ms: i64,
    ) -> Option<(Step, Vec<Step>)> {
        let mut covered = Vec::new();
        let mut cursor = after;
        let mut latest = None;
        while let Some(step) = self.next_after(action, cursor) {
            if step.after_hours * HOUR_MS > elapsed_ms {
                break;
            }
            if let Some(previous) = latest.replace(step) {
                covered.push(previous);
            }
            cursor = Some(step.after_hours);
        }
        latest.map(|l| (l, covered))
    }
}

pub const HOUR_MS: i64 = 3_600_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circles::policy::PolicyStep;

    fn policy(steps: &[(i64, StepAction)]) -> EscalationPolicy {
        EscalationPolicy {
            steps: steps
                .iter()
                .map(|&(after_hours, action)| PolicyStep {
                    after_hours,
                    action,
                })
                .collect(),
            coordinator_after_working_hours: None,
            realert_after_days: 7,
        }
    }

    use StepAction::{AlertWorker as A, Nudge as N};

    #[test]
    fn keys_round_trip_and_never_collide_across_actions() {
        for step in [
            Step {
                action: N,
                after_hours: 72,
            },
            Step {
                action: A,
                after_hours: 72,
            },
        ] {
            assert_eq!(Step::from_key(step.key()), Some(step));
        }
        assert_ne!(
            Step {
                action: N,
                after_hours: 72
            }
            .key(),
            Step {
                action: A,
                after_hours: 72
            }
            .key()
        );
        assert_eq!(Step::from_key(-3), None);
    }

    #[test]
    fn the_ladder_then_its_repeats() {
        let p = EscalationPolicy::default_for(2);
        let l = Ladder::new(&p);
        let hours = |action, after| l.next_after(action, after).map(|s| s.after_hours);
        assert_eq!(hours(N, None), Some(48));
        assert_eq!(hours(N, Some(48)), Some(72));
        // After the ladder: a week, then every two weeks.
        assert_eq!(hours(N, Some(72)), Some(96 + 168));
        assert_eq!(hours(N, Some(96 + 168)), Some(96 + 168 + 336));
        assert_eq!(hours(N, Some(96 + 168 + 336)), Some(96 + 168 + 672));
        // Workers: every realert_after_days.
        assert_eq!(hours(A, None), Some(96));
        assert_eq!(hours(A, Some(96)), Some(96 + 168));
        assert_eq!(hours(A, Some(96 + 168)), Some(96 + 336));
        // A policy without nudges never nudges; without alerts never alerts.
        let quiet = policy(&[(24, A)]);
        assert_eq!(Ladder::new(&quiet).next_after(N, None), None);
        let gentle = policy(&[(24, N)]);
        assert_eq!(Ladder::new(&gentle).next_after(A, Some(500)), None);
    }

    #[test]
    fn a_new_policy_maps_progress_by_time() {
        // Five steps, three nudges fired (the last at 72 h), then the default.
        let p = EscalationPolicy::default_for(2);
        let l = Ladder::new(&p);
        assert_eq!(
            l.next_after(N, Some(72)).map(|s| s.after_hours),
            Some(96 + 168)
        );
        assert_eq!(l.next_after(A, None).map(|s| s.after_hours), Some(96));
    }

    #[test]
    fn steps_past_due_coalesce_into_the_latest() {
        let p = EscalationPolicy::default_for(1);
        let l = Ladder::new(&p);
        let (latest, covered) = l.due_by(N, None, 40 * HOUR_MS).expect("due");
        assert_eq!(latest.after_hours, 36);
        assert_eq!(
            covered.iter().map(|s| s.after_hours).collect::<Vec<_>>(),
            vec![24]
        );
        assert!(l.due_by(N, Some(36), 40 * HOUR_MS).is_none());
        assert!(l.due_by(A, None, 47 * HOUR_MS).is_none());
    }
}

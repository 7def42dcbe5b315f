-- The silence engine maps a silence's progress by time, not by the place of
-- a step in the policy (issue 11), so a policy change mid-silence neither
-- drops nor repeats a step.
--
-- A fired step is keyed by what it does and when: 2 × after_hours, plus 1
-- for an alert step. Steps after the policy's last (the repeats) have keys
-- of the same form. Existing rows take the key of the step they fired under
-- the circle's current policy; a row whose step is gone keeps a negative
-- key, which covers nothing. memberships.next_step_index is no longer used.
ALTER TABLE silence_steps RENAME COLUMN step_index TO step_key;
UPDATE silence_steps SET step_key = -1 - step_key;
UPDATE silence_steps SET step_key = COALESCE(
    (SELECT 2 * json_extract(c.escalation_policy, '$.steps[' || (-1 - silence_steps.step_key) || '].after_hours')
     FROM memberships m JOIN circles c ON c.id = m.circle_id
     WHERE m.id = silence_steps.membership_id)
    + CASE WHEN silence_steps.action = 'alert_worker' THEN 1 ELSE 0 END,
    step_key);

-- Past-due steps after a policy change wait for the member's next allowed
-- moment counted from the change, not from when the step fell due.
ALTER TABLE circles ADD COLUMN policy_changed_at BIGINT NOT NULL DEFAULT 0;

-- When the workers were last told again about an open alert (a repeated
-- step, a silence after a break, a snooze that ran out).
ALTER TABLE alerts ADD COLUMN last_notified_at BIGINT;

-- The alert list pages newest first by (opened_at, id).
CREATE INDEX alerts_org_opened ON alerts (organisation_id, opened_at, id);

-- Discreet notifications (issue 17): a push that names no circle, person or
-- message, for lock screens that others see. Per account: discreet for
-- circles marked sensitive (the default), always, or never.
ALTER TABLE accounts ADD COLUMN discreet_pushes TEXT NOT NULL DEFAULT 'sensitive_circles';
-- Circles whose subject itself is private (debts, an illness): 1 = sensitive.
ALTER TABLE circles ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;

-- The default measurement plan (src/questionnaires/plan.rs, DEFAULT_PLAN)
-- for every circle made before plans existed: WHO-5 at intake (the join),
-- after 6 weeks, 3 and 6 months, and 3 months after the circle's end (once
-- it has one). New circles get it when they are made. Questionnaires are
-- made only while a moment's answering window (14 days) is open, so
-- members who joined long ago are not asked about moments long past.
INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
SELECT id, 'who5', 'intake', 'join', 0 FROM circles;
INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
SELECT id, 'who5', 'week_6', 'join', 42 FROM circles;
INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
SELECT id, 'who5', 'month_3', 'join', 91 FROM circles;
INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
SELECT id, 'who5', 'month_6', 'join', 182 FROM circles;
INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
SELECT id, 'who5', 'follow_up', 'circle_end', 91 FROM circles;

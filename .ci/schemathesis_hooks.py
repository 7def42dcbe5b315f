"""Schemathesis hooks for `.ci/schemathesis`.

Two jobs, both in `before_call`, so they see every request of every phase:

1. A fresh `Idempotency-Key` per request. Generated keys repeat across
   requests with different bodies, and the server rightly refuses such a
   reuse (422 `idempotency_key_reused`). A key that is itself invalid (a
   negative case for the header) is left alone.

2. Positive cases only: a few rules that JSON Schema cannot state (they
   depend on the clock, on another field, or on who is signed in). Each
   repair changes one field of a generated request into the nearest value the
   server accepts, so that "schema-valid request rejected" stays a check for
   everything else. Schemathesis re-validates a case after this hook, so a
   repair never turns a case into something the spec forbids. The table:

   - `post_id` of a read position: a post of the circle (the spec's example
     names one that does not exist here, which is rightly 422).
   - `cursor` and `since` on every list: opaque tokens that only the server
     makes (`next_cursor`, `sync_token`); a generated one is (rightly) 422.
   - `away_until` (membership) and `until` (snooze): in the future, at most a
     year / 14 days ahead.
   - working hours: `end` later than `start`; quiet hours: `start` and `end`
     differ.
   - escalation policy: steps in strictly increasing `after_hours`, and an
     `alert_worker` step when `coordinator_after_working_hours` is set.
   - `PATCH /v1/me` as a member: `display_name` and `working_hours` are for
     staff.
   - `PATCH /v1/me`: the reminder time lies outside the quiet hours (the
     stored ones when only one of the two is sent): with quiet hours, a
     reminder inside them becomes their end (and one is added, since the
     stored reminder is unknown); a reminder alone gets quiet hours that end
     at it.
   - `POST /v1/join`: `login_name` and `password` come together, and only
     when joining creates an account (no bearer token).
   - `time_zone` (me, join, staff): the spec says "an IANA time zone name"
     with its characters; the server checks the name against its time zone
     database. A generated name that is no zone becomes `Europe/Amsterdam`.
   - Web Push `endpoint`: the host must be a push service this server allows
     (deployment configuration, `KRING_WEBPUSH_ALLOWED_HOSTS`).
   - device bodies: generated extra properties are dropped. A device body is
     a tagged union, which serde reads whole before it picks the variant, so
     every string in it is checked for control characters, also in a
     property the server would otherwise ignore.
   - outcome reports: `instrument` is one the organisation has (`who5`);
     `circle_id` and `comparison_cohort_id` name things only the server
     makes, so generated ones go; `joined_from` and `joined_until` stay only
     as times or dates in order.
   - answers to a questionnaire: the items and options of the instrument it
     was made with (WHO-5 here), which JSON Schema cannot tie to the path.
   - a comparison cohort: its figures must fit the instrument's range and
     add up (counts per band to n, the change's n to the moment's), so the
     moments become a known good pair; `instrument` becomes `who5`.
   - a measurement plan: `instrument` becomes `who5`, each moment is named
     once, `intake` is at the join (offset 0), and `ends_at` is a real time.
"""

import os
import re
import uuid
import zoneinfo
from datetime import datetime, timedelta, timezone

import schemathesis

ROLE = os.environ.get("KRING_ROLE", "")
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")
HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
RFC_3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
PUSH_ENDPOINT = "https://fcm.googleapis.com/fcm/send/schemathesis"
DEVICE_FIELDS = ("kind", "token", "topic", "environment", "label", "endpoint", "keys")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    fresh_idempotency_key(case)
    if is_positive(case):
        repair(operation_id(case), case)


def fresh_idempotency_key(case):
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and IDEMPOTENCY_KEY.match(value):
            case.headers[name] = str(uuid.uuid4())


def is_positive(case):
    generation = getattr(case.meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return bool(mode is not None and mode.is_positive)


def operation_id(case):
    return case.operation.definition.raw.get("operationId", "")


def repair(op, case):
    query, body = case.query, case.body
    if isinstance(query, dict):
        query.pop("cursor", None)
        query.pop("since", None)
        if op in ("organisation_outcomes_get", "circle_outcomes_report_get"):
            report_filters(query)
    if not isinstance(body, dict):
        return
    known_zone(body)
    if op == "circle_read_position_set" and os.environ.get("POST_ID"):
        body["post_id"] = os.environ["POST_ID"]
    elif op == "circle_membership_update":
        within(body, "away_until", timedelta(days=365))
    elif op == "alert_snooze":
        within(body, "until", timedelta(days=14))
    elif op == "me_update":
        if ROLE == "member":
            body.pop("display_name", None)
            body.pop("working_hours", None)
        ordered_hours(body.get("working_hours"))
        distinct_hours(body.get("quiet_hours"))
        reminder_outside_quiet(body)
    elif op in ("circles_create", "circle_update"):
        valid_policy(body.get("escalation_policy"))
    elif op == "invite_join":
        signed_in = any(name.lower() == "authorization" for name in case.headers or {})
        if signed_in or "login_name" not in body or "password" not in body:
            body.pop("login_name", None)
            body.pop("password", None)
    elif op == "me_questionnaire_answers_create":
        body["answers"] = {f"who5_{i}": "some_of_the_time" for i in range(1, 6)}
    elif op == "organisation_comparison_cohorts_create":
        body["instrument"] = "who5"
        body["moments"] = [
            {"moment": "intake", "n": 30, "mean": 45.0, "sd": 15.0},
            {"moment": "week_6", "n": 25, "mean": 50.0, "sd": 16.0, "change": {"n": 25, "mean": 4.0, "sd": 12.0}},
        ]
    elif op == "circle_measurement_plan_replace":
        valid_plan(body)
    elif op in ("devices_register", "device_update"):
        for key in [k for k in body if k not in DEVICE_FIELDS]:
            del body[key]
        if isinstance(body.get("keys"), dict):
            for key in [k for k in body["keys"] if k not in ("p256dh", "auth")]:
                del body["keys"][key]
        if body.get("kind") == "webpush" and isinstance(body.get("endpoint"), str):
            body["endpoint"] = PUSH_ENDPOINT


ZONES = zoneinfo.available_timezones()


def known_zone(body):
    if isinstance(body.get("time_zone"), str) and body["time_zone"] not in ZONES:
        body["time_zone"] = "Europe/Amsterdam"


def parse_time(value):
    if not isinstance(value, str) or not RFC_3339.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def within(body, field, horizon):
    """A time in the future and at most `horizon` ahead (null stays null)."""
    if not isinstance(body.get(field), str):
        return
    now = datetime.now(timezone.utc)
    when = parse_time(body[field])
    if when is None or not (now + timedelta(minutes=5) < when < now + horizon - timedelta(minutes=5)):
        body[field] = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ordered_hours(hours):
    if not isinstance(hours, dict):
        return
    start, end = hours.get("start"), hours.get("end")
    if isinstance(start, str) and isinstance(end, str) and HH_MM.match(start) and HH_MM.match(end):
        if start == end:
            hours["start"], hours["end"] = "09:00", "17:00"
        elif end < start:
            hours["start"], hours["end"] = end, start


def distinct_hours(hours):
    if isinstance(hours, dict) and hours.get("start") == hours.get("end") and isinstance(hours.get("end"), str):
        hours["end"] = "09:00" if hours["end"] != "09:00" else "21:00"


def minutes(value):
    return int(value[:2]) * 60 + int(value[3:]) if isinstance(value, str) and HH_MM.match(value) else None


def reminder_outside_quiet(body):
    quiet, reminder = body.get("quiet_hours"), body.get("preferred_reminder_time")
    if isinstance(quiet, dict):
        start, end = minutes(quiet.get("start")), minutes(quiet.get("end"))
        if start is None or end is None:
            return
        at = minutes(reminder)
        inside = at is not None and (start <= at < end if start < end else at >= start or at < end)
        if inside or "preferred_reminder_time" not in body:
            body["preferred_reminder_time"] = quiet["end"]
    elif minutes(reminder) is not None:
        after = (minutes(reminder) + 1) % 1440
        body["quiet_hours"] = {"start": f"{after // 60:02d}:{after % 60:02d}", "end": reminder}


def is_integral(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def valid_policy(policy):
    if not isinstance(policy, dict) or not isinstance(policy.get("steps"), list):
        return
    steps = [s for s in policy["steps"] if isinstance(s, dict) and is_integral(s.get("after_hours"))]
    if len(steps) != len(policy["steps"]):
        return
    seen, ordered = set(), []
    for step in sorted(steps, key=lambda s: s["after_hours"]):
        if step["after_hours"] not in seen:
            seen.add(step["after_hours"])
            ordered.append(step)
    policy["steps"] = ordered
    if policy.get("coordinator_after_working_hours") is not None and not any(
        s.get("action") == "alert_worker" for s in ordered
    ):
        ordered[-1]["action"] = "alert_worker"


def time_or_date(value):
    if not isinstance(value, str):
        return None
    if re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        except ValueError:
            return None
    return parse_time(value)


def report_filters(query):
    query["instrument"] = "who5"
    query.pop("circle_id", None)
    query.pop("comparison_cohort_id", None)
    start, end = time_or_date(query.get("joined_from")), time_or_date(query.get("joined_until"))
    for name, when in (("joined_from", start), ("joined_until", end)):
        if when is None:
            query.pop(name, None)
    if start is not None and end is not None and not start < end:
        query.pop("joined_until", None)


def valid_plan(body):
    if body.get("ends_at") is not None and parse_time(body.get("ends_at")) is None:
        body["ends_at"] = None
    moments = body.get("moments")
    if not isinstance(moments, list):
        return
    named, kept = set(), []
    for moment in moments:
        if not isinstance(moment, dict) or moment.get("moment") in named:
            continue
        named.add(moment.get("moment"))
        moment["instrument"] = "who5"
        if moment.get("moment") == "intake":
            moment["anchor"], moment["offset_days"] = "join", 0
        kept.append(moment)
    body["moments"] = kept

//! Kring's integration tests: every test talks HTTP to a real server bound to
//! port 0, with an injected clock, on SQLite and (when
//! `KRING_TEST_POSTGRES_URL` is set) on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access_log;
mod access_matrix;
mod apns;
mod auth;
mod checkins;
mod circles;
mod discreet;
mod erasure;
mod errors;
mod exports;
mod idempotency;
mod jobs;
mod layout;
mod limits;
mod names;
mod openapi;
mod outcome_reports;
mod posts;
mod push;
mod push_failures;
mod questionnaire_simulation;
mod questionnaires;
mod read_cache;
mod recovery;
mod sessions;
mod signin_limits;
mod silence;
mod silence_rules;
mod simulation;
mod spending;
mod sync_tokens;

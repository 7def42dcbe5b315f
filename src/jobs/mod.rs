//! Background work that every Kring instance runs: the delivery workers.
//! Each job has `run_once` for tests and a loop for production that stops
//! between batches when cancelled.

pub mod delivery;
pub mod silence;

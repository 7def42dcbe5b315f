//! Claiming due work under a lease: the one place the claim SQL lives.
//!
//! A job's work waits as rows with a due time. An instance claims a batch
//! by setting each row's lease column to a time ahead, works on the rows,
//! and then moves them on (clearing the lease). A claim that is never
//! finished (a crash) runs out, and the rows are claimed again: the work is
//! done at least once, and never by two instances at a time while a lease
//! holds.
//!
//! The one backend difference: PostgreSQL instances skip rows another
//! instance's claim holds locked (`FOR UPDATE SKIP LOCKED`), so concurrent
//! claims take disjoint rows without waiting; SQLite has a single writer
//! (`BEGIN IMMEDIATE`), so its claims simply take turns.

use super::{Backend, Store};

/// A table of due work, described for [`Store::claim_due`].
///
/// Every field is written into the SQL text, so each is a `&'static str`
/// code constant, never input.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    pub table: &'static str,
    /// The column that names a row (returned by the claim).
    pub key: &'static str,
    /// The time (epoch ms) a row becomes due; indexed, so that finding what
    /// is due costs what is due.
    pub due: &'static str,
    /// Held until (epoch ms) by the instance that claimed the row.
    pub lease: &'static str,
    /// How long a claim holds.
    pub lease_ms: i64,
    /// What makes a row wait at all (e.g. `status = 'pending'`), for the
    /// probe and the claim; no parameters.
    pub waiting: Option<&'static str>,
    /// What else a row needs to be claimed now (e.g. its provider is not
    /// paused); may use `$2`, the current time.
    pub claimable: Option<&'static str>,
    /// Further assignments made with the lease (e.g. counting the
    /// attempt); may use `$2`, the current time.
    pub on_claim: Option<&'static str>,
}

impl Store {
    /// Leases up to `limit` rows of `queue` that are due at `now` and not
    /// leased, earliest due first, and returns their ids. `only` limits the
    /// claim to rows whose column (a code constant) holds a value.
    ///
    /// A cheap read comes first: when the earliest due time (one index
    /// lookup, whatever the plan; a `<= now LIMIT 1` probe may be planned as
    /// a scan on PostgreSQL) lies ahead, an idle queue costs no write lock.
    pub async fn claim_due(
        &self,
        queue: &Queue,
        now: i64,
        limit: i64,
        only: Option<(&'static str, &str)>,
    ) -> Result<Vec<String>, sqlx::Error> {
        let Queue {
            table,
            key,
            due,
            lease,
            ..
        } = *queue;
        let waiting: Vec<&str> = queue.waiting.into_iter().collect();
        let mut probe_where = waiting.clone();
        let only_probe = only.map(|(column, _)| format!("{column} = $1"));
        probe_where.extend(only_probe.as_deref());
        let probe = format!(
            "SELECT MIN({due}) FROM {table}{}",
            where_clause(&probe_where)
        );
        let mut probe = sqlx::query_scalar(sqlx::AssertSqlSafe(probe));
        if let Some((_, value)) = only {
            probe = probe.bind(value.to_owned());
        }
        let earliest: Option<i64> = probe.fetch_one(&self.pool).await?;
        if earliest.is_none_or(|t| t > now) {
            return Ok(Vec::new());
        }

        let lease_free = format!("({lease} IS NULL OR {lease} < $2)");
        let due_now = format!("{due} <= $2");
        let only_claim = only.map(|(column, _)| format!("{column} = $4"));
        let mut claim_where = vec![due_now.as_str(), lease_free.as_str()];
        claim_where.extend(waiting);
        claim_where.extend(queue.claimable);
        claim_where.extend(only_claim.as_deref());
        let also_set = queue
            .on_claim
            .map(|set| format!(", {set}"))
            .unwrap_or_default();
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let claim = format!(
            "UPDATE {table} SET {lease} = $1{also_set}
             WHERE {key} IN (
                 SELECT {key} FROM {table}{}
                 ORDER BY {due}
                 LIMIT $3
                 {lock}
             )
             RETURNING {key}",
            where_clause(&claim_where)
        );
        let mut tx = self.begin().await?;
        let mut claim = sqlx::query_scalar(sqlx::AssertSqlSafe(claim))
            .bind(now + queue.lease_ms)
            .bind(now)
            .bind(limit);
        if let Some((_, value)) = only {
            claim = claim.bind(value.to_owned());
        }
        let ids: Vec<String> = claim.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids)
    }
}

/// ` WHERE a AND b`, or nothing without conditions (a bare `MIN` is the
/// cheapest probe on both backends).
fn where_clause(conditions: &[&str]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("\n WHERE {}", conditions.join(" AND "))
    }
}

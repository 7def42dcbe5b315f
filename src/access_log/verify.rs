//! Verifying the chains (`kring admin verify-access-log`): from each
//! organisation's anchor, every entry follows the one before and matches its
//! hash, and the chain ends where its head says.

use super::chain::{COLUMNS, Entry};
use crate::store::Store;

/// What verification found in good order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Per organisation: its id, the number of entries kept, and the last
    /// entry's number and hash (worth noting down outside the database:
    /// a chain rewritten from some entry on ends at another hash).
    pub chains: Vec<ChainHead>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub organisation_id: String,
    pub entries: u64,
    pub seq: i64,
    pub hash: String,
}

/// The first entry at which a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub organisation_id: String,
    /// The entry's number in its organisation's chain.
    pub seq: i64,
    /// The entry's id, when there is such an entry (not when entries at the
    /// end are missing).
    pub entry_id: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "organisation {}: entry {}{}: {}",
            self.organisation_id,
            self.seq,
            self.entry_id
                .as_deref()
                .map(|id| format!(" (id {id})"))
                .unwrap_or_default(),
            self.problem
        )
    }
}

#[derive(sqlx::FromRow)]
struct Head {
    seq: i64,
    hash: String,
    anchor_seq: i64,
    anchor_hash: String,
}

/// Checks every organisation's chain: from its anchor, each entry follows
/// the one before (consecutive numbers, `prev_hash` equal to that entry's
/// hash), each hash matches the entry's content, and the chain ends where
/// the head says. Each organisation is read in one snapshot, so appends
/// running meanwhile do no harm. Returns the first broken entry found.
pub async fn verify(store: &Store) -> Result<Result<Verified, Broken>, sqlx::Error> {
    let organisations: Vec<String> = sqlx::query_scalar(
        "SELECT organisation_id FROM access_log_heads
         UNION SELECT organisation_id FROM access_log ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await?;
    let mut chains = Vec::with_capacity(organisations.len());
    for organisation_id in organisations {
        match verify_one(store, &organisation_id).await? {
            Ok(head) => chains.push(head),
            Err(broken) => return Ok(Err(broken)),
        }
    }
    Ok(Ok(Verified { chains }))
}

async fn verify_one(
    store: &Store,
    organisation_id: &str,
) -> Result<Result<ChainHead, Broken>, sqlx::Error> {
    const PAGE: i64 = 1000;
    let broken = |seq: i64, entry_id: Option<&str>, problem: String| Broken {
        organisation_id: organisation_id.to_owned(),
        seq,
        entry_id: entry_id.map(str::to_owned),
        problem,
    };
    let mut tx = store.begin_snapshot().await?;
    let head: Option<Head> = sqlx::query_as(
        "SELECT seq, hash, anchor_seq, anchor_hash FROM access_log_heads WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(head) = head else {
        let first: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, id FROM access_log WHERE organisation_id = $1 ORDER BY seq LIMIT 1",
        )
        .bind(organisation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (seq, id) = first.unwrap_or_default();
        return Ok(Err(broken(
            seq,
            Some(&id),
            "entries exist but the organisation has no chain head".into(),
        )));
    };
    let mut expected_seq = head.anchor_seq + 1;
    let mut expected_prev = head.anchor_hash.clone();
    let mut count = 0u64;
    let mut after = i64::MIN;
    loop {
        let page: Vec<Entry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM access_log WHERE organisation_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3"
        )))
        .bind(organisation_id)
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let problem = if e.seq < expected_seq {
                Some(format!(
                    "an entry numbered {} where the chain continues with {expected_seq}",
                    e.seq
                ))
            } else if e.seq > expected_seq {
                Some(format!(
                    "entries {expected_seq} to {} before it are missing",
                    e.seq - 1
                ))
            } else if e.prev_hash != expected_prev {
                Some("it does not follow the entry before it (prev_hash differs)".into())
            } else if e.digest() != e.hash {
                Some("its content does not match its hash: it was changed".into())
            } else {
                None
            };
            if let Some(problem) = problem {
                tx.rollback().await?;
                return Ok(Err(broken(e.seq, Some(&e.id), problem)));
            }
            expected_prev = e.hash.clone();
            expected_seq += 1;
            count += 1;
        }
    }
    tx.rollback().await?;
    let last_seq = expected_seq - 1;
    if last_seq != head.seq {
        return Ok(Err(broken(
            head.seq,
            None,
            format!(
                "the chain ends at entry {last_seq}, but its head names entry {}: entries at the end are missing",
                head.seq
            ),
        )));
    }
    if expected_prev != head.hash {
        return Ok(Err(broken(
            head.seq,
            None,
            "the last entry's hash is not the one its head holds".into(),
        )));
    }
    Ok(Ok(ChainHead {
        organisation_id: organisation_id.to_owned(),
        entries: count,
        seq: head.seq,
        hash: head.hash,
    }))
}

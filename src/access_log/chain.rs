//! The chain: appending entries and letting old ones expire (checking it
//! is [`super::verify`]).
//!
//! Every organisation's entries form one hash chain, numbered 1, 2, 3 …
//! (`seq`). An entry's `hash` is SHA-256 over a canonical encoding of every
//! stored column except the hash itself, the previous entry's hash
//! (`prev_hash`) included: see [`Entry::digest`]. The organisation's row in
//! `access_log_heads` holds the last entry's number and hash, and the
//! anchor: the number and hash of the last entry that retention expired
//! (0 and the genesis hash while none has).
//!
//! Appends take turns on that head row: the first statement of an append
//! updates it (`INSERT … ON CONFLICT DO UPDATE … RETURNING`), which locks
//! it on PostgreSQL until the transaction ends, and SQLite has one writer.
//! So two appends in one organisation can never both follow the same entry.
//! Append last in a transaction: every other lock is then taken before
//! this one, in the same order by every writer.

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::store::Store;

/// The `prev_hash` of an organisation's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Versions the canonical encoding; part of every hash.
const DOMAIN: &[u8] = b"kring-access-log/1";

/// Rows inserted by one statement (17 parameters each).
const INSERT_CHUNK: usize = 50;

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub id: String,
    pub organisation_id: String,
    pub seq: i64,
    pub accessed_at: i64,
    pub actor_account_id: String,
    pub actor_role: String,
    pub on_behalf_of: Option<String>,
    pub subject_account_id: String,
    pub subject_membership_id: Option<String>,
    pub circle_id: Option<String>,
    pub kind: String,
    pub action: String,
    pub operation: String,
    pub client: Option<String>,
    pub session_id: Option<String>,
    pub result_count: Option<i64>,
    pub prev_hash: String,
    pub hash: String,
}

/// The columns of [`Entry`], in the order of the canonical encoding.
pub const COLUMNS: &str = "id, organisation_id, seq, accessed_at, actor_account_id, actor_role, \
     on_behalf_of, subject_account_id, subject_membership_id, circle_id, kind, action, operation, \
     client, session_id, result_count, prev_hash, hash";

impl Entry {
    /// The entry's hash: SHA-256, in lower-case hex, over the domain tag
    /// `kring-access-log/1` followed by each column but `hash`, in the
    /// order of [`COLUMNS`]. A column is the byte 0 when null; otherwise
    /// the byte 1, its length in bytes as 8 bytes big-endian, and its
    /// UTF-8 text (numbers in decimal). No two different entries encode
    /// alike, whatever their texts hold.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        let seq = self.seq.to_string();
        let at = self.accessed_at.to_string();
        let count = self.result_count.map(|n| n.to_string());
        let fields: [Option<&str>; 17] = [
            Some(&self.id),
            Some(&self.organisation_id),
            Some(&seq),
            Some(&at),
            Some(&self.actor_account_id),
            Some(&self.actor_role),
            self.on_behalf_of.as_deref(),
            Some(&self.subject_account_id),
            self.subject_membership_id.as_deref(),
            self.circle_id.as_deref(),
            Some(&self.kind),
            Some(&self.action),
            Some(&self.operation),
            self.client.as_deref(),
            self.session_id.as_deref(),
            count.as_deref(),
            Some(&self.prev_hash),
        ];
        for field in fields {
            match field {
                None => h.update([0u8]),
                Some(text) => {
                    h.update([1u8]);
                    h.update((text.len() as u64).to_be_bytes());
                    h.update(text.as_bytes());
                }
            }
        }
        crate::secrets::hex(&h.finalize())
    }
}

/// Appends `entries` (their `seq`, `prev_hash` and `hash` are set here) to
/// `organisation_id`'s chain, inside the caller's transaction.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    organisation_id: &str,
    mut entries: Vec<Entry>,
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    // Takes the head (and its lock): the new last number, and the hash of
    // the entry the first new one follows.
    let (last, mut prev): (i64, String) = sqlx::query_as(
        "INSERT INTO access_log_heads (organisation_id, seq, hash, anchor_seq, anchor_hash)
         VALUES ($1, $2, $3, 0, $3)
         ON CONFLICT (organisation_id) DO UPDATE SET seq = access_log_heads.seq + $2
         RETURNING seq, hash",
    )
    .bind(organisation_id)
    .bind(n)
    .bind(GENESIS)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - n + 1;
    for (i, entry) in entries.iter_mut().enumerate() {
        entry.organisation_id = organisation_id.to_owned();
        entry.seq = first + i64::try_from(i).unwrap_or(i64::MAX);
        entry.prev_hash = std::mem::take(&mut prev);
        entry.hash = entry.digest();
        prev = entry.hash.clone();
    }
    for chunk in entries.chunks(INSERT_CHUNK) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| {
                let cells: Vec<String> = (1..=18).map(|c| format!("${}", r * 18 + c)).collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO access_log ({COLUMNS}) VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            query = query
                .bind(e.id.clone())
                .bind(e.organisation_id.clone())
                .bind(e.seq)
                .bind(e.accessed_at)
                .bind(e.actor_account_id.clone())
                .bind(e.actor_role.clone())
                .bind(e.on_behalf_of.clone())
                .bind(e.subject_account_id.clone())
                .bind(e.subject_membership_id.clone())
                .bind(e.circle_id.clone())
                .bind(e.kind.clone())
                .bind(e.action.clone())
                .bind(e.operation.clone())
                .bind(e.client.clone())
                .bind(e.session_id.clone())
                .bind(e.result_count)
                .bind(e.prev_hash.clone())
                .bind(e.hash.clone());
        }
        query.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE access_log_heads SET hash = $1 WHERE organisation_id = $2")
        .bind(&prev)
        .bind(organisation_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Entries one round of expiry removes per organisation at most.
const EXPIRE_BATCH: i64 = 5000;

/// Deletes entries older than `cutoff` (epoch ms), oldest first, up to a
/// batch per organisation; returns how many. Only the start of a chain
/// expires (an older entry behind a newer one waits for the next round),
/// and the head keeps the last expired entry's number and hash as the
/// anchor from which verification starts, so the chain still verifies.
pub async fn expire(store: &Store, cutoff: i64) -> Result<u64, sqlx::Error> {
    let organisations: Vec<String> =
        sqlx::query_scalar("SELECT organisation_id FROM access_log_heads ORDER BY organisation_id")
            .fetch_all(store.pool())
            .await?;
    let mut removed = 0;
    for organisation_id in organisations {
        // A cheap look first: an organisation with nothing to expire costs
        // no write lock.
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT accessed_at FROM access_log WHERE organisation_id = $1 ORDER BY seq LIMIT 1",
        )
        .bind(&organisation_id)
        .fetch_optional(store.pool())
        .await?;
        if oldest.is_none_or(|at| at >= cutoff) {
            continue;
        }
        let mut tx = store.begin().await?;
        // Takes the head's lock: appends and other instances' expiry wait.
        let anchor: i64 = sqlx::query_scalar(
            "UPDATE access_log_heads SET anchor_seq = anchor_seq WHERE organisation_id = $1
             RETURNING anchor_seq",
        )
        .bind(&organisation_id)
        .fetch_one(&mut *tx)
        .await?;
        let oldest: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, accessed_at, hash FROM access_log WHERE organisation_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(&organisation_id)
        .bind(anchor)
        .bind(EXPIRE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let through = oldest
            .iter()
            .take_while(|(_, at, _)| *at < cutoff)
            .last()
            .cloned();
        let Some((seq, _, hash)) = through else {
            tx.rollback().await?;
            continue;
        };
        removed += sqlx::query("DELETE FROM access_log WHERE organisation_id = $1 AND seq <= $2")
            .bind(&organisation_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE access_log_heads SET anchor_seq = $1, anchor_hash = $2 WHERE organisation_id = $3",
        )
        .bind(seq)
        .bind(&hash)
        .bind(&organisation_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: "e1".into(),
            organisation_id: "o1".into(),
            seq: 1,
            accessed_at: 1_700_000_000_000,
            actor_account_id: "a1".into(),
            actor_role: "worker".into(),
            on_behalf_of: None,
            subject_account_id: "m1".into(),
            subject_membership_id: Some("ms1".into()),
            circle_id: Some("c1".into()),
            kind: "checkins".into(),
            action: "list".into(),
            operation: "list_checkins".into(),
            client: Some("KringApp/1.0".into()),
            session_id: Some("s1".into()),
            result_count: Some(3),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn every_column_is_hashed() {
        let base = entry();
        let digest = base.digest();
        assert_eq!(digest.len(), 64);
        // The stored hash itself is not part of the digest.
        let mut same = base.clone();
        same.hash = "anything".into();
        assert_eq!(same.digest(), digest);
        type Change = Box<dyn Fn(&mut Entry)>;
        let changes: Vec<Change> = vec![
            Box::new(|e| e.id = "e2".into()),
            Box::new(|e| e.organisation_id = "o2".into()),
            Box::new(|e| e.seq = 2),
            Box::new(|e| e.accessed_at += 1),
            Box::new(|e| e.actor_account_id = "a2".into()),
            Box::new(|e| e.actor_role = "coordinator".into()),
            Box::new(|e| e.on_behalf_of = Some("x".into())),
            Box::new(|e| e.subject_account_id = "m2".into()),
            Box::new(|e| e.subject_membership_id = None),
            Box::new(|e| e.circle_id = None),
            Box::new(|e| e.kind = "feed".into()),
            Box::new(|e| e.action = "read".into()),
            Box::new(|e| e.operation = "feed".into()),
            Box::new(|e| e.client = None),
            Box::new(|e| e.session_id = None),
            Box::new(|e| e.result_count = Some(4)),
            Box::new(|e| e.prev_hash = "1".repeat(64)),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(changed.digest(), digest, "column {i} is not hashed");
        }
    }

    #[test]
    fn null_and_empty_and_shifted_text_differ() {
        let mut a = entry();
        a.client = None;
        let mut b = entry();
        b.client = Some(String::new());
        assert_ne!(a.digest(), b.digest());
        // Text moved from one column into its neighbour changes the hash.
        let mut c = entry();
        c.kind = "checkinsl".into();
        c.action = "ist".into();
        assert_ne!(c.digest(), entry().digest());
    }
}

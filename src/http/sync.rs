//! Lists an app keeps a copy of besides the feed: the inbox (per account)
//! and a circle's check-ins. Pages come newest first; `since` takes the
//! `sync_token` of an earlier response and returns what changed after it.
//!
//! Change numbers are handed out when a reader asks, not when a row is
//! written: writes leave `change_seq` at 0, and [`SyncList::catch_up`]
//! numbers every committed row still at 0 with the stream's next number
//! while holding the stream's head row. A number is therefore given only to
//! rows already committed, and every later row gets a higher one, so a sync
//! misses nothing even when writes commit out of order, and writers never
//! take a lock for it (a post notifies many accounts; locking their heads
//! in one transaction could deadlock with other writers).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, Code, Validator};
use crate::http::cursor::{Keyset, parse_limit};
use crate::store::Store;

/// One stream of changes: a table's rows for one account or circle.
#[derive(Debug, Clone, Copy)]
pub struct SyncList<'a> {
    table: &'static str,
    key_column: &'static str,
    key: &'a str,
}

impl<'a> SyncList<'a> {
    /// An account's inbox.
    pub fn inbox(account_id: &'a str) -> Self {
        Self {
            table: "notifications",
            key_column: "account_id",
            key: account_id,
        }
    }

    /// A circle's check-ins.
    pub fn checkins(circle_id: &'a str) -> Self {
        Self {
            table: "checkins",
            key_column: "circle_id",
            key: circle_id,
        }
    }

    fn stream(&self) -> String {
        format!("{}:{}", self.table, self.key)
    }

    /// Numbers the rows written since the last call and returns the
    /// stream's head: every row numbered up to it is committed.
    pub async fn catch_up(&self, store: &Store) -> Result<i64, sqlx::Error> {
        let Self {
            table, key_column, ..
        } = self;
        // Usually nothing is waiting for a number: one read answers.
        let (head, pending): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE((SELECT seq FROM sync_heads WHERE stream = $1), 0),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM {table}
                                           WHERE {key_column} = $2 AND change_seq = 0 LIMIT 1) p)"
        )))
        .bind(self.stream())
        .bind(self.key)
        .fetch_one(store.pool())
        .await?;
        if pending == 0 {
            return Ok(head);
        }
        let mut tx = store.begin().await?;
        let head: i64 = sqlx::query_scalar(
            "INSERT INTO sync_heads (stream, seq) VALUES ($1, 1)
             ON CONFLICT (stream) DO UPDATE SET seq = sync_heads.seq + 1
             RETURNING seq",
        )
        .bind(self.stream())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET change_seq = $1 WHERE {key_column} = $2 AND change_seq = 0"
        )))
        .bind(head)
        .bind(self.key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(head)
    }
}

/// `limit`, `cursor` and `since` for a list an app keeps a copy of.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// How many items to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,300}$")]
    pub cursor: Option<String>,
    /// Incremental sync: the `sync_token` of an earlier response. Returns
    /// every item created or changed after it, oldest change first.
    #[param(pattern = "^[A-Za-z0-9_-]{1,300}$")]
    pub since: Option<String>,
}

/// A parsed [`SyncQuery`] for one stream.
#[derive(Debug, Clone)]
pub struct SyncPage {
    pub limit: i64,
    cursor: Option<Mark>,
    since: Option<i64>,
}

/// Where a page continues: (created time, id) in a listing, (change number,
/// id) in a sync; `sync` is the listing's token. Bound to its stream's key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    at: i64,
    id: String,
    sync: i64,
}

impl Mark {
    fn encode(&self, key: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}.{}.{key}", self.at, self.sync, self.id))
    }

    fn decode(s: &str, key: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let mut parts = raw.splitn(4, '.');
        let at = parts.next()?.parse().ok()?;
        let sync: i64 = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        let valid_id =
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric());
        (parts.next()? == key && valid_id && in_range(sync) && in_range(at)).then(|| Self {
            at,
            id: id.to_owned(),
            sync,
        })
    }
}

/// 410 `resync_required`: a sync position ahead of the server's, as after a
/// restore from an older backup. Continuing from it would skip whatever the
/// server numbers next, so the app starts its copy over.
pub fn resync_required() -> ApiError {
    ApiError::new(
        Code::ResyncRequired,
        "This sync_token is ahead of the server (its data was restored from an older backup); \
         drop your copy and load the list again without since",
    )
}

fn encode_token(seq: i64, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{seq}.{key}"))
}

fn decode_token(s: &str, key: &str) -> Option<i64> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (seq, bound) = raw.split_once('.')?;
    let seq: i64 = seq.parse().ok()?;
    (bound == key && in_range(seq)).then_some(seq)
}

/// A position the server can have handed out. No counter reaches i64::MAX,
/// and a sync continues from the position after its token's, which must
/// not wrap around to the start of the stream.
fn in_range(position: i64) -> bool {
    (0..i64::MAX).contains(&position)
}

impl SyncQuery {
    /// Checks the query for the stream of `key` (an account or circle id).
    pub fn parse(&self, key: &str) -> Result<SyncPage, ApiError> {
        let mut v = Validator::default();
        let limit = v.check("limit", parse_limit(self.limit));
        let cursor = match &self.cursor {
            Some(c) => v.check(
                "cursor",
                Mark::decode(c, key).map(Some).ok_or_else(|| {
                    "is not a next_cursor this server returned for this list".to_owned()
                }),
            ),
            None => Some(None),
        };
        let since = match &self.since {
            Some(s) => v.check(
                "since",
                decode_token(s, key).map(Some).ok_or_else(|| {
                    "is not a sync_token this server returned for this list".to_owned()
                }),
            ),
            None => Some(None),
        };
        match (limit, cursor, since) {
            (Some(limit), Some(cursor), Some(since)) => Ok(SyncPage {
                limit,
                cursor,
                since,
            }),
            _ => Err(v.into_error()),
        }
    }
}

impl SyncPage {
    /// True for a sync (`since` given): the answer also holds what was
    /// removed, so that the app drops its copies.
    pub fn is_sync(&self) -> bool {
        self.since.is_some()
    }

    /// Without `since`: newest first by `created`. With `since`: oldest
    /// change first by `change`, after the token. `first` is the number of
    /// the placeholder for the position; the id's is the next one.
    pub fn keyset(&self, created: &str, change: &str, id: &str, first: usize) -> Keyset {
        let (a, b) = (first, first + 1);
        let (at_ms, id_value) = match (&self.cursor, self.since) {
            (Some(c), _) => (c.at, c.id.clone()),
            // Every id sorts after "": this starts just after the token
            // (below i64::MAX, so this cannot overflow).
            (None, Some(since)) => (since.saturating_add(1), String::new()),
            (None, None) => (i64::MAX, String::new()),
        };
        if self.since.is_some() {
            Keyset {
                condition: format!("({change} > ${a} OR ({change} = ${a} AND {id} > ${b}))"),
                order: format!("{change}, {id}"),
                at_ms,
                id: id_value,
            }
        } else {
            Keyset {
                condition: format!("({created} < ${a} OR ({created} = ${a} AND {id} < ${b}))"),
                order: format!("{created} DESC, {id} DESC"),
                at_ms,
                id: id_value,
            }
        }
    }

    /// 410 `resync_required` when the `since` token (or the cursor of a
    /// sync's later page) is ahead of `head`, the stream's position from
    /// [`SyncList::catch_up`]: the server was restored from an older backup,
    /// and continuing would skip what it numbers next.
    pub fn check_head(&self, head: i64) -> Result<(), ApiError> {
        let position = match (&self.cursor, self.since) {
            (Some(c), Some(_)) => c.at,
            (None, Some(since)) => since,
            (_, None) => return Ok(()),
        };
        if position > head {
            return Err(resync_required());
        }
        Ok(())
    }

    /// Trims the extra fetched row and returns the page's `next_cursor` and
    /// `sync_token`. `head` is what [`SyncList::catch_up`] returned for this
    /// request; `position` gives a row's (created, change, id).
    pub fn finish<T>(
        &self,
        rows: &mut Vec<T>,
        head: i64,
        key: &str,
        position: impl Fn(&T) -> (i64, i64, String),
    ) -> (Option<String>, String) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let last = rows.last().map(&position);
        match self.since {
            // A listing: every page carries the token its first page got.
            None => {
                let sync = self.cursor.as_ref().map_or(head, |c| c.sync);
                let next = last.filter(|_| more).map(|(created, _, id)| Mark {
                    at: created,
                    id,
                    sync,
                });
                (next.map(|m| m.encode(key)), encode_token(sync, key))
            }
            // A sync. With more to come, rows sharing the last one's number
            // may remain: the token stops just before it.
            Some(since) => match last {
                Some((_, change, id)) if more => {
                    let next = Mark {
                        at: change,
                        id,
                        sync: 0,
                    };
                    (Some(next.encode(key)), encode_token(change - 1, key))
                }
                Some((_, change, _)) => (None, encode_token(change.max(head), key)),
                None => (None, encode_token(since.max(head), key)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_tokens_round_trip_and_stay_with_their_stream() {
        let mark = Mark {
            at: 1_700_000_000_000,
            id: "0194f1a2b3c4".into(),
            sync: 42,
        };
        assert_eq!(
            Mark::decode(&mark.encode("acc1"), "acc1"),
            Some(mark.clone())
        );
        assert_eq!(Mark::decode(&mark.encode("acc1"), "acc2"), None);
        assert_eq!(decode_token(&encode_token(7, "c1"), "c1"), Some(7));
        assert_eq!(decode_token(&encode_token(7, "c1"), "c2"), None);
        assert_eq!(decode_token("2026-11-22T09:00:00Z", "c1"), None);
        assert_eq!(Mark::decode("!!", "c1"), None);
    }

    #[test]
    fn positions_out_of_range_are_not_tokens() {
        let max = i64::MAX;
        let forged = URL_SAFE_NO_PAD.encode(format!("{max}.c1"));
        assert_eq!(decode_token(&forged, "c1"), None);
        assert_eq!(
            decode_token(&encode_token(max - 1, "c1"), "c1"),
            Some(max - 1)
        );
        let forged = URL_SAFE_NO_PAD.encode(format!("{max}.0.abc.c1"));
        assert_eq!(Mark::decode(&forged, "c1"), None);
    }

    #[test]
    fn a_token_ahead_of_the_head_asks_for_a_resync() {
        let query = |since: i64| SyncQuery {
            since: Some(encode_token(since, "k")),
            ..SyncQuery::default()
        };
        let page = query(12).parse("k").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(page.check_head(12).is_ok());
        let err = page.check_head(11).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (410, Code::ResyncRequired)
        );
        let listing = SyncQuery::default()
            .parse("k")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(listing.check_head(0).is_ok());
    }

    #[test]
    fn a_sync_page_with_more_to_come_stops_its_token_before_its_last_number() {
        let page = SyncPage {
            limit: 2,
            cursor: None,
            since: Some(10),
        };
        // Rows numbered 11, 12, 12: the third shares the second's number.
        let mut rows = vec![(0, 11, "a"), (0, 12, "b"), (0, 12, "c")];
        let (next, token) = page.finish(&mut rows, 12, "k", |r| (r.0, r.1, r.2.to_owned()));
        assert_eq!(rows.len(), 2);
        assert!(next.is_some());
        assert_eq!(decode_token(&token, "k"), Some(11));
        // The last page: the head, or the last number if a later catch-up
        // already gave out more.
        let mut rows = vec![(0, 12, "c")];
        let (next, token) = page.finish(&mut rows, 12, "k", |r| (r.0, r.1, r.2.to_owned()));
        assert_eq!((next, decode_token(&token, "k")), (None, Some(12)));
        let (_, token) = page.finish(&mut Vec::<(i64, i64, &str)>::new(), 15, "k", |r| {
            (r.0, r.1, r.2.to_owned())
        });
        assert_eq!(decode_token(&token, "k"), Some(15));
    }
}

//! A person's name in one circle, and the look-alike key that keeps names
//! in a circle apart.

use utoipa::ToSchema;

/// A name a person uses in one circle: at most 40 characters as sent, and
/// trimmed at least 2, in NFC, no control or invisible characters; unique
/// among the circle's current members by its look-alike skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonym(String);

impl Pseudonym {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = crate::http::text::name(input)?;
        let trimmed = name.trim();
        // Counted as sent, as the spec's pattern counts.
        if input.chars().count() > 40 || input.trim().chars().count() < 2 {
            return Err("must be 2 to 40 characters".into());
        }
        Ok(Self(
            trimmed.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form compared for uniqueness (`pseudonym_key`): names that a
    /// reader cannot tell apart ("Worker b" with a Cyrillic е, "WORKER B")
    /// share it. See [`rekey_pseudonyms`] when its definition changes.
    pub fn key(&self) -> String {
        key_of(&self.0)
    }
}

/// The key of a pseudonym as stored.
fn key_of(pseudonym: &str) -> String {
    crate::http::text::skeleton_key(pseudonym)
}

/// Computes every stored `pseudonym_key` again, once, after migration 0008
/// made it the look-alike skeleton (SQL cannot compute one). Current members
/// whose names now look alike keep their names, since nobody is renamed
/// behind their back: the later joiner's key gets its membership id appended
/// so that the unique index holds, and a warning names that membership so
/// that staff can ask for another name. Several instances starting at once
/// take turns on the `data_upgrades` row; the first does the work.
pub async fn rekey_pseudonyms(store: &crate::store::Store) -> Result<(), sqlx::Error> {
    const UPGRADE: &str = "pseudonym_skeleton";
    let mut tx = store.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO data_upgrades (name, done_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(UPGRADE)
    .bind(jiff::Timestamp::now().as_millisecond())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(());
    }
    let rows: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, circle_id, pseudonym, left_at FROM memberships ORDER BY circle_id, joined_at, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    // Out of the way first, so that no new key meets an old one mid-way.
    sqlx::query("UPDATE memberships SET pseudonym_key = '#' || id")
        .execute(&mut *tx)
        .await?;
    let mut taken = std::collections::HashSet::new();
    for (id, circle_id, pseudonym, left_at) in &rows {
        let mut key = key_of(pseudonym);
        if left_at.is_none() && !taken.insert((circle_id.clone(), key.clone())) {
            tracing::warn!(
                membership_id = %id,
                circle_id = %circle_id,
                "a current member's pseudonym looks like another's in the circle; ask them for another name"
            );
            key = format!("{key}#{id}");
        }
        sqlx::query("UPDATE memberships SET pseudonym_key = $1 WHERE id = $2")
            .bind(&key)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(
        memberships = rows.len(),
        "pseudonym keys computed again as look-alike skeletons"
    );
    Ok(())
}

impl utoipa::PartialSchema for Pseudonym {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "The name a person uses in one circle: up to 40 characters, at least 2 \
                 besides white space at either end, no control or invisible characters \
                 (Unicode Cf such as zero-width characters and direction marks, Hangul \
                 fillers); stored in NFC. Unique in the circle among names that look \
                 alike: case, look-alike letters from other scripts and decomposed \
                 accents count as the same (the Unicode TR39 confusable skeleton), so \
                 `Workеr b` with a Cyrillic е is taken when `Worker b` is (409 \
                 `pseudonym_taken`).",
            ))
            .max_length(Some(40))
            .pattern(Some(crate::openapi::plain_text_pattern(2)))
            .examples(["Zonnebloem"])
            .into()
    }
}

impl ToSchema for Pseudonym {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_trimmed_and_bounded() {
        assert_eq!(
            Pseudonym::parse("  Zonne   bloem ").map(|p| p.0),
            Ok("Zonne bloem".into())
        );
        assert!(Pseudonym::parse("a").is_err());
        assert!(Pseudonym::parse(&"x".repeat(41)).is_err());
        assert!(Pseudonym::parse("ab\u{7}c").is_err());
        assert_eq!(
            Pseudonym::parse("ZonneBloem").map(|p| p.key()),
            Pseudonym::parse("zonnebloem").map(|p| p.key())
        );
        assert!(Pseudonym::parse("Zon\u{200b}").is_err());
    }
}

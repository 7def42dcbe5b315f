//! The two migration folders describe one schema: same versions, same names,
//! and the same text except where the SQL dialects cannot share one.

use std::collections::BTreeMap;

/// Migrations whose SQLite and PostgreSQL texts may differ, each with why.
/// Anything else is kept in two identical copies.
const DIALECT_SPECIFIC: &[(&str, &str)] = &[
    (
        "0006_silence_rules.sql",
        "reads a policy step from JSON: json_extract on SQLite, jsonb operators on PostgreSQL",
    ),
    (
        "0010_access_log.sql",
        "the trigger that keeps the access log append-only: RAISE in SQLite, a PL/pgSQL function on PostgreSQL",
    ),
];

fn migrations(dialect: &str) -> BTreeMap<String, String> {
    let dir = format!("{}/migrations/{dialect}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("readable migration");
            (name, text)
        })
        .collect()
}

#[test]
fn sqlite_and_postgres_migrations_are_in_step() {
    let sqlite = migrations("sqlite");
    let postgres = migrations("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "same versions, same names"
    );
    for (name, text) in &sqlite {
        let listed = DIALECT_SPECIFIC.iter().any(|(n, _)| n == name);
        let same = postgres.get(name) == Some(text);
        assert!(
            same || listed,
            "{name} differs between migrations/sqlite and migrations/postgres; \
             make the copies identical or list it in DIALECT_SPECIFIC with why"
        );
        assert!(
            !(same && listed),
            "{name} is the same in both folders: take it off DIALECT_SPECIFIC"
        );
    }
    for (name, _) in DIALECT_SPECIFIC {
        assert!(
            sqlite.contains_key(*name),
            "{name} is listed but not a migration"
        );
    }
}

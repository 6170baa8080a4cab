//! A database written by a verifier of schema 1 (enrolments without `on_forensic`) is migrated
//! when a newer verifier opens it: its enrolments keep their meaning (no deviation policy
//! required) and new enrolments can require one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TempDir;
use tsem_verifier::store::{NewEnrolment, Store};

/// Schema 1's enrolment tables, with one enrolment, as that verifier left them.
const SCHEMA_1: [&str; 7] = [
    "CREATE TABLE enrolments (id INTEGER PRIMARY KEY AUTOINCREMENT, workload TEXT NOT NULL, \
     key_pem TEXT, ak_pem TEXT, max_forensics BIGINT NOT NULL, every BIGINT NOT NULL, \
     at BIGINT NOT NULL)",
    "CREATE TABLE enrolment_models (enrolment BIGINT NOT NULL, digest TEXT NOT NULL, \
     PRIMARY KEY (enrolment, digest))",
    "CREATE TABLE workloads (name TEXT PRIMARY KEY, enrolment BIGINT NOT NULL)",
    "CREATE TABLE tsem_verifier_schema (version BIGINT NOT NULL)",
    "INSERT INTO tsem_verifier_schema (version) VALUES (1)",
    "INSERT INTO enrolments (workload, key_pem, ak_pem, max_forensics, every, at) \
     VALUES ('old', 'KEY', NULL, 3, 300, 1)",
    "INSERT INTO enrolment_models (enrolment, digest) VALUES (1, 'aa'); \
     INSERT INTO workloads (name, enrolment) VALUES ('old', 1)",
];

#[test]
fn a_schema_1_database_gains_the_deviation_policy_and_keeps_its_enrolments() {
    let dir = TempDir::new("migration");
    let url = format!("sqlite://{}", dir.0.join("v1.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let old = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        for stmt in SCHEMA_1 {
            sqlx::raw_sql(stmt).execute(&old).await.unwrap();
        }
        old.close().await;

        let store = Store::open(&url).await.unwrap();
        let e = store.enrolled("old").await.unwrap().unwrap();
        assert_eq!(
            (e.key.as_deref(), e.max_forensics, e.on_forensic),
            (Some("KEY"), 3, None)
        );
        let models = [("bb".to_string(), "model text".to_string())];
        let new = NewEnrolment {
            workload: "new",
            key: Some("KEY2"),
            ak: None,
            max_forensics: 0,
            on_forensic: Some("deny"),
            every: 60,
            models: &models,
        };
        store.enroll(&new, 2, "test").await.unwrap();
        drop(store);

        // Opened again: already migrated, nothing lost.
        let store = Store::open(&url).await.unwrap();
        let e = store.enrolled("new").await.unwrap().unwrap();
        assert_eq!(e.on_forensic.as_deref(), Some("deny"));
        assert_eq!(e.models, ["bb"]);
        assert!(store.enrolled("old").await.unwrap().is_some());
        let check = sqlx::SqlitePool::connect(&url).await.unwrap();
        assert_eq!(schema_versions(&check).await, [3]);
        // The fleet key was made once and is read back, not remade, by every later opening:
        // a nonce issued before a restart stays good after it.
        let keys = fleet_keys(&check).await;
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys[0].0,
            tsem_attest::claims::to_hex(store.nonce_key().bytes())
        );
        let n = store.nonce_key().issue("new", 100).unwrap();
        drop(store);
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.nonce_key().check("new", &n, 99), Ok(100));
    });
}

/// A database of schema 2 with a nonce row issued (unused) and one consumed, as a version-2
/// verifier left them: opened by this verifier it gains the fleet key, keeps both rows (nothing
/// is deleted), and neither nonce passes the new check (the attester of the unused one fetches a
/// new nonce; the used one could not be replayed anyway, its result holds it under the UNIQUE
/// index).
#[test]
fn a_schema_2_database_gains_the_fleet_key_and_keeps_its_nonce_rows() {
    let dir = TempDir::new("migration2");
    let url = format!("sqlite://{}", dir.0.join("v2.db").display());
    let (unused, used) = ("ab".repeat(32), "cd".repeat(32));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let old = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        for stmt in [
            "CREATE TABLE nonces (nonce TEXT PRIMARY KEY, workload TEXT NOT NULL, \
             issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)",
            "CREATE TABLE tsem_verifier_schema (version BIGINT NOT NULL)",
            "INSERT INTO tsem_verifier_schema (version) VALUES (2)",
        ] {
            sqlx::raw_sql(stmt).execute(&old).await.unwrap();
        }
        for (n, used_at) in [(&unused, None), (&used, Some(5i64))] {
            sqlx::query("INSERT INTO nonces VALUES ($1, 'w', 1, 9999999999, $2)")
                .bind(n)
                .bind(used_at)
                .execute(&old)
                .await
                .unwrap();
        }
        old.close().await;

        let store = Store::open(&url).await.unwrap();
        for n in [&unused, &used] {
            let bytes = tsem_attest::parse_nonce(n).unwrap();
            assert!(store.nonce_key().check("w", &bytes, 2).is_err(), "{n}");
        }
        let check = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT nonce, used_at FROM nonces ORDER BY nonce")
                .fetch_all(&check)
                .await
                .unwrap();
        assert_eq!(rows, [(unused.clone(), None), (used.clone(), Some(5))]);
        assert_eq!(schema_versions(&check).await, [3]);
        let keys = fleet_keys(&check).await;
        assert_eq!(keys.len(), 1);
    });
}

/// The schema versions a database records.
async fn schema_versions(db: &sqlx::SqlitePool) -> Vec<i64> {
    let v: Vec<(i64,)> = sqlx::query_as("SELECT version FROM tsem_verifier_schema")
        .fetch_all(db)
        .await
        .unwrap();
    v.into_iter().map(|(x,)| x).collect()
}

/// The fleet keys a database holds.
async fn fleet_keys(db: &sqlx::SqlitePool) -> Vec<(String,)> {
    sqlx::query_as("SELECT key FROM fleet_key")
        .fetch_all(db)
        .await
        .unwrap()
}

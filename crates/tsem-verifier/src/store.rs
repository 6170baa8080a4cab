//! Fleet state in a relational database, and nothing else: SQLite (embedded) or PostgreSQL
//! (several verifier processes on several machines). Every table that records what happened is
//! append-only; the only rows ever changed are a workload's pointer to its current enrolment,
//! leases, and an activation challenge's `used_at` (once). Nonces are not rows at all
//! ([`crate::nonce`]): their single use is the UNIQUE nonce of the result that consumes them.
//!
//! One SQL dialect serves both databases (`$N` parameters, `ON CONFLICT`, `RETURNING`); the two
//! differ only in the auto-increment column and in row locking for leases.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};

use crate::nonce::{KEY_LEN, NonceKey};
use crate::protocol::{HistoryEntry, Status};

mod activation;
mod appraisal;
mod batch;
mod leases;
mod ui;
pub use activation::{Activated, ChallengeError, NewChallenge};
pub use appraisal::Recorded;
pub use batch::{Batcher, OwnedResult};
pub use ui::PageEntry;

/// A database failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("database URL {0:?}: expected sqlite://PATH or postgres://...")]
    Url(String),
    /// The database refused or failed.
    #[error("database: {what}: {source}")]
    Db {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A stored value is not what this verifier wrote.
    #[error("database holds a corrupt {0}")]
    Corrupt(&'static str),
    /// A statement sent on a connection that failed before its answer: whether it committed
    /// is not known (posting again is answered truthfully: appended, or replayed).
    #[error("database: connection failed during {0}; whether it was recorded is not known")]
    Lost(String),
    /// The process is stopping: the result was not handed to the database.
    #[error("the verifier is stopping")]
    Stopped,
    /// No randomness for the fleet key.
    #[error("no randomness for the fleet key")]
    Random,
}

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Db { what, source }
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded; a single verifier process.
    Sqlite,
    /// Shared by several verifier processes.
    Postgres,
}

/// A workload's current enrolment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// Enrolment number (they only ever grow).
    pub id: i64,
    /// Ed25519 public key (PEM).
    pub key: Option<String>,
    /// TPM AK (PEM).
    pub ak: Option<String>,
    /// Most forensic events tolerated.
    pub max_forensics: u64,
    /// The deviation policy required (its name), if one is.
    pub on_forensic: Option<String>,
    /// Reporting interval (s).
    pub every: u64,
    /// Digests of the models allowed.
    pub models: Vec<String>,
    /// The fingerprint of the EK the AK was activated against, once it was.
    pub activated: Option<String>,
}

/// An enrolment to record.
#[derive(Debug, Clone, Copy)]
pub struct NewEnrolment<'a> {
    /// The workload.
    pub workload: &'a str,
    /// Ed25519 public key (PEM).
    pub key: Option<&'a str>,
    /// TPM AK (PEM).
    pub ak: Option<&'a str>,
    /// Most forensic events tolerated.
    pub max_forensics: u64,
    /// The deviation policy required (its name), if one is.
    pub on_forensic: Option<&'a str>,
    /// Reporting interval (s).
    pub every: u64,
    /// `(digest, text)` of each model allowed.
    pub models: &'a [(String, String)],
}

/// A result to append to a workload's history.
#[derive(Debug, Clone)]
pub struct NewResult<'a> {
    /// The workload.
    pub workload: &'a str,
    /// Verifier clock.
    pub at: u64,
    /// Verdict.
    pub verdict: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Recording verifier process.
    pub verifier: &'a str,
    /// The nonce the attestation answered (hex): unique among results, which is what makes a
    /// nonce single-use.
    pub nonce: Option<&'a str>,
    /// EAR (JSON).
    pub ear: Option<&'a str>,
    /// The attestation (JSON).
    pub attestation: Option<&'a str>,
    /// Forensic descriptions (JSON array).
    pub forensics: Option<&'a str>,
}

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    nonce_key: NonceKey,
}

/// How long past its interval an affirming workload may go unheard before it is `stale`: half an
/// interval of slack for the attester's own scheduling and the network.
pub fn deadline(every: u64) -> u64 {
    every.saturating_add(every.div_ceil(2))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// 2: `enrolments.on_forensic` (a database of version 1 gets the column, NULL: no policy
/// required, which is what its enrolments meant).
/// 3: stateless nonces: the fleet key (`fleet_key`, made by the first process to open the
/// database); the `nonces` table is no longer written or read (its rows stay: nothing is
/// deleted; a nonce a version-2 verifier issued and nobody used is refused as not issued, and
/// the attester asks for a new one).
const SCHEMA_VERSION: i64 = 3;

fn schema(backend: Backend) -> Vec<String> {
    let serial = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Backend::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    vec![
        "CREATE TABLE IF NOT EXISTS models (digest TEXT PRIMARY KEY, text TEXT NOT NULL, \
         added_at BIGINT NOT NULL)"
            .into(),
        format!(
            "CREATE TABLE IF NOT EXISTS enrolments (id {serial}, workload TEXT NOT NULL, \
             key_pem TEXT, ak_pem TEXT, max_forensics BIGINT NOT NULL, every BIGINT NOT NULL, \
             at BIGINT NOT NULL, on_forensic TEXT)"
        ),
        "CREATE TABLE IF NOT EXISTS enrolment_models (enrolment BIGINT NOT NULL, \
         digest TEXT NOT NULL, PRIMARY KEY (enrolment, digest))"
            .into(),
        "CREATE TABLE IF NOT EXISTS workloads (name TEXT PRIMARY KEY, enrolment BIGINT NOT NULL)"
            .into(),
        // Schema 2's nonces (kept for the history they hold; no longer written).
        "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, workload TEXT NOT NULL, \
         issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)"
            .into(),
        // The key of the stateless nonces: one row, written once.
        "CREATE TABLE IF NOT EXISTS fleet_key (id BIGINT PRIMARY KEY, key TEXT NOT NULL, \
         created_at BIGINT NOT NULL)"
            .into(),
        format!(
            "CREATE TABLE IF NOT EXISTS results (id {serial}, workload TEXT NOT NULL, \
             at BIGINT NOT NULL, verdict TEXT NOT NULL, reason TEXT NOT NULL, \
             verifier TEXT NOT NULL, nonce TEXT, ear TEXT, attestation TEXT, forensics TEXT)"
        ),
        "CREATE INDEX IF NOT EXISTS results_by_workload ON results (workload, id)".into(),
        // What makes a nonce single-use: one result per nonce (NULLs, for notes and `stale`
        // entries, are distinct).
        "CREATE UNIQUE INDEX IF NOT EXISTS results_by_nonce ON results (nonce)".into(),
        "CREATE TABLE IF NOT EXISTS leases (workload TEXT PRIMARY KEY, holder TEXT, \
         expires_at BIGINT NOT NULL)"
            .into(),
        "CREATE TABLE IF NOT EXISTS tsem_verifier_schema (version BIGINT NOT NULL)".into(),
        // Credential activation: challenges issued (single use, like nonces) and AKs activated
        // (one row per enrolment, never changed).
        "CREATE TABLE IF NOT EXISTS activation_challenges (id TEXT PRIMARY KEY, \
         workload TEXT NOT NULL, enrolment BIGINT NOT NULL, answer TEXT NOT NULL, \
         ek TEXT NOT NULL, issuer TEXT NOT NULL, issued_at BIGINT NOT NULL, \
         expires_at BIGINT NOT NULL, used_at BIGINT)"
            .into(),
        "CREATE TABLE IF NOT EXISTS activations (enrolment BIGINT PRIMARY KEY, ek TEXT NOT NULL, \
         issuer TEXT NOT NULL, at BIGINT NOT NULL)"
            .into(),
    ]
}

/// Apply the migrations and return the fleet's nonce key (made here if the database has none).
async fn migrate(pool: &AnyPool, backend: Backend) -> Result<NonceKey, StoreError> {
    let mut tx = pool.begin().await.map_err(db("migrate"))?;
    if backend == Backend::Postgres {
        // Verifier processes starting together must not race on DDL or on the fleet key.
        sqlx::query("SELECT pg_advisory_xact_lock(7415)")
            .execute(&mut *tx)
            .await
            .map_err(db("migration lock"))?;
    }
    for stmt in schema(backend) {
        // Built from constants only.
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await
            .map_err(db("migrate"))?;
    }
    if backend == Backend::Postgres {
        // An appraisal's row (attestation, EAR, reason: about 2 KB) is just over PostgreSQL's
        // default TOAST threshold, so every insert tried to compress it — and found it
        // incompressible (hex digests, signatures). Only rows over 8 KB are compressed now.
        // Idempotent, so every start applies it.
        sqlx::query("ALTER TABLE results SET (toast_tuple_target = 8160)")
            .execute(&mut *tx)
            .await
            .map_err(db("migrate"))?;
    }
    let v: Option<i64> = sqlx::query("SELECT MAX(version) FROM tsem_verifier_schema")
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(db("schema version"))?;
    if v == Some(1) {
        // Its enrolments table was created without the column (CREATE TABLE IF NOT EXISTS
        // left it as it was).
        sqlx::query("ALTER TABLE enrolments ADD COLUMN on_forensic TEXT")
            .execute(&mut *tx)
            .await
            .map_err(db("migrate to schema 2"))?;
    }
    match v {
        None => {
            sqlx::query("INSERT INTO tsem_verifier_schema (version) VALUES ($1)")
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(db("schema version"))?;
        }
        Some(v) if v < SCHEMA_VERSION => {
            sqlx::query("UPDATE tsem_verifier_schema SET version = $1")
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(db("schema version"))?;
        }
        Some(_) => {}
    }
    // The first process makes the key; every later one (and every concurrent one: the insert
    // conflicts) reads the one stored.
    let fresh = NonceKey::generate().map_err(|_| StoreError::Random)?;
    sqlx::query(
        "INSERT INTO fleet_key (id, key, created_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(tsem_attest::claims::to_hex(fresh.bytes()))
    .bind(to_i64(tsem_attest::now_unix()))
    .execute(&mut *tx)
    .await
    .map_err(db("store the fleet key"))?;
    let hex: String = sqlx::query("SELECT key FROM fleet_key WHERE id = 1")
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(db("read the fleet key"))?;
    let bytes = tsem_attest::claims::from_hex("fleet key", &hex)
        .ok()
        .and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok())
        .ok_or(StoreError::Corrupt("fleet key"))?;
    tx.commit().await.map_err(db("migrate"))?;
    Ok(NonceKey::new(bytes))
}

impl Store {
    /// Connect to `url` (`sqlite://PATH`, created if missing, or `postgres://...`) and apply the
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("mode=") {
                url.to_string()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; more connections only contend for its lock.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .connect(&url)
            .await
            .map_err(db("connect"))?;
        if backend == Backend::Sqlite {
            // Readers (status) then never block the writer (appraisals). Persistent in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(db("journal mode"))?;
        }
        let nonce_key = migrate(&pool, backend).await?;
        Ok(Self {
            pool,
            backend,
            nonce_key,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The fleet's nonce key (the same in every process on this database).
    pub fn nonce_key(&self) -> &NonceKey {
        &self.nonce_key
    }

    /// Record an enrolment: the models (by digest, text kept once), the workload's keys and
    /// policy; the workload's history gets a `none` entry saying so.
    pub async fn enroll(
        &self,
        e: &NewEnrolment<'_>,
        now: u64,
        verifier: &str,
    ) -> Result<i64, StoreError> {
        let NewEnrolment {
            workload,
            key,
            ak,
            max_forensics,
            on_forensic,
            every,
            models,
        } = *e;
        let mut tx = self.pool.begin().await.map_err(db("enrol"))?;
        for (digest, text) in models {
            sqlx::query(
                "INSERT INTO models (digest, text, added_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(digest)
            .bind(text)
            .bind(to_i64(now))
            .execute(&mut *tx)
            .await
            .map_err(db("store model"))?;
        }
        let id: i64 = sqlx::query(
            "INSERT INTO enrolments (workload, key_pem, ak_pem, max_forensics, every, at, \
             on_forensic) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(workload)
        .bind(key)
        .bind(ak)
        .bind(to_i64(max_forensics))
        .bind(to_i64(every))
        .bind(to_i64(now))
        .bind(on_forensic)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(db("store enrolment"))?;
        for (digest, _) in models {
            sqlx::query(
                "INSERT INTO enrolment_models (enrolment, digest) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(digest)
            .execute(&mut *tx)
            .await
            .map_err(db("store enrolment"))?;
        }
        sqlx::query(
            "INSERT INTO workloads (name, enrolment) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET enrolment = excluded.enrolment",
        )
        .bind(workload)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db("store workload"))?;
        sqlx::query(
            "INSERT INTO leases (workload, holder, expires_at) VALUES ($1, NULL, 0) \
             ON CONFLICT (workload) DO NOTHING",
        )
        .bind(workload)
        .execute(&mut *tx)
        .await
        .map_err(db("store lease"))?;
        let digests: Vec<&str> = models.iter().map(|m| m.0.as_str()).collect();
        let policy = match on_forensic {
            Some(p) => format!("; deviation policy {p} required"),
            None => String::new(),
        };
        let reason = format!(
            "enrolled (enrolment {id}): model(s) {}; at most {max_forensics} forensic event(s)\
             {policy}; reports every {every} s; no attestation yet",
            digests.join(", ")
        );
        insert_note(&mut tx, workload, now, &reason, verifier).await?;
        tx.commit().await.map_err(db("enrol"))?;
        Ok(id)
    }

    /// The current enrolment of `workload`, in one round trip: one row per model allowed.
    pub async fn enrolled(&self, workload: &str) -> Result<Option<Enrolled>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.key_pem, e.ak_pem, e.max_forensics, e.every, a.ek, m.digest, \
             e.on_forensic FROM workloads w JOIN enrolments e ON e.id = w.enrolment \
             JOIN enrolment_models m ON m.enrolment = e.id \
             LEFT JOIN activations a ON a.enrolment = e.id WHERE w.name = $1 ORDER BY m.digest",
        )
        .bind(workload)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read enrolment"))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let get = |r: &AnyRow| -> Result<Enrolled, sqlx::Error> {
            Ok(Enrolled {
                id: r.try_get(0)?,
                key: r.try_get(1)?,
                ak: r.try_get(2)?,
                max_forensics: to_u64(r.try_get(3)?),
                on_forensic: r.try_get(7)?,
                every: to_u64(r.try_get(4)?),
                models: Vec::new(),
                activated: r.try_get(5)?,
            })
        };
        let mut e = get(first).map_err(db("read enrolment"))?;
        for r in &rows {
            e.models
                .push(r.try_get(6).map_err(db("read enrolment models"))?);
        }
        Ok(Some(e))
    }

    /// The text of the model with `digest`.
    pub async fn model_text(&self, digest: &str) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT text FROM models WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .and_then(|r| r.map(|r| r.try_get(0)).transpose())
            .map_err(db("read model"))
    }

    /// Every workload's standing at `now`: its latest result, or `stale` when an affirming,
    /// warning or never-heard workload has been silent past its [`deadline`].
    pub async fn status(&self, now: u64, only: Option<&str>) -> Result<Vec<Status>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.name, r.verdict, r.reason, r.at, e.every, l.holder, l.expires_at \
             FROM workloads w JOIN enrolments e ON e.id = w.enrolment \
             JOIN results r ON r.id = (SELECT MAX(id) FROM results WHERE workload = w.name) \
             LEFT JOIN leases l ON l.workload = w.name \
             WHERE ($1 = '' OR w.name = $1) ORDER BY w.name",
        )
        .bind(only.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read status"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |r: &AnyRow| -> Result<_, sqlx::Error> {
                let name: String = r.try_get(0)?;
                let verdict: String = r.try_get(1)?;
                let reason: String = r.try_get(2)?;
                let at: i64 = r.try_get(3)?;
                let every: i64 = r.try_get(4)?;
                let holder: Option<String> = r.try_get(5)?;
                let expires: Option<i64> = r.try_get(6)?;
                Ok((name, verdict, reason, at, every, holder, expires))
            };
            let (workload, verdict, reason, at, every, holder, expires) =
                get(&row).map_err(db("read status"))?;
            let (at, every) = (to_u64(at), to_u64(every));
            let lease_holder = holder.filter(|_| expires.is_some_and(|e| to_u64(e) > now));
            let s = match stale_reason(&verdict, at, every, now) {
                Some(reason) => Status {
                    workload,
                    verdict: "stale".into(),
                    reason,
                    at: at.saturating_add(deadline(every)),
                    lease_holder,
                },
                None => Status {
                    workload,
                    verdict,
                    reason,
                    at,
                    lease_holder,
                },
            };
            out.push(s);
        }
        Ok(out)
    }

    /// A workload's history, oldest first, at most `limit` entries after `after`.
    pub async fn history(
        &self,
        workload: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, verdict, reason, verifier, ear, forensics FROM results \
             WHERE workload = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(workload)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read history"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let get = |r: &AnyRow| -> Result<_, sqlx::Error> {
                let ear: Option<String> = r.try_get(5)?;
                let forensics: Option<String> = r.try_get(6)?;
                Ok((
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<i64, _>(1)?,
                    r.try_get::<String, _>(2)?,
                    r.try_get::<String, _>(3)?,
                    r.try_get::<String, _>(4)?,
                    ear,
                    forensics,
                ))
            };
            let (id, at, verdict, reason, verifier, ear, forensics) =
                get(&r).map_err(db("read history"))?;
            let ear = ear
                .map(|e| serde_json::from_str(&e))
                .transpose()
                .map_err(|_| StoreError::Corrupt("EAR"))?;
            let forensics = forensics
                .map(|f| serde_json::from_str(&f))
                .transpose()
                .map_err(|_| StoreError::Corrupt("forensics list"))?
                .unwrap_or_default();
            out.push(HistoryEntry {
                id,
                at: to_u64(at),
                verdict,
                reason,
                verifier,
                ear,
                forensics,
            });
        }
        Ok(out)
    }

    /// Count of results recorded with a nonce (accepted attestations) per workload, for tests and
    /// audits: `(workload, count, distinct nonces)`.
    pub async fn accepted_counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT workload, COUNT(*), COUNT(DISTINCT nonce) FROM results \
             WHERE nonce IS NOT NULL GROUP BY workload ORDER BY workload",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("count results"))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("count results"))
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Why a workload whose latest verdict is `verdict`, reached at `at`, is stale at `now`; `None`
/// when it is not. Only good news goes stale: a contraindicated workload stays contraindicated.
pub(crate) fn stale_reason(verdict: &str, at: u64, every: u64, now: u64) -> Option<String> {
    let due = at.saturating_add(deadline(every));
    if !matches!(verdict, "affirming" | "warning" | "none") || now <= due {
        return None;
    }
    Some(format!(
        "no attestation accepted for {} s (since {at}); the workload reports every {every} s \
         and was due by {due}; last verdict: {verdict}",
        now - at
    ))
}

/// Append a `none` entry that records an event in a workload's life (enrolment, activation),
/// not an appraisal.
pub(crate) async fn insert_note(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workload: &str,
    at: u64,
    reason: &str,
    verifier: &str,
) -> Result<(), StoreError> {
    insert_result(
        tx,
        &NewResult {
            workload,
            at,
            verdict: "none",
            reason,
            verifier,
            nonce: None,
            ear: None,
            attestation: None,
            forensics: None,
        },
    )
    .await
}

pub(crate) async fn insert_result(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &NewResult<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO results (workload, at, verdict, reason, verifier, nonce, ear, attestation, \
         forensics) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(r.workload)
    .bind(to_i64(r.at))
    .bind(r.verdict)
    .bind(r.reason)
    .bind(r.verifier)
    .bind(r.nonce)
    .bind(r.ear)
    .bind(r.attestation)
    .bind(r.forensics)
    .execute(&mut **tx)
    .await
    .map_err(db("append result"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_good_news_goes_stale() {
        assert_eq!(deadline(10), 15);
        assert_eq!(deadline(1), 2);
        assert!(stale_reason("affirming", 100, 10, 115).is_none());
        assert!(stale_reason("affirming", 100, 10, 116).is_some());
        assert!(stale_reason("none", 100, 10, 116).is_some());
        assert!(stale_reason("contraindicated", 100, 10, 10_000).is_none());
        assert!(stale_reason("stale", 100, 10, 10_000).is_none());
    }
}

//! Group commit: the appraisals that are ready while a statement runs are appended together by
//! the next one. On PostgreSQL most of an appraisal's database time is the statement, not the
//! row (a round trip to its backend, executor start, commit: about 0.2 ms of CPU on the 2-core
//! development VM, docs/verifier.md "Performance"); on SQLite it is the commit's fsync. k rows in
//! one statement cost little more than one. Nothing waits for a batch to fill: a flusher takes
//! what is queued the moment it is free, so at low load every statement holds one row, as
//! without batching.
//!
//! Each row keeps exactly the guarantees of [`Store::record`]: it is one statement of
//! `INSERT … SELECT … FROM (VALUES …) WHERE EXISTS (current enrolment) ON CONFLICT (nonce) DO
//! NOTHING RETURNING nonce`, so a row is appended only with its enrolment current and its nonce
//! unused, atomically, and every caller is answered only after the statement has committed (or
//! failed). Two rows of one nonce never share a statement (the later one is recorded alone
//! afterwards, and finds the nonce used), so a returned nonce names exactly one caller's row.
//! A statement that fails (a row the database refuses) commits nothing, and its rows are then
//! recorded one by one, so one bad row cannot fail the others.
//!
//! Each flusher holds one connection for its statements instead of taking one from the pool
//! per statement: the pool tests an idle connection with a round trip (a ping) before handing
//! it out, which cost PostgreSQL a second wake-up per statement, and the pool hands its idle
//! connections out in turn, so statements went to a different backend each time. A held
//! connection is given up after any error (it may be broken): the statement's rows are then
//! appended one by one through the pool, and the next statement takes a tested connection.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::Row as _;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Backend, NewResult, Recorded, Store, StoreError, db, to_i64};

/// Rows in one statement at most (10 parameters each; PostgreSQL allows 65 535).
const MAX_ROWS: usize = 64;
/// Statements in flight at once on PostgreSQL: one is built and sent while another commits.
/// SQLite has one writer at a time: a second would only wait for its lock.
fn flushers(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 2,
        Backend::Sqlite => 1,
    }
}

/// A result to append, owned (it waits in a queue).
#[derive(Debug, Clone)]
pub struct OwnedResult {
    /// The workload.
    pub workload: String,
    /// Verifier clock.
    pub at: u64,
    /// Verdict.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// Recording verifier process.
    pub verifier: String,
    /// The nonce (hex).
    pub nonce: String,
    /// EAR (JSON).
    pub ear: String,
    /// The attestation (JSON).
    pub attestation: String,
    /// Forensic descriptions (JSON array).
    pub forensics: String,
    /// The enrolment the appraisal used.
    pub enrolment: i64,
}

impl OwnedResult {
    fn borrowed(&self) -> NewResult<'_> {
        NewResult {
            workload: &self.workload,
            at: self.at,
            verdict: &self.verdict,
            reason: &self.reason,
            verifier: &self.verifier,
            nonce: Some(&self.nonce),
            ear: Some(&self.ear),
            attestation: Some(&self.attestation),
            forensics: Some(&self.forensics),
        }
    }
}

struct Job {
    row: OwnedResult,
    done: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The queue of results to append, and its flushers (tasks of the current runtime).
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Start the flushers on `store`.
    pub fn start(store: Store) -> Self {
        let (queue, rx) = mpsc::channel::<Job>(4 * MAX_ROWS);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..flushers(store.backend) {
            tokio::spawn(flusher(store.clone(), rx.clone()));
        }
        Self { queue }
    }

    /// Append `row` as [`Store::record`] would, in a statement shared with whatever else is
    /// queued; returns once that statement has committed or failed.
    pub async fn record(&self, row: OwnedResult) -> Result<Recorded, StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Job { row, done })
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

/// A flusher's connection, when it holds one.
type Held = Option<PoolConnection<sqlx::Any>>;

async fn flusher(store: Store, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut held: Held = None;
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < MAX_ROWS {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        if held.is_none() {
            // None when the pool cannot give one now: the statements then take theirs from it.
            held = store.pool.acquire().await.ok();
        }
        flush(&store, &mut held, jobs).await;
    }
}

/// Give up the held connection (after an error: it may be broken).
async fn give_up(held: &mut Held) {
    if let Some(c) = held.take() {
        let _ = c.close().await;
    }
}

/// Append one row on the held connection, else on one from the pool.
async fn append_one(
    store: &Store,
    held: &mut Held,
    row: &OwnedResult,
) -> Result<Recorded, StoreError> {
    let r = match held.as_mut() {
        Some(c) => store.record_on(c, &row.borrowed(), row.enrolment).await,
        None => store.record(&row.borrowed(), row.enrolment).await,
    };
    if r.is_err() {
        give_up(held).await;
    }
    r
}

async fn flush(store: &Store, held: &mut Held, jobs: Vec<Job>) {
    let mut seen = HashSet::new();
    let (batch, later): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|j| seen.insert(j.row.nonce.clone()));
    if batch.len() == 1 {
        for j in batch {
            let r = append_one(store, held, &j.row).await;
            let _ = j.done.send(r);
        }
    } else {
        let rows: Vec<&OwnedResult> = batch.iter().map(|j| &j.row).collect();
        let appended = match held.as_mut() {
            Some(c) => store.record_many_on(c, &rows).await,
            None => store.record_many(&rows).await,
        };
        match appended {
            Ok(appended) => {
                for j in batch {
                    let r = if appended.contains(&j.row.nonce) {
                        Ok(Recorded::Appended)
                    } else {
                        store.why_not_recorded(&j.row.nonce).await
                    };
                    let _ = j.done.send(r);
                }
            }
            // The database refused the statement, so nothing was committed: each row on its
            // own, so a row it refuses fails alone.
            Err(e) if refused(&e) => {
                eprintln!(
                    "tsem verifier: {e}; appending those {} results one by one",
                    batch.len()
                );
                give_up(held).await;
                one_by_one(store, batch).await;
            }
            // The connection failed: the statement may have committed, and appending its rows
            // again would answer a recorded post "replayed". Each is told it is not known.
            Err(e) => {
                eprintln!("tsem verifier: {e}");
                give_up(held).await;
                for j in batch {
                    let _ = j.done.send(Err(StoreError::Lost(e.to_string())));
                }
            }
        }
    }
    for j in later {
        let r = append_one(store, held, &j.row).await;
        let _ = j.done.send(r);
    }
}

/// Whether the database itself answered `e`: then the statement committed nothing.
fn refused(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Db {
            source: sqlx::Error::Database(_),
            ..
        }
    )
}

/// Each row in a statement of its own, through the pool.
async fn one_by_one(store: &Store, jobs: Vec<Job>) {
    for j in jobs {
        let r = store.record(&j.row.borrowed(), j.row.enrolment).await;
        // The caller may have gone (its connection closed): the row stands either way.
        let _ = j.done.send(r);
    }
}

/// `INSERT … SELECT … FROM (VALUES (…), …)` for `n` rows: built from constants and numbers only.
/// The VALUES columns are named `column1`… by both databases (SQLite cannot rename them).
fn many_sql(n: usize) -> String {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let b = i * 10;
        values.push(format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 10
        ));
    }
    format!(
        "INSERT INTO results (workload, at, verdict, reason, verifier, nonce, ear, attestation, \
         forensics) \
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, \
         v.column8, v.column9 FROM (VALUES {}) AS v \
         WHERE EXISTS (SELECT 1 FROM workloads w WHERE w.name = v.column1 \
         AND w.enrolment = v.column10) \
         ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
        values.join(", ")
    )
}

impl Store {
    /// Append `rows` (distinct nonces) in one statement, each only if its nonce is unused and
    /// its enrolment current; returns the nonces of the rows appended.
    pub async fn record_many(&self, rows: &[&OwnedResult]) -> Result<HashSet<String>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("append results"))?;
        self.record_many_on(&mut conn, rows).await
    }

    /// [`Self::record_many`] on `conn`.
    async fn record_many_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        rows: &[&OwnedResult],
    ) -> Result<HashSet<String>, StoreError> {
        let sql = many_sql(rows.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in rows {
            q = q
                .bind(r.workload.as_str())
                .bind(to_i64(r.at))
                .bind(r.verdict.as_str())
                .bind(r.reason.as_str())
                .bind(r.verifier.as_str())
                .bind(r.nonce.as_str())
                .bind(r.ear.as_str())
                .bind(r.attestation.as_str())
                .bind(r.forensics.as_str())
                .bind(r.enrolment);
        }
        let appended = q
            .fetch_all(&mut *conn)
            .await
            .map_err(db("append results"))?;
        appended
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(db("append results"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::store::NewEnrolment;

    fn row(nonce: &str, enrolment: i64, reason: &str) -> OwnedResult {
        OwnedResult {
            workload: "w".into(),
            at: 1,
            verdict: "affirming".into(),
            reason: reason.into(),
            verifier: "test".into(),
            nonce: nonce.into(),
            ear: "{}".into(),
            attestation: "{}".into(),
            forensics: "[]".into(),
            enrolment,
        }
    }

    /// One flush of several rows: distinct nonces of the current enrolment appended in one
    /// statement; the same nonce twice in the queue recorded once (the second told replayed); a
    /// nonce used before told replayed; a row of a replaced enrolment told so; then (PostgreSQL:
    /// SQLite stores a NUL byte) a statement the database refuses fails only its own row, and
    /// gives up the held connection; a held connection whose backend was terminated fails its
    /// statement (nothing recorded) and is given up, and the next row goes through the pool.
    fn a_flush_records_each_row_exactly_as_alone(url: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Store::open(url).await.unwrap();
            let models = [("aa".to_string(), "m".to_string())];
            let e = NewEnrolment {
                workload: "w",
                key: Some("K"),
                ak: None,
                max_forensics: 0,
                on_forensic: None,
                every: 60,
                models: &models,
            };
            let old = store.enroll(&e, 1, "test").await.unwrap();
            let current = store.enroll(&e, 1, "test").await.unwrap();
            let used = row("00", current, "earlier");
            let alone = store.record(&used.borrowed(), current).await.unwrap();
            assert_eq!(alone, Recorded::Appended);

            // The statement itself (the flush below would hide its failure behind the
            // one-by-one fallback).
            let (f, g) = (row("0f", current, "f"), row("10", old, "g"));
            let appended = store.record_many(&[&f, &g]).await.unwrap();
            assert_eq!(appended, HashSet::from(["0f".to_string()]));

            let queue = [
                row("0a", current, "a"),
                row("0b", current, "b"),
                row("0a", current, "a again"),
                row("00", current, "replayed"),
                row("0c", old, "stale enrolment"),
            ];
            // Held as a flusher holds it.
            let mut held: Held = Some(store.pool.acquire().await.unwrap());
            let mut answers = Vec::new();
            let mut jobs = Vec::new();
            for r in queue {
                let (done, answer) = oneshot::channel();
                jobs.push(Job { row: r, done });
                answers.push(answer);
            }
            flush(&store, &mut held, jobs).await;
            let mut got = Vec::new();
            for a in answers {
                got.push(a.await.unwrap().unwrap());
            }
            assert_eq!(
                got,
                [
                    Recorded::Appended,
                    Recorded::Appended,
                    Recorded::Replayed(1),
                    Recorded::Replayed(1),
                    Recorded::EnrolmentChanged,
                ]
            );

            if store.backend == Backend::Sqlite {
                let (done, fine) = oneshot::channel();
                let job = Job {
                    row: row("0e", current, "fine"),
                    done,
                };
                flush(&store, &mut held, vec![job]).await;
                assert_eq!(fine.await.unwrap().unwrap(), Recorded::Appended);
                assert!(held.is_some());
            } else {
                let (done, bad) = oneshot::channel();
                let (done2, good) = oneshot::channel();
                let jobs = vec![
                    Job {
                        row: row("0d", current, "nul \0 byte"),
                        done,
                    },
                    Job {
                        row: row("0e", current, "fine"),
                        done: done2,
                    },
                ];
                flush(&store, &mut held, jobs).await;
                assert!(bad.await.unwrap().is_err());
                assert_eq!(good.await.unwrap().unwrap(), Recorded::Appended);
                // The failed statement's connection was given up; the rows went through the
                // pool, and so does the next statement until a flusher takes another.
                assert!(held.is_none());

                // A held connection whose backend is gone (as after a PostgreSQL restart): its
                // statement fails before anything is committed, the connection is given up and
                // the row appended through the pool.
                let mut held: Held = Some(store.pool.acquire().await.unwrap());
                let c = held.as_mut().unwrap();
                let pid: i32 = sqlx::query("SELECT pg_backend_pid()")
                    .fetch_one(&mut **c)
                    .await
                    .unwrap()
                    .try_get(0)
                    .unwrap();
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .execute(&store.pool)
                    .await
                    .unwrap();
                let (done, after) = oneshot::channel();
                let job = Job {
                    row: row("11", current, "after a lost connection"),
                    done,
                };
                flush(&store, &mut held, vec![job]).await;
                assert!(held.is_none());
                let r = after.await.unwrap();
                assert!(r.is_err(), "the statement on the lost connection: {r:?}");
                let (done, next) = oneshot::channel();
                let job = Job {
                    row: row("12", current, "next"),
                    done,
                };
                flush(&store, &mut held, vec![job]).await;
                assert_eq!(next.await.unwrap().unwrap(), Recorded::Appended);
            }

            let pg = store.backend == Backend::Postgres;
            let counts = store.accepted_counts().await.unwrap();
            assert_eq!(
                counts,
                [("w".to_string(), 5 + i64::from(pg), 5 + i64::from(pg))]
            );
            let reasons: Vec<String> =
                sqlx::query("SELECT reason FROM results WHERE nonce IS NOT NULL ORDER BY nonce")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.try_get(0).unwrap())
                    .collect();
            let mut expected = vec!["earlier", "a", "b", "fine", "f"];
            if pg {
                // Not the row sent on the lost connection: that statement never ran.
                expected.push("next");
            }
            assert_eq!(reasons, expected);
        });
    }

    #[test]
    fn the_statement_numbers_ten_parameters_per_row() {
        let one = many_sql(1);
        assert!(one.contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"));
        let three = many_sql(3);
        assert!(three.contains("($21, $22, $23, $24, $25, $26, $27, $28, $29, $30))"));
        assert!(!three.contains("$31"));
    }

    #[test]
    fn a_flush_on_sqlite() {
        let dir = tsem_testdata::services::TempDir::new("batch");
        a_flush_records_each_row_exactly_as_alone(&format!(
            "sqlite://{}",
            dir.0.join("v.db").display()
        ));
    }

    #[test]
    fn a_flush_on_postgres() {
        let Some(pg) = tsem_testdata::services::Postgres::start("batch") else {
            return;
        };
        a_flush_records_each_row_exactly_as_alone(&pg.url);
    }
}

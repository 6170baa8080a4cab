//! The database side of one appraisal: one statement. Nonces are checked without the database
//! ([`crate::nonce`]) and enrolments are cached by the verifier process, so what is left is to
//! append the result — and that one statement decides the two things only the database can:
//!
//! - **single use**: the results' nonce is UNIQUE, and the insert is `ON CONFLICT (nonce) DO
//!   NOTHING`: of several posts of one nonce, to one process or several, exactly one inserts a
//!   row (on PostgreSQL a concurrent insert of the same key waits for the first to commit or
//!   abort, then conflicts or proceeds); the others insert nothing;
//! - **the current enrolment**: the row is inserted only `WHERE EXISTS` the workload with the
//!   enrolment the appraisal used. A re-enrolment made through another process makes the insert
//!   do nothing; the appraiser then reloads the enrolment and appraises again.
//!
//! A single statement is its own transaction: a 200 still means committed. Only when nothing was
//! inserted does a second read say why (replayed, or the enrolment changed).

use sqlx::Row as _;

use super::{NewResult, Store, StoreError, db, to_i64, to_u64};

/// What became of a result to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Appended (committed).
    Appended,
    /// Nothing appended: a result with this nonce was appended at this time.
    Replayed(u64),
    /// Nothing appended: the workload's current enrolment is no longer the one appraised
    /// against.
    EnrolmentChanged,
}

impl Store {
    /// Append `r`, a result with a nonce appraised against enrolment `enrolment`, if no result
    /// holds that nonce yet and `enrolment` is still the workload's current one: one statement.
    pub async fn record(&self, r: &NewResult<'_>, enrolment: i64) -> Result<Recorded, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("append result"))?;
        self.record_on(&mut conn, r, enrolment).await
    }

    /// [`Self::record`] on `conn` (a connection a flusher holds, [`super::batch`]).
    pub(crate) async fn record_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        r: &NewResult<'_>,
        enrolment: i64,
    ) -> Result<Recorded, StoreError> {
        let Some(nonce) = r.nonce else {
            return Err(StoreError::Corrupt("result without nonce"));
        };
        let appended = sqlx::query(
            "INSERT INTO results (workload, at, verdict, reason, verifier, nonce, ear, \
             attestation, forensics) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
             WHERE EXISTS (SELECT 1 FROM workloads WHERE name = $1 AND enrolment = $10) \
             ON CONFLICT (nonce) DO NOTHING RETURNING id",
        )
        .bind(r.workload)
        .bind(to_i64(r.at))
        .bind(r.verdict)
        .bind(r.reason)
        .bind(r.verifier)
        .bind(nonce)
        .bind(r.ear)
        .bind(r.attestation)
        .bind(r.forensics)
        .bind(enrolment)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("append result"))?;
        if appended.is_some() {
            return Ok(Recorded::Appended);
        }
        self.why_not_recorded(nonce).await
    }

    /// Why a result with `nonce` was not appended: the nonce's result, if there is one, says
    /// replayed (whatever the enrolment); else the enrolment changed.
    pub async fn why_not_recorded(&self, nonce: &str) -> Result<Recorded, StoreError> {
        let used = sqlx::query("SELECT at FROM results WHERE nonce = $1")
            .bind(nonce)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read the nonce's result"))?;
        match used {
            Some(row) => {
                let at: i64 = row.try_get(0).map_err(db("read the nonce's result"))?;
                Ok(Recorded::Replayed(to_u64(at)))
            }
            None => Ok(Recorded::EnrolmentChanged),
        }
    }
}

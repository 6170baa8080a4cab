//! The database side of one appraisal, in as few round trips as the database allows: the
//! enrolment and the presented nonce's standing in one read, and the nonce consumed together
//! with the result appended.
//!
//! On PostgreSQL the consumption is one statement (a data-modifying CTE: the `UPDATE` of the
//! nonce feeds the `INSERT` of the result, so the result is written only if this statement is the
//! one that consumed the nonce; a concurrent consumer waits on the row lock and then finds
//! `used_at` set). A single statement is its own transaction, so it commits as atomically as
//! `BEGIN … COMMIT` did, in one round trip instead of four. SQLite has no data-modifying CTEs:
//! there the two statements run in one transaction, in process.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{
    Backend, Enrolled, NewResult, NonceState, Store, StoreError, db, insert_result, to_i64, to_u64,
};

impl Store {
    /// The current enrolment of `workload` and what `nonce` is for it at `now`, in one round
    /// trip (one row per model allowed). `None` when the workload is not enrolled. The nonce's
    /// standing is a read: [`Store::record`] decides atomically.
    pub async fn enrolled_with_nonce(
        &self,
        workload: &str,
        nonce: &str,
        now: u64,
    ) -> Result<Option<(Enrolled, NonceState)>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.key_pem, e.ak_pem, e.max_forensics, e.every, a.ek, m.digest, \
             n.expires_at, n.used_at, e.on_forensic \
             FROM workloads w JOIN enrolments e ON e.id = w.enrolment \
             JOIN enrolment_models m ON m.enrolment = e.id \
             LEFT JOIN activations a ON a.enrolment = e.id \
             LEFT JOIN nonces n ON n.nonce = $2 AND n.workload = w.name \
             WHERE w.name = $1 ORDER BY m.digest",
        )
        .bind(workload)
        .bind(nonce)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read enrolment"))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let get = |r: &AnyRow| -> Result<(Enrolled, NonceState), sqlx::Error> {
            let e = Enrolled {
                id: r.try_get(0)?,
                key: r.try_get(1)?,
                ak: r.try_get(2)?,
                max_forensics: to_u64(r.try_get(3)?),
                on_forensic: r.try_get(9)?,
                every: to_u64(r.try_get(4)?),
                models: Vec::new(),
                activated: r.try_get(5)?,
            };
            // `expires_at` is NOT NULL in the table: NULL here means no such nonce.
            let expires: Option<i64> = r.try_get(7)?;
            let used: Option<i64> = r.try_get(8)?;
            let n = match (expires, used) {
                (None, _) => NonceState::Unknown,
                (Some(_), Some(t)) => NonceState::Used(to_u64(t)),
                (Some(x), None) if to_u64(x) <= now => NonceState::Expired(to_u64(x)),
                (Some(_), None) => NonceState::Fresh,
            };
            Ok((e, n))
        };
        let (mut e, n) = get(first).map_err(db("read enrolment"))?;
        for r in &rows {
            e.models
                .push(r.try_get(6).map_err(db("read enrolment models"))?);
        }
        Ok(Some((e, n)))
    }

    /// Consume `r.nonce` and append `r` atomically: `Ok(false)` (nothing written) when the nonce
    /// was not fresh at the moment of consumption, so of two posts of one attestation, whichever
    /// verifier process they reach, exactly one is recorded.
    pub async fn record(&self, r: &NewResult<'_>) -> Result<bool, StoreError> {
        let Some(nonce) = r.nonce else {
            return Err(StoreError::Corrupt("result without nonce"));
        };
        if self.backend == Backend::Postgres {
            let n = sqlx::query(
                "WITH consumed AS (UPDATE nonces SET used_at = $1 WHERE nonce = $2 \
                 AND workload = $3 AND used_at IS NULL AND expires_at > $1 RETURNING nonce) \
                 INSERT INTO results (workload, at, verdict, reason, verifier, nonce, ear, \
                 attestation, forensics) \
                 SELECT $3, $1, $4, $5, $6, consumed.nonce, $7, $8, $9 FROM consumed",
            )
            .bind(to_i64(r.at))
            .bind(nonce)
            .bind(r.workload)
            .bind(r.verdict)
            .bind(r.reason)
            .bind(r.verifier)
            .bind(r.ear)
            .bind(r.attestation)
            .bind(r.forensics)
            .execute(&self.pool)
            .await
            .map_err(db("consume nonce and append result"))?
            .rows_affected();
            return Ok(n == 1);
        }
        let mut tx = self.pool.begin().await.map_err(db("record"))?;
        let n = sqlx::query(
            "UPDATE nonces SET used_at = $1 WHERE nonce = $2 AND workload = $3 \
             AND used_at IS NULL AND expires_at > $1",
        )
        .bind(to_i64(r.at))
        .bind(nonce)
        .bind(r.workload)
        .execute(&mut *tx)
        .await
        .map_err(db("consume nonce"))?
        .rows_affected();
        if n != 1 {
            tx.rollback().await.map_err(db("record"))?;
            return Ok(false);
        }
        insert_result(&mut tx, r).await?;
        tx.commit().await.map_err(db("record"))?;
        Ok(true)
    }
}

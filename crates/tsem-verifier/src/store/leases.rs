//! Leases: which verifier process records which workloads' silence (docs/verifier.md,
//! "Leases"). Renewal is per process and per third of a lease, never per attestation.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Backend, Store, StoreError, db, stale_reason, to_i64, to_u64};

impl Store {
    /// Renew the leases `me` holds and take those whose holder let them expire (a dead verifier
    /// process), at most `limit` at a time; returns the workloads `me` now holds until
    /// `now + ttl`. On PostgreSQL the rows are locked with `FOR UPDATE SKIP LOCKED`, so two
    /// processes claiming at once never both get one lease and never wait on each other.
    pub async fn claim_leases(
        &self,
        me: &str,
        now: u64,
        ttl: u64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time: the UPDATE is already exclusive.
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE leases SET holder = $1, expires_at = $2 WHERE workload IN \
             (SELECT workload FROM leases WHERE holder = $1 OR holder IS NULL OR expires_at <= $3 \
             ORDER BY workload LIMIT $4{lock}) RETURNING workload"
        );
        // Built from constants only.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me)
            .bind(to_i64(now.saturating_add(ttl)))
            .bind(to_i64(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db("claim leases"))?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(db("claim leases"))
    }

    /// Give up `me`'s leases (on an orderly shutdown), so another process takes them at once.
    pub async fn release_leases(&self, me: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE leases SET holder = NULL, expires_at = 0 WHERE holder = $1")
            .bind(me)
            .execute(&self.pool)
            .await
            .map_err(db("release leases"))?;
        Ok(())
    }

    /// Append a `stale` entry to the history of each workload whose lease `me` holds that has
    /// gone silent past its deadline, unless something was appended since we looked; returns
    /// how many. One read for all of them (not one per workload: a process holding 10 000
    /// leases would otherwise read 10 000 times every third of a lease), then one conditional
    /// insert per stale workload.
    pub async fn mark_stale_held(&self, me: &str, now: u64) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT w.name, r.id, r.verdict, r.at, e.every FROM leases l \
             JOIN workloads w ON w.name = l.workload \
             JOIN enrolments e ON e.id = w.enrolment \
             JOIN results r ON r.id = (SELECT MAX(id) FROM results WHERE workload = w.name) \
             WHERE l.holder = $1 AND l.expires_at > $2",
        )
        .bind(me)
        .bind(to_i64(now))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read latest results"))?;
        let mut marked = 0;
        for row in rows {
            let get = |r: &AnyRow| -> Result<_, sqlx::Error> {
                Ok((
                    r.try_get::<String, _>(0)?,
                    r.try_get::<i64, _>(1)?,
                    r.try_get::<String, _>(2)?,
                    r.try_get::<i64, _>(3)?,
                    r.try_get::<i64, _>(4)?,
                ))
            };
            let (workload, id, verdict, at, every) =
                get(&row).map_err(db("read latest results"))?;
            let Some(reason) = stale_reason(&verdict, to_u64(at), to_u64(every), now) else {
                continue;
            };
            // Conditional on the latest entry still being the one judged stale.
            let n = sqlx::query(
                "INSERT INTO results (workload, at, verdict, reason, verifier) \
                 SELECT $1, $2, 'stale', $3, $4 \
                 WHERE (SELECT MAX(id) FROM results WHERE workload = $1) = $5",
            )
            .bind(&workload)
            .bind(to_i64(now))
            .bind(&reason)
            .bind(me)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("record stale"))?
            .rows_affected();
            marked += usize::from(n == 1);
        }
        Ok(marked)
    }
}

//! The reads behind the web page: a workload's latest entries with the attestations they
//! appraised, and each workload's latest attested host.

use sqlx::Row as _;

use super::{Store, StoreError, db, to_u64};

/// One history entry as the web page shows it.
#[derive(Debug, Clone)]
pub struct PageEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: u64,
    /// The verdict.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// The attestation appraised (JSON), for appraisals.
    pub attestation: Option<String>,
    /// The forensic descriptions posted with it (JSON array).
    pub forensics: Option<String>,
}

impl Store {
    /// The latest `limit` entries of `workload`'s history, oldest first.
    pub async fn latest_entries(
        &self,
        workload: &str,
        limit: i64,
    ) -> Result<Vec<PageEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, verdict, reason, attestation, forensics FROM results \
             WHERE workload = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(workload)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read history"))?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(PageEntry {
                    id: r.try_get(0)?,
                    at: to_u64(r.try_get(1)?),
                    verdict: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    attestation: r.try_get(4)?,
                    forensics: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("read history"))?;
        out.reverse();
        Ok(out)
    }

    /// `(workload, attestation JSON)` of each workload's latest appraised attestation.
    pub async fn latest_attestations(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT workload, attestation FROM results WHERE id IN \
             (SELECT MAX(id) FROM results WHERE attestation IS NOT NULL GROUP BY workload)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("read attestations"))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("read attestations"))
    }
}

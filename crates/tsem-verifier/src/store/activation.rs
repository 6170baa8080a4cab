//! Credential activation in the database: a challenge is single-use like a nonce (consumed by one
//! atomic `UPDATE`, whatever verifier process the answer reaches), and an AK, once activated,
//! stays activated for its enrolment (a row never changed, and an entry in the history).

use sqlx::Row as _;

use super::{Store, StoreError, db, insert_note, to_i64, to_u64};

/// Why an answer to a challenge activates nothing.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// No such challenge for this workload.
    #[error("activation challenge {0} was not issued by this verifier to this workload")]
    Unknown(String),
    /// Already answered once: a replayed activation.
    #[error("replayed: activation challenge {id} was already answered at {at}")]
    Replayed {
        /// The challenge.
        id: String,
        /// When it was answered.
        at: u64,
    },
    /// Past its expiry.
    #[error("activation challenge {id} expired at {at}")]
    Expired {
        /// The challenge.
        id: String,
        /// When.
        at: u64,
    },
    /// The credential is not the one protected: the AK and the EK are not in one TPM.
    #[error("wrong credential: the AK and the EK are not in the same TPM (challenge {0} is spent)")]
    Wrong(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A challenge to record.
#[derive(Debug, Clone, Copy)]
pub struct NewChallenge<'a> {
    /// Its id (hex).
    pub id: &'a str,
    /// The workload.
    pub workload: &'a str,
    /// The enrolment whose AK it activates.
    pub enrolment: i64,
    /// SHA-256 of the credential (hex): the database never holds the credential itself.
    pub answer: &'a str,
    /// The EK certificate's fingerprint.
    pub ek: &'a str,
    /// The CA that issued the EK certificate.
    pub issuer: &'a str,
    /// Issued at.
    pub now: u64,
    /// Expires at.
    pub expires: u64,
}

/// An activated AK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    /// The enrolment.
    pub enrolment: i64,
    /// The EK certificate's fingerprint.
    pub ek: String,
    /// The CA that issued it.
    pub issuer: String,
}

impl Store {
    /// Record an activation challenge.
    pub async fn issue_challenge(&self, c: &NewChallenge<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO activation_challenges (id, workload, enrolment, answer, ek, issuer, \
             issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
        )
        .bind(c.id)
        .bind(c.workload)
        .bind(c.enrolment)
        .bind(c.answer)
        .bind(c.ek)
        .bind(c.issuer)
        .bind(to_i64(c.now))
        .bind(to_i64(c.expires))
        .execute(&self.pool)
        .await
        .map_err(db("issue activation challenge"))?;
        Ok(())
    }

    /// Spend challenge `id` of `workload` and, when `matches(stored answer)`, activate its
    /// enrolment's AK and say so in the history, all in one transaction. A wrong answer spends
    /// the challenge too: one guess per challenge.
    pub async fn answer_challenge(
        &self,
        workload: &str,
        id: &str,
        matches: impl FnOnce(&str) -> bool,
        now: u64,
        verifier: &str,
    ) -> Result<Activated, ChallengeError> {
        let mut tx = self.pool.begin().await.map_err(db("activate"))?;
        let row = sqlx::query(
            "UPDATE activation_challenges SET used_at = $1 WHERE id = $2 AND workload = $3 \
             AND used_at IS NULL AND expires_at > $1 RETURNING enrolment, answer, ek, issuer",
        )
        .bind(to_i64(now))
        .bind(id)
        .bind(workload)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("spend activation challenge"))?;
        let Some(row) = row else {
            tx.rollback().await.map_err(db("activate"))?;
            return Err(self.challenge_error(workload, id).await);
        };
        let get = |r: &sqlx::any::AnyRow| -> Result<_, sqlx::Error> {
            Ok((
                r.try_get::<i64, _>(0)?,
                r.try_get::<String, _>(1)?,
                r.try_get::<String, _>(2)?,
                r.try_get::<String, _>(3)?,
            ))
        };
        let (enrolment, answer, ek, issuer) = get(&row).map_err(db("read activation challenge"))?;
        if !matches(&answer) {
            tx.commit().await.map_err(db("activate"))?;
            return Err(ChallengeError::Wrong(id.to_string()));
        }
        sqlx::query(
            "INSERT INTO activations (enrolment, ek, issuer, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (enrolment) DO NOTHING",
        )
        .bind(enrolment)
        .bind(&ek)
        .bind(&issuer)
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await
        .map_err(db("record activation"))?;
        let reason = format!(
            "AK activated (enrolment {enrolment}): TPM2_ActivateCredential answered by the TPM \
             whose EK certificate sha256:{ek} was issued by {issuer}; no attestation yet"
        );
        insert_note(&mut tx, workload, now, &reason, verifier).await?;
        tx.commit().await.map_err(db("activate"))?;
        Ok(Activated {
            enrolment,
            ek,
            issuer,
        })
    }

    async fn challenge_error(&self, workload: &str, id: &str) -> ChallengeError {
        let row = sqlx::query(
            "SELECT used_at, expires_at FROM activation_challenges WHERE id = $1 AND workload = $2",
        )
        .bind(id)
        .bind(workload)
        .fetch_optional(&self.pool)
        .await;
        let id = id.to_string();
        match row {
            Err(e) => db("read activation challenge")(e).into(),
            Ok(None) => ChallengeError::Unknown(id),
            Ok(Some(r)) => match (r.try_get::<Option<i64>, _>(0), r.try_get::<i64, _>(1)) {
                (Ok(Some(at)), _) => ChallengeError::Replayed { id, at: to_u64(at) },
                (Ok(None), Ok(at)) => ChallengeError::Expired { id, at: to_u64(at) },
                (Err(e), _) | (_, Err(e)) => db("read activation challenge")(e).into(),
            },
        }
    }
}

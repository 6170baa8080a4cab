//! Appraisal of a posted attestation: the nonce (issued by this fleet, for this workload,
//! unexpired: a computation, [`crate::nonce`]), then everything `tsem verify` checks, through the
//! same [`tsem_attest::verify`], against each model enrolled for the workload; the outcome as an
//! EAR, appended to the workload's history by the one statement that also decides that the nonce
//! was not used before and that the enrolment is still current ([`crate::store::Store::record`]).

use std::sync::Arc;

use tsem_attest::claims::to_hex;
use tsem_attest::{AkKey, ExpectedModel, Policy, PublicKey, Rejection, Verified};
use tsem_core::hash::HashAlg;
use tsem_core::policy::Policy as Deviation;
use tsem_format::ModelFile;

use crate::nonce::NonceError;
use crate::protocol::{self, Appraisal, Enrolment, Post, ProtocolError};
use crate::server::App;
use crate::store::{Enrolled, OwnedResult, Recorded, StoreError};

/// Why a post is not appraised (nothing is recorded for it).
#[derive(Debug, thiserror::Error)]
pub enum AppraiseError {
    /// The body is not a well-formed post.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// No such workload.
    #[error("workload {0:?} is not enrolled")]
    NotEnrolled(String),
    /// A model or key in an enrolment cannot be used.
    #[error("{0}")]
    Model(String),
    /// A nonce this verifier never issued to this workload.
    #[error("nonce {0} was not issued by this verifier to this workload")]
    NonceUnknown(String),
    /// A nonce past its expiry.
    #[error("nonce {nonce} expired at {expired}")]
    NonceExpired {
        /// The nonce.
        nonce: String,
        /// When.
        expired: u64,
    },
    /// A nonce already consumed: a replayed attestation.
    #[error("replayed: nonce {nonce} was already used at {at}")]
    Replayed {
        /// The nonce.
        nonce: String,
        /// When it was consumed.
        at: u64,
    },
    /// Not signed (or quoted) by the enrolled key, or not fresh: nothing in it is appraised.
    #[error("{0}")]
    Unauthentic(Rejection),
    /// The verifier trusts only activated AKs (`--ek-ca`) and this one was not activated.
    #[error(
        "workload {0:?}: its TPM AK was not activated against a certified EK (tsem verifier activate)"
    )]
    NotActivated(String),
    /// The workload was re-enrolled (through other processes) during each of several
    /// appraisals of this post: nothing was recorded; posting again is safe.
    #[error("workload {0:?} was re-enrolled while its attestation was appraised; post it again")]
    Reenrolled(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash function the verifier models in (as `tsem verify`'s default).
const ALG: HashAlg = HashAlg::Sha256;

fn parse_model(text: &str) -> Result<ModelFile, AppraiseError> {
    let m = ModelFile::parse_bytes(text.as_bytes())
        .map_err(|e| AppraiseError::Model(format!("model: {e}")))?;
    // A signed model that no longer verifies has been altered.
    if m.is_signed() {
        m.verify(None)
            .map_err(|e| AppraiseError::Model(format!("model: {e}")))?;
    }
    Ok(m)
}

/// The deviation policy an enrolment requires, if any.
fn required_policy(p: Option<&str>) -> Result<Option<Deviation>, AppraiseError> {
    p.map(|p| {
        p.parse::<Deviation>()
            .map_err(|e| AppraiseError::Model(format!("on_forensic: {e}")))
    })
    .transpose()
}

/// Check an enrolment's keys, policy and models; returns `(digest, text)` of each model.
pub fn check_enrolment(e: &Enrolment) -> Result<Vec<(String, String)>, AppraiseError> {
    required_policy(e.on_forensic.as_deref())?;
    if let Some(k) = &e.key {
        PublicKey::from_pem(k).map_err(|e| AppraiseError::Model(format!("key: {e}")))?;
    }
    if let Some(k) = &e.ak {
        AkKey::from_pem(k).map_err(|e| AppraiseError::Model(format!("ak: {e}")))?;
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(e.models.len());
    for (i, text) in e.models.iter().enumerate() {
        let m =
            parse_model(text).map_err(|err| AppraiseError::Model(format!("models[{i}]: {err}")))?;
        ExpectedModel::from_model(&m, ALG)
            .map_err(|err| AppraiseError::Model(format!("models[{i}]: {err}")))?;
        let digest = tsem_attest::model_digest(&m).to_hex();
        if !out.iter().any(|o| o.0 == digest) {
            out.push((digest, text.clone()));
        }
    }
    Ok(out)
}

async fn model(app: &App, digest: &str) -> Result<Arc<ExpectedModel>, AppraiseError> {
    if let Some(m) = app.models.lock().ok().and_then(|c| c.get(digest).cloned()) {
        return Ok(m);
    }
    let text = app
        .store
        .model_text(digest)
        .await?
        .ok_or(StoreError::Corrupt("enrolment naming a missing model"))?;
    let m = parse_model(&text)?;
    let m = Arc::new(
        ExpectedModel::from_model(&m, ALG).map_err(|e| AppraiseError::Model(e.to_string()))?,
    );
    if let Ok(mut c) = app.models.lock() {
        c.insert(digest.to_string(), m.clone());
    }
    Ok(m)
}

fn verdict_line(v: &Verified, digest: &str) -> String {
    let mut s = format!(
        "verified: state {} is model sha256:{digest}'s; {} events, {} forensic, 0 lost; {}",
        v.state,
        v.events,
        v.forensics_events,
        match (v.signed, v.quoted) {
            (true, Some(_)) => "Ed25519 signature and TPM quote valid",
            (false, Some(_)) => "TPM quote valid",
            _ => "Ed25519 signature valid",
        }
    );
    for w in &v.warnings {
        s.push_str("; warning: ");
        s.push_str(w);
    }
    s
}

/// How many times an appraisal is repeated because the workload was re-enrolled meanwhile
/// (through another process) before the post is refused as a conflict.
const ATTEMPTS: usize = 4;

/// An enrolment as a process caches it, with its keys and policy parsed once: a PEM parse and an
/// Ed25519 point decompression per post would cost about a fifth of the signature check.
pub(crate) struct CachedEnrolment {
    pub(crate) enrolled: Enrolled,
    /// The policy but for the nonce and the time; or why the enrolment cannot be used.
    policy: Result<Policy, String>,
}

impl CachedEnrolment {
    fn new(enrolled: Enrolled, nonce_ttl: u64) -> Self {
        let policy = (|| {
            let mut p = Policy::new(Vec::new());
            p.key = enrolled
                .key
                .as_deref()
                .map(PublicKey::from_pem)
                .transpose()
                .map_err(|e| format!("enrolled key: {e}"))?;
            p.ak = enrolled
                .ak
                .as_deref()
                .map(AkKey::from_pem)
                .transpose()
                .map_err(|e| format!("enrolled AK: {e}"))?;
            p.max_forensics = enrolled.max_forensics;
            p.on_forensic =
                required_policy(enrolled.on_forensic.as_deref()).map_err(|e| e.to_string())?;
            p.max_age = Some(nonce_ttl);
            Ok(p)
        })();
        Self { enrolled, policy }
    }
}

/// The enrolment of `workload`: from this process's cache unless `reload`, else read (and
/// cached). `None` when it is not enrolled (never cached: made-up names must not grow the map).
pub(crate) async fn enrolment(
    app: &App,
    workload: &str,
    reload: bool,
) -> Result<Option<Arc<CachedEnrolment>>, StoreError> {
    if !reload
        && let Some(e) = app
            .enrolments
            .lock()
            .ok()
            .and_then(|c| c.get(workload).cloned())
    {
        return Ok(Some(e));
    }
    let e = app
        .store
        .enrolled(workload)
        .await?
        .map(|e| Arc::new(CachedEnrolment::new(e, app.cfg.nonce_ttl)));
    if let Ok(mut c) = app.enrolments.lock() {
        match &e {
            Some(e) => c.insert(workload.to_string(), e.clone()),
            None => c.remove(workload),
        };
    }
    Ok(e)
}

/// Appraise the post `body` for `workload`, record the result, and return it.
///
/// The enrolment comes from the cache. It is read again when it may be out of date: when the
/// append statement finds the workload re-enrolled (through any process), and when the post
/// fails a check a newer enrolment could pass (its key, its AK's activation) — a re-enrolment
/// with a new key must take effect on the next post, and an attestation refused against a stale
/// key would never reach the statement that notices.
pub(crate) async fn appraise(
    app: &App,
    workload: &str,
    body: &[u8],
) -> Result<Appraisal, AppraiseError> {
    let post = protocol::parse_post(body)?;
    let nonce = post
        .attestation
        .claims
        .nonce_bytes()
        .map_err(|e| ProtocolError::Field {
            field: "attestation.claims.nonce",
            msg: e.to_string(),
        })?;
    let nonce_hex = to_hex(&nonce);
    let now = tsem_attest::now_unix();
    let mut enrolled = enrolment(app, workload, false)
        .await?
        .ok_or_else(|| AppraiseError::NotEnrolled(workload.to_string()))?;
    match app.store.nonce_key().check(workload, &nonce, now) {
        Ok(_) => {}
        Err(NonceError::Expired(expired)) => {
            return Err(AppraiseError::NonceExpired {
                nonce: nonce_hex,
                expired,
            });
        }
        Err(_) => return Err(AppraiseError::NonceUnknown(nonce_hex)),
    }
    let mut fresh = false;
    for _ in 0..ATTEMPTS {
        let outcome = appraise_against(app, workload, &post, &nonce, &nonce_hex, now, &enrolled);
        match outcome.await {
            Ok(Some(a)) => return Ok(a),
            // The append found the workload re-enrolled: nothing was recorded.
            Ok(None) => {}
            Err(e @ (AppraiseError::Unauthentic(_) | AppraiseError::NotActivated(_))) => {
                if fresh {
                    return Err(e);
                }
                let now_enrolled = enrolment(app, workload, true)
                    .await?
                    .ok_or_else(|| AppraiseError::NotEnrolled(workload.to_string()))?;
                let (new, old) = (&now_enrolled.enrolled, &enrolled.enrolled);
                if new.id == old.id && new.activated == old.activated {
                    return Err(e);
                }
                enrolled = now_enrolled;
                fresh = true;
                continue;
            }
            Err(e) => return Err(e),
        }
        enrolled = enrolment(app, workload, true)
            .await?
            .ok_or_else(|| AppraiseError::NotEnrolled(workload.to_string()))?;
        fresh = true;
    }
    Err(AppraiseError::Reenrolled(workload.to_string()))
}

/// One appraisal against `enrolled`; `Ok(None)` when the append found the workload re-enrolled
/// (nothing recorded).
async fn appraise_against(
    app: &App,
    workload: &str,
    post: &Post,
    nonce: &[u8],
    nonce_hex: &str,
    now: u64,
    cached: &CachedEnrolment,
) -> Result<Option<Appraisal>, AppraiseError> {
    let enrolled = &cached.enrolled;
    let att = &post.attestation;
    if !app.cfg.ek_cas.is_empty() && enrolled.ak.is_some() && enrolled.activated.is_none() {
        return Err(AppraiseError::NotActivated(workload.to_string()));
    }
    let mut policy = cached.policy.clone().map_err(AppraiseError::Model)?;
    policy.nonce = nonce.to_vec();
    policy.now = now;

    // The model the attester names first, then the others (a roll-out allows several).
    let mut digests = enrolled.models.clone();
    if let Some(named) = &att.claims.model {
        digests.sort_by_key(|d| !d.eq_ignore_ascii_case(named));
    }
    let mut best: Option<(String, Result<Verified, Rejection>)> = None;
    for d in digests {
        let m = model(app, &d).await?;
        let outcome = tsem_attest::verify_memo(att, &m, &policy, &app.states);
        let ok = outcome.is_ok();
        if ok || best.is_none() {
            best = Some((d, outcome));
        }
        if ok {
            break;
        }
    }
    let Some((digest, outcome)) = best else {
        return Err(StoreError::Corrupt("enrolment without models").into());
    };
    let vector = tsem_attest::ear::trust_vector(&outcome);
    if let Err(r) = &outcome
        && vector
            .get("instance-identity")
            .and_then(serde_json::Value::as_i64)
            == Some(99)
    {
        return Err(AppraiseError::Unauthentic(r.clone()));
    }
    let reason = match &outcome {
        Ok(v) => verdict_line(v, &digest),
        Err(r) => format!("rejected: {r}"),
    };
    let ear = tsem_attest::ear::ear(
        &outcome,
        nonce,
        now,
        &format!("tsem/model/sha256:{digest}"),
        &reason,
    );
    let verdict = tsem_attest::ear::status(&vector).to_string();
    let ear_text = ear.to_string();
    let att_text = serde_json::to_string(att).unwrap_or_default();
    let forensics = serde_json::to_string(&post.forensics).unwrap_or_default();
    let recorded = app
        .batcher
        .record(OwnedResult {
            workload: workload.to_string(),
            at: now,
            verdict: verdict.clone(),
            reason: reason.clone(),
            verifier: app.cfg.id.clone(),
            nonce: nonce_hex.to_string(),
            ear: ear_text,
            attestation: att_text,
            forensics,
            enrolment: enrolled.id,
        })
        .await?;
    match recorded {
        Recorded::Appended => Ok(Some(Appraisal {
            verdict,
            reason,
            ear,
            // The server issues it (crate::server::attestation) once the answer is certain.
            next_nonce: None,
        })),
        Recorded::Replayed(at) => Err(AppraiseError::Replayed {
            nonce: nonce_hex.to_string(),
            at,
        }),
        Recorded::EnrolmentChanged => Ok(None),
    }
}

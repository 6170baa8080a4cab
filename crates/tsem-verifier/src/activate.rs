//! TPM-rooted enrolment over HTTP: the attester presents its EK certificate and its AK's public
//! area; the verifier checks both ([`tsem_attest::credential`]) and answers with a credential made
//! for them (TPM2_MakeCredential in software); the attester's TPM recovers it with
//! TPM2_ActivateCredential and posts it back. A correct answer to a challenge never answered
//! before activates the enrolled AK; until then, with `--ek-ca` configured, no TPM quote by it is
//! appraised ([`crate::appraise`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sha2::Digest as _;
use tsem_attest::claims::to_hex;
use tsem_attest::credential::{AkPublic, check_ek_cert, make_credential};

use crate::protocol::{self, ActivationChallenge};
use crate::server::{App, error, internal, json_response, named_body, random_hex, same_secret};
use crate::store::{ChallengeError, NewChallenge};

/// `POST /v1/workloads/{name}/activation`.
pub(crate) async fn challenge(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match named_body(&name, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if app.cfg.ek_cas.is_empty() {
        return error(
            StatusCode::CONFLICT,
            "this verifier trusts AKs as enrolled (serve --ek-ca to require activation)",
        );
    }
    let enrolled = match app.store.enrolled(&name).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("workload {name:?} is not enrolled"),
            );
        }
        Err(e) => return internal(e),
    };
    let Some(enrolled_ak) = &enrolled.ak else {
        return error(
            StatusCode::CONFLICT,
            format!("workload {name:?} was enrolled without a TPM AK (--ak)"),
        );
    };
    if let Some(ek) = &enrolled.activated {
        return error(
            StatusCode::CONFLICT,
            format!(
                "workload {name:?}: its AK is already activated (EK sha256:{ek}); enrol again to \
                 change it"
            ),
        );
    }
    if !app.nonce_buckets.take(&name) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limit: too many requests for workload {name:?}"),
        );
    }
    let req = match protocol::parse_activation_request(&body) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let ak = match AkPublic::parse(&req.ak_public) {
        Ok(ak) => ak,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if !ak.is_key(enrolled_ak) {
        return error(
            StatusCode::FORBIDDEN,
            format!("the AK presented is not the one enrolled for workload {name:?}"),
        );
    }
    let now = tsem_attest::now_unix();
    let ek = match check_ek_cert(&req.ek_cert, &req.ek_chain, &app.cfg.ek_cas, now) {
        Ok(ek) => ek,
        Err(e) => return error(StatusCode::FORBIDDEN, e),
    };
    let mut credential = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut credential) {
        return internal(format!("no randomness for a credential: {e}"));
    }
    let made = match make_credential(&ek.key, &ak.name, &credential) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let id = match random_hex(16) {
        Ok(id) => id,
        Err(e) => return internal(e),
    };
    let expires = now.saturating_add(app.cfg.nonce_ttl);
    let answer = to_hex(&sha2::Sha256::digest(credential));
    let new = NewChallenge {
        id: &id,
        workload: &name,
        enrolment: enrolled.id,
        answer: &answer,
        ek: &ek.fingerprint,
        issuer: &ek.issuer,
        now,
        expires,
    };
    if let Err(e) = app.store.issue_challenge(&new).await {
        return internal(e);
    }
    json_response(
        StatusCode::CREATED,
        &ActivationChallenge {
            challenge: id,
            credential_blob: to_hex(&made.blob),
            secret: to_hex(&made.secret),
            expires,
        },
    )
}

/// `POST /v1/workloads/{name}/activation/{id}`.
pub(crate) async fn answer(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match named_body(&name, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(StatusCode::BAD_REQUEST, "challenge: not 1 to 64 hex digits");
    }
    let given = match protocol::parse_activation_answer(&body) {
        Ok(c) => to_hex(&sha2::Sha256::digest(c)),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let now = tsem_attest::now_unix();
    let outcome = app
        .store
        .answer_challenge(
            &name,
            &id,
            |stored| same_secret(stored.as_bytes(), given.as_bytes()),
            now,
            &app.cfg.id,
        )
        .await;
    match outcome {
        Ok(a) => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "workload": name,
                "activated": true,
                "enrolment": a.enrolment,
                "ek": a.ek,
                "issuer": a.issuer,
            }),
        ),
        Err(ChallengeError::Store(e)) => internal(e),
        Err(e) => {
            let code = match e {
                ChallengeError::Replayed { .. } => StatusCode::CONFLICT,
                _ => StatusCode::FORBIDDEN,
            };
            eprintln!("tsem verifier: {name}: activation refused: {e}");
            error(code, format!("activation refused: {e}"))
        }
    }
}

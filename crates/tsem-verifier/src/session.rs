//! An attester that reports to a verifier repeatedly (`tsem run --verifier --every`, the
//! benchmark's clients, any API user): each appraisal answer carries the nonce for the next
//! attestation ([`crate::protocol::Appraisal::next_nonce`]), so after the first attestation each
//! one is a single request — the post — where it was two (nonce, then post).
//!
//! Nothing about freshness moves to the client: the held nonce was issued by the verifier like
//! any other, expires like any other, and is single use by the same append. The session only
//! decides when to ask for a fresh one: when it holds none, when the one it holds is past the
//! expiry the verifier gave with it (by the local clock, which the attestation's own time must
//! agree with anyway: saves a post certain to be refused), and when the verifier answers that
//! the held one expired — then it fetches one and attests again, once.

use crate::client::{Client, ClientError};
use crate::protocol::{Appraisal, NONCE_EXPIRED, NonceGrant, Post};

/// A workload's attestations to one verifier, holding the nonce for the next.
#[derive(Debug)]
pub struct Session {
    client: Client,
    workload: String,
    held: Option<NonceGrant>,
}

impl Session {
    /// Attest as `workload` through `client`; the first attestation asks for a nonce.
    pub fn new(client: Client, workload: impl Into<String>) -> Self {
        Self {
            client,
            workload: workload.into(),
            held: None,
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The workload's name.
    pub fn workload(&self) -> &str {
        &self.workload
    }

    /// The nonce held for the next attestation, if any.
    pub fn held(&self) -> Option<&NonceGrant> {
        self.held.as_ref()
    }

    /// Hold `grant` for the next attestation (a nonce obtained otherwise).
    pub fn hold(&mut self, grant: NonceGrant) {
        self.held = Some(grant);
    }

    /// One attestation: a nonce (the held one, else a fresh one), `make` turns it into the post
    /// (called after the nonce is known, so what it attests is never older than the challenge),
    /// the post, and the answer's next nonce held. When the verifier refuses a held nonce as
    /// expired, a fresh one is fetched and `make` called again, once. Any other refusal is
    /// returned, and the next attestation asks for a fresh nonce.
    pub fn attest<E: From<ClientError>>(
        &mut self,
        mut make: impl FnMut(&[u8]) -> Result<Post, E>,
    ) -> Result<Appraisal, E> {
        let now = tsem_attest::now_unix();
        let held = self.held.take().filter(|g| g.expires > now);
        let (grant, was_held) = match held {
            Some(g) => (g, true),
            None => (self.client.nonce(&self.workload)?, false),
        };
        match self.post(&grant, &mut make) {
            Err(Attempt::Expired(_)) if was_held => {
                let fresh = self.client.nonce(&self.workload)?;
                self.post(&fresh, &mut make).map_err(Attempt::into_error)
            }
            r => r.map_err(Attempt::into_error),
        }
    }

    fn post<E: From<ClientError>>(
        &mut self,
        grant: &NonceGrant,
        make: &mut impl FnMut(&[u8]) -> Result<Post, E>,
    ) -> Result<Appraisal, Attempt<E>> {
        let nonce = tsem_attest::claims::from_hex("nonce", &grant.nonce).map_err(|e| {
            Attempt::Failed(E::from(ClientError::Response {
                url: self.client.url().to_string(),
                msg: format!("the verifier's nonce: {e}"),
            }))
        })?;
        let post = make(&nonce).map_err(Attempt::Failed)?;
        match self.client.post(&self.workload, &post) {
            Ok(mut a) => {
                self.held = a.next_nonce.take();
                Ok(a)
            }
            Err(e @ ClientError::Status { .. }) if is_expired(&e) => Err(Attempt::Expired(e)),
            Err(e) => Err(Attempt::Failed(E::from(e))),
        }
    }
}

/// How one post went wrong.
enum Attempt<E> {
    /// The verifier refused the nonce as expired.
    Expired(ClientError),
    /// Anything else.
    Failed(E),
}

impl<E: From<ClientError>> Attempt<E> {
    fn into_error(self) -> E {
        match self {
            Self::Expired(e) => E::from(e),
            Self::Failed(e) => e,
        }
    }
}

fn is_expired(e: &ClientError) -> bool {
    matches!(e, ClientError::Status { kind: Some(k), .. } if k == NONCE_EXPIRED)
}

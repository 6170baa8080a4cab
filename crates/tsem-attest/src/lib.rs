//! Attestation of a modeling namespace (in progress).

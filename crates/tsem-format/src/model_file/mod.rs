//! Quixote security model files (spec §7.4): `#` comments, `key`, `base`, `aggregate`, `state`,
//! `pseudonym`, `seal`, `end` and `signature` lines; plus tsem's own `ed25519-key`,
//! `ed25519-signature` and `landlock` lines (the kernel backstop's access set,
//! [`tsem_core::access`]; tools that do not know them lose only the backstop).
//!
//! The signed data is every line except the signature lines, in file order, each followed by one
//! NUL byte (Quixote's `sign-model` rule). The RSA signature is RSA-2048 PKCS#1 v1.5 over SHA-256 of
//! that data with the key carried (base64 of its PEM text) in the `key` line; the Ed25519
//! signature signs the same bytes.
//!
//! # Warning
//! A valid signature only proves the model was signed by the key *inside the file*. Pin the
//! expected public key (`verify --key`) to know who signed it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _, LineEnding};
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use tsem_core::access::{AccessLine, AccessSet};
use tsem_core::hash::Digest;
use tsem_core::namespace::{Namespace, NamespaceError};

/// One line of a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `# text` (the text after `#`).
    Comment(String),
    /// `key <base64 of the PEM public key>`.
    Key(String),
    /// `base <hex>`.
    Base(Digest),
    /// `aggregate <hex>`.
    Aggregate(Digest),
    /// `state <hex>`.
    State(Digest),
    /// `pseudonym <hex>`.
    Pseudonym(Digest),
    /// `seal`.
    Seal,
    /// `end`.
    End,
    /// `signature <base64>` (RSA).
    Signature(String),
    /// `ed25519-key <base64 of 32 bytes>`.
    Ed25519Key(String),
    /// `ed25519-signature <base64 of 64 bytes>`.
    Ed25519Signature(String),
    /// `landlock <access line>` (see [`tsem_core::access`]).
    Landlock(AccessLine),
}

impl Line {
    fn is_signature(&self) -> bool {
        matches!(self, Line::Signature(_) | Line::Ed25519Signature(_))
    }

    fn render(&self) -> String {
        match self {
            Line::Comment(t) => format!("#{t}"),
            Line::Key(k) => format!("key {k}"),
            Line::Base(d) => format!("base {d}"),
            Line::Aggregate(d) => format!("aggregate {d}"),
            Line::State(d) => format!("state {d}"),
            Line::Pseudonym(d) => format!("pseudonym {d}"),
            Line::Seal => "seal".into(),
            Line::End => "end".into(),
            Line::Signature(s) => format!("signature {s}"),
            Line::Ed25519Key(k) => format!("ed25519-key {k}"),
            Line::Ed25519Signature(s) => format!("ed25519-signature {s}"),
            Line::Landlock(l) => format!("landlock {}", l.render()),
        }
    }
}

/// A rejected model file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {msg}")]
pub struct ModelError {
    /// 1-based line number (0 for whole-file problems).
    pub line: usize,
    /// The directive or field at fault.
    pub field: String,
    /// What is wrong.
    pub msg: String,
}

fn err(line: usize, field: &str, msg: impl Into<String>) -> ModelError {
    ModelError {
        line,
        field: field.into(),
        msg: msg.into(),
    }
}

/// Models that cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "model {other} has a different {what} than model {first}; models for different platforms cannot be merged"
)]
pub struct MergeError {
    /// `aggregate` or `base`.
    pub what: &'static str,
    /// Index of the first model that set it.
    pub first: usize,
    /// Index of the model that disagrees.
    pub other: usize,
}

/// Signature problems.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The model carries no signature of the requested kind.
    #[error("the model is not signed ({0} signature missing)")]
    Unsigned(&'static str),
    /// A signature is present but its key line is missing.
    #[error("{0} signature present but no key line")]
    NoKey(&'static str),
    /// The key could not be decoded.
    #[error("bad {kind} key: {msg}")]
    BadKey {
        /// rsa or ed25519.
        kind: &'static str,
        /// Why.
        msg: String,
    },
    /// The signature does not verify.
    #[error("{0} signature does not match the model contents")]
    Mismatch(&'static str),
    /// The embedded key is not the pinned key.
    #[error("the model was signed by a different {0} key than the one given")]
    WrongKey(&'static str),
}

/// A parsed model file, lines in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelFile {
    /// Every line.
    pub lines: Vec<Line>,
}

/// What verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Which signatures verified ("rsa", "ed25519").
    pub schemes: Vec<&'static str>,
    /// Whether a pinned key was checked.
    pub pinned: bool,
}

impl ModelFile {
    /// Parse a model file. Digests must all have the same size.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let mut lines = Vec::new();
        let mut size: Option<(usize, usize)> = None;
        let mut ended = false;
        let mut landlock_keys = std::collections::HashSet::new();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                if n == text.split('\n').count() {
                    break; // the newline after the last line
                }
                return Err(err(n, "line", "empty line"));
            }
            let (word, arg) = match line.split_once(' ') {
                Some((w, a)) => (w, Some(a)),
                None => (line, None),
            };
            let mut hex = |field: &str| -> Result<Digest, ModelError> {
                let a = arg.ok_or_else(|| err(n, field, "missing value"))?;
                let d = Digest::from_hex(a.trim_end())
                    .map_err(|e| err(n, field, format!("bad hex: {e}")))?;
                match size {
                    Some((s, at)) if s != d.len() => {
                        return Err(err(
                            n,
                            field,
                            format!("{}-byte digest, but line {at} has {s} bytes", d.len()),
                        ));
                    }
                    None => size = Some((d.len(), n)),
                    _ => {}
                }
                if d.is_empty() {
                    return Err(err(n, field, "empty digest"));
                }
                Ok(d)
            };
            if let Some(pos) = line.find(|c: char| c.is_control() && c != '\t') {
                return Err(err(
                    n,
                    "line",
                    format!("control character at column {}", pos + 1),
                ));
            }
            if let Some(comment) = line.strip_prefix('#') {
                lines.push(Line::Comment(comment.to_string()));
                continue;
            }
            if ended && !matches!(word, "signature" | "ed25519-signature" | "ed25519-key") {
                return Err(err(n, word, "only signatures may follow `end`"));
            }
            let parsed = match word {
                "key" => Line::Key(b64_arg(n, "key", arg)?),
                "base" => Line::Base(hex("base")?),
                "aggregate" => Line::Aggregate(hex("aggregate")?),
                "state" => Line::State(hex("state")?),
                "pseudonym" => Line::Pseudonym(hex("pseudonym")?),
                "seal" | "end" if arg.is_some() => return Err(err(n, word, "takes no value")),
                "seal" => Line::Seal,
                "end" => {
                    ended = true;
                    Line::End
                }
                "signature" => Line::Signature(b64_arg(n, "signature", arg)?),
                "ed25519-key" => Line::Ed25519Key(b64_arg(n, "ed25519-key", arg)?),
                "ed25519-signature" => {
                    Line::Ed25519Signature(b64_arg(n, "ed25519-signature", arg)?)
                }
                "landlock" => {
                    let a = arg.ok_or_else(|| err(n, "landlock", "missing value"))?;
                    let l = AccessLine::parse(a).map_err(|e| err(n, e.field, e.msg))?;
                    if !landlock_keys.insert(landlock_key(&l)) {
                        return Err(err(n, "landlock", "repeats an earlier landlock line"));
                    }
                    Line::Landlock(l)
                }
                other => {
                    let shown: String = other.chars().take(32).collect();
                    return Err(err(n, "directive", format!("unknown directive {shown:?}")));
                }
            };
            lines.push(parsed);
        }
        // A model ends with `end` (spec §7.4): without it the file is empty or was cut short, and
        // loading what is there would enforce a smaller model than the one written.
        if !ended {
            let n = text.lines().count() + 1;
            let what = if lines.is_empty() {
                "empty model file"
            } else {
                "no `end` line: the model is truncated"
            };
            return Err(err(n, "end", what));
        }
        Ok(Self { lines })
    }

    /// The file text (each line followed by `\n`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&l.render());
            s.push('\n');
        }
        s
    }

    /// The bytes a signature covers.
    pub fn signed_data(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for l in self.lines.iter().filter(|l| !l.is_signature()) {
            v.extend_from_slice(l.render().as_bytes());
            v.push(0);
        }
        v
    }

    /// The `state` points in file order.
    pub fn states(&self) -> impl Iterator<Item = &Digest> {
        self.lines.iter().filter_map(|l| {
            if let Line::State(d) = l {
                Some(d)
            } else {
                None
            }
        })
    }

    /// The `aggregate`, if given.
    pub fn aggregate(&self) -> Option<Digest> {
        self.lines.iter().find_map(|l| {
            if let Line::Aggregate(d) = l {
                Some(*d)
            } else {
                None
            }
        })
    }

    /// The `base`, if given.
    pub fn base(&self) -> Option<Digest> {
        self.lines.iter().find_map(|l| {
            if let Line::Base(d) = l {
                Some(*d)
            } else {
                None
            }
        })
    }

    /// The backstop's access set (not recorded when the file has no `landlock` lines).
    pub fn access_set(&self) -> AccessSet {
        let mut set = AccessSet::default();
        for l in &self.lines {
            if let Line::Landlock(a) = l {
                set.add(a);
            }
        }
        set
    }

    /// Replace the `landlock` lines with `set`'s, placed before `seal`/`end` (or last).
    pub fn set_access_set(&mut self, set: &AccessSet) {
        self.lines.retain(|l| !matches!(l, Line::Landlock(_)));
        let at = self
            .lines
            .iter()
            .position(|l| {
                matches!(
                    l,
                    Line::Seal | Line::End | Line::Signature(_) | Line::Ed25519Signature(_)
                )
            })
            .unwrap_or(self.lines.len());
        self.lines
            .splice(at..at, set.lines().into_iter().map(Line::Landlock));
    }

    /// Whether the model seals the namespace.
    pub fn sealed(&self) -> bool {
        self.lines.contains(&Line::Seal)
    }

    /// The digest size used by the file's digests, if any.
    pub fn digest_size(&self) -> Option<usize> {
        self.lines.iter().find_map(|l| match l {
            Line::Base(d) | Line::Aggregate(d) | Line::State(d) | Line::Pseudonym(d) => {
                Some(d.len())
            }
            _ => None,
        })
    }

    /// Build a model from a namespace: aggregate, base (if non-zero), every valid point in
    /// first-seen order, pseudonyms, `seal`, `end`.
    pub fn from_namespace(ns: &Namespace) -> Self {
        let mut lines = vec![Line::Aggregate(ns.aggregate())];
        if !ns.base().is_zero() {
            lines.insert(0, Line::Base(ns.base()));
        }
        lines.extend(
            ns.points()
                .iter()
                .filter(|p| p.2)
                .map(|(d, _, _)| Line::State(d)),
        );
        lines.extend(ns.pseudonyms().map(|p| Line::Pseudonym(*p)));
        lines.push(Line::Seal);
        lines.push(Line::End);
        Self { lines }
    }

    /// Load into a namespace as Quixote's userspace TMA does: base first, then the aggregate
    /// (unless `aggregate_override`), points, pseudonyms; seal if the model says so.
    pub fn load_into(
        &self,
        ns: &mut Namespace,
        aggregate_override: Option<Digest>,
    ) -> Result<(), NamespaceError> {
        if let Some(b) = self.base() {
            ns.set_base(b)?;
        }
        if let Some(a) = aggregate_override.or(self.aggregate()) {
            ns.set_aggregate(a)?;
        }
        for l in &self.lines {
            match l {
                Line::State(d) => {
                    ns.load_point(*d)?;
                }
                Line::Pseudonym(p) => ns.add_pseudonym(*p)?,
                _ => {}
            }
        }
        if self.sealed() {
            ns.seal();
        }
        Ok(())
    }

    /// Parse model file bytes; invalid UTF-8 is reported with its line.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text),
            Err(e) => {
                let at = e.valid_up_to();
                let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                Err(err(line, "line", format!("invalid UTF-8 at byte {at}")))
            }
        }
    }

    /// The set union of `models`: points and pseudonyms in first-seen order across the inputs,
    /// sealed. Their aggregates (and bases) must agree: models of different platforms do not mix.
    /// The backstop's access sets are united when every input has one; when any input lacks one,
    /// the result has none (a partial set would deny that input's workload in the kernel).
    pub fn merge(models: &[ModelFile]) -> Result<ModelFile, MergeError> {
        let mut aggregate: Option<(Digest, usize)> = None;
        let mut base: Option<(Digest, usize)> = None;
        let mut seen = std::collections::HashSet::new();
        let mut pseudonyms = std::collections::HashSet::new();
        let (mut states, mut pseud) = (Vec::new(), Vec::new());
        for (k, m) in models.iter().enumerate() {
            for (what, val, slot) in [
                ("aggregate", m.aggregate(), &mut aggregate),
                ("base", m.base(), &mut base),
            ] {
                match (val, &*slot) {
                    (Some(v), Some((prev, first))) if *prev != v => {
                        return Err(MergeError {
                            what,
                            first: *first,
                            other: k,
                        });
                    }
                    (Some(v), None) => *slot = Some((v, k)),
                    _ => {}
                }
            }
            for l in &m.lines {
                match l {
                    Line::State(d) if seen.insert(*d) => states.push(Line::State(*d)),
                    Line::Pseudonym(d) if pseudonyms.insert(*d) => pseud.push(Line::Pseudonym(*d)),
                    _ => {}
                }
            }
        }
        let mut lines = Vec::new();
        if let Some((b, _)) = base {
            lines.push(Line::Base(b));
        }
        if let Some((a, _)) = aggregate {
            lines.push(Line::Aggregate(a));
        }
        lines.extend(states);
        lines.extend(pseud);
        lines.push(Line::Seal);
        lines.push(Line::End);
        let mut merged = ModelFile { lines };
        let sets: Vec<AccessSet> = models.iter().map(ModelFile::access_set).collect();
        if sets.iter().all(AccessSet::is_recorded) {
            let mut union = AccessSet::default();
            for s in &sets {
                union.union(s);
            }
            merged.set_access_set(&union);
        }
        Ok(merged)
    }

    /// Whether the file carries any signature.
    pub fn is_signed(&self) -> bool {
        self.lines.iter().any(Line::is_signature)
    }

    /// Remove every signature and key line.
    pub fn strip_signatures(&mut self) {
        self.lines
            .retain(|l| !l.is_signature() && !matches!(l, Line::Key(_) | Line::Ed25519Key(_)));
    }

    /// Sign with `key` (PEM: an Ed25519 or RSA private key, PKCS#8 or PKCS#1). Existing signatures
    /// and keys are replaced; the key line goes first, as `sign-model` writes it.
    pub fn sign(&mut self, key_pem: &str) -> Result<&'static str, SignatureError> {
        self.strip_signatures();
        if let Ok(sk) = ed25519_dalek::SigningKey::from_pkcs8_pem(key_pem) {
            self.lines.insert(
                0,
                Line::Ed25519Key(B64.encode(sk.verifying_key().as_bytes())),
            );
            let sig = ed25519_dalek::Signer::sign(&sk, &self.signed_data());
            self.lines
                .push(Line::Ed25519Signature(B64.encode(sig.to_bytes())));
            return Ok("ed25519");
        }
        let rsa_key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| SignatureError::BadKey {
                kind: "rsa or ed25519",
                msg: e.to_string(),
            })?;
        let pub_pem = rsa_key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| SignatureError::BadKey {
                kind: "rsa",
                msg: e.to_string(),
            })?;
        self.lines
            .insert(0, Line::Key(B64.encode(pub_pem.as_bytes())));
        let signer = rsa::pkcs1v15::SigningKey::<sha2_010::Sha256>::new(rsa_key);
        let sig = signer
            .try_sign(&self.signed_data())
            .map_err(|_| SignatureError::Mismatch("rsa"))?;
        self.lines.push(Line::Signature(B64.encode(sig.to_bytes())));
        Ok("rsa")
    }

    /// Verify every signature present; at least one must exist. With `pinned_pub_pem`, the signing
    /// key must equal it.
    pub fn verify(&self, pinned_pub_pem: Option<&str>) -> Result<Verified, SignatureError> {
        let data = self.signed_data();
        let mut schemes = Vec::new();
        let mut pinned_match = false;
        let pinned_ed =
            pinned_pub_pem.and_then(|p| ed25519_dalek::VerifyingKey::from_public_key_pem(p).ok());
        let pinned_rsa =
            pinned_pub_pem.and_then(|p| rsa::RsaPublicKey::from_public_key_pem(p).ok());
        if pinned_pub_pem.is_some() && pinned_ed.is_none() && pinned_rsa.is_none() {
            return Err(SignatureError::BadKey {
                kind: "pinned",
                msg: "not an Ed25519 or RSA public key PEM".into(),
            });
        }
        let find = |f: fn(&Line) -> Option<&String>| self.lines.iter().find_map(f);
        if let Some(sig) = find(|l| {
            if let Line::Ed25519Signature(s) = l {
                Some(s)
            } else {
                None
            }
        }) {
            let key = find(|l| {
                if let Line::Ed25519Key(s) = l {
                    Some(s)
                } else {
                    None
                }
            })
            .ok_or(SignatureError::NoKey("ed25519"))?;
            let kb: [u8; 32] = B64
                .decode(key)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| SignatureError::BadKey {
                    kind: "ed25519",
                    msg: "not 32 bytes of base64".into(),
                })?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&kb).map_err(|e| {
                SignatureError::BadKey {
                    kind: "ed25519",
                    msg: e.to_string(),
                }
            })?;
            let sb: [u8; 64] = B64
                .decode(sig)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(SignatureError::Mismatch("ed25519"))?;
            vk.verify_strict(&data, &ed25519_dalek::Signature::from_bytes(&sb))
                .map_err(|_| SignatureError::Mismatch("ed25519"))?;
            if let Some(p) = &pinned_ed {
                if p != &vk {
                    return Err(SignatureError::WrongKey("ed25519"));
                }
                pinned_match = true;
            }
            schemes.push("ed25519");
        }
        if let Some(sig) = find(|l| {
            if let Line::Signature(s) = l {
                Some(s)
            } else {
                None
            }
        }) {
            let key = find(|l| if let Line::Key(s) = l { Some(s) } else { None })
                .ok_or(SignatureError::NoKey("rsa"))?;
            let pem = B64
                .decode(key)
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
                .ok_or_else(|| SignatureError::BadKey {
                    kind: "rsa",
                    msg: "key line is not base64 PEM text".into(),
                })?;
            let pk = rsa::RsaPublicKey::from_public_key_pem(&pem).map_err(|e| {
                SignatureError::BadKey {
                    kind: "rsa",
                    msg: e.to_string(),
                }
            })?;
            let sb = B64
                .decode(sig)
                .map_err(|_| SignatureError::Mismatch("rsa"))?;
            let sig = rsa::pkcs1v15::Signature::try_from(sb.as_slice())
                .map_err(|_| SignatureError::Mismatch("rsa"))?;
            rsa::pkcs1v15::VerifyingKey::<sha2_010::Sha256>::new(pk.clone())
                .verify(&data, &sig)
                .map_err(|_| SignatureError::Mismatch("rsa"))?;
            if let Some(p) = &pinned_rsa {
                if p != &pk {
                    return Err(SignatureError::WrongKey("rsa"));
                }
                pinned_match = true;
            }
            schemes.push("rsa");
        }
        if schemes.is_empty() {
            return Err(SignatureError::Unsigned("rsa or ed25519"));
        }
        if pinned_pub_pem.is_some() && !pinned_match {
            return Err(SignatureError::WrongKey(if pinned_ed.is_some() {
                "ed25519"
            } else {
                "rsa"
            }));
        }
        Ok(Verified {
            schemes,
            pinned: pinned_pub_pem.is_some(),
        })
    }
}

/// What makes a `landlock` line a repeat of another: its kind and path, port or scope.
fn landlock_key(l: &AccessLine) -> (u8, Vec<u8>) {
    match l {
        AccessLine::Abi(_) => (0, Vec::new()),
        AccessLine::Fs { path, .. } => (1, path.clone()),
        AccessLine::TcpBind(p) => (2, p.to_be_bytes().to_vec()),
        AccessLine::TcpConnect(p) => (3, p.to_be_bytes().to_vec()),
        AccessLine::Unscoped(s) => (4, vec![*s as u8]),
    }
}

fn b64_arg(n: usize, field: &str, arg: Option<&str>) -> Result<String, ModelError> {
    let a = arg
        .ok_or_else(|| err(n, field, "missing value"))?
        .trim_end();
    B64.decode(a)
        .map_err(|e| err(n, field, format!("bad base64: {e}")))?;
    Ok(a.to_string())
}

/// A new Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_ed25519() -> Result<(String, String), SignatureError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SignatureError::BadKey {
        kind: "ed25519",
        msg: e.to_string(),
    })?;
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = sk
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| SignatureError::BadKey {
            kind: "ed25519",
            msg: e.to_string(),
        })?;
    let public = sk
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| SignatureError::BadKey {
            kind: "ed25519",
            msg: e.to_string(),
        })?;
    Ok((private.to_string(), public))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

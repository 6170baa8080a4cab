//! Mapping event descriptions to security state coefficients (spec §1.4, §2, §3).
//!
//! Three mappings are selectable: the TSEM kernel's model0 in its post-v4 layout (the default,
//! verified bit-exact on real captures), the v3 layout (no path `type` in PATH), and
//! `quixote-compat`, which reproduces the Quixote userspace TMA byte for byte, its bugs included
//! (spec §7.5, §9 items 13–17), so that models written by that agent can be checked too.
//!
//! Every preimage is serialised into a reusable buffer and hashed in one call: this keeps the hot
//! path free of allocation and makes the hashed bytes observable for the hash-bound benchmark.

use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::event::{
    Cell, Coe, Creds, Dentry, Event, EventType, FileDesc, Inode, IpcPerm, Link, PathPair, PathRef,
    Rename, Sock, SockAddr, TMPFS_MAGIC,
};
use crate::hash::{Digest, HashAlg};
use crate::sha256::{BlockCount, PrefixCache};

/// Which coefficient layout to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mapping {
    /// TSEM kernel model0, post-v4 (path `type` hashed in PATH): the default.
    #[default]
    Model0,
    /// TSEM kernel model0, v3 (no path `type`).
    V3,
    /// Quixote userspace TMA (`quixote-us`), bugs included. SHA-256 only.
    QuixoteCompat,
}

impl Mapping {
    /// The name used on the command line and in attestations.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Model0 => "model0",
            Self::V3 => "v3",
            Self::QuixoteCompat => "quixote-compat",
        }
    }
}

/// Error for an unknown mapping name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMapping;

impl fmt::Display for UnknownMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown mapping (expected model0, v3 or quixote-compat)")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownMapping {}

impl FromStr for Mapping {
    type Err = UnknownMapping;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "model0" | "post-v4" | "v4" => Ok(Self::Model0),
            "v3" => Ok(Self::V3),
            "quixote-compat" | "quixote" => Ok(Self::QuixoteCompat),
            _ => Err(UnknownMapping),
        }
    }
}

/// `PR_GET_PDEATHSIG`: task_prctl hashes arg2 as 0 for it.
const PR_GET_PDEATHSIG: u32 = 2;
/// `ia_valid` bits that gate inode_setattr's hashed values.
const ATTR_MODE: u32 = 1;
const ATTR_UID: u32 = 2;
const ATTR_GID: u32 = 4;
const ATTR_SIZE: u32 = 8;

/// The three preimages hashed for one coefficient: COE, CELL and the coefficient itself.
#[derive(Debug, Default, Clone)]
pub struct Preimages {
    /// Bytes hashed into the COE id.
    pub coe: Vec<u8>,
    /// Bytes hashed into the CELL id.
    pub cell: Vec<u8>,
    /// Bytes hashed into the coefficient.
    pub coefficient: Vec<u8>,
}

/// Maps events to coefficients for one hash function and layout. Holds scratch buffers; reuse one
/// mapper per thread.
#[derive(Debug, Clone)]
pub struct Mapper {
    alg: HashAlg,
    mapping: Mapping,
    zero_digest: Digest,
    buf: Vec<u8>,
    /// The last COE hashed and its id: a task's events share their credentials, so most events
    /// repeat the previous COE and need not hash it again.
    last_coe: Option<(Coe, Digest)>,
    /// SHA-256 only: the states after the CELL's and the coefficient's first blocks, keyed by
    /// those blocks' exact bytes (`crate::sha256`).
    prefixes: Option<Prefixes>,
}

/// The first-block caches of a SHA-256 mapper, allocated at the first preimage of a block or
/// more. CELL first blocks are few (a filesystem's inodes of one owner and mode); coefficient
/// first blocks are one per event type, parent's and task's id (task ids are per executable
/// lineage, not per process), hence the larger cache.
#[derive(Debug, Clone)]
struct Prefixes {
    cell: PrefixCache,
    coefficient: PrefixCache,
}

/// log2 of the entries of each cache: 128 × 96 bytes (12 KiB) and 1024 × 96 bytes (96 KiB).
/// On `tsem bench model`'s events (48 tasks, 8 event types) they reuse 98 % and 85 % of the
/// first blocks; 64 and 256 entries reused 90 % and 59 %. Without `std` (an agent on a
/// microcontroller) 3 KiB and 6 KiB.
const CELL_CACHE_BITS: u32 = if cfg!(feature = "std") { 7 } else { 5 };
const COEFFICIENT_CACHE_BITS: u32 = if cfg!(feature = "std") { 10 } else { 6 };

impl Mapper {
    /// A mapper for `alg` and `mapping`.
    pub fn new(alg: HashAlg, mapping: Mapping) -> Self {
        Self {
            alg,
            mapping,
            zero_digest: alg.zero_digest(),
            buf: Vec::with_capacity(512),
            last_coe: None,
            prefixes: (alg == HashAlg::Sha256).then(|| Prefixes {
                cell: PrefixCache::new(CELL_CACHE_BITS),
                coefficient: PrefixCache::new(COEFFICIENT_CACHE_BITS),
            }),
        }
    }

    /// Blocks the SHA-256 CELL and coefficient hashing compressed and reused (zero for other
    /// functions), for tests and the benchmark.
    pub fn block_counts(&self) -> (BlockCount, BlockCount) {
        self.prefixes
            .as_ref()
            .map(|p| (p.cell.count(), p.coefficient.count()))
            .unwrap_or_default()
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The layout.
    pub fn mapping(&self) -> Mapping {
        self.mapping
    }

    /// The COE id (spec §2).
    pub fn coe_id(&mut self, coe: &Coe) -> Digest {
        if let Some((last, id)) = &self.last_coe
            && last == coe
        {
            return *id;
        }
        self.buf.clear();
        encode_coe(self.mapping, coe, &mut self.buf);
        let id = self.alg.digest(&self.buf);
        self.last_coe = Some((*coe, id));
        id
    }

    /// The CELL id (spec §1.4 / §7.5).
    pub fn cell_id(&mut self, ev: &Event) -> Digest {
        self.buf.clear();
        let mut enc = Encoder {
            mapping: self.mapping,
            zero: self.zero_digest,
            out: &mut self.buf,
        };
        enc.cell(ev);
        match &mut self.prefixes {
            Some(p) => p.cell.digest(&self.buf),
            None => self.alg.digest(&self.buf),
        }
    }

    /// The security state coefficient of `ev` (spec §3.1).
    pub fn coefficient(&mut self, ev: &Event) -> Digest {
        let coe = self.coe_id(&ev.coe);
        let cell = self.cell_id(ev);
        self.buf.clear();
        encode_coefficient(self.mapping, ev, &coe, &cell, &mut self.buf);
        match &mut self.prefixes {
            Some(p) => p.coefficient.digest(&self.buf),
            None => self.alg.digest(&self.buf),
        }
    }

    /// The coefficient and the exact bytes hashed on the way (for the hash-bound benchmark and for
    /// explaining a coefficient).
    pub fn coefficient_traced(&mut self, ev: &Event, pre: &mut Preimages) -> Digest {
        pre.coe.clear();
        pre.cell.clear();
        pre.coefficient.clear();
        encode_coe(self.mapping, &ev.coe, &mut pre.coe);
        let coe = self.alg.digest(&pre.coe);
        Encoder {
            mapping: self.mapping,
            zero: self.zero_digest,
            out: &mut pre.cell,
        }
        .cell(ev);
        let cell = self.alg.digest(&pre.cell);
        encode_coefficient(self.mapping, ev, &coe, &cell, &mut pre.coefficient);
        self.alg.digest(&pre.coefficient)
    }

    /// TASK_ID of a task that executed `exe` (spec §3.3):
    /// `HF("bprm_committed_creds" || PTASK_ID || NULL_ID || COE_id || CELL_id(FILE))`.
    pub fn task_id(&mut self, p_task_id: &Digest, coe: &Coe, exe: &FileDesc) -> Digest {
        let coe_id = self.coe_id(coe);
        self.buf.clear();
        Encoder {
            mapping: self.mapping,
            zero: self.zero_digest,
            out: &mut self.buf,
        }
        .file(exe);
        let cell_id = self.alg.digest(&self.buf);
        self.buf.clear();
        self.buf
            .extend_from_slice(EventType::BprmCommittedCreds.name().as_bytes());
        self.buf.extend_from_slice(p_task_id.as_bytes());
        self.buf.extend_from_slice(self.alg.null_id().as_bytes());
        self.buf.extend_from_slice(coe_id.as_bytes());
        self.buf.extend_from_slice(cell_id.as_bytes());
        self.alg.digest(&self.buf)
    }

    /// `PSEUDONYM = HF(u32 strlen(pathname) || pathname)` (spec §3.5).
    pub fn pseudonym(&mut self, pathname: impl AsRef<[u8]>) -> Digest {
        self.buf.clear();
        put_str(&mut self.buf, pathname.as_ref());
        self.alg.digest(&self.buf)
    }
}

fn encode_coe(mapping: Mapping, c: &Coe, out: &mut Vec<u8>) {
    // Quixote's COE hashes fsuid in the fsgid slot (spec §2, a copy-paste bug kept for compat).
    let fsgid = if mapping == Mapping::QuixoteCompat {
        c.fsuid
    } else {
        c.fsgid
    };
    for v in [c.uid, c.euid, c.suid, c.gid, c.egid, c.sgid, c.fsuid, fsgid] {
        put_u32(out, v);
    }
    put_u64(out, c.capeff);
}

fn encode_coefficient(
    mapping: Mapping,
    ev: &Event,
    coe: &Digest,
    cell: &Digest,
    out: &mut Vec<u8>,
) {
    // The code hashes the raw name, not HF(name) as the docs say (spec §3.1).
    out.extend_from_slice(ev.header.event_type.name().as_bytes());
    if mapping != Mapping::QuixoteCompat {
        put_digest(out, &ev.header.p_task_id);
    }
    put_digest(out, &ev.header.task_id);
    put_digest(out, coe);
    put_digest(out, cell);
}

/// A digest's bytes. SHA-256's 32 are copied as a fixed-size array (two vector moves): a
/// variable-length copy is a `memcpy` call, four to six of them an event.
#[inline]
fn put_digest(out: &mut Vec<u8>, d: &Digest) {
    match <&[u8; 32]>::try_from(d.as_bytes()) {
        Ok(b) => out.extend_from_slice(b),
        Err(_) => out.extend_from_slice(d.as_bytes()),
    }
}

fn put_u16(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&(v as u16).to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// `STR(s)`: u32 length then the bytes, no NUL.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s);
}

mod encode;
#[cfg(test)]
mod tests;

use encode::Encoder;

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
}

impl Mapper {
    /// A mapper for `alg` and `mapping`.
    pub fn new(alg: HashAlg, mapping: Mapping) -> Self {
        Self {
            alg,
            mapping,
            zero_digest: alg.zero_digest(),
            buf: Vec::with_capacity(512),
            last_coe: None,
        }
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
        self.alg.digest(&self.buf)
    }

    /// The security state coefficient of `ev` (spec §3.1).
    pub fn coefficient(&mut self, ev: &Event) -> Digest {
        let coe = self.coe_id(&ev.coe);
        let cell = self.cell_id(ev);
        self.buf.clear();
        encode_coefficient(self.mapping, ev, &coe, &cell, &mut self.buf);
        self.alg.digest(&self.buf)
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
        out.extend_from_slice(ev.header.p_task_id.as_bytes());
    }
    out.extend_from_slice(ev.header.task_id.as_bytes());
    out.extend_from_slice(coe.as_bytes());
    out.extend_from_slice(cell.as_bytes());
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

struct Encoder<'a> {
    mapping: Mapping,
    zero: Digest,
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn u16(&mut self, v: u32) {
        put_u16(self.out, v);
    }
    fn u32(&mut self, v: u32) {
        put_u32(self.out, v);
    }
    fn u64(&mut self, v: u64) {
        put_u64(self.out, v);
    }
    /// `STR(s)` over the kernel's bytes, exactly as they came (no UTF-8 involved).
    fn str(&mut self, s: &[u8]) {
        put_str(self.out, s);
    }
    fn raw(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }
    fn digest(&mut self, d: &Digest) {
        self.out.extend_from_slice(d.as_bytes());
    }
    /// A task id in one of the kernel's fixed 64-byte buffers (spec §9 item 5).
    fn buf64(&mut self, d: &Digest) {
        self.out.extend_from_slice(&d.padded::<64>());
    }

    fn inode(&mut self, i: &Inode, mode16: bool) {
        self.u32(i.uid);
        self.u32(i.gid);
        if mode16 {
            self.u16(i.mode);
        } else {
            self.u32(i.mode);
        }
        self.u32(i.s_magic);
        let mut s_id = [0u8; 32];
        let n = i.s_id.len().min(32);
        s_id[..n].copy_from_slice(&i.s_id.as_bytes()[..n]);
        self.raw(&s_id);
        // tmpfs UUIDs are random per mount, so TSEM levels them to zero.
        if i.s_magic == TMPFS_MAGIC {
            self.raw(&[0u8; 16]);
        } else {
            self.raw(&i.s_uuid);
        }
    }

    /// TEMP = STR(dirname with trailing '/') || u64 instance || owner[ds].
    fn temp(&mut self, p: &PathRef, owner: &Digest, instance: u64) {
        let dir = match p.pathname.iter().rposition(|&b| b == b'/') {
            Some(i) => &p.pathname[..=i],
            None => &[],
        };
        self.str(dir);
        self.u64(instance);
        self.digest(owner);
    }

    fn dev(&mut self, p: &PathRef) {
        if let Some((major, minor)) = p.dev {
            self.u32(major);
            self.u32(minor);
        }
    }

    /// PATH as hashed inside FILE cells and sb_mount (post-v4 adds STR(type)).
    fn path(&mut self, p: &PathRef) {
        self.dev(p);
        if self.mapping == Mapping::Model0
            && let Some(t) = &p.path_type
        {
            self.str(t);
        }
        self.path_name(p);
    }

    fn path_name(&mut self, p: &PathRef) {
        match &p.created {
            Some(c) => self.temp(p, &c.owner, c.instance),
            None => self.str(&p.pathname),
        }
    }

    /// DENTRY: no path type, even post-v4 (spec §12).
    fn dentry(&mut self, d: &Dentry) {
        if let Some(i) = &d.inode {
            self.inode(i, false);
        }
        self.dev(&d.path);
        self.path_name(&d.path);
    }

    fn file(&mut self, f: &FileDesc) {
        if self.mapping == Mapping::QuixoteCompat {
            return self.file_quixote(f);
        }
        self.u32(f.flags);
        self.inode(&f.inode, false);
        self.path(&f.path);
        self.digest(&f.digest);
    }

    /// Quixote's FILE: u16 mode, STR(path type), no device numbers (spec §7.5).
    fn file_quixote(&mut self, f: &FileDesc) {
        self.u32(f.flags);
        self.inode(&f.inode, true);
        self.str(f.path.path_type.as_deref().unwrap_or(&[]));
        self.path_name(&f.path);
        self.digest(&f.digest);
    }

    fn sock(&mut self, s: &Sock) {
        self.u32(s.family);
        self.u32(s.sock_type);
        self.u32(s.protocol);
        if self.mapping == Mapping::QuixoteCompat {
            self.raw(&s.owner.padded::<32>());
        } else {
            self.buf64(&s.owner);
        }
    }

    /// CREDS hashes only the uid (spec §9 item 2).
    fn creds(&mut self, c: &Creds) {
        self.u32(c.ids.uid);
    }

    fn ipc(&mut self, p: &IpcPerm) {
        self.u32(p.uid);
        self.u32(p.gid);
        self.u32(p.cuid);
        self.u32(p.cgid);
        self.u16(p.mode);
        self.digest(&p.owner);
    }

    /// The fallback for events TSEM does not model field by field: name bytes || zero_digest.
    fn generic(&mut self, t: EventType) {
        self.raw(t.name().as_bytes());
        let z = self.zero;
        self.digest(&z);
    }

    fn cell(&mut self, ev: &Event) {
        let t = ev.header.event_type;
        if self.mapping == Mapping::QuixoteCompat {
            return self.cell_quixote(ev);
        }
        match (&ev.cell, t) {
            (
                _,
                EventType::MsgQueueMsgsnd
                | EventType::TunDevCreate
                | EventType::TunDevAttach
                | EventType::TunDevOpen,
            ) => self.generic(t),
            (_, EventType::TunDevAttachQueue) => self.raw(&[0u8; 80]),
            (Cell::File(f), _) => self.file(f),
            (Cell::MmapFile { file, prot, flags }, _) => {
                if let Some(f) = file {
                    self.file(f);
                }
                self.u32(*prot);
                self.u32(*flags);
            }
            (Cell::FileCmd { file, cmd }, _) => {
                self.file(file);
                self.u32(*cmd);
            }
            (Cell::SockPair { a, b }, _) => {
                self.sock(a);
                self.sock(b);
            }
            (
                Cell::SocketCreate {
                    family,
                    sock_type,
                    protocol,
                    kern,
                },
                _,
            ) => {
                for v in [*family, *sock_type, *protocol, *kern] {
                    self.u32(v);
                }
            }
            (Cell::SockAddr { sock, addr }, _) => {
                self.sock(sock);
                self.sock_addr(t, addr.as_ref());
            }
            (Cell::Sock(s), _) => self.sock(s),
            (Cell::SockValue { sock, value }, _) => {
                self.sock(sock);
                self.u32(*value);
            }
            (
                Cell::SockOpt {
                    sock,
                    level,
                    optname,
                },
                _,
            ) => {
                self.sock(sock);
                self.u32(*level);
                self.u32(*optname);
            }
            (
                Cell::TaskKill {
                    target,
                    sig,
                    cross_ns,
                },
                _,
            ) => {
                self.digest(target);
                self.u32(*sig);
                self.u32(*cross_ns);
            }
            (Cell::PtraceAccess { child, mode }, _) => {
                self.digest(child);
                self.u32(*mode);
            }
            (Cell::PtraceTraceme { source }, _) => self.digest(source),
            (
                Cell::Capget {
                    target,
                    effective,
                    inheritable,
                    permitted,
                },
                _,
            ) => {
                self.digest(target);
                self.u64(*effective);
                self.u64(*inheritable);
                self.u64(*permitted);
            }
            (
                Cell::Capset {
                    effective,
                    inheritable,
                    permitted,
                },
                _,
            ) => {
                self.u64(*effective);
                self.u64(*inheritable);
                self.u64(*permitted);
            }
            (Cell::Capable { cap, opts }, _) => {
                self.u32(*cap);
                self.u32(*opts);
            }
            (Cell::TaskSetpgid { task, source }, _) => {
                self.buf64(task);
                self.buf64(source);
            }
            (Cell::Task { task }, _) => self.digest(task),
            (Cell::TaskValue { task, value }, _) => {
                self.buf64(task);
                self.u32(*value);
            }
            (Cell::TaskPrlimit { cred, tcred, flags }, _) => {
                self.creds(cred);
                self.creds(tcred);
                self.u32(*flags);
            }
            (
                Cell::TaskSetrlimit {
                    task,
                    resource,
                    current,
                    max,
                },
                _,
            ) => {
                self.digest(task);
                self.u32(*resource);
                self.u64(*current);
                self.u64(*max);
            }
            (Cell::TaskPrctl { option, args }, _) => {
                // arg3 is not hashed (spec §9 item 6).
                self.u32(*option);
                self.u64(if *option == PR_GET_PDEATHSIG {
                    0
                } else {
                    args[0]
                });
                self.u64(args[2]);
                self.u64(args[3]);
            }
            (Cell::KernelModuleRequest { kmod_name }, _) => self.str(kmod_name),
            (Cell::KernelLoadData { id, contents }, _) => {
                self.u32(*id);
                self.u32(*contents);
            }
            (Cell::KernelReadFile { file, id, contents }, _) => {
                self.file(file);
                self.u32(*id);
                self.u32(*contents);
            }
            (
                Cell::SbMount {
                    dev_name,
                    path,
                    fs_type,
                    flags,
                },
                _,
            ) => {
                if let Some(d) = dev_name {
                    self.str(d);
                }
                self.path(path);
                if let Some(ft) = fs_type {
                    self.str(ft);
                }
                self.u64(*flags);
            }
            (Cell::SbUmount { mnt, flags }, _) => {
                self.dentry(mnt);
                self.u32(*flags);
            }
            (Cell::SbRemount(sb), _) => {
                self.dentry(&sb.dentry);
                self.str(&sb.fstype);
                self.u64(sb.s_flags);
            }
            (Cell::Dentry(d), _) | (Cell::InodeGetattr(d), _) => self.dentry(d),
            (Cell::TwoPaths(cell), _) => {
                let PathPair { a, b } = &**cell;
                self.path(a);
                self.path(b);
            }
            (
                Cell::Quotactl {
                    cmds,
                    qtype,
                    id,
                    sb,
                },
                _,
            ) => {
                self.u32(*cmds);
                self.u32(*qtype);
                self.u32(*id);
                self.dentry(&sb.dentry);
                self.str(&sb.fstype);
                self.u64(sb.s_flags);
            }
            (Cell::IpcValue { perm, value }, _) => {
                self.ipc(perm);
                self.u32(*value);
            }
            (Cell::SemSemop { perm, nsops, alter }, _) => {
                self.ipc(perm);
                self.u32(*nsops);
                self.u32(*alter);
            }
            (
                Cell::MsgRcv {
                    perm,
                    target,
                    msg_type,
                    mode,
                },
                _,
            ) => {
                self.ipc(perm);
                self.digest(target);
                self.u64(*msg_type);
                self.u32(*mode);
            }
            (Cell::IpcPermission { perm, flag }, _) => {
                self.ipc(perm);
                self.u16(*flag);
            }
            (Cell::KeyAlloc { cred, flags }, _) => {
                self.creds(cred);
                self.u64(*flags);
            }
            (
                Cell::KeyPermission {
                    possessed,
                    uid,
                    gid,
                    flags,
                    cred,
                    perm,
                },
                _,
            ) => {
                self.u32(*possessed);
                self.u16(*uid);
                self.u16(*gid);
                self.u64(*flags);
                self.creds(cred);
                self.u32(*perm);
            }
            (
                Cell::NetlinkSend {
                    sock,
                    uid,
                    gid,
                    portid,
                    dst_group,
                    flags,
                    nsid_set,
                    ..
                },
                _,
            ) => {
                // model0 reads the wrong union member (spec §1.4, §9 item 4); this reproduces the
                // inferred x86_64 byte effect. The socket's `kern` is not exported, so 0 is assumed.
                self.u32(sock.protocol);
                self.u32(0);
                let owner = sock.owner.padded::<64>();
                self.raw(&owner[..4]);
                self.raw(&owner[8..64]);
                self.u32(*uid);
                self.u32(*gid);
                for v in [*uid, *gid, *portid, *dst_group, *flags] {
                    self.u32(v);
                }
                if *nsid_set != 0 {
                    self.u32(*flags);
                }
            }
            (Cell::InodeCreate { dir, dentry, mode }, _) => {
                self.inode(dir, false);
                self.dentry(dentry);
                self.u16(*mode);
            }
            (Cell::InodeDirEntry { dir, dentry }, _) => {
                self.inode(dir, false);
                self.dentry(dentry);
            }
            (Cell::InodeLink(cell), _) => {
                let Link {
                    old_dentry,
                    dir,
                    new_dentry,
                } = &**cell;
                self.dentry(old_dentry);
                self.inode(dir, false);
                self.dentry(new_dentry);
            }
            (
                Cell::InodeSymlink {
                    dir,
                    dentry,
                    old_name,
                },
                _,
            ) => {
                self.inode(dir, false);
                self.dentry(dentry);
                self.str(old_name);
            }
            (
                Cell::InodeMknod {
                    dir,
                    dentry,
                    mode,
                    dev,
                },
                _,
            ) => {
                self.inode(dir, false);
                self.dentry(dentry);
                self.u16(*mode);
                self.u32((dev.0 << 20) | (dev.1 & 0xfffff));
            }
            (Cell::InodeRename(cell), _) => {
                let Rename {
                    old_dir,
                    old_dentry,
                    new_dir,
                    new_dentry,
                } = &**cell;
                self.inode(old_dir, false);
                self.dentry(old_dentry);
                self.inode(new_dir, false);
                self.dentry(new_dentry);
            }
            (
                Cell::InodeSetattr {
                    dentry,
                    valid,
                    mode,
                    uid,
                    gid,
                    size,
                },
                _,
            ) => {
                self.dentry(dentry);
                self.u32(*valid);
                self.u32(if valid & ATTR_MODE != 0 { *mode } else { 0 });
                self.u32(if valid & ATTR_UID != 0 { *uid } else { 0 });
                self.u32(if valid & ATTR_GID != 0 { *gid } else { 0 });
                self.u64(if valid & ATTR_SIZE != 0 { *size } else { 0 });
            }
            (
                Cell::InodeSetxattr {
                    dentry,
                    name,
                    value,
                    flags,
                },
                _,
            ) => {
                self.dentry(dentry);
                self.str(name);
                self.raw(value);
                self.u32(*flags);
            }
            (Cell::InodeXattr { dentry, name }, _) => {
                self.dentry(dentry);
                self.str(name);
            }
            (Cell::Syslog { action }, _) => self.u32(*action),
            (Cell::Settime { ts, tz }, _) => {
                if let Some((s, ns)) = ts {
                    self.u64(*s);
                    self.u64(*ns);
                }
                if let Some((mw, dst)) = tz {
                    self.u32(*mw);
                    self.u32(*dst);
                }
            }
            // bpf events hash only their first field (spec §9 item 3).
            (Cell::Bpf { cmd, .. }, _) => self.u32(*cmd),
            (Cell::BpfMap { map_type, .. }, _) => self.u32(*map_type),
            (Cell::BpfProg { prog_type, .. }, _) => self.u32(*prog_type),
            (Cell::Empty, _) => self.generic(t),
        }
    }

    fn sock_addr(&mut self, t: EventType, addr: Option<&SockAddr>) {
        let Some(addr) = addr else { return };
        let msg = matches!(t, EventType::SocketSendmsg | EventType::SocketRecvmsg);
        match addr {
            SockAddr::Inet { port, address } => {
                self.u16(u32::from(*port));
                self.u32(*address);
            }
            SockAddr::Inet6 {
                port,
                flow,
                scope,
                address,
            } => {
                self.u16(u32::from(*port));
                self.raw(address);
                if !msg && t != EventType::SocketAccept {
                    self.u32(flow.unwrap_or(0));
                    self.u32(scope.unwrap_or(0));
                }
            }
            SockAddr::Unix { address } => {
                if !msg {
                    self.raw(address.as_bytes());
                }
            }
            SockAddr::Other { address } => {
                if !msg {
                    self.digest(address);
                }
            }
        }
    }

    /// Quixote's Cell.c: a handful of events parsed, everything else generic (spec §7.5).
    fn cell_quixote(&mut self, ev: &Event) {
        let t = ev.header.event_type;
        match (&ev.cell, t) {
            (Cell::File(f), EventType::FileOpen) => self.file_quixote(f),
            (Cell::MmapFile { file, prot, flags }, EventType::MmapFile) => {
                if let Some(f) = file {
                    self.file_quixote(f);
                }
                self.u32(*prot);
                self.u32(*flags);
            }
            (
                Cell::SocketCreate {
                    family,
                    sock_type,
                    protocol,
                    kern,
                },
                EventType::SocketCreate,
            ) => {
                for v in [*family, *sock_type, *protocol, *kern] {
                    self.u32(v);
                }
            }
            (
                Cell::SockAddr { sock, addr },
                EventType::SocketConnect | EventType::SocketBind | EventType::SocketAccept,
            ) => {
                self.sock(sock);
                let accept = t == EventType::SocketAccept;
                match addr {
                    Some(SockAddr::Inet { port, address }) => {
                        // Quixote never parses the accept port.
                        self.u16(if accept { 0 } else { u32::from(*port) });
                        self.u32(*address);
                    }
                    Some(SockAddr::Inet6 {
                        address,
                        flow,
                        scope,
                        ..
                    }) => {
                        // ...nor any IPv6 port.
                        self.u16(0);
                        self.raw(address);
                        if !accept {
                            self.u32(flow.unwrap_or(0));
                            self.u32(scope.unwrap_or(0));
                        }
                    }
                    Some(SockAddr::Unix { address }) => self.raw(address.as_bytes()),
                    Some(SockAddr::Other { address }) => {
                        // A sizeof(pointer) bug hashes 8 bytes of the digest for connect/bind.
                        let n = if accept { 32 } else { 8 };
                        let b = address.padded::<32>();
                        self.raw(&b[..n]);
                    }
                    None => {}
                }
            }
            (
                Cell::TaskKill {
                    target,
                    sig,
                    cross_ns,
                },
                EventType::TaskKill,
            ) => {
                // The reverse of the kernel's field order.
                self.u32(*cross_ns);
                self.u32(*sig);
                self.raw(&target.padded::<32>());
            }
            _ => self.generic(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventHeader, FileDesc, Inode, PathRef};
    use crate::raw::RawStr;
    use alloc::vec;

    fn file_open(coe: Coe) -> Event {
        let alg = HashAlg::Sha256;
        Event {
            header: EventHeader::new(
                "cat",
                EventType::FileOpen,
                alg.digest(b"task"),
                alg.digest(b"parent"),
            ),
            coe,
            cell: Cell::File(FileDesc {
                flags: 0x8000,
                inode: Inode {
                    uid: 1,
                    gid: 2,
                    mode: 0o100644,
                    s_magic: TMPFS_MAGIC,
                    s_id: RawStr::from("tmpfs"),
                    s_uuid: [0xaa; 16],
                },
                path: PathRef {
                    dev: Some((0, 27)),
                    created: None,
                    path_type: Some(RawStr::from("root")),
                    pathname: RawStr::from("/tmp/x"),
                },
                digest: alg.zero_digest(),
            }),
        }
    }

    #[test]
    fn model0_file_open_layout_is_appendix_a() {
        let coe = Coe {
            uid: 5,
            fsuid: 7,
            fsgid: 8,
            capeff: 0x1f,
            ..Coe::default()
        };
        let ev = file_open(coe);
        let mut pre = Preimages::default();
        let c = Mapper::new(HashAlg::Sha256, Mapping::Model0).coefficient_traced(&ev, &mut pre);
        // COE: eight le32 ids then le64 capeff.
        let mut coe_bytes = vec![];
        for v in [5u32, 0, 0, 0, 0, 0, 7, 8] {
            coe_bytes.extend_from_slice(&v.to_le_bytes());
        }
        coe_bytes.extend_from_slice(&0x1fu64.to_le_bytes());
        assert_eq!(pre.coe, coe_bytes);
        // CELL: flags, INODE (tmpfs UUID levelled), dev, STR(type), STR(pathname), digest.
        let mut cell = vec![];
        cell.extend_from_slice(&0x8000u32.to_le_bytes());
        for v in [1u32, 2, 0o100644, TMPFS_MAGIC] {
            cell.extend_from_slice(&v.to_le_bytes());
        }
        let mut s_id = [0u8; 32];
        s_id[..5].copy_from_slice(b"tmpfs");
        cell.extend_from_slice(&s_id);
        cell.extend_from_slice(&[0u8; 16]);
        cell.extend_from_slice(&0u32.to_le_bytes());
        cell.extend_from_slice(&27u32.to_le_bytes());
        cell.extend_from_slice(&4u32.to_le_bytes());
        cell.extend_from_slice(b"root");
        cell.extend_from_slice(&6u32.to_le_bytes());
        cell.extend_from_slice(b"/tmp/x");
        cell.extend_from_slice(HashAlg::Sha256.zero_digest().as_bytes());
        assert_eq!(pre.cell, cell);
        // Coefficient: raw name, PTASK_ID, TASK_ID, COE id, CELL id.
        let mut co = b"file_open".to_vec();
        co.extend_from_slice(HashAlg::Sha256.digest(b"parent").as_bytes());
        co.extend_from_slice(HashAlg::Sha256.digest(b"task").as_bytes());
        co.extend_from_slice(HashAlg::Sha256.digest(&coe_bytes).as_bytes());
        co.extend_from_slice(HashAlg::Sha256.digest(&cell).as_bytes());
        assert_eq!(pre.coefficient, co);
        assert_eq!(c, HashAlg::Sha256.digest(&co));

        // v3 differs only by the path type.
        let mut v3 = Preimages::default();
        Mapper::new(HashAlg::Sha256, Mapping::V3).coefficient_traced(&ev, &mut v3);
        assert_eq!(v3.cell.len(), cell.len() - 8);
        assert_eq!(v3.coe, pre.coe);
    }

    #[test]
    fn quixote_compat_reproduces_the_userspace_tma_quirks() {
        let ev = file_open(Coe {
            fsuid: 7,
            fsgid: 8,
            ..Coe::default()
        });
        let mut q = Preimages::default();
        Mapper::new(HashAlg::Sha256, Mapping::QuixoteCompat).coefficient_traced(&ev, &mut q);
        // fsuid hashed twice.
        assert_eq!(&q.coe[28..32], &7u32.to_le_bytes());
        // No PTASK_ID: name + TASK_ID + COE id + CELL id.
        assert_eq!(q.coefficient.len(), 9 + 3 * 32);
        // u16 mode, no device numbers, STR(type).
        assert_eq!(&q.cell[12..14], &(0o100644u16).to_le_bytes());
        assert_eq!(q.cell.len(), 4 + 4 + 4 + 2 + 4 + 32 + 16 + 8 + 10 + 32);

        let kill = Event {
            cell: Cell::TaskKill {
                target: HashAlg::Sha256.digest(b"t"),
                sig: 15,
                cross_ns: 1,
            },
            header: EventHeader {
                event_type: EventType::TaskKill,
                ..ev.header.clone()
            },
            ..ev.clone()
        };
        let mut k = Preimages::default();
        Mapper::new(HashAlg::Sha256, Mapping::QuixoteCompat).coefficient_traced(&kill, &mut k);
        assert_eq!(
            &k.cell[..8],
            &[1, 0, 0, 0, 15, 0, 0, 0],
            "cross_ns, then sig"
        );
        Mapper::new(HashAlg::Sha256, Mapping::Model0).coefficient_traced(&kill, &mut k);
        assert_eq!(
            &k.cell[32..40],
            &[15, 0, 0, 0, 1, 0, 0, 0],
            "kernel: target, sig, cross_ns"
        );
    }

    #[test]
    fn a_repeated_coe_keeps_its_id() {
        let a = Coe {
            uid: 1,
            ..Coe::default()
        };
        let b = Coe {
            capeff: 1,
            ..Coe::default()
        };
        for mapping in [Mapping::Model0, Mapping::QuixoteCompat] {
            let mut m = Mapper::new(HashAlg::Sha256, mapping);
            for c in [a, a, b, b, a, b] {
                let mut bytes = vec![];
                encode_coe(mapping, &c, &mut bytes);
                assert_eq!(m.coe_id(&c), HashAlg::Sha256.digest(&bytes));
            }
        }
    }

    #[test]
    fn task_id_and_pseudonym() {
        let ev = file_open(Coe::default());
        let Cell::File(exe) = &ev.cell else { return };
        let mut m = Mapper::new(HashAlg::Sha256, Mapping::Model0);
        let parent = HashAlg::Sha256.digest(b"parent");
        let coe_id = m.coe_id(&ev.coe);
        let cell_id = m.cell_id(&ev);
        let mut pre = b"bprm_committed_creds".to_vec();
        pre.extend_from_slice(parent.as_bytes());
        pre.extend_from_slice(&[0u8; 32]);
        pre.extend_from_slice(coe_id.as_bytes());
        pre.extend_from_slice(cell_id.as_bytes());
        assert_eq!(
            m.task_id(&parent, &ev.coe, exe),
            HashAlg::Sha256.digest(&pre)
        );
        let mut p = 6u32.to_le_bytes().to_vec();
        p.extend_from_slice(b"/tmp/x");
        assert_eq!(m.pseudonym("/tmp/x"), HashAlg::Sha256.digest(&p));
    }
}

//! The cell encoders: each event type's CELL fields in the order the TSEM kernel hashes them
//! (spec §1.3), with the COE mapping applied.

use super::*;

/// Writes one event's CELL preimage into `out`.
pub(super) struct Encoder<'a> {
    pub(super) mapping: Mapping,
    pub(super) zero: Digest,
    pub(super) out: &'a mut Vec<u8>,
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
        put_digest(self.out, d);
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

    pub(super) fn file(&mut self, f: &FileDesc) {
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

    pub(super) fn cell(&mut self, ev: &Event) {
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

//! Emission: event descriptions in the kernel's form, or strict JSON.

use std::io::Write as _;

use base64::Engine as _;
use tsem_core::event::{
    Cell, Coe, Creds, Dentry, Event, EventType, FileDesc, Inode, IpcPerm, Link, PathPair, PathRef,
    Rename, Sock, SockAddr, SuperBlock,
};
use tsem_core::hash::Digest;
use tsem_core::raw::escape;

use super::parse::{ipc_value_key, sock_pair_keys, two_path_keys};
use super::{R, RecordError, RecordKind};
use crate::json::{escape_json_into, escape_kernel_into};

/// A writer of kernel-formatted JSON: `"key": "value"` members joined by `", "`.
struct W<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
    /// Strict RFC 8259 strings instead of the kernel's bytes.
    json: bool,
    /// The keys of the open objects (kept in strict mode only, to name a field it refuses).
    open: Vec<&'static str>,
    /// The first field whose bytes strict JSON cannot carry, and why.
    refused: Option<RecordError>,
}

impl<'o> W<'o> {
    fn sep(&mut self) {
        if !self.first {
            self.out.extend_from_slice(b", ");
        }
        self.first = false;
    }
    fn key(&mut self, key: &str) {
        self.sep();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\": ");
    }
    fn open(&mut self, key: &'static str) {
        self.key(key);
        self.out.push(b'{');
        self.first = true;
        if self.json {
            self.open.push(key);
        }
    }
    fn close(&mut self) {
        self.out.push(b'}');
        self.first = false;
        if self.json {
            self.open.pop();
        }
    }
    fn s(&mut self, key: &'static str, v: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        if !self.json {
            escape_kernel_into(self.out, v);
        } else if let Err(e) = escape_json_into(self.out, v)
            && self.refused.is_none()
        {
            let mut field = self.open.join(".");
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(key);
            self.refused = Some(RecordError::field(
                &field,
                format!(
                    "byte {} is not UTF-8, which strict JSON cannot carry: {:?}",
                    e.at,
                    escape(v)
                ),
            ));
        }
        self.out.push(b'"');
    }
    fn fmt(&mut self, key: &str, v: std::fmt::Arguments<'_>) {
        self.key(key);
        self.out.push(b'"');
        let _ = self.out.write_fmt(v);
        self.out.push(b'"');
    }
    fn u(&mut self, key: &str, v: u64) {
        self.raw_value(key, |out| push_dec(out, v));
    }
    /// `"key": "<written by f>"` without going through `core::fmt`.
    fn raw_value(&mut self, key: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(key);
        self.out.push(b'"');
        f(self.out);
        self.out.push(b'"');
    }
    /// `%d` of a 32-bit value.
    fn i(&mut self, key: &str, v: u32) {
        self.fmt(key, format_args!("{}", v as i32));
    }
    fn oct(&mut self, key: &str, v: u32) {
        self.fmt(key, format_args!("0{v:o}"));
    }
    fn hex(&mut self, key: &str, v: u64) {
        self.fmt(key, format_args!("0x{v:x}"));
    }
    fn d(&mut self, key: &str, v: &Digest) {
        self.raw_value(key, |out| push_hex(out, v.as_bytes()));
    }

    fn inode(&mut self, key: &'static str, i: &Inode) {
        self.open(key);
        self.u("uid", i.uid.into());
        self.u("gid", i.gid.into());
        self.oct("mode", i.mode);
        self.fmt("s_magic", format_args!("0x{:x}", i.s_magic));
        self.s("s_id", &i.s_id);
        self.fmt("s_uuid", format_args!("{}", Hex(&i.s_uuid)));
        self.close();
    }
    fn path(&mut self, key: &'static str, p: &PathRef) {
        self.open(key);
        if let Some((major, minor)) = p.dev {
            self.open("dev");
            self.u("major", major.into());
            self.u("minor", minor.into());
            self.close();
        }
        if let Some(c) = &p.created {
            self.d("owner", &c.owner);
            self.u("instance", c.instance);
        }
        if let Some(t) = &p.path_type {
            self.s("type", t);
        }
        self.s("pathname", &p.pathname);
        self.close();
    }
    fn dentry(&mut self, key: &'static str, d: &Dentry) {
        self.open(key);
        if let Some(i) = &d.inode {
            self.inode("inode", i);
        }
        self.path("path", &d.path);
        self.close();
    }
    fn file(&mut self, key: &'static str, f: &FileDesc) {
        self.open(key);
        self.u("flags", f.flags.into());
        self.inode("inode", &f.inode);
        self.path("path", &f.path);
        self.d("digest", &f.digest);
        self.close();
    }
    fn sock(&mut self, key: &'static str, s: &Sock) {
        self.open(key);
        self.i("family", s.family);
        self.i("type", s.sock_type);
        self.i("protocol", s.protocol);
        self.d("owner", &s.owner);
        self.close();
    }
    /// The COE fields, shared by the `COE` object and `creds` objects.
    fn coe_fields(&mut self, c: &Coe) {
        for (k, v) in [
            ("uid", c.uid),
            ("euid", c.euid),
            ("suid", c.suid),
            ("gid", c.gid),
            ("egid", c.egid),
            ("sgid", c.sgid),
            ("fsuid", c.fsuid),
            ("fsgid", c.fsgid),
        ] {
            self.u(k, v.into());
        }
        self.hex("capeff", c.capeff);
    }
    fn creds(&mut self, key: &'static str, c: &Creds) {
        self.open(key);
        self.coe_fields(&c.ids);
        self.u("securebits", c.securebits.into());
        self.close();
    }
    fn perm(&mut self, key: &'static str, p: &IpcPerm) {
        self.open(key);
        self.u("uid", p.uid.into());
        self.u("gid", p.gid.into());
        self.u("cuid", p.cuid.into());
        self.u("cgid", p.cgid.into());
        self.oct("mode", p.mode);
        self.d("owner", &p.owner);
        self.close();
    }
    fn superblock(&mut self, key: &'static str, sb: &SuperBlock) {
        self.open(key);
        self.dentry("dentry", &sb.dentry);
        self.s("fstype", &sb.fstype);
        self.u("s_flags", sb.s_flags);
        self.close();
    }
}

fn push_dec(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

struct Hex<'a>(&'a [u8]);
impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Append `ev` as one line (without the newline) in the given record form, in the kernel's
/// form: every string as its bytes (only `"`, `\\` and a newline escaped), so a line the kernel
/// wrote comes out byte for byte.
pub fn write_event(out: &mut Vec<u8>, ev: &Event, kind: RecordKind) {
    let mut w = W {
        out,
        first: true,
        json: false,
        open: Vec::new(),
        refused: None,
    };
    write_record(&mut w, ev, kind);
}

/// Append `ev` as one line of strict JSON (RFC 8259; control characters as `\\u00XX`), for
/// consumers that need it. A string whose bytes are not UTF-8 has no strict spelling: it is
/// refused, naming the field, and `out` is left as it was.
pub fn write_event_json(out: &mut Vec<u8>, ev: &Event, kind: RecordKind) -> R<()> {
    let len = out.len();
    let mut w = W {
        out,
        first: true,
        json: true,
        open: Vec::new(),
        refused: None,
    };
    write_record(&mut w, ev, kind);
    match w.refused {
        Some(e) => {
            out.truncate(len);
            Err(e)
        }
        None => Ok(()),
    }
}

fn write_record(w: &mut W<'_>, ev: &Event, kind: RecordKind) {
    w.out.push(b'{');
    match kind {
        RecordKind::Trajectory => {}
        RecordKind::Event | RecordKind::AsyncEvent | RecordKind::Log => {
            w.open("export");
            let t = match kind {
                RecordKind::Event => "event",
                RecordKind::AsyncEvent => "async_event",
                _ => "log",
            };
            w.s("type", t.as_bytes());
            w.close();
        }
    }
    let h = &ev.header;
    w.open("event");
    if let Some(v) = h.pid {
        w.u("pid", v);
    }
    if let Some(v) = h.tnum {
        w.u("tnum", v);
    }
    if let Some(v) = h.context {
        w.u("context", v);
    }
    if let Some(v) = h.number {
        w.u("number", v);
    }
    w.s("process", &h.process);
    w.s("type", h.event_type.name().as_bytes());
    w.u("ttd", h.ttd);
    w.u("p_ttd", h.p_ttd);
    w.d("task_id", &h.task_id);
    w.d("p_task_id", &h.p_task_id);
    w.u("ts", h.ts);
    w.close();
    w.open("COE");
    w.coe_fields(&ev.coe);
    w.close();
    w.open(h.event_type.name());
    write_cell(w, h.event_type, &ev.cell);
    w.close();
    w.out.push(b'}');
}

/// The event as one line (without the newline) in the kernel's form (see [`write_event`]).
pub fn event_to_json(ev: &Event, kind: RecordKind) -> Vec<u8> {
    let mut s = Vec::with_capacity(1024);
    write_event(&mut s, ev, kind);
    s
}

fn write_addr(w: &mut W<'_>, t: EventType, a: &SockAddr) {
    w.open("addr");
    match a {
        SockAddr::Inet { port, address } => {
            w.open("af_inet");
            w.u("port", (*port).into());
            let key = if matches!(t, EventType::SocketSendmsg | EventType::SocketRecvmsg) {
                "addrress"
            } else {
                "address"
            };
            w.u(key, (*address).into());
            w.close();
        }
        SockAddr::Inet6 {
            port,
            flow,
            scope,
            address,
        } => {
            w.open("af_inet6");
            w.u("port", (*port).into());
            if let Some(f) = flow {
                w.u("flow", (*f).into());
            }
            if let Some(s) = scope {
                w.u("scope", (*s).into());
            }
            w.fmt("address", format_args!("{}", Hex(address)));
            w.close();
        }
        SockAddr::Unix { address } => {
            w.open("af_unix");
            w.s("address", address);
            w.close();
        }
        SockAddr::Other { address } => {
            w.open("af_other");
            w.d("address", address);
            w.close();
        }
    }
    w.close();
}

fn write_cell(w: &mut W<'_>, t: EventType, cell: &Cell) {
    match cell {
        Cell::File(f) => w.file("file", f),
        Cell::MmapFile { file, prot, flags } => {
            if let Some(f) = file {
                w.file("file", f);
            }
            w.u("prot", (*prot).into());
            w.u("flags", (*flags).into());
        }
        Cell::FileCmd { file, cmd } => {
            w.file("file", file);
            w.u("cmd", (*cmd).into());
        }
        Cell::SockPair { a, b } => {
            let (ka, kb) = sock_pair_keys(t);
            w.sock(ka, a);
            w.sock(kb, b);
        }
        Cell::SocketCreate {
            family,
            sock_type,
            protocol,
            kern,
        } => {
            w.i("family", *family);
            w.i("type", *sock_type);
            w.i("protocol", *protocol);
            w.i("kern", *kern);
        }
        Cell::SockAddr { sock, addr } => {
            w.sock("sock", sock);
            if let Some(a) = addr {
                write_addr(w, t, a);
            }
        }
        Cell::Sock(s) => w.sock("sock", s),
        Cell::SockValue { sock, value } => {
            w.sock("sock", sock);
            w.i(
                if t == EventType::SocketListen {
                    "backlog"
                } else {
                    "how"
                },
                *value,
            );
        }
        Cell::SockOpt {
            sock,
            level,
            optname,
        } => {
            w.sock("sock", sock);
            w.i("level", *level);
            w.i("optname", *optname);
        }
        Cell::TaskKill {
            target,
            sig,
            cross_ns,
        } => {
            w.d("target", target);
            w.i("sig", *sig);
            w.i("cross_ns", *cross_ns);
        }
        Cell::PtraceAccess { child, mode } => {
            w.d("child", child);
            w.u("mode", (*mode).into());
        }
        Cell::PtraceTraceme { source } => w.d("source", source),
        Cell::Capget {
            target,
            effective,
            inheritable,
            permitted,
        } => {
            w.d("target", target);
            w.hex("effective", *effective);
            w.hex("inheritable", *inheritable);
            w.hex("permitted", *permitted);
        }
        Cell::Capset {
            effective,
            inheritable,
            permitted,
        } => {
            w.hex("effective", *effective);
            w.hex("inheritable", *inheritable);
            w.hex("permitted", *permitted);
        }
        Cell::Capable { cap, opts } => {
            w.i("cap", *cap);
            w.u("opts", (*opts).into());
        }
        Cell::TaskSetpgid { task, source } => {
            w.d("task", task);
            w.d("source", source);
        }
        Cell::Task { task } => w.d("task", task),
        Cell::TaskValue { task, value } => {
            w.d("task", task);
            w.i(
                if t == EventType::TaskSetnice {
                    "nice"
                } else {
                    "ioprio"
                },
                *value,
            );
        }
        Cell::TaskPrlimit { cred, tcred, flags } => {
            w.creds("cred", cred);
            w.creds("tcred", tcred);
            w.u("flags", (*flags).into());
        }
        Cell::TaskSetrlimit {
            task,
            resource,
            current,
            max,
        } => {
            w.d("task", task);
            w.open("new_rlim");
            w.u("resource", (*resource).into());
            w.u("current", *current);
            w.u("max", *max);
            w.close();
        }
        Cell::TaskPrctl { option, args } => {
            w.i("option", *option);
            for (k, v) in ["arg2", "arg3", "arg4", "arg5"].iter().zip(args) {
                w.u(k, *v);
            }
        }
        Cell::KernelModuleRequest { kmod_name } => w.s("kmod_name", kmod_name),
        Cell::KernelLoadData { id, contents } => {
            w.u("id", (*id).into());
            w.u("contents", (*contents).into());
        }
        Cell::KernelReadFile { file, id, contents } => {
            w.file("file", file);
            w.u("id", (*id).into());
            w.u("contents", (*contents).into());
        }
        Cell::SbMount {
            dev_name,
            path,
            fs_type,
            flags,
        } => {
            if let Some(d) = dev_name {
                w.s("dev_name", d);
            }
            w.path("path", path);
            if let Some(ft) = fs_type {
                w.s("type", ft);
            }
            w.u("flags", *flags);
        }
        Cell::SbUmount { mnt, flags } => {
            w.dentry("mnt", mnt);
            w.u("flags", (*flags).into());
        }
        Cell::SbRemount(sb) => w.superblock("sb", sb),
        Cell::Dentry(d) => w.dentry("dentry", d),
        Cell::TwoPaths(cell) => {
            let PathPair { a, b } = &**cell;
            let (ka, kb) = two_path_keys(t);
            w.path(ka, a);
            w.path(kb, b);
        }
        Cell::Quotactl {
            cmds,
            qtype,
            id,
            sb,
        } => {
            w.u("cmds", (*cmds).into());
            w.u("type", (*qtype).into());
            w.u("id", (*id).into());
            w.superblock("sb", sb);
        }
        Cell::IpcValue { perm, value } => {
            w.perm("perm", perm);
            w.i(ipc_value_key(t), *value);
        }
        Cell::SemSemop { perm, nsops, alter } => {
            w.perm("perm", perm);
            w.u("nsops", (*nsops).into());
            w.u("alter", (*alter).into());
        }
        Cell::MsgRcv {
            perm,
            target,
            msg_type,
            mode,
        } => {
            w.perm("perm", perm);
            w.d("target", target);
            w.u("type", *msg_type);
            w.u("mode", (*mode).into());
        }
        Cell::IpcPermission { perm, flag } => {
            w.perm("ipcp", perm);
            w.u("flag", (*flag).into());
        }
        Cell::KeyAlloc { cred, flags } => {
            w.creds("cred", cred);
            w.u("flags", *flags);
        }
        Cell::KeyPermission {
            possessed,
            uid,
            gid,
            flags,
            cred,
            perm,
        } => {
            w.open("key_ref");
            w.u("possessed", (*possessed).into());
            w.u("uid", (*uid).into());
            w.u("gid", (*gid).into());
            w.u("flags", *flags);
            w.close();
            w.creds("cred", cred);
            w.u("perm", (*perm).into());
        }
        Cell::NetlinkSend {
            sock,
            uid,
            gid,
            portid,
            dst_group,
            flags,
            nsid_set,
            nsid,
        } => {
            w.sock("sock", sock);
            for (k, v) in [
                ("uid", uid),
                ("gid", gid),
                ("portid", portid),
                ("dst_group", dst_group),
                ("flags", flags),
                ("nsid_set", nsid_set),
                ("nsid", nsid),
            ] {
                w.u(k, (*v).into());
            }
        }
        Cell::InodeCreate { dir, dentry, mode } => {
            w.inode("dir", dir);
            w.dentry("dentry", dentry);
            w.oct("mode", *mode);
        }
        Cell::InodeDirEntry { dir, dentry } => {
            w.inode("dir", dir);
            w.dentry("dentry", dentry);
        }
        Cell::InodeLink(cell) => {
            let Link {
                old_dentry,
                dir,
                new_dentry,
            } = &**cell;
            w.dentry("old_dentry", old_dentry);
            w.inode("dir", dir);
            w.dentry("new_dentry", new_dentry);
        }
        Cell::InodeSymlink {
            dir,
            dentry,
            old_name,
        } => {
            w.inode("dir", dir);
            w.dentry("dentry", dentry);
            w.s("old_name", old_name);
        }
        Cell::InodeMknod {
            dir,
            dentry,
            mode,
            dev,
        } => {
            w.inode("dir", dir);
            w.dentry("dentry", dentry);
            w.oct("mode", *mode);
            w.open("dev");
            w.u("major", dev.0.into());
            w.u("minor", dev.1.into());
            w.close();
        }
        Cell::InodeRename(cell) => {
            let Rename {
                old_dir,
                old_dentry,
                new_dir,
                new_dentry,
            } = &**cell;
            w.inode("old_dir", old_dir);
            w.dentry("old_dentry", old_dentry);
            w.inode("new_dir", new_dir);
            w.dentry("new_dentry", new_dentry);
        }
        Cell::InodeSetattr {
            dentry,
            valid,
            mode,
            uid,
            gid,
            size,
        } => {
            w.dentry("dentry", dentry);
            w.open("attr");
            w.u("valid", (*valid).into());
            w.oct("mode", *mode);
            w.u("uid", (*uid).into());
            w.u("gid", (*gid).into());
            w.u("size", *size);
            w.close();
        }
        Cell::InodeGetattr(d) => w.dentry("path", d),
        Cell::InodeSetxattr {
            dentry,
            name,
            value,
            flags,
        } => {
            w.dentry("dentry", dentry);
            w.s("name", name);
            w.s(
                "value",
                base64::engine::general_purpose::STANDARD
                    .encode(value)
                    .as_bytes(),
            );
            w.u("flags", (*flags).into());
        }
        Cell::InodeXattr { dentry, name } => {
            w.dentry("dentry", dentry);
            w.s("name", name);
        }
        Cell::Syslog { action } => w.i("type", *action),
        Cell::Settime { ts, tz } => {
            if let Some((s, ns)) = ts {
                w.open("ts");
                w.u("seconds", *s);
                w.u("nsecs", *ns);
                w.close();
            }
            if let Some((mw, dst)) = tz {
                w.open("tz");
                w.i("minuteswest", *mw);
                w.i("dsttime", *dst);
                w.close();
            }
        }
        Cell::Bpf { cmd, size } => {
            w.u("cmd", (*cmd).into());
            w.open("attr");
            w.u("size", (*size).into());
            w.close();
        }
        Cell::BpfMap { map_type, fmode } => {
            w.open("map");
            w.u("map_type", (*map_type).into());
            w.close();
            w.u("fmode", (*fmode).into());
        }
        Cell::BpfProg {
            prog_type,
            attach_type,
        } => {
            w.open("prog");
            w.u("type", (*prog_type).into());
            w.u("attach_type", (*attach_type).into());
            w.close();
        }
        Cell::Empty => {}
    }
}

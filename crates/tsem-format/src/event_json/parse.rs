//! The fields of an event description, parsed from either reader (crate::fields).

use tsem_core::event::{
    Cell, CellShape, Coe, Created, Creds, Dentry, EventHeader, EventType, FileDesc, Inode, IpcPerm,
    Link, PathPair, PathRef, Rename, Sock, SockAddr, SuperBlock,
};

use base64::Engine as _;

use super::{R, RecordError};
use crate::fields::Fields;

pub(super) fn parse_header<'a, O: Fields<'a>>(o: &mut O) -> R<EventHeader> {
    // Read in the kernel's order (the in-place reader needs it), but report the first error in
    // the order the fields are checked: the type first.
    let pid = o.opt_u64("pid");
    let tnum = o.opt_u64("tnum");
    let context = o.opt_u64("context");
    let number = o.opt_u64("number");
    let process = o.raw("process");
    let type_name = o.text("type")?;
    let event_type = EventType::from_name(&type_name)
        .ok_or_else(|| RecordError::field("type", format!("unknown event type {type_name:?}")))?;
    let h = EventHeader {
        pid: pid?,
        tnum: tnum?,
        context: context?,
        number: number?,
        process: process?,
        event_type,
        ttd: o.u64("ttd")?,
        p_ttd: o.u64("p_ttd")?,
        task_id: o.digest("task_id")?,
        p_task_id: o.digest("p_task_id")?,
        ts: o.u64("ts")?,
    };
    o.finish()?;
    Ok(h)
}

pub(super) fn parse_coe<'a, O: Fields<'a>>(o: &mut O) -> R<Coe> {
    let c = parse_coe_fields(o)?;
    o.finish()?;
    Ok(c)
}

macro_rules! sub {
    ($o:expr, $key:expr, $f:expr) => {{
        let mut inner = $o.obj($key)?;
        let v = $f(&mut inner).map_err(|e: RecordError| e.inside($key))?;
        inner.finish().map_err(|e| e.inside($key))?;
        v
    }};
}

fn inode<'a, O: Fields<'a>>(o: &mut O) -> R<Inode> {
    // Read in the kernel's order (the in-place reader needs it), but report the first error in
    // the order the fields are checked: the UUID first.
    let uid = o.u32("uid");
    let gid = o.u32("gid");
    let mode = o.u32("mode");
    let s_magic = o.u32("s_magic");
    let s_id = o.raw("s_id");
    let uuid = o.digest("s_uuid")?;
    if uuid.len() != 16 {
        return Err(RecordError::field("s_uuid", "expected 32 hex digits"));
    }
    Ok(Inode {
        uid: uid?,
        gid: gid?,
        mode: mode?,
        s_magic: s_magic?,
        s_id: s_id?,
        s_uuid: uuid.padded::<16>(),
    })
}

fn path<'a, O: Fields<'a>>(o: &mut O) -> R<PathRef> {
    let dev = match o.opt_obj("dev")? {
        Some(mut d) => {
            let v = (
                d.u32("major").map_err(|e| e.inside("dev"))?,
                d.u32("minor").map_err(|e| e.inside("dev"))?,
            );
            d.finish().map_err(|e| e.inside("dev"))?;
            Some(v)
        }
        None => None,
    };
    let owner = o.opt_digest("owner")?;
    let instance = o.opt_u64("instance")?;
    let created = match (owner, instance) {
        (Some(owner), Some(instance)) => Some(Created { owner, instance }),
        (None, None) => None,
        _ => {
            return Err(RecordError::field(
                "owner",
                "`owner` and `instance` must appear together",
            ));
        }
    };
    Ok(PathRef {
        dev,
        created,
        path_type: o.opt_raw("type")?,
        pathname: o.raw("pathname")?,
    })
}

fn dentry<'a, O: Fields<'a>>(o: &mut O) -> R<Dentry> {
    let inode = match o.opt_obj("inode")? {
        Some(mut i) => {
            let v = inode(&mut i).map_err(|e| e.inside("inode"))?;
            i.finish().map_err(|e| e.inside("inode"))?;
            Some(v)
        }
        None => None,
    };
    Ok(Dentry {
        inode,
        path: sub!(o, "path", path),
    })
}

fn file<'a, O: Fields<'a>>(o: &mut O) -> R<FileDesc> {
    Ok(FileDesc {
        flags: o.u32("flags")?,
        inode: sub!(o, "inode", inode),
        path: sub!(o, "path", path),
        digest: o.digest("digest")?,
    })
}

fn sock<'a, O: Fields<'a>>(o: &mut O) -> R<Sock> {
    Ok(Sock {
        family: o.u32("family")?,
        sock_type: o.u32("type")?,
        protocol: o.u32("protocol")?,
        owner: o.digest("owner")?,
    })
}

fn creds<'a, O: Fields<'a>>(o: &mut O) -> R<Creds> {
    let ids = parse_coe_fields(o)?;
    Ok(Creds {
        ids,
        securebits: o.u32("securebits")?,
    })
}

/// The COE fields, shared by the `COE` object and `creds` objects.
fn parse_coe_fields<'a, O: Fields<'a>>(o: &mut O) -> R<Coe> {
    Ok(Coe {
        uid: o.u32("uid")?,
        euid: o.u32("euid")?,
        suid: o.u32("suid")?,
        gid: o.u32("gid")?,
        egid: o.u32("egid")?,
        sgid: o.u32("sgid")?,
        fsuid: o.u32("fsuid")?,
        fsgid: o.u32("fsgid")?,
        // Pre-v2 development snapshots spelled it "cap" (spec §2).
        capeff: match o.opt_u64("capeff")? {
            Some(v) => v,
            None => o.u64("cap")?,
        },
    })
}

fn perm<'a, O: Fields<'a>>(o: &mut O) -> R<IpcPerm> {
    Ok(IpcPerm {
        uid: o.u32("uid")?,
        gid: o.u32("gid")?,
        cuid: o.u32("cuid")?,
        cgid: o.u32("cgid")?,
        mode: o.u32("mode")?,
        owner: o.digest("owner")?,
    })
}

fn superblock<'a, O: Fields<'a>>(o: &mut O) -> R<SuperBlock> {
    Ok(SuperBlock {
        dentry: sub!(o, "dentry", dentry),
        fstype: o.raw("fstype")?,
        s_flags: o.u64("s_flags")?,
    })
}

fn sock_addr<'a, O: Fields<'a>>(o: &mut O, t: EventType) -> R<SockAddr> {
    let inet_addr_key = if matches!(t, EventType::SocketSendmsg | EventType::SocketRecvmsg) {
        "addrress" // sic: the kernel's spelling for sendmsg/recvmsg (spec §9 item 11)
    } else {
        "address"
    };
    let full6 = matches!(t, EventType::SocketConnect | EventType::SocketBind);
    if let Some(mut a) = o.opt_obj("af_inet")? {
        let v = SockAddr::Inet {
            port: a.u16("port").map_err(|e| e.inside("af_inet"))?,
            address: a.u32(inet_addr_key).map_err(|e| e.inside("af_inet"))?,
        };
        a.finish().map_err(|e| e.inside("af_inet"))?;
        return Ok(v);
    }
    if let Some(mut a) = o.opt_obj("af_inet6")? {
        let f = |a: &mut O| -> R<SockAddr> {
            let port = a.u16("port")?;
            let (flow, scope) = if full6 {
                (Some(a.u32("flow")?), Some(a.u32("scope")?))
            } else {
                (None, None)
            };
            let address = a.digest("address")?;
            if address.len() != 16 {
                return Err(RecordError::field("address", "expected 32 hex digits"));
            }
            Ok(SockAddr::Inet6 {
                port,
                flow,
                scope,
                address: address.padded::<16>(),
            })
        };
        let v = f(&mut a).map_err(|e| e.inside("af_inet6"))?;
        a.finish().map_err(|e| e.inside("af_inet6"))?;
        return Ok(v);
    }
    if let Some(mut a) = o.opt_obj("af_unix")? {
        let v = SockAddr::Unix {
            address: a.raw("address").map_err(|e| e.inside("af_unix"))?,
        };
        a.finish().map_err(|e| e.inside("af_unix"))?;
        return Ok(v);
    }
    if let Some(mut a) = o.opt_obj("af_other")? {
        let v = SockAddr::Other {
            address: a.digest("address").map_err(|e| e.inside("af_other"))?,
        };
        a.finish().map_err(|e| e.inside("af_other"))?;
        return Ok(v);
    }
    Err(RecordError::field(
        "af_inet",
        "expected one of af_inet, af_inet6, af_unix, af_other",
    ))
}

/// The JSON key of the value in IPC events.
pub(super) fn ipc_value_key(t: EventType) -> &'static str {
    match t {
        EventType::ShmAssociate | EventType::ShmShmat => "shmflg",
        EventType::SemAssociate => "semflg",
        EventType::MsgQueueAssociate | EventType::MsgQueueMsgsnd => "msqflg",
        _ => "cmd",
    }
}

pub(super) fn sock_pair_keys(t: EventType) -> (&'static str, &'static str) {
    if t == EventType::SocketSocketpair {
        ("socka", "sockb")
    } else {
        ("sock", "other")
    }
}

pub(super) fn two_path_keys(t: EventType) -> (&'static str, &'static str) {
    if t == EventType::MoveMount {
        ("from_path", "to_path")
    } else {
        ("old_path", "new_path")
    }
}

pub(super) fn parse_cell<'a, O: Fields<'a>>(t: EventType, o: &mut O) -> R<Cell> {
    let cell = match t.shape() {
        CellShape::File => Cell::File(sub!(o, "file", file)),
        CellShape::MmapFile => {
            let f = match o.opt_obj("file")? {
                Some(mut fo) => {
                    let v = file(&mut fo).map_err(|e| e.inside("file"))?;
                    fo.finish().map_err(|e| e.inside("file"))?;
                    Some(v)
                }
                None => None,
            };
            Cell::MmapFile {
                file: f,
                prot: o.u32("prot")?,
                flags: o.u32("flags")?,
            }
        }
        CellShape::FileCmd => Cell::FileCmd {
            file: sub!(o, "file", file),
            cmd: o.u32("cmd")?,
        },
        CellShape::SockPair => {
            let (ka, kb) = sock_pair_keys(t);
            Cell::SockPair {
                a: sub!(o, ka, sock),
                b: sub!(o, kb, sock),
            }
        }
        CellShape::SocketCreate => Cell::SocketCreate {
            family: o.u32("family")?,
            sock_type: o.u32("type")?,
            protocol: o.u32("protocol")?,
            kern: o.u32("kern")?,
        },
        CellShape::SockAddr => {
            let s = sub!(o, "sock", sock);
            let optional = matches!(t, EventType::SocketSendmsg | EventType::SocketRecvmsg);
            let addr = match o.opt_obj("addr")? {
                Some(mut a) => {
                    let v = sock_addr(&mut a, t).map_err(|e| e.inside("addr"))?;
                    a.finish().map_err(|e| e.inside("addr"))?;
                    Some(v)
                }
                None if optional => None,
                None => return Err(RecordError::field("addr", "missing")),
            };
            Cell::SockAddr { sock: s, addr }
        }
        CellShape::Sock => {
            if t == EventType::TunDevAttachQueue && !o.has("sock")? {
                Cell::Empty
            } else {
                Cell::Sock(sub!(o, "sock", sock))
            }
        }
        CellShape::SockValue => {
            let key = if t == EventType::SocketListen {
                "backlog"
            } else {
                "how"
            };
            Cell::SockValue {
                sock: sub!(o, "sock", sock),
                value: o.u32(key)?,
            }
        }
        CellShape::SockOpt => Cell::SockOpt {
            sock: sub!(o, "sock", sock),
            level: o.u32("level")?,
            optname: o.u32("optname")?,
        },
        CellShape::TaskKill => Cell::TaskKill {
            target: o.digest("target")?,
            sig: o.u32("sig")?,
            cross_ns: o.u32("cross_ns")?,
        },
        CellShape::PtraceAccess => Cell::PtraceAccess {
            child: o.digest("child")?,
            mode: o.u32("mode")?,
        },
        CellShape::PtraceTraceme => Cell::PtraceTraceme {
            source: o.digest("source")?,
        },
        CellShape::Capget => Cell::Capget {
            target: o.digest("target")?,
            effective: o.u64("effective")?,
            inheritable: o.u64("inheritable")?,
            permitted: o.u64("permitted")?,
        },
        CellShape::Capset => Cell::Capset {
            effective: o.u64("effective")?,
            inheritable: o.u64("inheritable")?,
            permitted: o.u64("permitted")?,
        },
        CellShape::Capable => Cell::Capable {
            cap: o.u32("cap")?,
            opts: o.u32("opts")?,
        },
        CellShape::TaskSetpgid => Cell::TaskSetpgid {
            task: o.digest("task")?,
            source: o.digest("source")?,
        },
        CellShape::Task => Cell::Task {
            task: o.digest("task")?,
        },
        CellShape::TaskValue => {
            let key = if t == EventType::TaskSetnice {
                "nice"
            } else {
                "ioprio"
            };
            Cell::TaskValue {
                task: o.digest("task")?,
                value: o.u32(key)?,
            }
        }
        CellShape::TaskPrlimit => Cell::TaskPrlimit {
            cred: sub!(o, "cred", creds),
            tcred: sub!(o, "tcred", creds),
            flags: o.u32("flags")?,
        },
        CellShape::TaskSetrlimit => {
            let task = o.digest("task")?;
            let (resource, current, max) = sub!(o, "new_rlim", |r: &mut O| -> R<(u32, u64, u64)> {
                Ok((r.u32("resource")?, r.u64("current")?, r.u64("max")?))
            });
            Cell::TaskSetrlimit {
                task,
                resource,
                current,
                max,
            }
        }
        CellShape::TaskPrctl => Cell::TaskPrctl {
            option: o.u32("option")?,
            args: [
                o.u64("arg2")?,
                o.u64("arg3")?,
                o.u64("arg4")?,
                o.u64("arg5")?,
            ],
        },
        CellShape::KernelModuleRequest => Cell::KernelModuleRequest {
            kmod_name: o.raw("kmod_name")?,
        },
        CellShape::KernelLoadData => Cell::KernelLoadData {
            id: o.u32("id")?,
            contents: o.u32("contents")?,
        },
        CellShape::KernelReadFile => Cell::KernelReadFile {
            file: sub!(o, "file", file),
            id: o.u32("id")?,
            contents: o.u32("contents")?,
        },
        CellShape::SbMount => Cell::SbMount {
            dev_name: o.opt_raw("dev_name")?,
            path: sub!(o, "path", path),
            fs_type: o.opt_raw("type")?,
            flags: o.u64("flags")?,
        },
        CellShape::SbUmount => Cell::SbUmount {
            mnt: sub!(o, "mnt", dentry),
            flags: o.u32("flags")?,
        },
        CellShape::SbRemount => Cell::SbRemount(sub!(o, "sb", superblock)),
        CellShape::Dentry => Cell::Dentry(sub!(o, "dentry", dentry)),
        CellShape::TwoPaths => {
            let (ka, kb) = two_path_keys(t);
            Cell::TwoPaths(Box::new(PathPair {
                a: sub!(o, ka, path),
                b: sub!(o, kb, path),
            }))
        }
        CellShape::Quotactl => Cell::Quotactl {
            cmds: o.u32("cmds")?,
            qtype: o.u32("type")?,
            id: o.u32("id")?,
            sb: sub!(o, "sb", superblock),
        },
        CellShape::IpcValue => Cell::IpcValue {
            perm: sub!(o, "perm", perm),
            value: o.u32(ipc_value_key(t))?,
        },
        CellShape::SemSemop => Cell::SemSemop {
            perm: sub!(o, "perm", perm),
            nsops: o.u32("nsops")?,
            alter: o.u32("alter")?,
        },
        CellShape::MsgRcv => Cell::MsgRcv {
            perm: sub!(o, "perm", perm),
            target: o.digest("target")?,
            msg_type: o.u64("type")?,
            mode: o.u32("mode")?,
        },
        CellShape::IpcPermission => Cell::IpcPermission {
            perm: sub!(o, "ipcp", perm),
            flag: o.u32("flag")?,
        },
        CellShape::KeyAlloc => Cell::KeyAlloc {
            cred: sub!(o, "cred", creds),
            flags: o.u64("flags")?,
        },
        CellShape::KeyPermission => {
            let (possessed, uid, gid, flags) =
                sub!(o, "key_ref", |k: &mut O| -> R<(u32, u32, u32, u64)> {
                    Ok((
                        k.u32("possessed")?,
                        k.u32("uid")?,
                        k.u32("gid")?,
                        k.u64("flags")?,
                    ))
                });
            Cell::KeyPermission {
                possessed,
                uid,
                gid,
                flags,
                cred: sub!(o, "cred", creds),
                perm: o.u32("perm")?,
            }
        }
        CellShape::NetlinkSend => Cell::NetlinkSend {
            sock: sub!(o, "sock", sock),
            uid: o.u32("uid")?,
            gid: o.u32("gid")?,
            portid: o.u32("portid")?,
            dst_group: o.u32("dst_group")?,
            flags: o.u32("flags")?,
            nsid_set: o.u32("nsid_set")?,
            nsid: o.u32("nsid")?,
        },
        CellShape::InodeCreate => Cell::InodeCreate {
            dir: sub!(o, "dir", inode),
            dentry: sub!(o, "dentry", dentry),
            mode: o.u32("mode")?,
        },
        CellShape::InodeDirEntry => Cell::InodeDirEntry {
            dir: sub!(o, "dir", inode),
            dentry: sub!(o, "dentry", dentry),
        },
        CellShape::InodeLink => Cell::InodeLink(Box::new(Link {
            old_dentry: sub!(o, "old_dentry", dentry),
            dir: sub!(o, "dir", inode),
            new_dentry: sub!(o, "new_dentry", dentry),
        })),
        CellShape::InodeSymlink => Cell::InodeSymlink {
            dir: sub!(o, "dir", inode),
            dentry: sub!(o, "dentry", dentry),
            old_name: o.raw("old_name")?,
        },
        CellShape::InodeMknod => Cell::InodeMknod {
            dir: sub!(o, "dir", inode),
            dentry: sub!(o, "dentry", dentry),
            mode: o.u32("mode")?,
            dev: sub!(o, "dev", |d: &mut O| -> R<(u32, u32)> {
                Ok((d.u32("major")?, d.u32("minor")?))
            }),
        },
        CellShape::InodeRename => Cell::InodeRename(Box::new(Rename {
            old_dir: sub!(o, "old_dir", inode),
            old_dentry: sub!(o, "old_dentry", dentry),
            new_dir: sub!(o, "new_dir", inode),
            new_dentry: sub!(o, "new_dentry", dentry),
        })),
        CellShape::InodeSetattr => {
            let dentry = sub!(o, "dentry", dentry);
            let (valid, mode, uid, gid, size) =
                sub!(o, "attr", |a: &mut O| -> R<(u32, u32, u32, u32, u64)> {
                    Ok((
                        a.u32("valid")?,
                        a.u32("mode")?,
                        a.u32("uid")?,
                        a.u32("gid")?,
                        a.u64("size")?,
                    ))
                });
            Cell::InodeSetattr {
                dentry,
                valid,
                mode,
                uid,
                gid,
                size,
            }
        }
        CellShape::InodeGetattr => Cell::InodeGetattr(sub!(o, "path", dentry)),
        CellShape::InodeSetxattr => {
            let dentry = sub!(o, "dentry", dentry);
            let name = o.raw("name")?;
            let raw = o.bytes("value")?;
            let value = base64::engine::general_purpose::STANDARD
                .decode(&raw)
                .map_err(|e| RecordError::field("value", format!("not base64: {e}")))?;
            Cell::InodeSetxattr {
                dentry,
                name,
                value,
                flags: o.u32("flags")?,
            }
        }
        CellShape::InodeXattr => Cell::InodeXattr {
            dentry: sub!(o, "dentry", dentry),
            name: o.raw("name")?,
        },
        CellShape::Syslog => Cell::Syslog {
            action: o.u32("type")?,
        },
        CellShape::Settime => {
            let ts = match o.opt_obj("ts")? {
                Some(mut x) => {
                    let v = (
                        x.u64("seconds").map_err(|e| e.inside("ts"))?,
                        x.u64("nsecs").map_err(|e| e.inside("ts"))?,
                    );
                    x.finish().map_err(|e| e.inside("ts"))?;
                    Some(v)
                }
                None => None,
            };
            let tz = match o.opt_obj("tz")? {
                Some(mut x) => {
                    let v = (
                        x.u32("minuteswest").map_err(|e| e.inside("tz"))?,
                        x.u32("dsttime").map_err(|e| e.inside("tz"))?,
                    );
                    x.finish().map_err(|e| e.inside("tz"))?;
                    Some(v)
                }
                None => None,
            };
            Cell::Settime { ts, tz }
        }
        CellShape::Bpf => Cell::Bpf {
            cmd: o.u32("cmd")?,
            size: sub!(o, "attr", |a: &mut O| a.u32("size")),
        },
        CellShape::BpfMap => Cell::BpfMap {
            map_type: sub!(o, "map", |m: &mut O| m.u32("map_type")),
            fmode: o.u32("fmode")?,
        },
        CellShape::BpfProg => {
            let (prog_type, attach_type) = sub!(o, "prog", |p: &mut O| -> R<(u32, u32)> {
                Ok((p.u32("type")?, p.u32("attach_type")?))
            });
            Cell::BpfProg {
                prog_type,
                attach_type,
            }
        }
        CellShape::Empty => Cell::Empty,
    };
    o.finish()?;
    Ok(cell)
}

/// `strtoll(s, 0)`-style: `0x` hex, leading `0` octal, else decimal; a leading `-` gives the
/// two's-complement pattern. The whole string must be consumed.
pub fn parse_num(s: &[u8]) -> Option<u64> {
    let (neg, body) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let v = if let Some(hex) = body
        .strip_prefix(b"0x")
        .or_else(|| body.strip_prefix(b"0X"))
    {
        digits(hex, 16)?
    } else if body.len() > 1 && body[0] == b'0' {
        digits(&body[1..], 8)?
    } else {
        digits(body, 10)?
    };
    if neg {
        if v > 1 << 63 {
            return None;
        }
        Some(v.wrapping_neg())
    } else {
        Some(v)
    }
}

/// The value of a non-empty run of digits in `radix`; `None` on any other byte or on overflow.
fn digits(s: &[u8], radix: u32) -> Option<u64> {
    // Up to this many digits cannot overflow, so the common short number needs no checks.
    let unchecked = match radix {
        16 => 15,
        10 => 19,
        _ => 21,
    };
    if s.is_empty() {
        return None;
    }
    let r = u64::from(radix);
    if radix == 10 && s.len() <= unchecked {
        // The common case (ids, counts, times) without the generic digit conversion.
        let mut v = 0u64;
        for &b in s {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u64::from(d);
        }
        return Some(v);
    }
    if s.len() <= unchecked {
        let mut v = 0u64;
        for &b in s {
            v = v * r + u64::from(char::from(b).to_digit(radix)?);
        }
        return Some(v);
    }
    s.iter().try_fold(0u64, |v, &b| {
        let d = char::from(b).to_digit(radix)?;
        v.checked_mul(r)?.checked_add(u64::from(d))
    })
}

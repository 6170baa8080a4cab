//! TSEM JSON event descriptions: export records and trajectory/forensics lines, v3 and post-v4
//! shapes (spec §1.4, §5.3), parsed strictly into [`tsem_core::event::Event`] and emitted in the
//! kernel's own form.
//!
//! Lines are bytes, not text: the kernel prints strings with `%s`, so a pathname or a comm comes
//! as the kernel's bytes (invalid UTF-8, raw tabs and all) and goes back out byte for byte
//! ([`write_event`]). [`Strictness::Json`] and [`write_event_json`] are strict RFC 8259 for files
//! we write ourselves. The rule is in docs/raw-bytes.md.

use std::io::Write as _;

use base64::Engine as _;
use tsem_core::event::{
    Cell, CellShape, Coe, Created, Creds, Dentry, Event, EventHeader, EventType, FileDesc, Inode,
    IpcPerm, Link, PathPair, PathRef, Rename, Sock, SockAddr, SuperBlock,
};
use tsem_core::hash::Digest;
use tsem_core::raw::{RawStr, escape};

use crate::fields::{Fields, Obj, Scan};
pub use crate::json::Strictness;
use crate::json::{Document, SyntaxError, escape_json_into, escape_kernel_into};

/// Why a record was rejected: a syntax error, or a field that is missing, unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The line is not well-formed JSON of the TSEM kind.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A field is wrong; `field` is its dotted path (e.g. `file_open.file.inode.mode`).
    #[error("field `{field}`: {msg}")]
    Field {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
}

impl RecordError {
    pub(crate) fn field(field: &str, msg: impl Into<String>) -> Self {
        Self::Field {
            field: field.to_string(),
            msg: msg.into(),
        }
    }
    /// Prefix the field path with the enclosing object's key.
    fn inside(self, parent: &str) -> Self {
        match self {
            Self::Field { field, msg } => Self::Field {
                field: format!("{parent}.{field}"),
                msg,
            },
            other => other,
        }
    }
}

type R<T> = Result<T, RecordError>;

/// Which export record (or plain trajectory line) an event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A trajectory or forensics line: no `export` wrapper.
    Trajectory,
    /// `{"export": {"type": "event"}, ...}`: the task waits for a verdict.
    Event,
    /// `{"export": {"type": "async_event"}, ...}`: atomic context, nobody waits.
    AsyncEvent,
    /// `{"export": {"type": "log"}, ...}` carrying a full description (post-v4).
    Log,
}

/// A `log` record in the v3 shape: an already-untrusted task's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The task's comm (the kernel's bytes).
    pub process: RawStr,
    /// Event name.
    pub event: String,
    /// `LOG` or `DENY`.
    pub action: String,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // events are the common case; boxing them costs an allocation per line
pub enum Record {
    /// An event description.
    Event {
        /// How it arrived.
        kind: RecordKind,
        /// The description.
        event: Event,
    },
    /// `{"export": {"type": "aggregate"}, "aggregate": {"value": HEX}}`.
    Aggregate(Digest),
    /// A v3 log record without a description.
    Log(LogRecord),
}

/// A reusable line parser: keeps its buffers between lines.
#[derive(Debug, Default)]
pub struct RecordParser {
    doc: Option<Document<'static>>,
    strictness: Strictness,
}

impl RecordParser {
    /// A parser with empty buffers that reads lines as the kernel writes them.
    pub fn new() -> Self {
        Self::with_strictness(Strictness::Kernel)
    }

    /// A parser with empty buffers and the given strictness.
    pub fn with_strictness(strictness: Strictness) -> Self {
        Self {
            doc: Some(Document::new()),
            strictness,
        }
    }

    /// Parse one line (an export record or a trajectory line), given without its newline.
    pub fn parse<L: AsRef<[u8]> + ?Sized>(&mut self, line: &L) -> R<Record> {
        let mut doc = self.doc.take().unwrap_or_default().recycle();
        let r = parse_with(&mut doc, line.as_ref(), self.strictness);
        self.doc = Some(doc.recycle());
        r
    }

    /// Parse one line that must be an event description.
    pub fn parse_event<L: AsRef<[u8]> + ?Sized>(&mut self, line: &L) -> R<Event> {
        event_only(self.parse(line)?)
    }
}

/// Parse one line (an export record or a trajectory line) as the kernel writes it.
pub fn parse_record<L: AsRef<[u8]> + ?Sized>(line: &L) -> R<Record> {
    parse_with(&mut Document::new(), line.as_ref(), Strictness::Kernel)
}

fn event_only(r: Record) -> R<Event> {
    match r {
        Record::Event { event, .. } => Ok(event),
        Record::Aggregate(_) => Err(RecordError::field(
            "export.type",
            "an aggregate record, not an event",
        )),
        Record::Log(_) => Err(RecordError::field(
            "export.type",
            "a log record without an event description",
        )),
    }
}

/// Read a line in place ([`Scan`]); when that cannot prove its result, or the line is not in the
/// kernel's form, tokenize it and read the members ([`Obj`]), which gives the same record, or
/// the error with its field and offset.
fn parse_with<'a>(doc: &mut Document<'a>, line: &'a [u8], strictness: Strictness) -> R<Record> {
    if strictness == Strictness::Kernel
        && let Some(r) = parse_in_place(line)
    {
        return Ok(r);
    }
    parse_tokenized(doc, line, strictness)
}

/// The fast path alone: `None` where it gives up.
fn parse_in_place(line: &[u8]) -> Option<Record> {
    let pos = std::cell::Cell::new(0);
    let mut root = Scan::root(line, &pos)?;
    let r = parse_root(&mut root).ok()?;
    Scan::at_end(line, &pos).then_some(r)
}

/// The reference reader: tokenize the whole line, then read its members.
fn parse_tokenized<'a>(
    doc: &mut Document<'a>,
    line: &'a [u8],
    strictness: Strictness,
) -> R<Record> {
    doc.parse_with(line, strictness)?;
    let doc = &*doc;
    parse_root(&mut Obj::new(doc, doc.root()))
}

/// Lines compared by the property tests: the in-place reader alone and the reference reader
/// alone. Not an API.
#[doc(hidden)]
pub mod reference {
    use super::*;

    /// [`parse_record`] through the fast path only: `None` where it gives up.
    pub fn parse_in_place_only(line: &[u8]) -> Option<Record> {
        parse_in_place(line)
    }

    /// [`parse_record`] through the tokenizing reader only.
    pub fn parse_tokenized_only(line: &[u8], strictness: Strictness) -> R<Record> {
        parse_tokenized(&mut Document::new(), line, strictness)
    }
}

fn parse_root<'a, O: Fields<'a>>(root: &mut O) -> R<Record> {
    let kind = match root.opt_obj("export")? {
        None => RecordKind::Trajectory,
        Some(mut export) => {
            let t = export.text("type").map_err(|e| e.inside("export"))?;
            export.finish().map_err(|e| e.inside("export"))?;
            match &*t {
                "event" => RecordKind::Event,
                "async_event" => RecordKind::AsyncEvent,
                "aggregate" => {
                    let mut agg = root.obj("aggregate")?;
                    let v = agg.digest("value").map_err(|e| e.inside("aggregate"))?;
                    agg.finish().map_err(|e| e.inside("aggregate"))?;
                    root.finish()?;
                    return Ok(Record::Aggregate(v));
                }
                "log" => {
                    if root.has("event")? {
                        RecordKind::Log
                    } else {
                        let mut log = root.obj("log")?;
                        let rec = LogRecord {
                            process: log.raw("process").map_err(|e| e.inside("log"))?,
                            event: log.text("event").map_err(|e| e.inside("log"))?.into_owned(),
                            action: log
                                .text("action")
                                .map_err(|e| e.inside("log"))?
                                .into_owned(),
                        };
                        log.finish().map_err(|e| e.inside("log"))?;
                        root.finish()?;
                        return Ok(Record::Log(rec));
                    }
                }
                other => {
                    return Err(RecordError::field(
                        "export.type",
                        format!("unknown export type {other:?}"),
                    ));
                }
            }
        }
    };
    if kind == RecordKind::Log {
        // A post-v4 log record may repeat the v3 summary next to the description.
        root.ignore_obj("log")?;
    }
    let event = parse_event_members(root)?;
    Ok(Record::Event { kind, event })
}

/// Parse one line that must be an event description (trajectory, forensics or event export).
pub fn parse_event<L: AsRef<[u8]> + ?Sized>(line: &L) -> R<Event> {
    event_only(parse_record(line)?)
}

fn parse_event_members<'a, O: Fields<'a>>(root: &mut O) -> R<Event> {
    let mut ev = root.obj("event")?;
    let header = parse_header(&mut ev).map_err(|e| e.inside("event"))?;
    let mut coe_obj = root.obj("COE")?;
    let coe = parse_coe(&mut coe_obj).map_err(|e| e.inside("COE"))?;
    let name = header.event_type.name();
    let mut cell_obj = root.obj(name)?;
    let cell = parse_cell(header.event_type, &mut cell_obj).map_err(|e| e.inside(name))?;
    root.finish()?;
    Ok(Event { header, coe, cell })
}

fn parse_header<'a, O: Fields<'a>>(o: &mut O) -> R<EventHeader> {
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

fn parse_coe<'a, O: Fields<'a>>(o: &mut O) -> R<Coe> {
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
fn ipc_value_key(t: EventType) -> &'static str {
    match t {
        EventType::ShmAssociate | EventType::ShmShmat => "shmflg",
        EventType::SemAssociate => "semflg",
        EventType::MsgQueueAssociate | EventType::MsgQueueMsgsnd => "msqflg",
        _ => "cmd",
    }
}

fn sock_pair_keys(t: EventType) -> (&'static str, &'static str) {
    if t == EventType::SocketSocketpair {
        ("socka", "sockb")
    } else {
        ("sock", "other")
    }
}

fn two_path_keys(t: EventType) -> (&'static str, &'static str) {
    if t == EventType::MoveMount {
        ("from_path", "to_path")
    } else {
        ("old_path", "new_path")
    }
}

fn parse_cell<'a, O: Fields<'a>>(t: EventType, o: &mut O) -> R<Cell> {
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

// ---------------------------------------------------------------------------------------------
// Emission

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_strtoll_base0() {
        assert_eq!(parse_num(b"0100755"), Some(0o100755));
        assert_eq!(parse_num(b"0x1ffffffffff"), Some(0x1ffffffffff));
        assert_eq!(parse_num(b"0"), Some(0));
        assert_eq!(parse_num(b"-1"), Some(u64::MAX));
        assert_eq!(parse_num(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_num(b""), None);
        assert_eq!(parse_num(b"12a"), None);
        assert_eq!(parse_num(b"0x"), None);
        assert_eq!(parse_num(b"09"), None);
        assert_eq!(parse_num(b"0x+1"), None);
        assert_eq!(parse_num(b"18446744073709551616"), None);
        assert_eq!(
            parse_num(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_num(b"0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_num(b"0x10000000000000000"), None);
        assert_eq!(parse_num(b"01777777777777777777777"), Some(u64::MAX));
        assert_eq!(parse_num(b"02000000000000000000000"), None);
        assert_eq!(parse_num(b"-0x8000000000000000"), Some(1 << 63));
    }

    const LINE: &str = r#"{"event": {"context": "1", "number": "3", "process": "quixote", "type": "file_open", "ttd": "1095", "p_ttd": "1095", "task_id": "8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb", "p_task_id": "8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb", "ts": "1316795"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x1ffffffffff"}, "file_open": {"file": {"flags": "32800", "inode": {"uid": "0", "gid": "0", "mode": "0100755", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "e896110b42b24dbca89c7caa36961685"}, "path": {"dev": {"major": "8", "minor": "3"}, "type": "root", "pathname": "/usr/bin/bash"}, "digest": "59474588a312b6b6e73e5a42a59bf71e62b55416b6c9d5e4a6e1c630c2a9ecd4"}}}"#;

    #[test]
    fn round_trips_a_trajectory_line() {
        let ev = parse_event(LINE).unwrap();
        assert_eq!(event_to_json(&ev, RecordKind::Trajectory), LINE.as_bytes());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |line: &str| parse_event(line).unwrap_err().to_string();
        let e = err(&LINE.replace("\"0100755\"", "\"0100x55\""));
        assert!(
            e.starts_with("field `file_open.file.inode.mode`: not a number"),
            "{e}"
        );
        let e = err(&LINE.replace("\"type\": \"file_open\"", "\"type\": \"file_opem\""));
        assert!(e.contains("unknown event type"), "{e}");
        let e = err(&LINE.replace("\"sda3\"", "\"sda3\", \"extra\": \"1\""));
        assert!(
            e.contains("`file_open.file.inode.extra`: unknown field"),
            "{e}"
        );
        let e = err(&LINE.replace("\"ts\": \"1316795\"", "\"ts\": \"1316795\", \"ts\": \"1\""));
        assert!(e.contains("`event.ts`: duplicate key"), "{e}");
        let e = err(&LINE.replace("59474588", "5947458z"));
        assert!(e.contains("file_open.file.digest"), "{e}");
    }

    #[test]
    fn export_records() {
        let agg = r#"{"export": {"type": "aggregate"}, "aggregate": {"value": "00ff"}}"#;
        assert_eq!(
            parse_record(agg).unwrap(),
            Record::Aggregate(Digest::from_hex("00ff").unwrap())
        );
        let log = r#"{"export": {"type": "log"}, "log": {"process": "cat", "event": "file_open", "action": "DENY"}}"#;
        assert!(matches!(parse_record(log).unwrap(), Record::Log(_)));
        let ev = format!(r#"{{"export": {{"type": "event"}}, {}"#, &LINE[1..]);
        let Record::Event { kind, event } = parse_record(&ev).unwrap() else {
            panic!()
        };
        assert_eq!(kind, RecordKind::Event);
        assert_eq!(event_to_json(&event, RecordKind::Event), ev.as_bytes());
    }

    /// LINE with the comm and the pathname replaced by raw bytes the kernel may print.
    fn raw_line(comm: &[u8], pathname: &[u8]) -> Vec<u8> {
        let l = LINE
            .replace("\"quixote\"", "\"COMM\"")
            .replace("/usr/bin/bash", "PATH");
        let (a, rest) = l.split_once("COMM").unwrap();
        let (b, c) = rest.split_once("PATH").unwrap();
        [a.as_bytes(), comm, b.as_bytes(), pathname, c.as_bytes()].concat()
    }

    #[test]
    fn kernel_bytes_read_and_re_emit_byte_for_byte() {
        // The kernel escapes a quote and a backslash (`\\\"` in the line); the rest is raw.
        let line = raw_line(b"a\tb\x01", b"/tmp/\xff\xfe\tx\x01y\x7f\\\\\\\"q");
        let ev = parse_event(&line).unwrap();
        assert_eq!(ev.header.process, *b"a\tb\x01".as_slice());
        let Cell::File(f) = &ev.cell else { panic!() };
        assert_eq!(
            f.path.pathname,
            *b"/tmp/\xff\xfe\tx\x01y\x7f\\\"q".as_slice()
        );
        assert_eq!(event_to_json(&ev, RecordKind::Trajectory), line);
    }

    #[test]
    fn strict_json_reads_and_writes_only_rfc_8259() {
        let line = raw_line(b"cat", b"/tmp/a\tb");
        let mut strict = RecordParser::with_strictness(Strictness::Json);
        let e = strict.parse(&line).unwrap_err().to_string();
        assert!(
            e.contains("in `file_open.file.path.pathname`: unescaped control character"),
            "{e}"
        );
        // Written strictly, the tab is an escape, and the strict reader gives the same event.
        let ev = parse_event(&line).unwrap();
        let mut out = Vec::new();
        write_event_json(&mut out, &ev, RecordKind::Trajectory).unwrap();
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .contains(r#""pathname": "/tmp/a\u0009b""#)
        );
        assert_eq!(strict.parse_event(&out).unwrap(), ev);
        // Bytes that are not UTF-8 have no strict spelling: refused, naming the field.
        let ev = parse_event(&raw_line(b"cat", b"/tmp/\xff")).unwrap();
        let mut out = b"kept".to_vec();
        let e = write_event_json(&mut out, &ev, RecordKind::Trajectory)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("field `file_open.file.path.pathname`: byte 5 is not UTF-8"),
            "{e}"
        );
        assert!(e.contains(r#""/tmp/\xff""#), "{e}");
        assert_eq!(out, b"kept");
        let e = strict
            .parse(&raw_line(b"cat", b"/tmp/\xff"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in `file_open.file.path.pathname`: invalid UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn errors_show_raw_bytes_escaped() {
        let l = raw_line(b"cat", b"/x");
        let at = l.windows(9).position(|w| w == b"\"0100755\"").unwrap();
        let line = [&l[..at], b"\"01\xff\t\"", &l[at + 9..]].concat();
        let e = parse_event(&line).unwrap_err().to_string();
        assert!(
            e.starts_with(r#"field `file_open.file.inode.mode`: not a number: "01\xff\t""#),
            "{e}"
        );
    }
}

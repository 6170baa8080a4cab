//! Properties of the formats: every event shape survives emit → parse unchanged (and so does its
//! coefficient); model merge is set union.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use tsem_core::event::*;
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::{Mapper, Mapping};
use tsem_core::raw::RawStr;
use tsem_format::event_json::reference::parse_in_place_only;
use tsem_format::model_file::{Line, ModelFile};
use tsem_format::{Record, RecordKind, event_to_json, parse_event};

/// A small deterministic generator so that one seed builds a whole event of any shape.
struct G(u64);
impl G {
    fn n(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn u32(&mut self) -> u32 {
        match self.n() % 4 {
            0 => 0,
            1 => u32::MAX,
            _ => self.n() as u32,
        }
    }
    fn u64(&mut self) -> u64 {
        if self.n().is_multiple_of(3) {
            u64::MAX
        } else {
            self.n()
        }
    }
    fn b(&mut self) -> bool {
        self.n().is_multiple_of(2)
    }
    fn d(&mut self) -> Digest {
        HashAlg::Sha256.digest(&self.n().to_le_bytes())
    }
    /// A kernel string: text, escapes, and bytes that are not text at all.
    fn s(&mut self) -> RawStr {
        const POOL: &[&[u8]] = &[
            b"/usr/bin/bash",
            b"a\"b\\c",
            b"tab\there",
            "é😀".as_bytes(),
            b"",
            b"nodev:/",
            b"/tmp/x y",
            b"\xff\xfe\x01\x7f",
            b"nl\ncr\r\x00",
            b"\\u0041\\n",
        ];
        let mut out = Vec::new();
        for _ in 0..(1 + self.n() % 3) {
            out.extend_from_slice(POOL[(self.n() % POOL.len() as u64) as usize]);
        }
        out.into()
    }
    fn inode(&mut self) -> Inode {
        Inode {
            uid: self.u32(),
            gid: self.u32(),
            mode: self.u32(),
            s_magic: if self.b() { TMPFS_MAGIC } else { self.u32() },
            s_id: self.s(),
            s_uuid: self.d().padded::<16>(),
        }
    }
    fn path(&mut self) -> PathRef {
        PathRef {
            dev: if self.b() {
                Some((self.u32(), self.u32()))
            } else {
                None
            },
            created: if self.b() {
                Some(Created {
                    owner: self.d(),
                    instance: self.u64(),
                })
            } else {
                None
            },
            path_type: if self.b() { Some("root".into()) } else { None },
            pathname: self.s(),
        }
    }
    fn dentry(&mut self) -> Dentry {
        Dentry {
            inode: if self.b() { Some(self.inode()) } else { None },
            path: self.path(),
        }
    }
    fn file(&mut self) -> FileDesc {
        FileDesc {
            flags: self.u32(),
            inode: self.inode(),
            path: self.path(),
            digest: self.d(),
        }
    }
    fn sock(&mut self) -> Sock {
        Sock {
            family: self.u32(),
            sock_type: self.u32(),
            protocol: self.u32(),
            owner: self.d(),
        }
    }
    fn creds(&mut self) -> Creds {
        Creds {
            ids: self.coe(),
            securebits: self.u32(),
        }
    }
    fn coe(&mut self) -> Coe {
        Coe {
            uid: self.u32(),
            euid: self.u32(),
            suid: self.u32(),
            gid: self.u32(),
            egid: self.u32(),
            sgid: self.u32(),
            fsuid: self.u32(),
            fsgid: self.u32(),
            capeff: self.u64(),
        }
    }
    fn perm(&mut self) -> IpcPerm {
        IpcPerm {
            uid: self.u32(),
            gid: self.u32(),
            cuid: self.u32(),
            cgid: self.u32(),
            mode: self.u32(),
            owner: self.d(),
        }
    }
    fn sb(&mut self) -> SuperBlock {
        SuperBlock {
            dentry: self.dentry(),
            fstype: self.s(),
            s_flags: self.u64(),
        }
    }
    fn addr(&mut self, t: EventType) -> SockAddr {
        let full6 = matches!(t, EventType::SocketConnect | EventType::SocketBind);
        let msg = matches!(t, EventType::SocketSendmsg | EventType::SocketRecvmsg);
        match self.n() % if msg { 2 } else { 4 } {
            0 => SockAddr::Inet {
                port: self.n() as u16,
                address: self.u32(),
            },
            1 => SockAddr::Inet6 {
                port: self.n() as u16,
                flow: full6.then(|| self.u32()),
                scope: full6.then(|| self.u32()),
                address: self.d().padded::<16>(),
            },
            2 => SockAddr::Unix { address: self.s() },
            _ => SockAddr::Other { address: self.d() },
        }
    }

    fn cell(&mut self, t: EventType) -> Cell {
        match t.shape() {
            CellShape::File => Cell::File(self.file()),
            CellShape::MmapFile => Cell::MmapFile {
                file: if self.b() { Some(self.file()) } else { None },
                prot: self.u32(),
                flags: self.u32(),
            },
            CellShape::FileCmd => Cell::FileCmd {
                file: self.file(),
                cmd: self.u32(),
            },
            CellShape::SockPair => Cell::SockPair {
                a: self.sock(),
                b: self.sock(),
            },
            CellShape::SocketCreate => Cell::SocketCreate {
                family: self.u32(),
                sock_type: self.u32(),
                protocol: self.u32(),
                kern: self.u32(),
            },
            CellShape::SockAddr => {
                let optional = matches!(t, EventType::SocketSendmsg | EventType::SocketRecvmsg);
                Cell::SockAddr {
                    sock: self.sock(),
                    addr: if optional && self.b() {
                        None
                    } else {
                        Some(self.addr(t))
                    },
                }
            }
            CellShape::Sock => {
                if t == EventType::TunDevAttachQueue && self.b() {
                    Cell::Empty
                } else {
                    Cell::Sock(self.sock())
                }
            }
            CellShape::SockValue => Cell::SockValue {
                sock: self.sock(),
                value: self.u32(),
            },
            CellShape::SockOpt => Cell::SockOpt {
                sock: self.sock(),
                level: self.u32(),
                optname: self.u32(),
            },
            CellShape::TaskKill => Cell::TaskKill {
                target: self.d(),
                sig: self.u32(),
                cross_ns: self.u32(),
            },
            CellShape::PtraceAccess => Cell::PtraceAccess {
                child: self.d(),
                mode: self.u32(),
            },
            CellShape::PtraceTraceme => Cell::PtraceTraceme { source: self.d() },
            CellShape::Capget => Cell::Capget {
                target: self.d(),
                effective: self.u64(),
                inheritable: self.u64(),
                permitted: self.u64(),
            },
            CellShape::Capset => Cell::Capset {
                effective: self.u64(),
                inheritable: self.u64(),
                permitted: self.u64(),
            },
            CellShape::Capable => Cell::Capable {
                cap: self.u32(),
                opts: self.u32(),
            },
            CellShape::TaskSetpgid => Cell::TaskSetpgid {
                task: self.d(),
                source: self.d(),
            },
            CellShape::Task => Cell::Task { task: self.d() },
            CellShape::TaskValue => Cell::TaskValue {
                task: self.d(),
                value: self.u32(),
            },
            CellShape::TaskPrlimit => Cell::TaskPrlimit {
                cred: self.creds(),
                tcred: self.creds(),
                flags: self.u32(),
            },
            CellShape::TaskSetrlimit => Cell::TaskSetrlimit {
                task: self.d(),
                resource: self.u32(),
                current: self.u64(),
                max: self.u64(),
            },
            CellShape::TaskPrctl => Cell::TaskPrctl {
                option: self.u32(),
                args: [self.u64(), self.u64(), self.u64(), self.u64()],
            },
            CellShape::KernelModuleRequest => Cell::KernelModuleRequest {
                kmod_name: self.s(),
            },
            CellShape::KernelLoadData => Cell::KernelLoadData {
                id: self.u32(),
                contents: self.u32(),
            },
            CellShape::KernelReadFile => Cell::KernelReadFile {
                file: self.file(),
                id: self.u32(),
                contents: self.u32(),
            },
            CellShape::SbMount => Cell::SbMount {
                dev_name: if self.b() { Some(self.s()) } else { None },
                path: self.path(),
                fs_type: if self.b() { Some(self.s()) } else { None },
                flags: self.u64(),
            },
            CellShape::SbUmount => Cell::SbUmount {
                mnt: self.dentry(),
                flags: self.u32(),
            },
            CellShape::SbRemount => Cell::SbRemount(self.sb()),
            CellShape::Dentry => Cell::Dentry(self.dentry()),
            CellShape::TwoPaths => Cell::TwoPaths(Box::new(PathPair {
                a: self.path(),
                b: self.path(),
            })),
            CellShape::Quotactl => Cell::Quotactl {
                cmds: self.u32(),
                qtype: self.u32(),
                id: self.u32(),
                sb: self.sb(),
            },
            CellShape::IpcValue => Cell::IpcValue {
                perm: self.perm(),
                value: self.u32(),
            },
            CellShape::SemSemop => Cell::SemSemop {
                perm: self.perm(),
                nsops: self.u32(),
                alter: self.u32(),
            },
            CellShape::MsgRcv => Cell::MsgRcv {
                perm: self.perm(),
                target: self.d(),
                msg_type: self.u64(),
                mode: self.u32(),
            },
            CellShape::IpcPermission => Cell::IpcPermission {
                perm: self.perm(),
                flag: self.u32(),
            },
            CellShape::KeyAlloc => Cell::KeyAlloc {
                cred: self.creds(),
                flags: self.u64(),
            },
            CellShape::KeyPermission => Cell::KeyPermission {
                possessed: self.u32(),
                uid: self.u32(),
                gid: self.u32(),
                flags: self.u64(),
                cred: self.creds(),
                perm: self.u32(),
            },
            CellShape::NetlinkSend => Cell::NetlinkSend {
                sock: self.sock(),
                uid: self.u32(),
                gid: self.u32(),
                portid: self.u32(),
                dst_group: self.u32(),
                flags: self.u32(),
                nsid_set: self.u32(),
                nsid: self.u32(),
            },
            CellShape::InodeCreate => Cell::InodeCreate {
                dir: self.inode(),
                dentry: self.dentry(),
                mode: self.u32(),
            },
            CellShape::InodeDirEntry => Cell::InodeDirEntry {
                dir: self.inode(),
                dentry: self.dentry(),
            },
            CellShape::InodeLink => Cell::InodeLink(Box::new(Link {
                old_dentry: self.dentry(),
                dir: self.inode(),
                new_dentry: self.dentry(),
            })),
            CellShape::InodeSymlink => Cell::InodeSymlink {
                dir: self.inode(),
                dentry: self.dentry(),
                old_name: self.s(),
            },
            CellShape::InodeMknod => Cell::InodeMknod {
                dir: self.inode(),
                dentry: self.dentry(),
                mode: self.u32(),
                dev: (self.u32(), self.u32()),
            },
            CellShape::InodeRename => Cell::InodeRename(Box::new(Rename {
                old_dir: self.inode(),
                old_dentry: self.dentry(),
                new_dir: self.inode(),
                new_dentry: self.dentry(),
            })),
            CellShape::InodeSetattr => Cell::InodeSetattr {
                dentry: self.dentry(),
                valid: self.u32(),
                mode: self.u32(),
                uid: self.u32(),
                gid: self.u32(),
                size: self.u64(),
            },
            CellShape::InodeGetattr => Cell::InodeGetattr(self.dentry()),
            CellShape::InodeSetxattr => Cell::InodeSetxattr {
                dentry: self.dentry(),
                name: self.s(),
                value: self.n().to_le_bytes()[..(self.n() % 9) as usize].to_vec(),
                flags: self.u32(),
            },
            CellShape::InodeXattr => Cell::InodeXattr {
                dentry: self.dentry(),
                name: self.s(),
            },
            CellShape::Syslog => Cell::Syslog { action: self.u32() },
            CellShape::Settime => Cell::Settime {
                ts: if self.b() {
                    Some((self.u64(), self.u64()))
                } else {
                    None
                },
                tz: if self.b() {
                    Some((self.u32(), self.u32()))
                } else {
                    None
                },
            },
            CellShape::Bpf => Cell::Bpf {
                cmd: self.u32(),
                size: self.u32(),
            },
            CellShape::BpfMap => Cell::BpfMap {
                map_type: self.u32(),
                fmode: self.u32(),
            },
            CellShape::BpfProg => Cell::BpfProg {
                prog_type: self.u32(),
                attach_type: self.u32(),
            },
            CellShape::Empty => Cell::Empty,
        }
    }

    fn event(&mut self, t: EventType) -> Event {
        let post_v4 = self.b();
        Event {
            header: EventHeader {
                pid: if self.b() { Some(self.u64()) } else { None },
                tnum: post_v4.then(|| self.u64()),
                context: post_v4.then(|| self.u64()),
                number: post_v4.then(|| self.u64()),
                process: self.s(),
                event_type: t,
                ttd: self.u64(),
                p_ttd: self.u64(),
                task_id: self.d(),
                p_task_id: self.d(),
                ts: self.u64(),
            },
            coe: self.coe(),
            cell: self.cell(t),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_event_shape_round_trips(t in 0..EventType::ALL.len(), seed in any::<u64>(), export in any::<bool>()) {
        let t = EventType::ALL[t];
        let ev = G(seed | 1).event(t);
        let kind = if export { RecordKind::Event } else { RecordKind::Trajectory };
        let line = event_to_json(&ev, kind);
        let back = parse_event(&line)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&line))))?;
        prop_assert_eq!(&back, &ev);
        prop_assert_eq!(&event_to_json(&back, kind), &line);
        // Our own emission is in the kernel's order: the in-place reader takes every line
        // without an escape (one with an escape is the tokenizer's to read).
        let fast = parse_in_place_only(&line);
        if !line.contains(&b'\\') {
            prop_assert!(fast.is_some(), "in-place reader gave up on {}", String::from_utf8_lossy(&line));
        }
        if let Some(fast) = fast {
            prop_assert_eq!(fast, Record::Event { kind, event: ev.clone() });
        }
        for mapping in [Mapping::Model0, Mapping::V3, Mapping::QuixoteCompat] {
            let mut m = Mapper::new(HashAlg::Sha256, mapping);
            prop_assert_eq!(m.coefficient(&back), m.coefficient(&ev));
        }
    }

    #[test]
    fn truncations_are_errors_not_panics(t in 0..EventType::ALL.len(), seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let line = event_to_json(&G(seed | 1).event(EventType::ALL[t]), RecordKind::Trajectory);
        let at = cut.index(line.len());
        prop_assert!(parse_event(&line[..at]).is_err());
    }

    #[test]
    fn merge_is_set_union(a in prop::collection::vec(0u8..40, 0..30), b in prop::collection::vec(0u8..40, 0..30)) {
        let model = |v: &[u8]| ModelFile {
            lines: std::iter::once(Line::Aggregate(Digest::zero(32)))
                .chain(v.iter().map(|x| Line::State(HashAlg::Sha256.digest(&[*x]))))
                .chain([Line::Seal, Line::End])
                .collect(),
        };
        let (ma, mb) = (model(&a), model(&b));
        let merged = ModelFile::merge(&[ma.clone(), mb.clone()]).unwrap();
        let set = |m: &ModelFile| m.states().copied().collect::<std::collections::BTreeSet<_>>();
        let union: std::collections::BTreeSet<_> = set(&ma).union(&set(&mb)).copied().collect();
        prop_assert_eq!(set(&merged), union.clone());
        prop_assert_eq!(merged.states().count(), union.len());
        // Set semantics: order of inputs and repetition do not matter to the point set.
        prop_assert_eq!(set(&ModelFile::merge(&[mb, ma.clone(), ma]).unwrap()), union);
        // First-seen order is kept.
        let first: Vec<Digest> = merged.states().copied().collect();
        let mut seen = std::collections::HashSet::new();
        let expect: Vec<Digest> = a.iter().chain(&b).map(|x| HashAlg::Sha256.digest(&[*x])).filter(|d| seen.insert(*d)).collect();
        prop_assert_eq!(first, expect);
    }
}

#[test]
fn merge_refuses_different_aggregates() {
    let m = |a: u8| ModelFile {
        lines: vec![
            Line::Aggregate(HashAlg::Sha256.digest(&[a])),
            Line::Seal,
            Line::End,
        ],
    };
    assert!(ModelFile::merge(&[m(1), m(2)]).is_err());
}

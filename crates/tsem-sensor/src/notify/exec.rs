//! `execve`/`execveat` (checked, then the exec stop verifies what loaded) and `mmap`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use tsem_core::Digest;
use tsem_core::event::{Cell, Coe, EventType, FileDesc};
use tsem_core::map::Mapper;

use super::decode::PathArg;
use super::target::Link;
use super::{Call, Continuation, EXEC_FLAGS, Fail, Notifier, Reply, is, lock};
use crate::describe::Describer;
use crate::event::EventHandler;
use crate::sys::{self};
use crate::tree::ApprovedExec;

impl<H: EventHandler> Notifier<H> {
    pub(super) fn sys_exec(
        &mut self,
        call: &mut Call,
        path: PathArg,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let dirfd = path.dirfd;
        let raw = self.read_cstr(call.tid, path.addr)?;
        let p = if raw.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(Fail::Errno(libc::ENOENT));
            }
            self.task
                .open_link(call.tid, Link::Fd(dirfd as i32))
                .map_err(|_| Fail::Errno(libc::EBADF))?
        } else {
            let t = self.resolve(call, dirfd, &raw)?;
            let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
                libc::O_NOFOLLOW as u64
            } else {
                0
            };
            sys::openat2(
                t.dir(),
                &t.path,
                libc::O_PATH as u64 | nofollow,
                0,
                t.resolve,
            )?
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(p.as_fd())?;
        if !is(&st, libc::S_IFREG) {
            return Err(Fail::Errno(libc::EACCES));
        }
        let link = format!("/proc/self/fd/{}", p.as_raw_fd());
        // The kernel hashes what the task may only execute as well: the reader is the
        // supervisor's own, whatever credentials the thread wears.
        let reader = sys::inspecting(|| sys::open(&link, libc::O_RDONLY)).ok();
        if let Some(r) = &reader {
            self.claim_exec_memfd(r.as_fd())?;
        }
        let file = self.desc.file(
            p.as_fd(),
            reader.as_ref().map(|r| r.as_fd()),
            &st,
            EXEC_FLAGS,
        );
        let digest = file.digest;
        let (v, allowed) = self.ask_token(call, EventType::FileOpen, Cell::File(file));
        let Some(allowed) = allowed else {
            return Ok(Reply::Error(v.errno));
        };
        lock(&self.shared.tree).approve_exec(
            call.tid,
            ApprovedExec {
                dev: st.st_dev,
                ino: st.st_ino,
                digest,
                comm: Some(call.status.name.clone()),
            },
        );
        // The kernel resolves the path again: the exec stop checks what it loaded.
        Ok(Reply::Continue(Continuation::Allowed(allowed)))
    }

    /// The description of the task's descriptor `fd` when it is a file the supervisor injected
    /// and which has not changed since (see [`Injected`]).
    /// `f` is the task's descriptor `fd`, fetched now, `st` its `fstat` and `mnt` its mount id,
    /// both from the one `statx` (`sys::fstat_mnt`).
    pub(super) fn injected_file(
        &self,
        call: &Call,
        fd: i32,
        f: BorrowedFd<'_>,
        st: &libc::stat,
        mnt: Option<u64>,
    ) -> Option<FileDesc> {
        let (key, mnt_id, desc) = {
            let kept = lock(&self.shared.injected);
            let i = kept
                .iter()
                .rev()
                .find(|i| i.tgid == call.status.tgid && i.target_fd == fd)?;
            (i.key, i.mnt_id, i.desc.clone())
        };
        // Another name of the same inode would be described with its own path.
        // A file the workload writes may change without its key moving: described afresh.
        if st.st_nlink != 1
            || crate::digest_cache::DigestKey::of(st) != key
            || mnt? != mnt_id
            || self.desc.is_written(st)
        {
            return None;
        }
        let mut desc = desc;
        // The file's flags now (fcntl F_SETFL may have changed them since the open).
        desc.flags = sys::status_flags(f).ok()? as u32;
        Some(desc)
    }

    pub(super) fn sys_mmap(
        &mut self,
        call: &mut Call,
        prot: u64,
        map_flags: u64,
        fd: i32,
    ) -> Result<Reply, Fail> {
        if map_flags & libc::MAP_ANONYMOUS as u64 != 0 {
            let flags = mmap_flags_field(self.shared.mapping, prot, map_flags);
            let cell = Cell::MmapFile {
                file: None,
                prot: prot as u32,
                flags,
            };
            return self.simple(call, EventType::MmapFile, cell);
        }
        let exec = prot & libc::PROT_EXEC as u64 != 0;
        let shared_write =
            map_flags & libc::MAP_SHARED as u64 != 0 && prot & libc::PROT_WRITE as u64 != 0;
        let f = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let (st, mnt) = sys::fstat_mnt(f.as_fd())?;
        if let Some(file) = self.injected_file(call, fd, f.as_fd(), &st, mnt)
            && !(exec && file.path.pathname.starts_with("/memfd:"))
        {
            self.claim_mapping(&st, exec, shared_write)?;
            let cell = Cell::MmapFile {
                file: Some(file),
                prot: prot as u32,
                flags: map_flags as u32,
            };
            return self.simple(call, EventType::MmapFile, cell);
        }
        let magic = self.desc.magic(f.as_fd(), &st);
        if is(&st, libc::S_IFREG) {
            self.claim_mapping(&st, exec, shared_write)?;
        }
        // tmpfs/memfd code is measured (tsem's extension, docs/sensor.md); other pseudo files
        // are skipped as the kernel does (§1.3).
        let measured =
            exec && self.shared.hash_pseudo_exec && magic == crate::describe::TMPFS_MAGIC;
        if measured && self.unsealed_memfd(f.as_fd()) {
            // Code in a memfd that can still change: unmeasurable, so described as what it is
            // to the model, anonymous executable memory (notify/contents.rs).
            let cell = Cell::MmapFile {
                file: None,
                prot: prot as u32,
                flags: mmap_flags_field(self.shared.mapping, prot, map_flags),
            };
            return self.simple(call, EventType::MmapFile, cell);
        }
        if !is(&st, libc::S_IFREG) || (crate::describe::PSEUDO_MAGICS.contains(&magic) && !measured)
        {
            return Ok(self
                .no_event("mmap_file skips non-regular files and pseudo filesystems (spec §1.3)"));
        }
        let flags = sys::status_flags(f.as_fd()).unwrap_or(0) as u32;
        let file = self
            .desc
            .file_as(f.as_fd(), Some(f.as_fd()), &st, flags, exec);
        let cell = Cell::MmapFile {
            file: Some(file),
            prot: prot as u32,
            flags: map_flags as u32,
        };
        self.simple(call, EventType::MmapFile, cell)
    }

    /// Describe the executable loaded at an exec stop (called from the tracer thread).
    pub(crate) fn describe_exe(
        desc: &mut Describer,
        pid: i32,
    ) -> io::Result<(FileDesc, libc::stat)> {
        let p = sys::open(&format!("/proc/{pid}/exe"), libc::O_PATH)?;
        let st = sys::fstat(p.as_fd())?;
        let reader = desc.reader_for(p.as_fd(), &st);
        let file = desc.file(
            p.as_fd(),
            reader.as_ref().map(|r| r.as_fd()),
            &st,
            EXEC_FLAGS,
        );
        Ok((file, st))
    }

    /// TASK_ID for a task that executed `exe` with credentials `coe` (spec §3.3).
    pub(crate) fn task_id(
        mapper: &mut Mapper,
        p_task_id: &Digest,
        coe: &Coe,
        exe: &FileDesc,
    ) -> Digest {
        mapper.task_id(p_task_id, coe, exe)
    }
}

/// The value TSEM exports as mmap_file's `flags`. Post-v4 kernels export the protection there
/// (every mmap_file of the real captures in conformance/tsem has `flags == prot`); the v3 layout
/// carries the MAP_* flags.
pub fn mmap_flags_field(mapping: tsem_core::map::Mapping, prot: u64, flags: u64) -> u32 {
    if mapping == tsem_core::map::Mapping::V3 {
        flags as u32
    } else {
        prot as u32
    }
}

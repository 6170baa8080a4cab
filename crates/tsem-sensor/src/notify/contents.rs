//! Running code is the code measured (issue 9, class 8).
//!
//! A file mapped executable keeps following its page cache: a later `write` (or a store through
//! a shared writable mapping) changes the code of every process that maps it, without any
//! event. The kernel's ETXTBSY protects only the executable of a running exec, so the sensor
//! adds two rules for files that existed before the run (files the workload created have
//! TSEM's invariant zero digest, so their contents are never measured in the first place):
//!
//! * an inode mapped executable with `mmap` during the run cannot be opened for writing or
//!   truncated afterwards (ETXTBSY);
//! * an inode opened for writing (or mapped shared-writable, or received writable) during the
//!   run cannot be mapped executable afterwards (EACCES).
//!
//! memfd files come from `memfd_create`, which the filter lets through, so the sensor never sees
//! their writable descriptors. Unless sealed against writes (`F_SEAL_WRITE`, which the kernel
//! grants only when no writable mapping exists), their contents can change at any time, so with
//! tmpfs/memfd code measured (docs/sensor.md, "Contents"):
//!
//! * executing one is refused (EACCES, counted), as the measurement could not hold;
//! * mapping one executable is described as anonymous executable memory (`mmap_file` without a
//!   file), which is what a JIT's double mapping is; the model decides.
//!
//! Both are sticky for the run and decided under one lock (`Describer::mark_written`,
//! `Describer::mark_exec_mapped`), so a racing writable open and executable mapping of the same
//! inode cannot both pass. Each refusal is counted in `refused`, in every mode.

use std::os::fd::BorrowedFd;

use super::{Counters, EventHandler, Fail, Notifier};
use crate::sys;

impl<H: EventHandler> Notifier<H> {
    /// The workload is about to get write access to `st` (an open for writing, `O_TRUNC`, a
    /// truncate): refuse it if the inode runs as code in the workload.
    pub(super) fn claim_write(&mut self, st: &libc::stat) -> Result<(), Fail> {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(());
        }
        let mapped = self.desc.mark_written(st);
        if mapped && self.desc.created(st).is_none() {
            Counters::bump(&self.shared.counters.refused);
            return Err(Fail::Errno(libc::ETXTBSY));
        }
        Ok(())
    }

    /// The workload is about to map `st` executable: refuse it if the inode was writable by
    /// the workload during the run, as its contents may differ from what is measured.
    pub(super) fn claim_exec_map(&mut self, st: &libc::stat) -> Result<(), Fail> {
        let written = self.desc.mark_exec_mapped(st);
        if written && self.desc.created(st).is_none() {
            Counters::bump(&self.shared.counters.refused);
            return Err(Fail::Errno(libc::EACCES));
        }
        Ok(())
    }

    /// The workload is about to map `st`: executable, and/or shared and writable.
    pub(super) fn claim_mapping(
        &mut self,
        st: &libc::stat,
        exec: bool,
        shared_write: bool,
    ) -> Result<(), Fail> {
        if shared_write {
            self.claim_write(st)?;
        }
        if exec {
            self.claim_exec_map(st)?;
        }
        Ok(())
    }

    /// Whether `fd` (not `O_PATH`) is a memfd whose contents may still change.
    pub(super) fn unsealed_memfd(&self, fd: BorrowedFd<'_>) -> bool {
        self.desc.fd_path(fd).starts_with(b"/memfd:")
            && sys::acts::seals(fd).is_none_or(|s| s & libc::F_SEAL_WRITE == 0)
    }

    /// An exec of `fd` (a readable descriptor on the program): refuse an unsealed memfd when
    /// tmpfs/memfd code is measured.
    pub(super) fn claim_exec_memfd(&self, fd: BorrowedFd<'_>) -> Result<(), Fail> {
        if self.shared.hash_pseudo_exec && self.unsealed_memfd(fd) {
            Counters::bump(&self.shared.counters.refused);
            return Err(Fail::Errno(libc::EACCES));
        }
        Ok(())
    }
}

//! Mounts (mount, umount, pivot_root, move_mount) and module loading.
//!
//! The supervisor cannot mount for another task (the mount lands in the caller's mount
//! namespace, with its root and credentials), and the kernel would read the strings again
//! after the verdict: the mount family is described and decided, then refused when enforcing
//! (`Notifier::simple`, counted in `unfaithful`) and continued when learning or sealing, so
//! that a learned model still holds it.

use std::os::fd::AsFd;

use tsem_core::event::{Cell, EventType};

use super::decode::PathArg;
use super::{Call, Fail, Notifier, Reply};
use crate::event::EventHandler;
use crate::sys::{self};

impl<H: EventHandler> Notifier<H> {
    pub(super) fn sys_mount(
        &mut self,
        call: &mut Call,
        dev_name: u64,
        path: u64,
        fs_type: u64,
        flags: u64,
    ) -> Result<Reply, Fail> {
        let dev_name = self.opt_str(call, dev_name)?;
        let fs_type = self.opt_str(call, fs_type)?;
        let path = self.path_ref_of(call, PathArg::cwd(path))?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let r = self.simple(
            call,
            EventType::SbMount,
            Cell::SbMount {
                dev_name,
                path,
                fs_type,
                flags,
            },
        );
        self.desc.reload_mounts();
        r
    }

    pub(super) fn sys_umount(
        &mut self,
        call: &mut Call,
        path: u64,
        flags: u32,
    ) -> Result<Reply, Fail> {
        let obj = self.object(call, PathArg::cwd(path), 0)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let abs = self.desc.fd_path(obj.as_fd());
        let mnt = self.desc.dentry(obj.as_fd(), &st, &abs, Some(&st), None);
        let r = self.simple(call, EventType::SbUmount, Cell::SbUmount { mnt, flags });
        self.desc.reload_mounts();
        r
    }

    pub(super) fn sys_two_paths(
        &mut self,
        call: &mut Call,
        ty: EventType,
        first: PathArg,
        second: PathArg,
    ) -> Result<Reply, Fail> {
        let a = self.path_ref_of(call, first)?;
        let b = self.path_ref_of(call, second)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let r = self.simple(
            call,
            ty,
            Cell::TwoPaths(Box::new(tsem_core::event::PathPair { a, b })),
        );
        self.desc.reload_mounts();
        r
    }

    /// finit_module: kernel_read_file of the module file at the caller's descriptor, then
    /// loaded by the supervisor from that very file (its duplicate of the caller's open file)
    /// with its copy of the parameters, wearing the caller's credentials: continued, the
    /// kernel would load whatever another thread `dup2`ed onto the number after the check.
    pub(super) fn sys_finit_module(
        &mut self,
        call: &mut Call,
        fd: i32,
        params: u64,
        flags: u32,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        let params = super::cstring(self.read_cstr(call.tid, params)?)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        let fl = sys::status_flags(f.as_fd()).unwrap_or(0) as u32;
        let file = self.desc.file(f.as_fd(), Some(f.as_fd()), &st, fl);
        let emulate = self.performs(call);
        // READING_MODULE, whole file.
        let cell = Cell::KernelReadFile {
            file,
            id: 2,
            contents: 1,
        };
        if let Some(r) = self.decide(call, EventType::KernelReadFile, cell, emulate) {
            return Ok(r);
        }
        Ok(super::op_reply(sys::finit_module(
            f.as_fd(),
            &params,
            flags,
        )))
    }
}

//! The hand-over hook as a program without libc (`hook/main.rs`, built by `build.rs`), run from
//! a sealed memfd of this process: runc execs `/proc/<our pid>/fd/<n>` as the supervised
//! `run`'s first `createRuntime` hook, and waits for it. A glibc program's start-up costs
//! ~0.35 ms of CPU on a virtual machine (the dynamic loader's and libc's `cpuid` exits), and
//! `tsem-runtime`'s about 0.65 ms; this one's a few µs, on the container's critical path. Its
//! behaviour is that of [`crate::handover::hook`] (same arguments, same checks, same one-line
//! errors): test `tests/handover.rs`.
//!
//! The memfd is sealed (no write, no resize) before runc is started and lives as long as this
//! `run`; nothing is written to disk. When it cannot be made (another architecture, a kernel
//! refusing executable memfds: `vm.memfd_noexec=2`), the hook is `tsem-runtime` itself.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// `MFD_EXEC` (Linux 6.3): executable even where `vm.memfd_noexec=1` makes memfds
/// non-executable by default.
const MFD_EXEC: libc::c_uint = 0x10;

/// The embedded program.
#[cfg(tsem_hook_bin)]
pub const PROGRAM: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/tsem-handover")));
/// The embedded program.
#[cfg(not(tsem_hook_bin))]
pub const PROGRAM: Option<&[u8]> = None;

/// The hook program, open in this process.
pub struct Hook {
    fd: OwnedFd,
}

impl Hook {
    /// The program in a sealed memfd, or `None` when there is none or it cannot be made.
    pub fn load() -> Option<Self> {
        let program = PROGRAM?;
        let name = c"tsem-handover";
        let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: memfd_create takes a NUL-terminated name and flags; the result is a new
        // descriptor or -1. Kernels before 6.3 refuse MFD_EXEC (EINVAL): their memfds are
        // executable anyway.
        let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
        if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            // SAFETY: as above.
            fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
        }
        if fd < 0 {
            return None;
        }
        // SAFETY: a new descriptor of ours, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, program).ok()?;
        let fd = OwnedFd::from(file);
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on our own descriptor with an integer argument.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return None;
        }
        Some(Self { fd })
    }

    /// The path runc executes (valid while this process holds the memfd).
    pub fn path(&self) -> PathBuf {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd()).into()
    }
}

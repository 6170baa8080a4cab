//! Read-only file mappings.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A file mapped read-only and private: its bytes as they were when mapped, as long as the file
/// is only ever replaced (renamed over), never truncated in place (a truncation makes a read of
/// the lost pages raise SIGBUS).
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; sharing or sending a pointer to
// immutable memory across threads is sound.
unsafe impl Send for Mapped {}
// SAFETY: as above: nothing writes through the pointer.
unsafe impl Sync for Mapped {}

/// Map the first `len` bytes of `fd` (`len` > 0) read-only.
pub fn map_file(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapped> {
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a fresh private read-only mapping of an open descriptor; the kernel checks the
    // descriptor and the length, and the result is checked for MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapped { ptr, len })
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({} bytes)", self.len)
    }
}

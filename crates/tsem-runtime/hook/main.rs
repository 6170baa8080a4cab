//! `tsem-handover`, the hand-over hook of a supervised `tsem-runtime run` (docs/containers.md),
//! as a static program without libc: runc runs it as the first `createRuntime` hook and waits for
//! it, so its start-up is on the container's critical path, and a glibc program's start-up
//! alone costs ~0.35 ms of CPU on a virtual machine (`cpuid` exits in the dynamic loader and
//! libc's initialisation), this one's a few µs. Built by `build.rs` with `rustc -C panic=abort`
//! and embedded in `tsem-runtime`, which runs it from a sealed memfd (`src/hookbin.rs`).
//!
//! `tsem-handover tsem-handover SOCKET ID` (the argv of `tsem-runtime`'s own hook, which it
//! replaces): read the container state from stdin (at most 1 MiB), check that it is container
//! ID's, `creating`, with a pid; connect to SOCKET (a path longer than a socket address holds is
//! reached through a descriptor of its directory), send the pid (4 bytes, native endian), and
//! exit 0 only when the answer is `r` (the supervisor holds the init). Anything else: one line on
//! stderr (runc puts it in its error) and exit 1, on which runc kills the init and fails the run.

#![no_std]
#![no_main]

#[path = "../src/hookstate.rs"]
mod hookstate;

use core::arch::{asm, global_asm};

use hookstate::Writer;

/// The most of the state read (as `tsem-runtime`'s own hook).
const MAX_STATE: usize = 1 << 20;
/// The hidden command `tsem-runtime` gives its hook.
const COMMAND: &[u8] = b"tsem-handover";

static mut STATE: [u8; MAX_STATE] = [0; MAX_STATE];

// The kernel enters with the stack pointer at argc (16-byte aligned); a call to a function
// expects it 16-byte aligned before the call.
global_asm!(
    ".globl _start",
    "_start:",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym start,
);

/// # Safety
/// Called once by `_start` with the process's initial stack pointer.
unsafe extern "C" fn start(sp: *const usize) -> ! {
    // SAFETY: the initial stack holds argc, then argc pointers to NUL-terminated strings.
    let argc = unsafe { *sp };
    let mut args: [&[u8]; 4] = [b""; 4];
    if argc != 4 {
        fail(b"usage: tsem-handover tsem-handover SOCKET ID (a hook of tsem-runtime run)");
    }
    for (i, slot) in args.iter_mut().enumerate() {
        // SAFETY: i < argc; each argv entry is a valid C string.
        *slot = unsafe { cstr(*(sp.add(1 + i) as *const *const u8)) };
    }
    if args[1] != COMMAND {
        fail(b"usage: tsem-handover tsem-handover SOCKET ID (a hook of tsem-runtime run)");
    }
    hand_over(args[2], args[3])
}

/// # Safety
/// `p` is a NUL-terminated string that lives as long as the process.
unsafe fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // Volatile: a plain loop could be compiled into a call to strlen, which there is not.
    // SAFETY: the string is NUL-terminated.
    while unsafe { core::ptr::read_volatile(p.add(n)) } != 0 {
        n += 1;
    }
    // SAFETY: n bytes from p are the string's.
    unsafe { core::slice::from_raw_parts(p, n) }
}

fn hand_over(sock: &[u8], id: &[u8]) -> ! {
    // SAFETY: the only reference to STATE, in this single-threaded program.
    let buf: &mut [u8; MAX_STATE] = unsafe { &mut *core::ptr::addr_of_mut!(STATE) };
    let mut len = 0;
    loop {
        if len == MAX_STATE {
            break;
        }
        let r = read(0, &mut buf[len..]);
        if r == -EINTR {
            continue;
        }
        if r < 0 {
            fail_errno(b"the hook's state: stdin", r);
        }
        if r == 0 {
            break;
        }
        len += r as usize;
    }
    let state = match hookstate::parse(&buf[..len]) {
        Ok(s) => s,
        Err(e) => {
            let mut line = [0u8; 128];
            let n = e.describe(&mut line);
            fail2(b"the hook's state: ", &line[..n]);
        }
    };
    if state.id != id {
        fail2(b"the hook's state: a container other than ", id);
    }
    if state.status != b"creating" {
        fail(b"the hook's state: status is not creating");
    }
    let fd = connect(sock);
    let pid = state.pid.to_ne_bytes();
    let mut sent = 0;
    while sent < pid.len() {
        let r = write(fd, &pid[sent..]);
        if r == -EINTR {
            continue;
        }
        if r <= 0 {
            fail_errno(b"hand-over socket: write", r);
        }
        sent += r as usize;
    }
    let mut b = [0u8; 1];
    let r = loop {
        let r = read(fd, &mut b);
        if r != -EINTR {
            break r;
        }
    };
    match r {
        1 if b[0] == b'r' => exit(0),
        r if r < 0 => fail_errno(
            b"the supervisor did not take the container's init",
            r,
        ),
        _ => fail(
            b"the supervisor did not take the container's init: no answer (the supervisor's log has why)",
        ),
    }
}

/// A connected stream socket to `path`.
fn connect(path: &[u8]) -> i32 {
    // struct sockaddr_un: family, then 108 bytes of path.
    let mut addr = [0u8; 110];
    addr[0..2].copy_from_slice(&(AF_UNIX as u16).to_ne_bytes());
    let mut w = Writer {
        out: &mut addr[2..],
        len: 0,
    };
    if path.len() < 100 {
        w.put(path);
    } else {
        // Too long for an address: through a descriptor of its directory.
        let Some(slash) = path.iter().rposition(|&c| c == b'/') else {
            fail(b"hand-over socket: path too long");
        };
        let mut dir = [0u8; 4096];
        if slash >= dir.len() - 1 {
            fail(b"hand-over socket: path too long");
        }
        dir[..slash.max(1)].copy_from_slice(&path[..slash.max(1)]);
        let d = syscall(
            SYS_OPEN,
            [dir.as_ptr() as usize, O_PATH | O_DIRECTORY | O_CLOEXEC, 0],
        );
        if d < 0 {
            fail_errno(b"hand-over socket: its directory", d);
        }
        w.put(b"/proc/self/fd/");
        w.num(d as u64);
        w.put(&path[slash..]);
    }
    if w.len >= 107 {
        fail(b"hand-over socket: path too long");
    }
    let n = 2 + w.len + 1;
    let fd = syscall(SYS_SOCKET, [AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0]);
    if fd < 0 {
        fail_errno(b"hand-over socket: socket", fd);
    }
    let r = syscall(SYS_CONNECT, [fd as usize, addr.as_ptr() as usize, n]);
    if r < 0 {
        fail_errno(b"hand-over socket: connect", r);
    }
    fd as i32
}

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_OPEN: usize = 2;
const SYS_SOCKET: usize = 41;
const SYS_CONNECT: usize = 42;
const SYS_EXIT_GROUP: usize = 231;
const AF_UNIX: usize = 1;
const SOCK_STREAM: usize = 1;
const SOCK_CLOEXEC: usize = 0o2000000;
const O_PATH: usize = 0o10000000;
const O_DIRECTORY: usize = 0o200000;
const O_CLOEXEC: usize = 0o2000000;
const EINTR: isize = 4;

fn syscall(nr: usize, a: [usize; 3]) -> isize {
    let r: isize;
    // SAFETY: a raw system call with integer arguments; pointer arguments point to live
    // buffers of the sizes given.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => r, in("rdi") a[0], in("rsi") a[1],
             in("rdx") a[2], lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

fn read(fd: i32, b: &mut [u8]) -> isize {
    syscall(SYS_READ, [fd as usize, b.as_mut_ptr() as usize, b.len()])
}

fn write(fd: i32, b: &[u8]) -> isize {
    syscall(SYS_WRITE, [fd as usize, b.as_ptr() as usize, b.len()])
}

fn exit(code: i32) -> ! {
    // SAFETY: exit_group does not return.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT_GROUP, in("rdi") code, options(noreturn, nostack));
    }
}

fn fail(what: &[u8]) -> ! {
    fail2(what, b"")
}

fn fail2(what: &[u8], more: &[u8]) -> ! {
    let mut line = [0u8; 512];
    let mut w = Writer {
        out: &mut line,
        len: 0,
    };
    w.put(b"tsem-runtime: ");
    w.put(what);
    w.put(more);
    w.put(b"\n");
    let n = w.len;
    let _ = write(2, &line[..n]);
    exit(1)
}

fn fail_errno(what: &[u8], r: isize) -> ! {
    let mut line = [0u8; 256];
    let mut w = Writer {
        out: &mut line,
        len: 0,
    };
    w.put(what);
    w.put(b": errno ");
    w.num(r.unsigned_abs() as u64);
    let n = w.len;
    fail(&line[..n])
}

/// Referenced by the prebuilt `core` (compiled for unwinding); never called: this program is
/// built with `panic=abort`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    fail(b"the hand-over hook failed")
}

// core calls these for copies and fills; there is no libc to provide them.

/// # Safety
/// As C's `memcpy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller gives valid, non-overlapping ranges of n bytes.
    unsafe {
        asm!("rep movsb", inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n => _,
             options(nostack, preserves_flags));
    }
    d
}

/// # Safety
/// As C's `memmove`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    if (d as usize) <= (s as usize) || (d as usize) >= (s as usize) + n {
        // SAFETY: a forward copy is correct when d is below s or past the source.
        return unsafe { memcpy(d, s, n) };
    }
    // SAFETY: backwards (direction flag set for the copy, cleared after) over valid ranges.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rdi") d.add(n - 1) => _,
             inout("rsi") s.add(n - 1) => _, inout("rcx") n => _, options(nostack));
    }
    d
}

/// # Safety
/// As C's `memset`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller gives a valid range of n bytes.
    unsafe {
        asm!("rep stosb", inout("rdi") d => _, inout("rcx") n => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    d
}

/// # Safety
/// As C's `memcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // Volatile: a plain loop could be compiled into a call to memcmp itself.
        // SAFETY: i < n, within both ranges.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// As C's `bcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

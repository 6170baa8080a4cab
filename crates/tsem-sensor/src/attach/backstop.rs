//! The kernel backstop of an attached process (a container's program), applied by the task to
//! itself at the exec stop, before the seccomp filter: the same Landlock ruleset
//! [`crate::backstop::prepare`] builds for `tsem run`, but built and restricted by system calls the
//! tracer makes the task run (`landlock_create_ruleset`, one `openat(O_PATH)`, `landlock_add_rule`
//! and `close` per path, a rule per port, `landlock_restrict_self`, `close`).
//!
//! Why in the task and not in the supervisor: a ruleset descriptor cannot be handed into a task
//! that has no socket to receive it (seccomp's `ADDFD` needs a notification, which needs the
//! filter, and the restriction must come before the filter so that it is not notified), and a
//! rule binds to the inode its path names *in the container's root*, with the container's
//! mounts and symbolic links, which is exactly what the task's own `openat` resolves (the
//! supervisor opening `/proc/<pid>/root/PATH` would follow absolute links out of the root).
//!
//! The path rules are the bulk of those calls, and each call the tracer makes the task run is a
//! round trip between the two (two context switches, costly on a loaded host). So they run in
//! batches: a short loop of machine code written over the program's entry point (restored
//! afterwards, with the registers) makes, for each entry of a table in the task's unused stack,
//! the `openat`, `landlock_add_rule` and `close` calls and stores their results in the table,
//! then stops at an `int3`; the tracer reads the results back. One stop per batch instead of
//! three per path.
//!
//! The rights are those of [`crate::backstop::TESTED_ABI`] the kernel has (best effort, as the
//! `landlock` crate does for `tsem run`); a path that cannot be opened in the container is
//! skipped and reported in `missing`. A failure of `landlock_create_ruleset`, `landlock_add_rule`
//! or `landlock_restrict_self` fails the attach (the container is killed): never a container
//! believed confined that is not.

use landlock::{ABI, Access, AccessFs, AccessNet, BitFlags, Scope};
use tsem_core::access::{self, AccessSet};

use crate::backstop::{BackstopReport, Status, TESTED_ABI};
use crate::sys;

/// `LANDLOCK_RULE_PATH_BENEATH`, `LANDLOCK_RULE_NET_PORT`.
const RULE_PATH_BENEATH: u64 = 1;
const RULE_NET_PORT: u64 = 2;
/// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` (ABI 7), as `tsem run` sets it.
const LOG_NEW_EXEC_ON: u64 = 1 << 1;
/// Room for one path (with its NUL) in the task's scratch memory.
const PATH_ROOM: usize = 4096;
/// The scratch memory this module uses below the address it is given: attributes, then one
/// batch's table and paths.
pub const SCRATCH: u64 = 64 + BATCH_ROOM as u64;
/// Room for one batch (its table entries and paths), at `base + 64`.
const BATCH_ROOM: usize = 32 << 10;
/// One table entry: the path's address, `struct landlock_path_beneath_attr` (rights, then the
/// descriptor the loop stores), and the results of `openat` and `landlock_add_rule`.
const ENTRY: usize = 40;
const ENTRY_ATTR: u8 = 8;
const ENTRY_FD: u8 = 16;
const ENTRY_OPEN: u8 = 24;
const ENTRY_ADD: u8 = 32;

/// The task's scratch memory: attributes at `base`, the path at `base + 64`.
struct Task<'a> {
    pid: i32,
    at: &'a libc::user_regs_struct,
    deferred: &'a mut Vec<i32>,
    base: u64,
}

impl Task<'_> {
    /// Run system call `nr` in the task; its result (negative: `-errno`).
    fn call<const N: usize>(&mut self, nr: libc::c_long, args: [u64; N]) -> Result<i64, String> {
        sys::regs::call(self.pid, self.at, self.deferred, nr, args)
            .map(|r| r as i64)
            .map_err(|e| format!("injected system call {nr}: {e}"))
    }

    fn write(&self, off: u64, bytes: &[u8]) -> Result<u64, String> {
        let addr = self.base + off;
        match sys::process_vm_write(self.pid, addr, bytes) {
            Ok(n) if n == bytes.len() => Ok(addr),
            Ok(_) => Err("short write to the task's memory".into()),
            Err(e) => Err(format!("writing to the task's memory: {e}")),
        }
    }

    fn close(&mut self, fd: i64) -> Result<(), String> {
        match self.call(libc::SYS_close, [fd as u64])? {
            0 => Ok(()),
            r => Err(format!("close in the task: errno {}", -r)),
        }
    }
}

/// The scopes `set` keeps (both, minus those the model lifts).
fn scopes(set: &AccessSet, abi: ABI) -> BitFlags<Scope> {
    let mut s = Scope::from_all(abi);
    if set.unscoped.contains(&access::Scope::Signal) {
        s.remove(Scope::Signal);
    }
    if set.unscoped.contains(&access::Scope::AbstractUnixSocket) {
        s.remove(Scope::AbstractUnixSocket);
    }
    s
}

/// Make the task `pid`, held at the exec stop with `NO_NEW_PRIVS` set, restrict itself to `set`.
/// `base` is scratch memory of [`SCRATCH`] bytes the task does not use.
pub fn apply(
    pid: i32,
    at: &libc::user_regs_struct,
    deferred: &mut Vec<i32>,
    base: u64,
    set: &AccessSet,
) -> Result<BackstopReport, String> {
    let kernel = crate::backstop::kernel_abi();
    let mut report = BackstopReport {
        abi: kernel,
        status: Status::NotEnforced,
        rules: 0,
        missing: Vec::new(),
        scoped: Vec::new(),
    };
    if kernel == 0 {
        return Ok(report);
    }
    let abi = ABI::from(kernel.min(TESTED_ABI as u32) as i32);
    // READ_DIR is left unhandled, as in `crate::backstop::prepare`.
    let fs = (AccessFs::from_all(abi) & !AccessFs::ReadDir).bits();
    let net = AccessNet::from_all(abi).bits();
    let scoped = scopes(set, abi);
    let mut t = Task {
        pid,
        at,
        deferred,
        base,
    };
    // struct landlock_ruleset_attr, as long as this ABI knows it.
    let mut attr = fs.to_ne_bytes().to_vec();
    if kernel >= 4 {
        attr.extend_from_slice(&net.to_ne_bytes());
    }
    if kernel >= 6 {
        attr.extend_from_slice(&scoped.bits().to_ne_bytes());
    }
    let addr = t.write(0, &attr)?;
    let ruleset = t.call(
        libc::SYS_landlock_create_ruleset,
        [addr, attr.len() as u64, 0],
    )?;
    if ruleset < 0 {
        return Err(format!("landlock_create_ruleset: errno {}", -ruleset));
    }
    let filled = fill(&mut t, ruleset, set, fs, net, &mut report);
    let restricted = filled.and_then(|()| {
        let flags = if kernel >= 7 { LOG_NEW_EXEC_ON } else { 0 };
        match t.call(libc::SYS_landlock_restrict_self, [ruleset as u64, flags])? {
            0 => Ok(()),
            r => Err(format!("landlock_restrict_self: errno {}", -r)),
        }
    });
    // The task's copy of the ruleset goes whatever happened.
    let closed = t.close(ruleset);
    restricted?;
    closed?;
    report.status = if kernel >= TESTED_ABI as u32 {
        Status::FullyEnforced
    } else {
        Status::PartiallyEnforced
    };
    if kernel >= 6 {
        if scoped.contains(Scope::Signal) {
            report.scoped.push(access::Scope::Signal.name());
        }
        if scoped.contains(Scope::AbstractUnixSocket) {
            report.scoped.push(access::Scope::AbstractUnixSocket.name());
        }
    }
    Ok(report)
}

/// Add `set`'s rules to the task's `ruleset`.
fn fill(
    t: &mut Task<'_>,
    ruleset: i64,
    set: &AccessSet,
    fs: u64,
    net: u64,
    report: &mut BackstopReport,
) -> Result<(), String> {
    let rules: Vec<(&Vec<u8>, u64)> = set
        .fs
        .iter()
        .map(|(path, rights)| (path, u64::from(*rights) & fs))
        .filter(|(_, rights)| *rights != 0)
        .collect();
    let mut batch: Vec<(&Vec<u8>, u64)> = Vec::new();
    let mut room = 0;
    for (path, rights) in rules {
        if path.len() >= PATH_ROOM || path.contains(&0) {
            report.missing.push(access::escape_path(path));
            continue;
        }
        let need = ENTRY + path.len() + 1;
        if room + need > BATCH_ROOM {
            run_batch(t, ruleset, &batch, report)?;
            batch.clear();
            room = 0;
        }
        batch.push((path, rights));
        room += need;
    }
    if !batch.is_empty() {
        run_batch(t, ruleset, &batch, report)?;
    }
    if net == 0 {
        return Ok(());
    }
    for (ports, right) in [
        (&set.tcp_bind, AccessNet::BindTcp),
        (&set.tcp_connect, AccessNet::ConnectTcp),
    ] {
        for p in ports {
            // struct landlock_net_port_attr { __u64 allowed_access; __u64 port; }
            let mut attr = (right as u64).to_ne_bytes().to_vec();
            attr.extend_from_slice(&u64::from(*p).to_ne_bytes());
            let addr = t.write(32, &attr)?;
            match t.call(
                libc::SYS_landlock_add_rule,
                [ruleset as u64, RULE_NET_PORT, addr, 0],
            )? {
                0 => report.rules += 1,
                r => return Err(format!("landlock_add_rule (port {p}): errno {}", -r)),
            }
        }
    }
    Ok(())
}

/// Add the rules of `batch` (paths and rights) in one run of [`batch_code`].
fn run_batch(
    t: &mut Task<'_>,
    ruleset: i64,
    batch: &[(&Vec<u8>, u64)],
    report: &mut BackstopReport,
) -> Result<(), String> {
    let table = t.base + 64;
    let mut paths_at = table + (batch.len() * ENTRY) as u64;
    let mut mem = Vec::with_capacity(batch.len() * ENTRY);
    let mut names = Vec::new();
    for (path, rights) in batch {
        let mut e = [0u8; ENTRY];
        e[0..8].copy_from_slice(&paths_at.to_ne_bytes());
        e[8..16].copy_from_slice(&rights.to_ne_bytes());
        mem.extend_from_slice(&e);
        names.extend_from_slice(path);
        names.push(0);
        paths_at += path.len() as u64 + 1;
    }
    mem.extend_from_slice(&names);
    t.write(64, &mem)?;
    run_code(t, &batch_code(), table, batch.len() as u64, ruleset as u64)?;
    let mut results = vec![0u8; batch.len() * ENTRY];
    match sys::process_vm_read(t.pid, table, &mut results) {
        Ok(n) if n == results.len() => {}
        Ok(_) => return Err("short read of the task's memory".into()),
        Err(e) => return Err(format!("reading the task's memory: {e}")),
    }
    for (i, (path, rights)) in batch.iter().enumerate() {
        let e = &results[i * ENTRY..(i + 1) * ENTRY];
        let word = |at: u8| {
            let at = usize::from(at);
            let mut b = [0u8; 8];
            b.copy_from_slice(&e[at..at + 8]);
            i64::from_ne_bytes(b)
        };
        if word(ENTRY_OPEN) < 0 {
            report.missing.push(access::escape_path(path));
            continue;
        }
        let mut added = word(ENTRY_ADD);
        // Rights only directories have are invalid on a file's rule (EINVAL): then the file's
        // rights alone, as `prepare` does after its fstat (one path at a time, rarely).
        let file = rights & u64::from(access::fs::FILE);
        if added == -i64::from(libc::EINVAL) && file != *rights {
            added = if file == 0 {
                0
            } else {
                single_path_rule(t, ruleset, path, file)?
            };
        }
        match added {
            0 => report.rules += 1,
            r => return Err(format!("landlock_add_rule: errno {}", -r)),
        }
    }
    Ok(())
}

/// The batch loop, x86_64 machine code. In: r12 the table, r13 its length, r14 the ruleset.
/// For each entry: `fd = openat(AT_FDCWD, path, O_PATH | O_CLOEXEC)`, stored; if it is a
/// descriptor, it goes into the entry's attribute, `landlock_add_rule(ruleset,
/// PATH_BENEATH, &attr, 0)` is stored and the descriptor closed. Then `int3`.
fn batch_code() -> Vec<u8> {
    let open_flags = ((libc::O_PATH | libc::O_CLOEXEC) as u32).to_le_bytes();
    let openat = (libc::SYS_openat as u32).to_le_bytes();
    let add_rule = (libc::SYS_landlock_add_rule as u32).to_le_bytes();
    let close = (libc::SYS_close as u32).to_le_bytes();
    // From `test r13, r13` to the `jz` (exclusive) and the body after it.
    let head: Vec<u8> = vec![0x4d, 0x85, 0xed]; // test r13, r13
    let mut body: Vec<u8> = Vec::new();
    body.push(0xb8); // mov eax, SYS_openat
    body.extend_from_slice(&openat);
    body.extend_from_slice(&[0x48, 0xc7, 0xc7, 0x9c, 0xff, 0xff, 0xff]); // mov rdi, -100
    body.extend_from_slice(&[0x49, 0x8b, 0x34, 0x24]); // mov rsi, [r12]
    body.push(0xba); // mov edx, O_PATH | O_CLOEXEC
    body.extend_from_slice(&open_flags);
    body.extend_from_slice(&[0x45, 0x31, 0xd2]); // xor r10d, r10d
    body.extend_from_slice(&[0x0f, 0x05]); // syscall
    body.extend_from_slice(&[0x49, 0x89, 0x44, 0x24, ENTRY_OPEN]); // mov [r12+OPEN], rax
    body.extend_from_slice(&[0x48, 0x85, 0xc0]); // test rax, rax
    let js_at = body.len();
    body.extend_from_slice(&[0x78, 0x00]); // js next (patched below)
    let after_js = body.len();
    body.extend_from_slice(&[0x41, 0x89, 0x44, 0x24, ENTRY_FD]); // mov [r12+FD], eax
    body.extend_from_slice(&[0x49, 0x89, 0xc7]); // mov r15, rax
    body.push(0xb8); // mov eax, SYS_landlock_add_rule
    body.extend_from_slice(&add_rule);
    body.extend_from_slice(&[0x4c, 0x89, 0xf7]); // mov rdi, r14
    body.extend_from_slice(&[0xbe, RULE_PATH_BENEATH as u8, 0, 0, 0]); // mov esi, 1
    body.extend_from_slice(&[0x49, 0x8d, 0x54, 0x24, ENTRY_ATTR]); // lea rdx, [r12+ATTR]
    body.extend_from_slice(&[0x45, 0x31, 0xd2]); // xor r10d, r10d
    body.extend_from_slice(&[0x0f, 0x05]); // syscall
    body.extend_from_slice(&[0x49, 0x89, 0x44, 0x24, ENTRY_ADD]); // mov [r12+ADD], rax
    body.push(0xb8); // mov eax, SYS_close
    body.extend_from_slice(&close);
    body.extend_from_slice(&[0x4c, 0x89, 0xff]); // mov rdi, r15
    body.extend_from_slice(&[0x0f, 0x05]); // syscall
    let next = body.len();
    body[js_at + 1] = (next - after_js) as u8;
    body.extend_from_slice(&[0x49, 0x83, 0xc4, ENTRY as u8]); // add r12, ENTRY
    body.extend_from_slice(&[0x49, 0xff, 0xcd]); // dec r13
    // jmp back to `test r13, r13`: the head, the jz (2 bytes), the body so far, this jmp (2).
    let back = head.len() + 2 + body.len() + 2;
    body.extend_from_slice(&[0xeb, (-(back as i64)) as u8]); // jmp loop
    let mut code = head;
    code.extend_from_slice(&[0x74, body.len() as u8]); // jz done
    code.extend_from_slice(&body);
    code.push(0xcc); // done: int3
    code
}

/// Run `code` in the task from its entry point (the bytes there saved and restored) with r12,
/// r13 and r14 set, until the `int3` at its end. The code goes in and out through
/// `/proc/<pid>/mem` (which writes the read-only text as `PTRACE_POKETEXT` does, for a tracer):
/// three calls where a word at a time took some 45, on the container's path.
fn run_code(t: &mut Task<'_>, code: &[u8], r12: u64, r13: u64, r14: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt as _;
    let pid = t.pid;
    let io = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    let at = t.at.rip;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .map_err(io("opening the task's memory"))?;
    let mut saved = vec![0u8; code.len()];
    mem.read_exact_at(&mut saved, at)
        .map_err(io("reading the entry point"))?;
    let run = (|| {
        mem.write_all_at(code, at)
            .map_err(io("writing the rules' loop"))?;
        let mut r = *t.at;
        r.orig_rax = u64::MAX;
        r.r12 = r12;
        r.r13 = r13;
        r.r14 = r14;
        sys::regs::set(pid, &r).map_err(io("PTRACE_SETREGS"))?;
        let mut sig = 0;
        loop {
            sys::ptrace_cont(pid, sig).map_err(io("PTRACE_CONT"))?;
            let st = sys::regs::wait_stop(pid).map_err(io("waiting for the rules"))?;
            sig = 0;
            let stopped = libc::WSTOPSIG(st);
            if stopped == libc::SIGTRAP && (st >> 16) == 0 {
                break;
            }
            if (st >> 16) != 0 {
                return Err(format!("unexpected stop {st:#x} while adding the rules"));
            }
            // A signal meanwhile (the runtime's Go preemption signals): kept for later.
            t.deferred.push(stopped);
        }
        let after = sys::regs::get(pid).map_err(io("PTRACE_GETREGS"))?;
        if after.rip != at + code.len() as u64 {
            return Err(format!(
                "the rules' loop stopped at {:#x}, not at its end",
                after.rip
            ));
        }
        Ok(())
    })();
    mem.write_all_at(&saved, at)
        .map_err(io("restoring the entry point"))?;
    sys::regs::set(pid, t.at).map_err(io("restoring the registers"))?;
    run
}

/// One path's rule by single calls: `openat`, `landlock_add_rule`, `close`.
fn single_path_rule(
    t: &mut Task<'_>,
    ruleset: i64,
    path: &[u8],
    rights: u64,
) -> Result<i64, String> {
    let mut name = path.to_vec();
    name.push(0);
    let at = t.write(64, &name)?;
    let fd = t.call(
        libc::SYS_openat,
        [
            libc::AT_FDCWD as i64 as u64,
            at,
            (libc::O_PATH | libc::O_CLOEXEC) as u64,
            0,
        ],
    )?;
    if fd < 0 {
        return Ok(fd);
    }
    let added = add_path_rule(t, ruleset, rights, fd);
    let closed = t.close(fd);
    let added = added?;
    closed?;
    Ok(added)
}

fn add_path_rule(t: &mut Task<'_>, ruleset: i64, rights: u64, fd: i64) -> Result<i64, String> {
    // struct landlock_path_beneath_attr { __u64 allowed_access; __s32 parent_fd; } (packed)
    let mut attr = rights.to_ne_bytes().to_vec();
    attr.extend_from_slice(&(fd as i32).to_ne_bytes());
    let addr = t.write(32, &attr)?;
    t.call(
        libc::SYS_landlock_add_rule,
        [ruleset as u64, RULE_PATH_BENEATH, addr, 0],
    )
}

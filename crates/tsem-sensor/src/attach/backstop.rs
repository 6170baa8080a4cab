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
/// The scratch memory this module uses below the address it is given.
pub const SCRATCH: u64 = 64 + PATH_ROOM as u64;

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
    for (path, rights) in &set.fs {
        let rights = u64::from(*rights) & fs;
        if rights == 0 {
            continue;
        }
        if path.len() >= PATH_ROOM || path.contains(&0) {
            report.missing.push(access::escape_path(path));
            continue;
        }
        let mut name = path.clone();
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
            report.missing.push(access::escape_path(path));
            continue;
        }
        // Rights only directories have are invalid on a file's rule (EINVAL): then the
        // file's rights alone, as `prepare` does after its fstat.
        let mut added = add_path_rule(t, ruleset, rights, fd);
        if added == Ok(-libc::EINVAL as i64) && rights & !u64::from(access::fs::FILE) != 0 {
            let file = rights & u64::from(access::fs::FILE);
            added = if file == 0 {
                Ok(0)
            } else {
                add_path_rule(t, ruleset, file, fd)
            };
        }
        let closed = t.close(fd);
        match added? {
            0 => report.rules += 1,
            r => return Err(format!("landlock_add_rule: errno {}", -r)),
        }
        closed?;
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

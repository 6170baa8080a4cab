//! The classic-BPF seccomp program: notify the security-relevant syscalls, refuse the ones that
//! would act without passing through any of them, allow everything else in the kernel, kill
//! anything that is not native x86_64.
//!
//! Hand-rolled rather than generated with `seccompiler` because that crate has no notify action;
//! the program is small (two instructions per plain syscall) and checked by an interpreter in the
//! tests below.

use crate::syscalls::{Cond, Sysno};

/// `AUDIT_ARCH_X86_64` = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// x32 ABI syscalls carry this bit in `nr` under the x86_64 audit arch.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_KILL_PROCESS`.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// `SECCOMP_RET_ERRNO` (the errno goes in the low 16 bits).
pub const RET_ERRNO: u32 = 0x0005_0000;

/// Calls that would open, read or change files with no syscall the sensor sees: io_uring
/// (IORING_OP_OPENAT, IORING_OP_RENAMEAT, ... run in kernel workers, not through seccomp) and
/// `open_by_handle_at` (an open without a path, needs CAP_DAC_READ_SEARCH). The sensor cannot
/// describe them, so they fail with EPERM in every mode (fail closed); programs that use
/// io_uring fall back to plain syscalls when `io_uring_setup` is refused, as they must under
/// Docker's default profile.
pub const REFUSED: &[i64] = &[
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
];

/// Calls answered `ENOSYS` by the filter: `clone3` keeps its flags in memory, where the filter
/// cannot see `CLONE_UNTRACED`; libc then falls back to `clone`, whose flags are a register.
/// The `*xattrat` calls (Linux 6.13), `open_tree_attr` (6.15) and `file_getattr`/`file_setattr`
/// (6.17) reach the hooks of calls the sensor models (inode_setxattr..., sb_mount,
/// inode_setattr) by another number: without this a workload set an xattr with `setxattrat` and
/// no event. Callers fall back to the older calls, which are notified.
pub const NOT_IMPLEMENTED: &[i64] = &[
    libc::SYS_clone3,
    SYS_SETXATTRAT,
    SYS_GETXATTRAT,
    SYS_LISTXATTRAT,
    SYS_REMOVEXATTRAT,
    SYS_OPEN_TREE_ATTR,
    SYS_FILE_GETATTR,
    SYS_FILE_SETATTR,
];

// x86_64 numbers (the filter kills every other architecture) of calls newer than `libc`'s table.
const SYS_SETXATTRAT: i64 = 463;
const SYS_GETXATTRAT: i64 = 464;
const SYS_LISTXATTRAT: i64 = 465;
const SYS_REMOVEXATTRAT: i64 = 466;
const SYS_OPEN_TREE_ATTR: i64 = 467;
const SYS_FILE_GETATTR: i64 = 468;
const SYS_FILE_SETATTR: i64 = 469;

/// Calls refused by the filter unless their argument `.1` (a register) is `.2`:
/// `perf_event_open` of a task other than the caller (pid 0), or of every task (-1), would
/// sample the supervisor's registers and stack for a workload with `CAP_PERFMON`, and the sensor
/// has no event to decide it with.
pub const SELF_ONLY: &[(i64, u32, u32)] = &[(libc::SYS_perf_event_open, 1, 0)];

/// `CLONE_UNTRACED` (a child no tracer may follow).
pub const CLONE_UNTRACED: u32 = 0x0080_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn body(cond: Cond) -> Vec<libc::sock_filter> {
    let exec = libc::PROT_EXEC as u32;
    match cond {
        Cond::Always => vec![ins(RET_K, 0, 0, RET_USER_NOTIF)],
        Cond::PrlimitWrite => vec![
            // pid (an int: the low word) 0 and the new-limit pointer (both words) NULL: allow.
            ins(LD_W_ABS, 0, 0, off_arg_lo(0)),
            ins(JEQ_K, 0, 4, 0),
            ins(LD_W_ABS, 0, 0, off_arg_lo(2)),
            ins(JEQ_K, 0, 2, 0),
            ins(LD_W_ABS, 0, 0, off_arg_lo(2) + 4),
            ins(JEQ_K, 1, 0, 0),
            ins(RET_K, 0, 0, RET_USER_NOTIF),
            ins(RET_K, 0, 0, RET_ALLOW),
        ],
        Cond::SendtoAddr => vec![
            // dest_addr (both words) NULL: allow.
            ins(LD_W_ABS, 0, 0, off_arg_lo(4)),
            ins(JEQ_K, 0, 2, 0),
            ins(LD_W_ABS, 0, 0, off_arg_lo(4) + 4),
            ins(JEQ_K, 1, 0, 0),
            ins(RET_K, 0, 0, RET_USER_NOTIF),
            ins(RET_K, 0, 0, RET_ALLOW),
        ],
        Cond::MmapFile => vec![
            ins(LD_W_ABS, 0, 0, off_arg_lo(3)),
            // Anonymous: only executable mappings are events.
            ins(JSET_K, 0, 2, libc::MAP_ANONYMOUS as u32),
            ins(LD_W_ABS, 0, 0, off_arg_lo(2)),
            ins(JSET_K, 2, 3, exec),
            // A file mapping needs a descriptor (the kernel refuses fd -1 itself).
            ins(LD_W_ABS, 0, 0, off_arg_lo(4)),
            ins(JEQ_K, 1, 0, u32::MAX),
            ins(RET_K, 0, 0, RET_USER_NOTIF),
            ins(RET_K, 0, 0, RET_ALLOW),
        ],
        Cond::CloneUntraced => vec![
            ins(LD_W_ABS, 0, 0, off_arg_lo(0)),
            ins(JSET_K, 0, 1, CLONE_UNTRACED),
            ins(RET_K, 0, 0, RET_USER_NOTIF),
            ins(RET_K, 0, 0, RET_ALLOW),
        ],
    }
}

/// Build the filter for `syscalls` (normally [`Sysno::ALL`]).
pub fn build(syscalls: &[Sysno]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, OFF_ARCH),
        ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET_K, 0, 0, RET_KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, OFF_NR),
        ins(JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(RET_K, 0, 0, RET_KILL_PROCESS),
    ];
    for nr in REFUSED {
        p.push(ins(JEQ_K, 0, 1, *nr as u32));
        p.push(ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    }
    for (nr, arg, want) in SELF_ONLY {
        p.push(ins(JEQ_K, 0, 4, *nr as u32));
        p.push(ins(LD_W_ABS, 0, 0, off_arg_lo(*arg)));
        p.push(ins(JEQ_K, 0, 1, *want));
        p.push(ins(RET_K, 0, 0, RET_ALLOW));
        p.push(ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    }
    for nr in NOT_IMPLEMENTED {
        p.push(ins(JEQ_K, 0, 1, *nr as u32));
        p.push(ins(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    }
    for s in syscalls {
        let b = body(s.cond());
        // A body is at most 8 instructions, so the skip always fits the u8 offset.
        p.push(ins(JEQ_K, 0, b.len() as u8, s.nr() as u32));
        // Every body ends in a return, so the accumulator still holds nr whenever the next
        // compare is reached.
        p.extend(b);
    }
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A minimal interpreter for the instructions `build` emits.
    fn run(p: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                JEQ_K => pc += if acc == i.k { i.jt } else { i.jf } as usize,
                JGE_K => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
                JSET_K => pc += if acc & i.k != 0 { i.jt } else { i.jf } as usize,
                RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn notifies_listed_and_allows_others() {
        let p = build(Sysno::ALL);
        assert!(p.len() < 4096);
        let a = AUDIT_ARCH_X86_64;
        for s in Sysno::ALL {
            if s.cond() == Cond::Always {
                assert_eq!(
                    run(&p, s.nr() as u32, a, [0; 6]),
                    RET_USER_NOTIF,
                    "{}",
                    s.name()
                );
            }
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_close,
            libc::SYS_futex,
            libc::SYS_getpid,
        ] {
            assert_eq!(run(&p, nr as u32, a, [0; 6]), RET_ALLOW);
        }
    }

    #[test]
    fn mmap_only_file_mappings() {
        let p = build(Sysno::ALL);
        let a = AUDIT_ARCH_X86_64;
        let nr = libc::SYS_mmap as u32;
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        let priv_ = libc::MAP_PRIVATE as u64;
        assert_eq!(run(&p, nr, a, [0, 4096, rx, priv_, 3, 0]), RET_USER_NOTIF);
        // TSEM describes every file mapping, executable or not.
        assert_eq!(
            run(&p, nr, a, [0, 4096, libc::PROT_READ as u64, priv_, 3, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(
            run(
                &p,
                nr,
                a,
                [0, 4096, rx, priv_ | libc::MAP_ANONYMOUS as u64, 3, 0]
            ),
            RET_USER_NOTIF,
            "anonymous executable mappings are events"
        );
        assert_eq!(
            run(
                &p,
                nr,
                a,
                [0, 4096, 3, priv_ | libc::MAP_ANONYMOUS as u64, u64::MAX, 0]
            ),
            RET_ALLOW
        );
        assert_eq!(run(&p, nr, a, [0, 4096, rx, priv_, u64::MAX, 0]), RET_ALLOW);
        // TSEM has no mprotect event: it stays in the kernel.
        let mp = libc::SYS_mprotect as u32;
        assert_eq!(run(&p, mp, a, [0, 4096, rx, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn prlimit_reads_of_own_limits_stay_in_the_kernel() {
        let p = build(Sysno::ALL);
        let a = AUDIT_ARCH_X86_64;
        let nr = libc::SYS_prlimit64 as u32;
        let ptr = 0x7fff_0000_1000u64;
        assert_eq!(run(&p, nr, a, [0, 7, 0, ptr, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, nr, a, [0, 7, ptr, 0, 0, 0]), RET_USER_NOTIF);
        // A pointer with only high bits set is not NULL.
        assert_eq!(run(&p, nr, a, [0, 7, 1 << 40, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(run(&p, nr, a, [42, 7, 0, ptr, 0, 0]), RET_USER_NOTIF);
    }

    #[test]
    fn sendto_only_with_a_destination() {
        let p = build(Sysno::ALL);
        let a = AUDIT_ARCH_X86_64;
        let nr = libc::SYS_sendto as u32;
        let ptr = 0x7fff_0000_1000u64;
        assert_eq!(run(&p, nr, a, [3, ptr, 5, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, nr, a, [3, ptr, 5, 0, ptr, 16]), RET_USER_NOTIF);
        assert_eq!(run(&p, nr, a, [3, ptr, 5, 0, 1 << 40, 16]), RET_USER_NOTIF);
        // sendmsg's destination is in memory: always notified.
        assert_eq!(
            run(&p, libc::SYS_sendmsg as u32, a, [3, ptr, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
    }

    #[test]
    fn unobservable_calls_are_refused() {
        let p = build(Sysno::ALL);
        for nr in REFUSED {
            assert_eq!(
                run(&p, *nr as u32, AUDIT_ARCH_X86_64, [0; 6]),
                RET_ERRNO | libc::EPERM as u32
            );
        }
    }

    #[test]
    fn untraced_clones_are_notified_and_clone3_falls_back() {
        let p = build(Sysno::ALL);
        let a = AUDIT_ARCH_X86_64;
        let nr = libc::SYS_clone as u32;
        let fork_like = libc::SIGCHLD as u64;
        assert_eq!(run(&p, nr, a, [fork_like, 0, 0, 0, 0, 0]), RET_ALLOW);
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(run(&p, nr, a, [thread, 0, 0, 0, 0, 0]), RET_ALLOW);
        let untraced = fork_like | u64::from(CLONE_UNTRACED);
        assert_eq!(run(&p, nr, a, [untraced, 0, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(
            run(&p, libc::SYS_clone3 as u32, a, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }

    /// The newer numbers of modeled hooks fall back to the notified calls.
    #[test]
    fn newer_numbers_of_modeled_calls_are_not_implemented() {
        let p = build(Sysno::ALL);
        for nr in [463u32, 464, 465, 466, 467, 468, 469] {
            assert_eq!(
                run(&p, nr, AUDIT_ARCH_X86_64, [0; 6]),
                RET_ERRNO | libc::ENOSYS as u32,
                "{nr}"
            );
        }
    }

    #[test]
    fn perf_events_only_on_the_caller() {
        let p = build(Sysno::ALL);
        let a = AUDIT_ARCH_X86_64;
        let nr = libc::SYS_perf_event_open as u32;
        assert_eq!(run(&p, nr, a, [0x1000, 0, u64::MAX, 0, 0, 0]), RET_ALLOW);
        let eperm = RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run(&p, nr, a, [0x1000, 1234, u64::MAX, 0, 0, 0]), eperm);
        assert_eq!(run(&p, nr, a, [0x1000, u64::MAX, 0, 0, 0, 0]), eperm);
        // The syscalls after it are still matched (the accumulator was reloaded with an
        // argument only on the perf_event_open branch, which always returns).
        assert_eq!(run(&p, libc::SYS_read as u32, a, [0; 6]), RET_ALLOW);
        assert_eq!(run(&p, libc::SYS_openat as u32, a, [0; 6]), RET_USER_NOTIF);
    }

    #[test]
    fn foreign_arch_and_x32_are_killed() {
        let p = build(Sysno::ALL);
        const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
        assert_eq!(
            run(&p, libc::SYS_read as u32, AUDIT_ARCH_I386, [0; 6]),
            RET_KILL_PROCESS
        );
        assert_eq!(
            run(
                &p,
                libc::SYS_read as u32 | X32_SYSCALL_BIT,
                AUDIT_ARCH_X86_64,
                [0; 6]
            ),
            RET_KILL_PROCESS
        );
    }
}

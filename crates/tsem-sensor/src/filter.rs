//! The classic-BPF seccomp program: notify the security-relevant syscalls, refuse the ones that
//! would act without passing through any of them, allow everything else in the kernel, kill
//! anything that is not native x86_64.
//!
//! Hand-rolled rather than generated with `seccompiler` because that crate has no notify action;
//! the program is small (a binary search on the syscall number, two instructions per plain
//! syscall at its leaves) and checked by an interpreter in the tests below, against the single
//! chain of compares it replaced.

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
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;

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

/// Build the filter for `syscalls` (normally [`Sysno::ALL`]): the architecture checks, then a
/// binary search on the syscall number down to runs of at most [`LEAF`] compares, each matched
/// number with its body. The kernel prepares every filter by running it for each syscall
/// number (the cache of calls it always allows, `seccomp_cache_prepare`): as one chain of
/// ~180 compares that took ~0.22 ms in `seccomp(SET_MODE_FILTER)`, on the path of every
/// workload's start; the search also shortens every notified call's run through it.
pub fn build(syscalls: &[Sysno]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, OFF_ARCH),
        ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET_K, 0, 0, RET_KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, OFF_NR),
        ins(JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(RET_K, 0, 0, RET_KILL_PROCESS),
    ];
    p.extend(search(&by_number(syscalls)));
    p
}

/// Compares in a row at the leaves of the search (a few compares cost less than the jumps
/// that would split them further).
const LEAF: usize = 4;

/// Each number's body (ending in a return), sorted by number. A number listed twice keeps its
/// first body, in the order the checks were made when the program was one chain: refused,
/// self-only, not implemented, then `syscalls`.
fn by_number(syscalls: &[Sysno]) -> Vec<(u32, Vec<libc::sock_filter>)> {
    let mut all: Vec<(u32, Vec<libc::sock_filter>)> = Vec::new();
    for nr in REFUSED {
        all.push((
            *nr as u32,
            vec![ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32)],
        ));
    }
    for (nr, arg, want) in SELF_ONLY {
        all.push((
            *nr as u32,
            vec![
                ins(LD_W_ABS, 0, 0, off_arg_lo(*arg)),
                ins(JEQ_K, 0, 1, *want),
                ins(RET_K, 0, 0, RET_ALLOW),
                ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
            ],
        ));
    }
    for nr in NOT_IMPLEMENTED {
        all.push((
            *nr as u32,
            vec![ins(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32)],
        ));
    }
    for s in syscalls {
        all.push((s.nr() as u32, body(s.cond())));
    }
    // A stable sort keeps a number's bodies in that order; the first one stays.
    all.sort_by_key(|(nr, _)| *nr);
    all.dedup_by_key(|(nr, _)| *nr);
    all
}

/// The search over `entries` (sorted, the accumulator holding the number): a number not among
/// them is allowed. Every path ends in a return, so code placed after a subtree is reached only
/// by a jump.
fn search(entries: &[(u32, Vec<libc::sock_filter>)]) -> Vec<libc::sock_filter> {
    let mut p = Vec::new();
    if entries.len() <= LEAF {
        for (nr, b) in entries {
            // A body is at most 8 instructions, so the skip always fits the u8 offset; every
            // body ends in a return, so the accumulator still holds nr at the next compare.
            p.push(ins(JEQ_K, 0, b.len() as u8, *nr));
            p.extend_from_slice(b);
        }
        p.push(ins(RET_K, 0, 0, RET_ALLOW));
        return p;
    }
    let mid = entries.len() / 2;
    let below = search(&entries[..mid]);
    let above = search(&entries[mid..]);
    // nr >= the first number above: on to the jump over the lower half; else into it.
    p.push(ins(JGE_K, 0, 1, entries[mid].0));
    p.push(ins(JA, 0, 0, below.len() as u32));
    p.extend(below);
    p.extend(above);
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A minimal interpreter for the instructions `build` emits.
    fn run(p: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        interpret(p, nr, arch, args).0
    }

    /// How many instructions the program runs for this call.
    fn steps(p: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> usize {
        interpret(p, nr, arch, args).1
    }

    fn interpret(p: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> (u32, usize) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        let mut n = 0;
        loop {
            let i = p[pc];
            pc += 1;
            n += 1;
            match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                JEQ_K => pc += if acc == i.k { i.jt } else { i.jf } as usize,
                JGE_K => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
                JSET_K => pc += if acc & i.k != 0 { i.jt } else { i.jf } as usize,
                JA => pc += i.k as usize,
                RET_K => return (i.k, n),
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    /// The program as one chain of compares, as `build` made it before the search: every
    /// number, architecture and argument gives the same answer from both.
    fn chain(syscalls: &[Sysno]) -> Vec<libc::sock_filter> {
        let mut p = build(&[])[..6].to_vec();
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
            p.push(ins(JEQ_K, 0, b.len() as u8, s.nr() as u32));
            p.extend(b);
        }
        p.push(ins(RET_K, 0, 0, RET_ALLOW));
        p
    }

    #[test]
    fn the_search_answers_as_the_chain_of_compares() {
        let ptr = 0x7fff_0000_1000u64;
        let argsets: Vec<[u64; 6]> = vec![
            [0; 6],
            [1, 2, 3, 4, 5, 6],
            [u64::MAX; 6],
            [ptr, ptr, ptr, ptr, ptr, ptr],
            [0, 4096, 5, libc::MAP_PRIVATE as u64, 3, 0],
            [
                0,
                4096,
                5,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
            [
                0,
                4096,
                3,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
            [0, 4096, 1, libc::MAP_PRIVATE as u64, u64::MAX, 0],
            [u64::from(CLONE_UNTRACED) | 17, 0, 0, 0, 0, 0],
            [17, 0, 0, 0, 0, 0],
            [0, 7, 0, ptr, 0, 0],
            [0, 7, 1 << 40, 0, 0, 0],
            [3, ptr, 5, 0, 1 << 40, 16],
            [0x1000, 1234, u64::MAX, 0, 0, 0],
        ];
        // A subset too: the observe options leave calls out of the program.
        let some: Vec<Sysno> = Sysno::ALL.iter().copied().step_by(3).collect();
        for list in [Sysno::ALL, &some[..], &[]] {
            let (tree, reference) = (build(list), chain(list));
            for arch in [AUDIT_ARCH_X86_64, 3 | 0x4000_0000, 0] {
                for nr in (0..1100u32).chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT | 1, u32::MAX]) {
                    for a in &argsets {
                        assert_eq!(
                            run(&tree, nr, arch, *a),
                            run(&reference, nr, arch, *a),
                            "nr {nr} arch {arch:#x} args {a:?}"
                        );
                    }
                }
            }
        }
    }

    /// The kernel walks the program once per syscall number when the filter is installed:
    /// no number takes more than a search's few compares plus its body.
    #[test]
    fn every_number_is_decided_in_a_few_instructions() {
        let p = build(Sysno::ALL);
        let longest = (0..1100u32)
            .map(|nr| steps(&p, nr, AUDIT_ARCH_X86_64, [0; 6]))
            .max()
            .unwrap();
        assert!(longest <= 30, "{longest} instructions");
        // What the kernel's preparation walks, over every x86_64 number: 7 927 instructions
        // against 63 283 for the chain (2026-12).
        let walk = |p: &[libc::sock_filter]| -> usize {
            (0..470u32)
                .map(|nr| steps(p, nr, AUDIT_ARCH_X86_64, [0; 6]))
                .sum()
        };
        assert!(walk(&p) * 4 < walk(&chain(Sysno::ALL)));
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

//! `prctl-args-v1`: glibc's `prctl` is variadic, so a caller passes only the arguments its
//! option uses and the other argument registers hold whatever was there — often addresses in a
//! library, which move with address randomization. TSEM hashes arg2, arg4 and arg5 (spec §
//! task_prctl), so without this rule `prctl(PR_CAPBSET_READ, cap)` has another coefficient in
//! every run.
//!
//! For the options in [`TABLE`] the rule zeroes each hashed argument the kernel ignores or
//! reads only as a pointer into the caller's memory. It keeps every argument that selects
//! behaviour, and every argument the kernel requires to be zero (`-EINVAL` otherwise): working
//! callers pass 0 there already, and a caller passing garbage is a different (failing) call.
//! Options not in the table keep all their arguments, so nothing is lost for an option we do not
//! know.
//!
//! Source of every row: the `SYSCALL_DEFINE5(prctl, ...)` switch of Linux `kernel/sys.c` as of
//! the v6.5–v6.8 era (it has PR_GET_AUXV, PR_SET_MDWE, PR_RISCV_V_SET_CONTROL and not yet
//! PR_RISCV_SET_ICACHE_FLUSH_CTX), `cap_task_prctl` in `security/commoncap.c` (PR_CAPBSET_*,
//! PR_*_KEEPCAPS, PR_*_SECUREBITS), `yama_task_prctl` in `security/yama/yama_lsm.c`
//! (PR_SET_PTRACER), cross-checked with prctl(2) from man-pages 6.03. The rows are options
//! whose handling has not changed since they were added; later kernels only add options, which
//! stay outside the table.

/// Which hashed arguments an option never uses as a value.
#[derive(Debug, Clone, Copy)]
struct Unused {
    option: u32,
    arg2: bool,
    arg4: bool,
    arg5: bool,
}

/// One row: `option`, and whether arg2, arg4, arg5 are zeroed.
const fn row(option: u32, arg2: bool, arg4: bool, arg5: bool) -> Unused {
    Unused {
        option,
        arg2,
        arg4,
        arg5,
    }
}

/// arg2 is a value the option acts on (kept); arg4 and arg5 are ignored.
const fn value2(option: u32) -> Unused {
    row(option, false, true, true)
}

/// arg2 is ignored or a pointer the kernel writes to; arg4 and arg5 are ignored.
const fn none(option: u32) -> Unused {
    row(option, true, true, true)
}

/// The options whose unused hashed arguments are zeroed, sorted by option. Each comment names
/// what the kernel does with arg2..arg5; arg3 is not hashed and never touched.
const TABLE: &[Unused] = &[
    // PR_SET_PDEATHSIG (1), sys.c: arg2 the signal (valid_signal), arg3..5 unread.
    value2(1),
    // PR_GET_PDEATHSIG (2), sys.c: put_user(.., (int __user *)arg2); TSEM hashes arg2 as 0.
    none(2),
    // PR_GET_DUMPABLE (3), sys.c: returns get_dumpable(), no argument read.
    none(3),
    // PR_SET_DUMPABLE (4), sys.c: arg2 SUID_DUMP_DISABLE or SUID_DUMP_USER, arg3..5 unread.
    value2(4),
    // PR_GET_UNALIGN (5), sys.c: GET_UNALIGN_CTL(me, arg2), arg2 a user pointer.
    none(5),
    // PR_SET_UNALIGN (6), sys.c: SET_UNALIGN_CTL(me, arg2), arg2 the mode.
    value2(6),
    // PR_GET_KEEPCAPS (7), commoncap.c: returns issecure(SECURE_KEEP_CAPS), no argument read.
    none(7),
    // PR_SET_KEEPCAPS (8), commoncap.c: arg2 0 or 1, arg3..5 unread.
    value2(8),
    // PR_GET_FPEMU (9), sys.c: GET_FPEMU_CTL(me, arg2), arg2 a user pointer.
    none(9),
    // PR_SET_FPEMU (10), sys.c: SET_FPEMU_CTL(me, arg2), arg2 the mode.
    value2(10),
    // PR_GET_FPEXC (11), sys.c: GET_FPEXC_CTL(me, arg2), arg2 a user pointer.
    none(11),
    // PR_SET_FPEXC (12), sys.c: SET_FPEXC_CTL(me, arg2), arg2 the mode.
    value2(12),
    // PR_GET_TIMING (13), sys.c: returns PR_TIMING_STATISTICAL, no argument read.
    none(13),
    // PR_SET_TIMING (14), sys.c: arg2 must be PR_TIMING_STATISTICAL, arg3..5 unread.
    value2(14),
    // PR_SET_NAME (15), sys.c: strncpy_from_user(comm, (char __user *)arg2, ..); arg2 (a
    // pointer) is zeroed at capture already, arg3..5 unread. pthread_setname_np uses it.
    none(15),
    // PR_GET_NAME (16), sys.c: copy_to_user((char __user *)arg2, ..), arg3..5 unread.
    none(16),
    // PR_GET_ENDIAN (19), sys.c: GET_ENDIAN(me, arg2), arg2 a user pointer.
    none(19),
    // PR_SET_ENDIAN (20), sys.c: SET_ENDIAN(me, arg2), arg2 the mode.
    value2(20),
    // PR_GET_SECCOMP (21), sys.c: prctl_get_seccomp(), no argument read.
    none(21),
    // PR_SET_SECCOMP (22), sys.c: prctl_set_seccomp(arg2, (char __user *)arg3); arg2 the mode,
    // arg4 and arg5 unread.
    value2(22),
    // PR_CAPBSET_READ (23), commoncap.c: cap_valid(arg2), cap_raised(cap_bset, arg2); arg3..5
    // unread. setpriv and nginx probe the bounding set with it.
    value2(23),
    // PR_CAPBSET_DROP (24), commoncap.c: cap_prctl_drop(arg2), arg3..5 unread.
    value2(24),
    // PR_GET_TSC (25), sys.c: GET_TSC_CTL(arg2), arg2 a user pointer.
    none(25),
    // PR_SET_TSC (26), sys.c: SET_TSC_CTL(arg2), arg2 the mode.
    value2(26),
    // PR_GET_SECUREBITS (27), commoncap.c: returns old->securebits, no argument read.
    none(27),
    // PR_SET_SECUREBITS (28), commoncap.c: arg2 the new bits, arg3..5 unread.
    value2(28),
    // PR_SET_TIMERSLACK (29), sys.c: arg2 the slack (0: default), arg3..5 unread.
    value2(29),
    // PR_GET_TIMERSLACK (30), sys.c: returns current->timer_slack_ns, no argument read.
    none(30),
    // PR_TASK_PERF_EVENTS_DISABLE (31), sys.c: perf_event_task_disable(), no argument read.
    none(31),
    // PR_TASK_PERF_EVENTS_ENABLE (32), sys.c: perf_event_task_enable(), no argument read.
    none(32),
    // PR_SET_CHILD_SUBREAPER (36), sys.c: is_child_subreaper = !!arg2, arg3..5 unread.
    value2(36),
    // PR_GET_CHILD_SUBREAPER (37), sys.c: put_user(.., (int __user *)arg2).
    none(37),
    // PR_GET_TID_ADDRESS (40), sys.c: get_tid_address(me, (int __user * __user *)arg2).
    none(40),
    // PR_GET_FP_MODE (46), sys.c: GET_FP_MODE(me), no argument read.
    none(46),
    // PR_GET_AUXV (0x41555856), sys.c: arg4 and arg5 must be 0 (kept); arg2 the user buffer
    // (zeroed), arg3 its size.
    row(0x4155_5856, true, false, false),
    // PR_SET_PTRACER (0x59616d61), yama_lsm.c: arg2 the tracer's pid (or PR_SET_PTRACER_ANY),
    // arg3..5 unread.
    value2(0x5961_6d61),
];

/// Zero the hashed arguments `[arg2, arg3, arg4, arg5]` that `option` does not use as values.
/// Idempotent: applied to its own output it changes nothing.
pub(super) fn prctl_args(option: u32, args: &mut [u64; 4]) {
    let Ok(i) = TABLE.binary_search_by_key(&option, |r| r.option) else {
        return;
    };
    let r = TABLE[i];
    if r.arg2 {
        args[0] = 0;
    }
    if r.arg4 {
        args[2] = 0;
    }
    if r.arg5 {
        args[3] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique() {
        assert!(TABLE.windows(2).all(|w| w[0].option < w[1].option));
    }

    #[test]
    fn unused_arguments_are_zeroed_values_kept() {
        let mut a = [13, 0xdead, 0x7f12_3456_7890, 0x7f00_0000_0001];
        prctl_args(23, &mut a);
        assert_eq!(
            a,
            [13, 0xdead, 0, 0],
            "PR_CAPBSET_READ keeps its cap and arg3"
        );
        let mut a = [0x7ffd_0000_1000, 1, 2, 3];
        prctl_args(37, &mut a);
        assert_eq!(a, [0, 1, 0, 0], "PR_GET_CHILD_SUBREAPER's pointer");
        let mut a = [0x7ffd_0000_1000, 64, 5, 6];
        prctl_args(0x4155_5856, &mut a);
        assert_eq!(
            a,
            [0, 64, 5, 6],
            "PR_GET_AUXV: arg4/arg5 are checked by the kernel"
        );
        // PR_SET_NO_NEW_PRIVS (38): the kernel refuses non-zero arg3..5, so they stay.
        let mut a = [1, 7, 8, 9];
        prctl_args(38, &mut a);
        assert_eq!(a, [1, 7, 8, 9]);
        // Unknown options keep everything.
        let mut a = [1, 2, 3, 4];
        prctl_args(0x1234_5678, &mut a);
        assert_eq!(a, [1, 2, 3, 4]);
    }

    #[test]
    fn zeroing_is_idempotent() {
        for r in TABLE {
            let mut a = [0x11, 0x22, 0x33, 0x44];
            prctl_args(r.option, &mut a);
            let once = a;
            prctl_args(r.option, &mut a);
            assert_eq!(a, once);
        }
    }
}

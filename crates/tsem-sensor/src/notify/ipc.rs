//! `bpf` and the key calls (issue 9, class 6).
//!
//! * `bpf` is TSEM's `bpf` event, whose CELL the kernel hashes as the command only (spec §1.4):
//!   both fields come from registers, so what is described is what the kernel runs.
//! * `add_key` is TSEM's `key_alloc`: the caller's credentials and the allocation flags, which
//!   for `add_key` are always `KEY_ALLOC_IN_QUOTA` (0). The kernel allocates a key only when none
//!   of that type and description exists; the sensor cannot tell, so it describes every call.
//! * `request_key`, `keyctl` and SysV IPC act on objects the sensor cannot describe from
//!   userspace (`key_permission`, `ipc_permission` and the IPC owner recorded at allocation are
//!   kernel-internal): they are refused with EPERM in every mode and counted in `refused`
//!   (dispatched to [`Notifier::refuse`]).

use tsem_core::event::{Cell, Creds, EventType};

use super::{Call, EventHandler, Fail, Notifier, Reply};

/// `KEY_ALLOC_IN_QUOTA`, the flags `add_key(2)` allocates with.
const KEY_ALLOC_IN_QUOTA: u64 = 0;

impl<H: EventHandler> Notifier<H> {
    pub(super) fn sys_bpf(&mut self, call: &mut Call, cmd: u32, size: u32) -> Result<Reply, Fail> {
        let cell = Cell::Bpf { cmd, size };
        self.simple(call, EventType::Bpf, cell)
    }

    pub(super) fn sys_add_key(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let cell = Cell::KeyAlloc {
            cred: Creds {
                ids: call.status.coe,
                securebits: 0,
            },
            flags: KEY_ALLOC_IN_QUOTA,
        };
        self.simple(call, EventType::KeyAlloc, cell)
    }
}

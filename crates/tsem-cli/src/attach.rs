//! `tsem run --attach-fd N`: the supervisor daemon of `tsem-runtime` (crate tsem-runtime), the
//! same run as `tsem run` but on a container's init the OCI runtime created, handed over on
//! descriptor N (`tsem_sensor::attach`).

use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{Context, bail};
use tsem_sensor::{Report, SensorConfig};

use crate::run_cmd::Modeler;

/// Supervise the process handed over on `fd` with `modeler`.
pub(crate) fn run(
    fd: i32,
    cfg: &SensorConfig,
    modeler: Modeler,
) -> anyhow::Result<Report<Modeler>> {
    if fd < 3 || !fd_is_open(fd) {
        bail!("--attach-fd {fd}: not an open descriptor above 2");
    }
    // SAFETY: the runtime opened descriptor `fd` for us alone; nothing else in this process
    // uses or closes it, so taking ownership here is sound.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    tsem_sensor::attach::attach(sock, cfg, modeler).context("cannot supervise the container")
}

fn fd_is_open(fd: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
}

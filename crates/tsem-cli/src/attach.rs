//! `tsem run --attach-fd N`: the supervisor daemon of `tsem-runtime` (crate tsem-runtime), the
//! same run as `tsem run` but on a container's init the OCI runtime created, handed over on
//! descriptor N (`tsem_sensor::attach`).

use anyhow::Context;
use tsem_sensor::{Report, SensorConfig};

use crate::run_cmd::RunModeler;

/// Supervise the process handed over on `fd` with `modeler`.
pub(crate) fn run(
    fd: i32,
    cfg: &SensorConfig,
    modeler: RunModeler,
) -> anyhow::Result<Report<RunModeler>> {
    let sock = tsem_sensor::sys::take_attach_fd(fd).with_context(|| {
        format!("--attach-fd {fd}: not an inherited descriptor above 2, or taken already")
    })?;
    tsem_sensor::attach::attach(sock, cfg, modeler).context("cannot supervise the container")
}

//! Shared helpers for the sensor's integration tests.
//!
//! Workloads are this very test binary re-executed with `TSEM_HELPER=<mode>`: the `helper` test
//! of each binary performs the action and exits, so no compiler is needed at test time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tsem_core::event::{Cell, EventType};
use tsem_sensor::{EventHandler, ExecEvent, RawEvent, Report, SensorConfig, Verdict};

/// A handler that records everything and denies file opens of the given paths.
#[derive(Default, Clone)]
pub struct Recorder {
    pub events: Arc<Mutex<Vec<RawEvent>>>,
    pub execs: Arc<Mutex<Vec<ExecEvent>>>,
    pub deny_paths: Vec<String>,
    pub deny_types: Vec<EventType>,
}

impl Recorder {
    pub fn events(&self) -> Vec<RawEvent> {
        self.events.lock().unwrap().clone()
    }
    pub fn execs(&self) -> Vec<ExecEvent> {
        self.execs.lock().unwrap().clone()
    }
}

pub fn pathname(ev: &RawEvent) -> Option<String> {
    match &ev.event.cell {
        Cell::File(f) => Some(f.path.pathname.to_string()),
        Cell::MmapFile { file: Some(f), .. } => Some(f.path.pathname.to_string()),
        _ => None,
    }
}

impl EventHandler for Recorder {
    fn on_event(&mut self, ev: &RawEvent) -> Verdict {
        self.events.lock().unwrap().push(ev.clone());
        if self.deny_types.contains(&ev.event.header.event_type) {
            return Verdict::deny(libc::EPERM);
        }
        if let Some(p) = pathname(ev)
            && self.deny_paths.contains(&p)
        {
            return Verdict::deny(libc::EPERM);
        }
        Verdict::allow()
    }
    fn on_exec(&mut self, ev: &ExecEvent) {
        self.execs.lock().unwrap().push(ev.clone());
    }
}

/// Run the helper `mode` of this test binary under the sensor.
pub fn run_helper(
    mode: &str,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    rec: Recorder,
) -> Report<Recorder> {
    let mut cfg = SensorConfig::default();
    for (k, v) in env {
        cfg.env.push(((*k).into(), (*v).into()));
    }
    cfg.cwd = cwd.map(Path::to_path_buf);
    run_helper_with(mode, cfg, rec)
}

/// Run the helper `mode` of this test binary under the sensor with `cfg` (its environment gets
/// `TSEM_HELPER` added).
pub fn run_helper_with(mode: &str, mut cfg: SensorConfig, rec: Recorder) -> Report<Recorder> {
    let exe = std::env::current_exe().unwrap();
    let argv: Vec<OsString> = vec![
        exe.into(),
        "helper".into(),
        "--exact".into(),
        "--quiet".into(),
        "--test-threads=1".into(),
    ];
    cfg.env.push(("TSEM_HELPER".into(), mode.into()));
    tsem_sensor::run(&argv, &cfg, rec).unwrap()
}

/// Run a shell command under the sensor.
pub fn run_sh(script: &str, cwd: Option<&Path>, rec: Recorder) -> Report<Recorder> {
    let argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let cfg = SensorConfig {
        cwd: cwd.map(Path::to_path_buf),
        ..SensorConfig::default()
    };
    tsem_sensor::run(&argv, &cfg, rec).unwrap()
}

/// A fresh directory under the system temp dir that any user may write (tests also run
/// unprivileged).
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("TSEM_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("tsem-sensor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The errno-coded exit status helpers use: 100 + errno, 0 on success.
pub fn errno_exit(r: std::io::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => 100 + e.raw_os_error().unwrap_or(99),
    }
}

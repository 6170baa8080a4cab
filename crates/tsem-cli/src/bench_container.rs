//! `tsem bench container`: the command line over `tsem_runtime::bench` (start-to-exit of a short
//! busybox container under plain runc and under `tsem-runtime`, alternating, medians). This
//! `tsem` supervises; `tsem-runtime` is the one beside it.

use std::process::ExitCode;

use tsem_runtime::bench::{self, MODES, Opts};

pub fn run(runs: usize, as_json: bool) -> anyhow::Result<ExitCode> {
    let tsem = std::env::current_exe()?;
    let runtime = tsem.with_file_name("tsem-runtime");
    let machine = crate::bench_model::Machine::now();
    eprintln!(
        "tsem bench container: {runs} rounds of {}",
        MODES.join(", ")
    );
    let report = bench::container(&Opts {
        runs,
        runtime,
        tsem,
    })
    .map_err(|e| anyhow::anyhow!("tsem bench container: {e}"))?;
    if as_json {
        let mut v = report.json();
        v["machine"] = machine.json();
        v["machine_after"] = crate::bench_model::Machine::now().json();
        println!("{v}");
    } else {
        println!("machine: {}", machine.line());
        println!(
            "container start-to-exit, median of {runs} alternating runs; ratios are to plain \
             runc run in the same invocation (aim: supervised <= {}x)",
            bench::AIM
        );
        let ratios = report.ratios();
        for (m, mode) in MODES.iter().enumerate() {
            println!(
                "{mode:>13}: {:8.2} ms  {:5.2}x runc",
                report.median_ms[m], ratios[m]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

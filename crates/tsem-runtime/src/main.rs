//! `tsem-runtime`: the thin command line over [`tsem_runtime::commands`].

fn main() -> std::process::ExitCode {
    let code = tsem_runtime::commands::main(std::env::args_os().skip(1).collect());
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}

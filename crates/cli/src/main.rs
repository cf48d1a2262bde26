//! `ahma`: the native command line of Ahma in the browser.
//!
//! This file only parses arguments and dispatches; the subcommands live in
//! `src/cmd/` and are listed in `src/lib.rs` (a library, so tests can run them
//! in-process). The subcommand names, flags and JSON keys are a contract other tools
//! rely on: extend, never rename.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ahma_cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    match ahma_cli::dispatch(cli, &mut out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

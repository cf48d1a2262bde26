//! The `ahma` command line as a library: argument definitions and dispatch.
//!
//! `main.rs` parses with [`Cli::parse`] and calls [`dispatch`]; tests call [`run`] with
//! an argument list and a byte buffer, so they exercise the real commands without
//! spawning a process. To add a subcommand: a module in `src/cmd/`, a variant in
//! [`Command`] and one arm in [`dispatch`].

use std::io::Write;

use clap::{Parser, Subcommand};

pub mod cmd;

/// Command-line arguments of `ahma`.
#[derive(Parser, Debug)]
#[command(name = "ahma", version, about = "Ahma (Finnish Llama) on your own GPU")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Architecture, shapes, tensor-type histogram, sizes and memory estimate of a GGUF model.
    Info(cmd::info::Args),
    /// Logits of the last position (or of every position with --all) for a token sequence.
    Logits(cmd::logits::Args),
    /// Token ids of a text, as transformers' AutoTokenizer gives them.
    Tokenize(cmd::tokenize::Args),
    /// Interactive chat in the terminal, streaming the answer (CPU reference backend).
    Chat(cmd::chat::Args),
    /// Write a random Llama GGUF of a given shape and type mix (benchmarks, load tests).
    Synth(cmd::synth::Args),
    /// Generate tokens on the GPU engine (greedy or sampled), streaming the text.
    Generate(cmd::generate::Args),
    /// Prefill and decode speed of the GPU engine, with per-token costs.
    Bench(cmd::bench::Args),
}

/// Runs a parsed command, writing its output to `out`.
pub fn dispatch(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => cmd::info::run(args, out),
        Command::Logits(args) => cmd::logits::run(args, out),
        Command::Tokenize(args) => cmd::tokenize::run(args, out),
        Command::Chat(args) => cmd::chat::run(args, out),
        Command::Synth(args) => cmd::synth::run(args, out),
        Command::Generate(args) => cmd::generate::run(args, out),
        Command::Bench(args) => cmd::bench::run(args, out),
    }
}

/// Parses `args` (the first item is the program name, as in `std::env::args`) and runs
/// the command. Unlike the binary, a usage error is returned instead of exiting.
pub fn run<I, T>(args: I, out: &mut dyn Write) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    dispatch(cli, out)
}

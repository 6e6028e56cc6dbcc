//! `warrant`: the command line (`serve`, `check`, `eval`, `test`, `explain`, …) over the
//! library's code paths; see `warrant --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc, not the C library's allocator: a Check makes a few hundred small allocations,
/// freed on other threads (decided on a decider, encoded on an async worker, logged on the
/// writer), which glibc's malloc serves with locks and consolidation — about a fifth of the
/// instructions per Check in the profile of issue 10. Its 2.x series (see Cargo.toml): as fast
/// here as 3.x, and it gives freed pages back sooner, so peak RSS under load stays lower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = warrant::cli::Cli::parse();
    // Logs go to stderr so `warrant eval` and `warrant check` keep stdout for their output.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WARRANT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    warrant::cli::run(cli)
}

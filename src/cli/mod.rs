//! The `warrant` command line: `serve`, `check`, `eval`, `explain` and `test`. This is the
//! binary's edge, so errors here are `anyhow`.

mod eval;
mod explain;
mod policy_test;
pub(crate) mod request_json;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH, DEFAULT_IDENTITY_HEADER};
use crate::loader::load_policy;
use crate::server;

/// Stack of each runtime worker thread (tokio's default is 2 MiB).
const WORKER_STACK: usize = 8 << 20;

/// Exit status when a command's input is unreadable or malformed.
const EXIT_BAD_INPUT: u8 = 2;

/// SPIFFE-aware external authorization for Envoy: transport trust, then CEL policy.
#[derive(Debug, Parser)]
#[command(name = "warrant", version, about)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `warrant` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ext_authz gRPC server until SIGINT or SIGTERM.
    Serve {
        /// Server config file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate policy files or directories (together, as one policy).
    Check {
        /// Policy files, or directories of `*.yaml` policy files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat warnings (rules that load but are almost certainly mistakes) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Decide one CheckRequest given as proto3 JSON and print the decision as JSON.
    Eval {
        /// The policy, the CheckRequest and the clock to decide with.
        #[command(flatten)]
        input: DecisionInput,
        /// Upstream identity header shown in the decision's headers ("" for none).
        #[arg(long, default_value = DEFAULT_IDENTITY_HEADER)]
        identity_header: String,
    },
    /// Show how the decision on one CheckRequest was reached: the trust checks, then every
    /// rule in evaluation order with its result.
    Explain {
        /// The policy, the CheckRequest and the clock to decide with.
        #[command(flatten)]
        input: DecisionInput,
        /// `text` (a readable table) or `json`.
        #[arg(long, value_enum, default_value = "text")]
        format: explain::Format,
    },
    /// Exit 0 when the server on this host is ready (its admin listener's /readyz answers 200),
    /// 1 otherwise: for container health checks (the image has no curl).
    Ready {
        /// The admin listener.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
    },
    /// Run policy test files (`*_test.yaml` in directories): each case a request and the
    /// decision expected.
    Test {
        /// Test files, or directories searched for `*_test.yaml`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Run only the cases whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
}

/// What `eval` and `explain` decide on.
#[derive(Debug, clap::Args)]
pub struct DecisionInput {
    /// Policy file or directory.
    #[arg(long)]
    policy: PathBuf,
    /// CheckRequest in proto3 canonical JSON; `-` reads standard input.
    #[arg(long)]
    request: PathBuf,
    /// Evaluation clock (RFC 3339), for certificate validity and `now`.
    #[arg(long)]
    now: Option<String>,
}

/// Runs the parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { paths, strict } => return check(&paths, strict),
        Command::Eval {
            input,
            identity_header,
        } => eval::eval(&input, &identity_header),
        Command::Explain { input, format } => explain::explain(&input, format),
        Command::Ready { admin } => return ready(admin),
        Command::Test { paths, filter } => {
            return policy_test::run(&paths, filter.as_deref());
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("warrant: {error:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn serve(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Room for the deepest rule a policy may hold (policy::MAX_DEPTH) without moving its
        // evaluation to a fresh stack, even in a debug build.
        .thread_stack_size(WORKER_STACK)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::run(config, shutdown_signal()))?;
    tracing::info!("shut down");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn check(paths: &[PathBuf], strict: bool) -> ExitCode {
    match load_policy(paths) {
        Ok((policy, files)) => {
            for warning in policy.warnings() {
                println!("{warning}");
            }
            let warnings = policy.warnings().len();
            let counted = match warnings {
                1 => "1 warning".to_owned(),
                n => format!("{n} warnings"),
            };
            if strict && warnings > 0 {
                println!("failed: {counted} (--strict)");
                return ExitCode::FAILURE;
            }
            let noted = if warnings == 0 {
                String::new()
            } else {
                format!(", {counted}")
            };
            for bundle in policy.trust().bundle_summaries() {
                let mut sequence = bundle
                    .sequence
                    .map_or_else(String::new, |s| format!(", sequence {s}"));
                if bundle.ignored_keys > 0 {
                    sequence.push_str(&format!(
                        ", {} keys of another use ignored",
                        bundle.ignored_keys
                    ));
                }
                println!(
                    "bundle {}: {} X.509 authorities, {} JWT authorities, {} intermediates{sequence}",
                    bundle.trust_domain,
                    bundle.x509_authorities,
                    bundle.jwt_authorities,
                    bundle.intermediates
                );
            }
            if let Some(endpoint) = policy.trust().workload_api() {
                let pending = policy.trust().pending_bundles();
                if pending.is_empty() {
                    println!(
                        "warning: trust.bundles_from is set, but every trust domain has a bundle file, so nothing comes from the Workload API at {endpoint}"
                    );
                } else {
                    println!(
                        "bundles of {} come from the Workload API at {endpoint} when Warrant serves (not checked here)",
                        pending.join(", ")
                    );
                }
            }
            println!("ok: {} rules in {files} files{noted}", policy.rule_count());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors.0 {
                println!("{error}");
            }
            ExitCode::FAILURE
        }
    }
}

/// GET /readyz on `admin`: 200 => ready.
fn ready(admin: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let status = std::net::TcpStream::connect_timeout(&admin, timeout).and_then(|mut stream| {
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(b"GET /readyz HTTP/1.1\r\nhost: warrant\r\nconnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head)
    });
    match status {
        Ok(head) if head.starts_with(b"HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(head) => {
            eprintln!("warrant: not ready: {}", String::from_utf8_lossy(&head));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("warrant: not ready: {admin}: {error}");
            ExitCode::FAILURE
        }
    }
}

//! The `warrant` command line: `serve`, `check` and `eval`. This is the binary's edge, so
//! errors here are `anyhow`.

mod request_json;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH, DEFAULT_IDENTITY_HEADER};
use crate::loader::load_policy;
use crate::policy::Decision;
use crate::server::{self, convert, response};

/// Stack of each runtime worker thread (tokio's default is 2 MiB).
const WORKER_STACK: usize = 8 << 20;

/// Exit status when a command's input is unreadable or malformed.
const EXIT_BAD_INPUT: u8 = 2;

/// SPIFFE-aware external authorization for Envoy: transport trust, then CEL policy.
#[derive(Debug, Parser)]
#[command(name = "warrant", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat warnings (rules that load but are almost certainly mistakes) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Decide one CheckRequest given as proto3 JSON and print the decision as JSON.
    Eval {
        /// Policy file or directory.
        #[arg(long)]
        policy: PathBuf,
        /// CheckRequest in proto3 canonical JSON; `-` reads standard input.
        #[arg(long)]
        request: PathBuf,
        /// Evaluation clock (RFC 3339), for certificate validity and `now`.
        #[arg(long)]
        now: Option<String>,
        /// Upstream identity header shown in the decision's headers ("" for none).
        #[arg(long, default_value = DEFAULT_IDENTITY_HEADER)]
        identity_header: String,
    },
}

/// Runs the parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { paths, strict } => return check(&paths, strict),
        Command::Eval {
            policy,
            request,
            now,
            identity_header,
        } => eval(&policy, &request, now.as_deref(), &identity_header),
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
            if strict && warnings > 0 {
                println!("failed: {warnings} warnings (--strict)");
                return ExitCode::FAILURE;
            }
            let noted = match warnings {
                0 => String::new(),
                1 => ", 1 warning".to_owned(),
                n => format!(", {n} warnings"),
            };
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

fn eval(
    policy_path: &Path,
    request_path: &Path,
    now: Option<&str>,
    identity_header: &str,
) -> anyhow::Result<ExitCode> {
    let now = match now {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("--now {text:?} is not an RFC 3339 timestamp"))?
            .into(),
        None => SystemTime::now(),
    };
    let json = if request_path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from standard input")?;
        text
    } else {
        std::fs::read_to_string(request_path)
            .with_context(|| format!("cannot read {}", request_path.display()))?
    };
    let check_request = request_json::parse(&json)
        .with_context(|| format!("{} is not a CheckRequest in JSON", request_path.display()))?;
    let (policy, _) = load_policy(&[policy_path.to_path_buf()])
        .map_err(|errors| anyhow::anyhow!("invalid policy:\n{errors}"))?;
    let decision = policy.decide(&convert::authz_request(check_request), now);
    let identity_header = (!identity_header.is_empty()).then_some(identity_header);
    if let Some(name) = identity_header {
        crate::header::check_upstream(name, None).context("--identity-header")?;
    }
    println!("{}", decision_json(&decision, identity_header));
    Ok(ExitCode::SUCCESS)
}

/// The decision as `warrant eval` prints it.
pub fn decision_json(decision: &Decision, identity_header: Option<&str>) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> =
        response::upstream_headers(decision, identity_header)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
    let failures: Vec<serde_json::Value> = decision
        .failures
        .iter()
        // The operator's own tool: the engine's full message, request values included.
        .map(|f| serde_json::json!({"rule": &*f.rule, "error": f.detail}))
        .collect();
    serde_json::json!({
        "allowed": decision.is_allowed(),
        "http_status": decision.http_status,
        "stage": decision.stage.as_str(),
        "rule": decision.rule.as_deref(),
        "reason": decision.reason,
        "identity": decision.identity.as_ref().map(|id| serde_json::json!({
            "spiffe_id": id.as_str(),
            "trust_domain": id.trust_domain(),
        })),
        "headers": headers,
        "response_headers": decision
            .response_headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "remove_headers": &*decision.remove_headers,
        "decision_id": decision.id,
        "failed_rules": failures,
        "shadow": decision.shadow.iter().map(|s| {
            let mut line = serde_json::json!({
                "rule": &*s.rule,
                "effect": s.effect.as_str(),
                "matched": s.matched,
            });
            if let Some(detail) = &s.detail {
                line["error"] = serde_json::Value::String(detail.clone());
            }
            line
        }).collect::<Vec<_>>(),
    })
}

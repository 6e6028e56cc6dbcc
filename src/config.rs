//! The server configuration file (`config/warrant.yaml`). Strict: unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::audit::{AuditSettings, DecisionLogTarget, OtlpProtocol, OtlpTarget};

/// Default path of the server config, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/warrant.yaml";
/// Default gRPC listener: loopback only, Envoy's usual ext_authz port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9191";
/// Default policy path.
pub const DEFAULT_POLICY_PATH: &str = "config/policy.yaml";
/// Default upstream header carrying the verified caller ID.
pub const DEFAULT_IDENTITY_HEADER: &str = "x-spiffe-id";

/// Why the config cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The config is not valid YAML, has an unknown key, or holds a value that cannot be used.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The 1-based line of the problem, when the YAML parser knows it.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
}

/// The server configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC ext_authz listen address: `HOST:PORT`, or `unix:/path/to/socket`.
    #[serde(default = "default_listen")]
    pub listen: Listen,
    /// A policy file or a directory of `*.yaml` policy files. Relative paths are resolved
    /// against the working directory.
    #[serde(default = "default_policy")]
    pub policy: PathBuf,
    /// Upstream header that carries the verified SPIFFE ID on allow, overwriting any value
    /// the client sent. Empty disables it.
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
    /// OpenTelemetry spans.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Decision log: one JSON line per decision.
    #[serde(default)]
    pub decision_log: DecisionLogConfig,
    /// Admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); omitted = not started.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Request headers whose values never reach spans, decision-log lines or logs, on top of
    /// `authorization`, `proxy-authorization` and `cookie`, which always are.
    #[serde(default)]
    pub sensitive_headers: Vec<String>,
    /// Policy reloads: on SIGHUP always, and on changes to its files when `watch` is on.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// TLS (and mTLS) on the gRPC listener; omitted = plaintext (keep it on loopback).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Bounds on what one Check, and all of them together, may take.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// On SIGTERM, how long Warrant keeps serving after turning health and readiness to not
    /// serving, so load balancers (Envoy's health checks, Kubernetes endpoints) stop sending
    /// before it stops accepting.
    #[serde(default, with = "humantime_serde_duration")]
    pub shutdown_delay: std::time::Duration,
    /// On SIGTERM, how long Checks in flight may take to finish before they are cut off.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde_duration")]
    pub shutdown_grace: std::time::Duration,
    /// Serve gRPC server reflection (`grpc.reflection.v1`) on the ext_authz listener, for
    /// `grpcurl` and friends. Off by default: it describes the API to anyone who can connect.
    #[serde(default)]
    pub grpc_reflection: bool,
    /// The file this came from, for error messages.
    #[serde(skip)]
    pub source: PathBuf,
}

/// `tls:` — the authz channel's TLS. Paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain (PEM), re-read when it changes.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Require client certificates chaining to this CA bundle (PEM): mTLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: the SPIFFE IDs (exact, or glob patterns) whose client certificates
    /// may call Check; any other caller's connection is closed after the handshake.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
}

/// `limits:` — bounded resources. At each limit Envoy gets a gRPC error, never a decision:
/// with `failure_mode_allow: false` it denies (with its `status_on_error`), and the audit does
/// not show a policy deny.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest CheckRequest accepted, in bytes (larger: OUT_OF_RANGE, before decoding).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Checks decided at once; one more is answered RESOURCE_EXHAUSTED at once, not queued.
    #[serde(default = "default_max_concurrent_checks")]
    pub max_concurrent_checks: usize,
    /// A Check that takes longer (or longer than the caller's `grpc-timeout`) is answered
    /// DEADLINE_EXCEEDED instead of its decision.
    #[serde(default = "default_check_timeout", with = "humantime_serde_duration")]
    pub check_timeout: std::time::Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: default_max_request_bytes(),
            max_concurrent_checks: default_max_concurrent_checks(),
            check_timeout: default_check_timeout(),
        }
    }
}

fn default_max_request_bytes() -> usize {
    1 << 20
}

fn default_max_concurrent_checks() -> usize {
    1024
}

fn default_check_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}

/// `reload:` — when the policy is loaded again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the policy and every file it loads (data files, bundles), and the directories
    /// holding them (a Kubernetes ConfigMap swaps its `..data` symlink there).
    #[serde(default = "default_watch")]
    pub watch: bool,
    /// How long the files must stay quiet after a change before the reload: an editor or a
    /// ConfigMap update writes several files in a burst.
    #[serde(default = "default_debounce", with = "humantime_serde_duration")]
    pub debounce: std::time::Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: default_watch(),
            debounce: default_debounce(),
        }
    }
}

fn default_shutdown_grace() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_watch() -> bool {
    true
}

fn default_debounce() -> std::time::Duration {
    std::time::Duration::from_millis(250)
}

/// A duration written as `250ms`, `2s`, `1m`.
mod humantime_serde_duration {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration such as 250ms or 2s: {e}"
            ))
        })
    }
}

/// `telemetry:` — OpenTelemetry span export.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `service.name` of Warrant's spans; else `OTEL_SERVICE_NAME`, else `warrant`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// The collector; else `OTEL_EXPORTER_OTLP_ENDPOINT`; neither = no spans, zero cost.
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
    /// Sampling for checks without a caller trace context; a caller's sampled flag is
    /// always honoured (parent-based).
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: None,
            otlp: None,
            sample_ratio: default_sample_ratio(),
        }
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}

/// `telemetry.otlp:` — where spans go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `http://127.0.0.1:4317` for gRPC; for HTTP `http://127.0.0.1:4318` (then
    /// `/v1/traces` is appended) or the full traces URL.
    pub endpoint: String,
    /// `grpc` (the default) or `http` (also written `http/protobuf`).
    #[serde(default)]
    pub protocol: OtlpProtocol,
}

/// The OTLP/HTTP path of traces (OpenTelemetry exporter spec, "Endpoint URLs for OTLP/HTTP").
const OTLP_HTTP_TRACES_PATH: &str = "v1/traces";

/// `decision_log:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// `stdout`, `stderr`, `off`, or a file path (appended to).
    #[serde(default = "default_decision_log_to")]
    pub to: String,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            to: default_decision_log_to(),
        }
    }
}

fn default_decision_log_to() -> String {
    "stdout".to_owned()
}

/// `admin:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The admin HTTP listener's address, `HOST:PORT` (e.g. `127.0.0.1:9090`).
    pub listen: SocketAddr,
}

fn default_listen() -> Listen {
    Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 9191)))
}

/// Where the gRPC listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `127.0.0.1:9191`, `[::]:9191`.
    Tcp(SocketAddr),
    /// `unix:/run/warrant/authz.sock`: for a sidecar next to Envoy on the same pod or host.
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, as in unix:/run/warrant/authz.sock".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        text.parse().map(Listen::Tcp).map_err(|_| {
            format!("{text:?} is not HOST:PORT (127.0.0.1:9191, [::]:9191) or unix:/path/to/socket")
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn default_policy() -> PathBuf {
    PathBuf::from(DEFAULT_POLICY_PATH)
}

fn default_identity_header() -> String {
    DEFAULT_IDENTITY_HEADER.to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            policy: default_policy(),
            identity_header: default_identity_header(),
            telemetry: TelemetryConfig::default(),
            decision_log: DecisionLogConfig::default(),
            admin: None,
            sensitive_headers: Vec::new(),
            reload: ReloadConfig::default(),
            tls: None,
            limits: LimitsConfig::default(),
            shutdown_delay: std::time::Duration::ZERO,
            shutdown_grace: default_shutdown_grace(),
            grpc_reflection: false,
            source: PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let invalid = |line: Option<u64>, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            crate::yaml::from_str(text).map_err(|e| {
                let line = e.location().map(|l| l.line()).filter(|&l| l > 0);
                invalid(line, crate::policy::yaml_error_gist(&e.to_string()))
            })?
        };
        config.source = path.to_path_buf();
        // Set on every allowed request: held to the same rules as a policy rule's headers.
        let header = &config.identity_header;
        if !header.is_empty() {
            crate::header::check_upstream(header, None).map_err(|e| {
                invalid(
                    None,
                    format!("identity_header: {e} (e.g. x-spiffe-id, or \"\" to disable)"),
                )
            })?;
        }
        for name in &config.sensitive_headers {
            crate::header::check_name(name)
                .map_err(|e| invalid(None, format!("sensitive_headers: {e}")))?;
        }
        let ratio = config.telemetry.sample_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(invalid(
                None,
                format!("telemetry.sample_ratio {ratio} must be between 0.0 and 1.0"),
            ));
        }
        if let Some(otlp) = &config.telemetry.otlp {
            check_otlp_endpoint("telemetry.otlp.endpoint", &otlp.endpoint)
                .map_err(|message| invalid(None, message))?;
        }
        if config.decision_log.to.is_empty() {
            return Err(invalid(
                None,
                "decision_log.to must be stdout, stderr, off or a file path".into(),
            ));
        }
        let limits = &config.limits;
        if limits.max_request_bytes < 1024 {
            return Err(invalid(
                None,
                format!(
                    "limits.max_request_bytes {} is too small for any CheckRequest (at least 1024)",
                    limits.max_request_bytes
                ),
            ));
        }
        if limits.max_concurrent_checks == 0 || limits.check_timeout.is_zero() {
            return Err(invalid(
                None,
                "limits.max_concurrent_checks and limits.check_timeout must be above zero, or every Check is refused".into(),
            ));
        }
        if let Some(tls) = &config.tls
            && let Some(pattern) = tls
                .allowed_callers
                .iter()
                .find(|p| !p.starts_with("spiffe://") || p.len() <= "spiffe://".len())
        {
            return Err(invalid(
                None,
                format!(
                    "tls.allowed_callers {pattern:?} is not a SPIFFE ID or pattern (spiffe://trust.domain/path, * and ** allowed)"
                ),
            ));
        }
        Ok(config)
    }

    /// The audit settings, with the standard OpenTelemetry environment variables filling what
    /// the file leaves unset: `OTEL_SERVICE_NAME`; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used
    /// as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL: `/v1/traces` is appended for HTTP);
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, the
    /// default here, or `http/protobuf`).
    pub fn audit_settings(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AuditSettings, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let invalid = |message: String| ConfigError::Invalid {
            path: self.source.clone(),
            line: None,
            message,
        };
        let otlp = match &self.telemetry.otlp {
            Some(otlp) => Some(OtlpTarget {
                endpoint: traces_url(&otlp.endpoint, otlp.protocol, EndpointKind::ConfigFile),
                protocol: otlp.protocol,
            }),
            None => {
                let endpoint = match (
                    env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                    env("OTEL_EXPORTER_OTLP_ENDPOINT"),
                ) {
                    (Some(url), _) => Some((
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        url,
                        EndpointKind::Exact,
                    )),
                    (None, Some(base)) => {
                        Some(("OTEL_EXPORTER_OTLP_ENDPOINT", base, EndpointKind::Base))
                    }
                    (None, None) => None,
                };
                // Without an endpoint spans are off, whatever protocol the environment names
                // (it may be set pod-wide for other processes).
                match endpoint {
                    None => None,
                    Some((name, url, kind)) => {
                        check_otlp_endpoint(name, &url).map_err(invalid)?;
                        let protocol = match [
                            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                            "OTEL_EXPORTER_OTLP_PROTOCOL",
                        ]
                        .into_iter()
                        .find_map(|name| env(name).map(|value| (name, value)))
                        {
                            None => OtlpProtocol::Grpc,
                            Some((_, value)) if value == "grpc" => OtlpProtocol::Grpc,
                            Some((_, value)) if value == "http/protobuf" => {
                                OtlpProtocol::HttpProtobuf
                            }
                            Some((name, value)) => {
                                return Err(invalid(format!(
                                    "{name}={value:?}: Warrant exports grpc or http/protobuf"
                                )));
                            }
                        };
                        Some(OtlpTarget {
                            endpoint: traces_url(&url, protocol, kind),
                            protocol,
                        })
                    }
                }
            }
        };
        Ok(AuditSettings {
            service_name: self
                .telemetry
                .service_name
                .clone()
                .or_else(|| env("OTEL_SERVICE_NAME"))
                .unwrap_or_else(|| "warrant".to_owned()),
            otlp,
            sample_ratio: self.telemetry.sample_ratio,
            decision_log: match self.decision_log.to.as_str() {
                "stdout" => DecisionLogTarget::Stdout,
                "stderr" => DecisionLogTarget::Stderr,
                "off" => DecisionLogTarget::Off,
                path => DecisionLogTarget::File(PathBuf::from(path)),
            },
            sensitive_headers: self.sensitive_headers.clone(),
        })
    }
}

/// An OTLP endpoint must be a plain `http://` URL. TLS to the collector is not built in: send
/// to a collector or agent on the node (or sidecar) and let it forward over TLS.
fn check_otlp_endpoint(name: &str, url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!(
            "{name} {url:?}: TLS to the collector is not built in; export to a local collector or agent over http:// and let it forward over TLS"
        ));
    }
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "{name} {url:?} must be a URL such as http://127.0.0.1:4317"
        )),
    }
}

/// How an OTLP endpoint was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndpointKind {
    /// `telemetry.otlp.endpoint`: a URL without a path gets `/v1/traces` for HTTP.
    ConfigFile,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL, `/v1/traces` always appended for HTTP.
    Base,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used as is.
    Exact,
}

/// The URL spans are sent to. gRPC takes the collector's address as given; OTLP/HTTP needs
/// the traces URL (OpenTelemetry exporter spec, "Endpoint URLs for OTLP/HTTP").
fn traces_url(url: &str, protocol: OtlpProtocol, kind: EndpointKind) -> String {
    if protocol == OtlpProtocol::Grpc || kind == EndpointKind::Exact {
        return url.to_owned();
    }
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let has_path = url[after_scheme..]
        .find('/')
        .is_some_and(|i| !url[after_scheme + i..].trim_end_matches('/').is_empty());
    if kind == EndpointKind::ConfigFile && has_path {
        url.to_owned()
    } else {
        format!("{}/{OTLP_HTTP_TRACES_PATH}", url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let config = Config::parse(Path::new("w.yaml"), "listen: 0.0.0.0:9000\n").unwrap();
        assert_eq!(config.listen, Listen::Tcp("0.0.0.0:9000".parse().unwrap()));
        let config = Config::parse(Path::new("w.yaml"), "listen: unix:/run/w.sock\n").unwrap();
        assert_eq!(config.listen, Listen::Unix("/run/w.sock".into()));
        assert!(Config::parse(Path::new("w.yaml"), "listen: \"unix:\"\n").is_err());
        assert!(Config::parse(Path::new("w.yaml"), "listen: localhost\n").is_err());
        assert_eq!(config.policy, PathBuf::from(DEFAULT_POLICY_PATH));
        assert_eq!(config.identity_header, DEFAULT_IDENTITY_HEADER);
        assert_eq!(DEFAULT_LISTEN.parse::<Listen>().unwrap(), default_listen());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::parse(Path::new("w.yaml"), "listen: 127.0.0.1:1\npolcy: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("w.yaml:2:"), "{err}");
        assert!(err.contains("polcy"), "{err}");
    }

    #[test]
    fn telemetry_sections() {
        let config = Config::parse(
            Path::new("w.yaml"),
            "telemetry:\n  service_name: authz\n  otlp: {endpoint: \"http://127.0.0.1:4317\", protocol: grpc}\n  sample_ratio: 0.5\ndecision_log: {to: /var/log/warrant.jsonl}\nadmin: {listen: 127.0.0.1:9090}\n",
        )
        .unwrap();
        let settings = config.audit_settings(|_| Some("ignored".into())).unwrap();
        assert_eq!(settings.service_name, "authz");
        assert_eq!(
            settings.otlp,
            Some(OtlpTarget {
                endpoint: "http://127.0.0.1:4317".into(),
                protocol: OtlpProtocol::Grpc
            })
        );
        assert_eq!(settings.sample_ratio, 0.5);
        assert_eq!(
            settings.decision_log,
            DecisionLogTarget::File("/var/log/warrant.jsonl".into())
        );
        assert_eq!(config.admin.unwrap().listen.port(), 9090);
        let config =
            Config::parse(Path::new("w.yaml"), "sensitive_headers: [X-Api-Key]\n").unwrap();
        assert_eq!(
            config.audit_settings(|_| None).unwrap().sensitive_headers,
            ["X-Api-Key"]
        );
        for bad in [
            "telemetry: {sample_ratio: 2}\n",
            "telemetry: {otlp: {endpoint: \"https://c:4317\"}}\n",
            "telemetry: {otlp: {endpoint: \"http://\"}}\n",
            "telemetry: {otlp: {endpoint: \"http://c:4318\", protocol: http/json}}\n",
            "telemetry: {otlp: {endpoint: \"c:4317\"}}\n",
            "telemetry: {otlp: {endpont: \"http://c:4317\"}}\n",
            "decision_log: {to: \"\"}\n",
            "admin: {listen: nowhere}\n",
            "sensitive_headers: [\"x api key\"]\n",
        ] {
            assert!(Config::parse(Path::new("w.yaml"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn otel_environment_fills_gaps() {
        let config = Config::default();
        let env = |name: &str| match name {
            "OTEL_SERVICE_NAME" => Some("mesh-authz".to_owned()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4317".to_owned()),
            _ => None,
        };
        let settings = config.audit_settings(env).unwrap();
        assert_eq!(settings.service_name, "mesh-authz");
        assert_eq!(
            settings.otlp,
            Some(OtlpTarget {
                endpoint: "http://collector:4317".into(),
                protocol: OtlpProtocol::Grpc
            })
        );
        assert_eq!(settings.decision_log, DecisionLogTarget::Stdout);
        let settings = config.audit_settings(|_| None).unwrap();
        assert_eq!(settings.service_name, "warrant");
        assert_eq!(settings.otlp, None);
    }

    #[test]
    fn otlp_http_urls() {
        use OtlpProtocol::HttpProtobuf;
        let from_file = |text: &str| {
            Config::parse(Path::new("w.yaml"), text)
                .unwrap()
                .audit_settings(|_| None)
                .unwrap()
                .otlp
                .unwrap()
        };
        let target =
            from_file("telemetry: {otlp: {endpoint: \"http://c:4318\", protocol: http}}\n");
        assert_eq!(target.endpoint, "http://c:4318/v1/traces");
        assert_eq!(target.protocol, HttpProtobuf);
        let target = from_file(
            "telemetry: {otlp: {endpoint: \"http://c:4318/\", protocol: http/protobuf}}\n",
        );
        assert_eq!(target.endpoint, "http://c:4318/v1/traces");
        let target = from_file(
            "telemetry: {otlp: {endpoint: \"http://c/otlp/v1/traces\", protocol: http}}\n",
        );
        assert_eq!(target.endpoint, "http://c/otlp/v1/traces");

        let from_env = |vars: &'static [(&'static str, &'static str)]| {
            Config {
                source: PathBuf::from("w.yaml"),
                ..Config::default()
            }
            .audit_settings(move |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let base = from_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])
        .unwrap()
        .otlp
        .unwrap();
        assert_eq!(base.endpoint, "http://c:4318/otlp/v1/traces");
        assert_eq!(base.protocol, HttpProtobuf);
        let exact = from_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .otlp
        .unwrap();
        assert_eq!(exact.endpoint, "http://c:4318/custom");
        assert_eq!(exact.protocol, HttpProtobuf);
        for bad in [
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ][..],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317")][..],
        ] {
            let vars: &'static [(&'static str, &'static str)] = bad;
            let error = from_env(vars).unwrap_err().to_string();
            assert!(error.starts_with("w.yaml: OTEL_EXPORTER_OTLP_"), "{error}");
        }
        // A protocol without an endpoint (set for other processes) leaves spans off.
        let off = from_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap();
        assert_eq!(off.otlp, None);
    }

    #[test]
    fn degenerate_limits_and_callers_are_refused() {
        for (text, message) in [
            ("limits: {max_request_bytes: 0}\n", "too small"),
            ("limits: {max_concurrent_checks: 0}\n", "above zero"),
            ("limits: {check_timeout: 0s}\n", "above zero"),
            (
                "tls: {cert: c, key: k, client_ca: ca, allowed_callers: [\"not an id\"]}\n",
                "not a SPIFFE ID",
            ),
        ] {
            let error = Config::parse(Path::new("w.yaml"), text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn identity_header_is_validated() {
        for (name, message) in [
            ("X-Bad", "has capitals; write \"x-bad\""),
            ("host", "routes the request"),
            ("content-length", "changes message framing"),
            ("\":authority\"", "pseudo-header"),
            ("x-envoy-peer", "reserved for Envoy"),
            ("\"x spiffe\"", "not an HTTP token"),
        ] {
            let error = Config::parse(Path::new("w.yaml"), &format!("identity_header: {name}\n"))
                .expect_err(name)
                .to_string();
            assert!(
                error.starts_with("w.yaml: identity_header: header"),
                "{error}"
            );
            assert!(error.contains(message), "{error}");
        }
        let error = Config::parse(Path::new("w.yaml"), "sensitive_headers: [x-ok, \"a b\"]\n")
            .expect_err("token")
            .to_string();
        assert!(
            error.contains("sensitive_headers: header name \"a b\" is not an HTTP token"),
            "{error}"
        );
        assert!(Config::parse(Path::new("w.yaml"), "sensitive_headers: [X-Api-Key]\n").is_ok());
        let off = Config::parse(Path::new("w.yaml"), "identity_header: \"\"\n").unwrap();
        assert!(off.identity_header.is_empty());
    }
}

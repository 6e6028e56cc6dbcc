//! The server configuration file (`config/warrant.yaml`). Strict: unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },
}

/// The server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC ext_authz listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A policy file or a directory of `*.yaml` policy files. Relative paths are resolved
    /// against the working directory.
    #[serde(default = "default_policy")]
    pub policy: PathBuf,
    /// Upstream header that carries the verified SPIFFE ID on allow, overwriting any value
    /// the client sent. Empty disables it.
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9191))
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
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                let line = e.location().map(|l| l.line()).filter(|&l| l > 0);
                invalid(line, crate::policy::yaml_error_gist(&e.to_string()))
            })?
        };
        let header = &config.identity_header;
        if !header.is_empty()
            && !header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                None,
                format!(
                    "identity_header {header:?} must be a lower-case header name such as x-spiffe-id, or \"\" to disable"
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let config = Config::parse(Path::new("w.yaml"), "listen: 0.0.0.0:9000\n").unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.policy, PathBuf::from(DEFAULT_POLICY_PATH));
        assert_eq!(config.identity_header, DEFAULT_IDENTITY_HEADER);
        assert_eq!(
            DEFAULT_LISTEN.parse::<SocketAddr>().unwrap(),
            default_listen()
        );
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
    fn identity_header_is_validated() {
        assert!(Config::parse(Path::new("w.yaml"), "identity_header: X-Bad\n").is_err());
        let off = Config::parse(Path::new("w.yaml"), "identity_header: \"\"\n").unwrap();
        assert!(off.identity_header.is_empty());
    }
}

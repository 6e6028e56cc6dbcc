//! Compiling the policy's `trust:` section: reading the bundle, intermediate and revocation
//! files it names, and the trust settings as written, into a [`TrustPolicy`].

use std::path::Path;
use std::time::Duration;

use super::file;
use super::{ExternalBundles, FileKind};
use crate::identity::BundleFormat;
use crate::trust::{BundleSettings, TrustPolicy, TrustSettings, WorkloadTokenSettings};

/// The entries of a revocation file: one per line, with its 1-based line number; blank lines
/// and `#` comments are skipped.
fn revocation_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let entry = line.split('#').next().unwrap_or("").trim();
        (!entry.is_empty()).then_some((index + 1, entry))
    })
}

pub(super) fn compile_trust(
    policy_path: &Path,
    section: file::TrustSection,
    read_file: &mut dyn FnMut(&Path, FileKind) -> std::io::Result<Vec<u8>>,
    external: &ExternalBundles,
) -> Result<TrustPolicy, String> {
    let max_svid_lifetime = section
        .max_svid_lifetime
        .as_deref()
        .map(|text| {
            humantime::parse_duration(text).map_err(|e| {
                format!("trust.max_svid_lifetime {text:?}: {e} (write e.g. 24h or 90m)")
            })
        })
        .transpose()?;
    if max_svid_lifetime == Some(Duration::ZERO) {
        return Err("trust.max_svid_lifetime must be greater than zero".to_owned());
    }
    let base = policy_path.parent().unwrap_or(Path::new(""));
    let mut bundles = Vec::with_capacity(section.bundles.len());
    // Intermediates of trust domains whose bundle comes from the Workload API.
    let mut streamed_intermediates: Vec<(String, Vec<u8>)> = Vec::new();
    for (trust_domain, spec) in section.bundles {
        let (path, format, intermediates) = match spec {
            file::BundleSpec::Path(path) => (Some(path), None, None),
            file::BundleSpec::Detailed(detailed) => {
                (detailed.path, detailed.format, detailed.intermediates)
            }
        };
        let mut read = |path: &str, what: &str| {
            let resolved = base.join(path);
            read_file(&resolved, FileKind::Bundle).map_err(|e| {
                format!(
                    "{what} of trust domain {trust_domain:?}: cannot read {}: {e}",
                    resolved.display()
                )
            })
        };
        if path.is_none() && section.bundles_from.is_none() {
            return Err(format!(
                "bundle of trust domain {trust_domain:?} needs a path (intermediates alone need trust.bundles_from, for the bundle to come from the Workload API)"
            ));
        }
        let intermediates = intermediates
            .map(|path| read(&path, "intermediates"))
            .transpose()?;
        let Some(path) = path else {
            // Only intermediates: the bundle itself comes from the Workload API.
            match (intermediates, &section.bundles_from) {
                (Some(intermediates), Some(_)) => {
                    if !section.trust_domains.contains(&trust_domain) {
                        return Err(format!(
                            "bundle given for trust domain {trust_domain:?}, which is not in trust.trust_domains"
                        ));
                    }
                    streamed_intermediates.push((trust_domain, intermediates));
                    continue;
                }
                (_, None) | (None, _) => {
                    return Err(format!(
                        "bundle of trust domain {trust_domain:?} needs a path (or, with trust.bundles_from, intermediates)"
                    ));
                }
            }
        };
        let bytes = read(&path, "bundle")?;
        let format = match format.as_deref() {
            None => BundleFormat::for_path(Path::new(&path)),
            Some(name) => BundleFormat::parse(name).ok_or_else(|| {
                format!(
                    "bundle of trust domain {trust_domain:?}: format {name:?} is neither pem nor spiffe"
                )
            })?,
        };
        bundles.push(BundleSettings {
            trust_domain,
            format,
            bytes,
            intermediates,
        });
    }
    let workload_api = match section.bundles_from {
        None => None,
        Some(from) => Some(workload_api_endpoint(&from.workload_api)?),
    };
    // Trust domains without a bundle file take the one the Workload API delivered; until it
    // has, they are pending (and untrusted).
    let mut pending_bundles = Vec::new();
    if workload_api.is_some() {
        for trust_domain in &section.trust_domains {
            if bundles.iter().any(|b| &b.trust_domain == trust_domain) {
                continue;
            }
            // Only bundles from the endpoint this policy names: after a change, the old
            // endpoint's bundles no longer count.
            let from_here = workload_api.as_deref().is_some_and(|endpoint| {
                external.source == ExternalBundles::workload_api_source(endpoint)
            });
            match external.bundles.get(trust_domain).filter(|_| from_here) {
                Some(bytes) => bundles.push(BundleSettings {
                    trust_domain: trust_domain.clone(),
                    format: BundleFormat::Spiffe,
                    bytes: bytes.clone(),
                    intermediates: streamed_intermediates
                        .iter()
                        .find(|(td, _)| td == trust_domain)
                        .map(|(_, pem)| pem.clone()),
                }),
                None => pending_bundles.push(trust_domain.clone()),
            }
        }
    }
    let mut revoked: Vec<(String, String)> = section
        .revoked
        .into_iter()
        .map(|entry| (entry, "trust.revoked".to_owned()))
        .collect();
    for path in section.revoked_files {
        let resolved = base.join(&path);
        let bytes = read_file(&resolved, FileKind::Revocation).map_err(|e| {
            format!(
                "trust.revoked_files: cannot read {}: {e}",
                resolved.display()
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            format!(
                "trust.revoked_files: {} is not UTF-8 text",
                resolved.display()
            )
        })?;
        revoked.extend(
            revocation_lines(&text)
                .map(|(line, entry)| (entry.to_owned(), format!("{}:{line}", resolved.display()))),
        );
    }
    TrustPolicy::new(TrustSettings {
        trust_domains: section.trust_domains,
        bundles,
        max_svid_lifetime,
        require_certificate: section.require_certificate,
        revoked,
        forwarders: section.forwarders,
        workload_tokens: section.workload_tokens.map(workload_tokens).transpose()?,
        workload_api,
        pending_bundles,
    })
    .map_err(|e| e.to_string())
}

/// Most clock skew `trust.workload_tokens.leeway` may allow.
const MAX_LEEWAY: Duration = Duration::from_secs(600);

/// `trust.workload_tokens` as written, with its defaults.
fn workload_tokens(spec: file::WorkloadTokensSpec) -> Result<WorkloadTokenSettings, String> {
    let leeway = match spec.leeway.as_deref() {
        None => WorkloadTokenSettings::DEFAULT_LEEWAY,
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| format!("trust.workload_tokens.leeway {text:?}: {e} (write e.g. 30s)"))?,
    };
    if leeway > MAX_LEEWAY {
        return Err(format!(
            "trust.workload_tokens.leeway {} is over {}: leeway absorbs clock skew between hosts, not token lifetime",
            humantime::format_duration(leeway),
            humantime::format_duration(MAX_LEEWAY)
        ));
    }
    Ok(WorkloadTokenSettings {
        header: spec
            .header
            .unwrap_or_else(|| WorkloadTokenSettings::DEFAULT_HEADER.to_owned())
            .to_ascii_lowercase(),
        audiences: spec.audiences,
        leeway,
        required: spec.required,
    })
}

/// A Workload API endpoint as SPIFFE Workload Endpoint §4 writes it: `unix:///path`,
/// `unix:/path` or `tcp://IP:PORT`.
fn workload_api_endpoint(endpoint: &str) -> Result<String, String> {
    let plain = !endpoint.contains(['?', '#', '@', ' ']);
    let fine = plain
        && match endpoint.split_once(':') {
            Some(("unix", path)) => {
                let path = path.strip_prefix("//").unwrap_or(path);
                path.starts_with('/') && path.len() > 1 && !path.ends_with('/')
            }
            // The client connects to an IP address: no name resolution on the trust path.
            Some(("tcp", address)) => address
                .strip_prefix("//")
                .unwrap_or(address)
                .rsplit_once(':')
                .is_some_and(|(host, port)| {
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let ip = !host.is_empty()
                        && (host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                            || host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'));
                    ip && port.parse::<u16>().is_ok_and(|port| port != 0)
                }),
            _ => false,
        };
    if fine {
        Ok(endpoint.to_owned())
    } else {
        Err(format!(
            "trust.bundles_from.workload_api {endpoint:?} is not a Workload API endpoint: write unix:///run/spire/agent.sock (an absolute socket path) or tcp://IP:PORT (an IP address and a port, no query or user)"
        ))
    }
}

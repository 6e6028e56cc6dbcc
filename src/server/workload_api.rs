//! Trust bundles from a SPIRE agent's Workload API (`trust.bundles_from.workload_api`): the
//! X.509 and JWT bundles it streams (SPIFFE Workload API §5.2 `FetchX509Bundles`, §6.2
//! `FetchJWTBundles`), through the maintained `spiffe` crate.
//!
//! Each update becomes, per trust domain, a SPIFFE bundle (the JSON a bundle file would hold)
//! and triggers a policy reload — the one reload mechanism every bundle file goes through, so
//! a broken bundle is refused whole and the old policy keeps serving. The stream reconnects
//! with backoff (1 s doubling to 30 s) when the agent is unreachable or the stream ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use spiffe::{JwtBundleSet, WorkloadApiClient, X509BundleSet};
use tokio_stream::StreamExt as _;

use super::live::LivePolicy;
use super::reload::ReloadTrigger;
use crate::policy::ExternalBundles;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often the serving policy is looked at for a new `trust.bundles_from` endpoint.
const POLICY_CHECK: Duration = Duration::from_secs(1);

/// Streams bundles from the serving policy's `trust.bundles_from.workload_api` into `live`
/// until dropped, reloading the policy on each change. Follows the endpoint across reloads
/// (set, changed or removed); keeps the last good bundles across reconnects, so a stream that
/// breaks, or an agent that restarts, never serves fewer authorities than before.
pub(super) async fn run(live: Arc<LivePolicy>, reload: ReloadTrigger) {
    let mut latest = Latest::default();
    let mut retry = FIRST_RETRY;
    loop {
        let Some(endpoint) = live.current().trust().workload_api().map(str::to_owned) else {
            tokio::time::sleep(POLICY_CHECK).await;
            continue;
        };
        let mut healthy = false;
        let ended = tokio::select! {
            result = stream(&live, &endpoint, &reload, &mut latest, &mut healthy) => Some(result),
            () = endpoint_changed(&live, &endpoint) => None,
        };
        match ended {
            None => {
                tracing::info!(%endpoint, "trust.bundles_from changed: leaving this Workload API");
                latest = Latest::default();
                if live.set_external_bundles(ExternalBundles::default()) {
                    reload.bundles_changed();
                }
                retry = FIRST_RETRY;
                continue;
            }
            Some(Ok(())) => {
                tracing::warn!(%endpoint, "the Workload API closed its bundle stream; reconnecting")
            }
            Some(Err(error)) => tracing::warn!(
                %endpoint,
                error = %chain(&error),
                "cannot stream bundles from the Workload API; the last bundles received keep serving (trust domains without one stay untrusted)"
            ),
        }
        // A connection that delivered bundles was healthy: start the backoff over.
        if healthy {
            retry = FIRST_RETRY;
        }
        // A new endpoint in the policy is followed at once, not after the backoff.
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = endpoint_changed(&live, &endpoint) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Returns once the serving policy names another endpoint (or none).
async fn endpoint_changed(live: &LivePolicy, endpoint: &str) {
    loop {
        tokio::time::sleep(POLICY_CHECK).await;
        if live.current().trust().workload_api() != Some(endpoint) {
            return;
        }
    }
}

fn unreadable(endpoint: &str, kind: &str, error: &spiffe::WorkloadApiError) {
    tracing::warn!(
        %endpoint,
        error = %chain(error),
        "the Workload API sent {kind} bundles that cannot be read; the last good ones keep serving"
    );
}

/// An error and its sources, `: `-joined (the transport error says little on its own).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One connection: both streams until either ends or fails.
async fn stream(
    live: &LivePolicy,
    endpoint: &str,
    reload: &ReloadTrigger,
    latest: &mut Latest,
    healthy: &mut bool,
) -> Result<(), spiffe::WorkloadApiError> {
    let client = WorkloadApiClient::connect_to(endpoint).await?;
    let mut x509 = client.stream_x509_bundles().await?;
    // An agent that does not serve JWT bundles still serves X.509 ones: go on without.
    let mut jwt = match client.stream_jwt_bundles().await {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(
                %endpoint,
                error = %chain(&error),
                "the Workload API does not stream JWT bundles; the last ones received keep serving"
            );
            None
        }
    };
    loop {
        let next_jwt = async {
            match jwt.as_mut() {
                Some(stream) => stream.next().await,
                None => std::future::pending().await,
            }
        };
        // A message that cannot be read (garbled DER or JWKS) is one bad update, not a broken
        // stream: the last good bundles of its kind keep serving, the other kind goes on.
        tokio::select! {
            update = x509.next() => match update {
                Some(Ok(set)) => latest.x509 = Some(set),
                Some(Err(spiffe::WorkloadApiError::Transport(error))) => return Err(error.into()),
                Some(Err(error)) => {
                    unreadable(endpoint, "X.509", &error);
                    continue;
                }
                None => return Ok(()),
            },
            update = next_jwt => match update {
                Some(Ok(set)) => latest.jwt = Some(set),
                Some(Err(spiffe::WorkloadApiError::Transport(error))) => return Err(error.into()),
                Some(Err(error)) => {
                    unreadable(endpoint, "JWT", &error);
                    continue;
                }
                None => return Ok(()),
            },
        }
        *healthy = true;
        // The X.509 bundles come first on any agent; the JWT ones may follow (until they do,
        // the last JWT bundles received keep serving).
        if latest.x509.is_some() && live.set_external_bundles(latest.bundles(endpoint)) {
            tracing::info!(%endpoint, "new bundles from the Workload API: reloading the policy");
            reload.bundles_changed();
        }
    }
}

/// The latest bundle sets received.
#[derive(Default)]
struct Latest {
    x509: Option<X509BundleSet>,
    jwt: Option<JwtBundleSet>,
}

impl Latest {
    /// Per trust domain, a SPIFFE bundle (SPIFFE Trust Domain and Bundle §4): its X.509
    /// authorities as `x509-svid` keys, its JWT authorities as `jwt-svid` keys.
    fn bundles(&self, endpoint: &str) -> ExternalBundles {
        let mut keys: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (trust_domain, bundle) in self.x509.iter().flat_map(X509BundleSet::iter) {
            let entry = keys.entry(trust_domain.to_string()).or_default();
            for authority in bundle.authorities() {
                entry.push(serde_json::json!({
                    "use": "x509-svid",
                    "x5c": [base64::engine::general_purpose::STANDARD.encode(authority.as_bytes())],
                }));
            }
        }
        for (trust_domain, bundle) in self.jwt.iter().flat_map(JwtBundleSet::iter) {
            let entry = keys.entry(trust_domain.to_string()).or_default();
            // In key-id order: the same keys always make the same bundle (and revision).
            let mut authorities: Vec<_> = bundle.jwt_authorities().collect();
            authorities.sort_by(|a, b| a.key_id().cmp(b.key_id()));
            for authority in authorities {
                let mut jwk: serde_json::Value =
                    serde_json::from_slice(authority.jwk_json()).unwrap_or_default();
                if let Some(jwk) = jwk.as_object_mut() {
                    jwk.insert("use".into(), "jwt-svid".into());
                    jwk.insert("kid".into(), authority.key_id().into());
                }
                entry.push(jwk);
            }
        }
        ExternalBundles {
            source: ExternalBundles::workload_api_source(endpoint),
            bundles: keys
                .into_iter()
                .map(|(trust_domain, keys)| {
                    let json = serde_json::json!({ "keys": keys }).to_string();
                    (trust_domain, json.into_bytes())
                })
                .collect(),
        }
    }
}

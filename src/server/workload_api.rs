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

/// Streams bundles from `endpoint` into `live` until dropped, reloading the policy on each
/// change.
pub async fn run(live: Arc<LivePolicy>, endpoint: String, reload: ReloadTrigger) {
    let mut retry = FIRST_RETRY;
    loop {
        let mut received = false;
        match stream(&live, &endpoint, &reload, &mut received).await {
            Ok(()) => {
                tracing::warn!(%endpoint, "the Workload API closed its bundle stream; reconnecting")
            }
            Err(error) => tracing::warn!(
                %endpoint,
                %error,
                retry_in = ?retry,
                "cannot stream bundles from the Workload API; trust domains waiting for theirs stay untrusted"
            ),
        }
        // A connection that delivered bundles was healthy: start the backoff over.
        if received {
            retry = FIRST_RETRY;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// One connection: both streams until either ends or fails.
async fn stream(
    live: &LivePolicy,
    endpoint: &str,
    reload: &ReloadTrigger,
    received: &mut bool,
) -> Result<(), spiffe::WorkloadApiError> {
    let client = WorkloadApiClient::connect_to(endpoint).await?;
    let mut x509 = client.stream_x509_bundles().await?;
    let mut jwt = client.stream_jwt_bundles().await?;
    let mut latest = Latest::default();
    loop {
        tokio::select! {
            update = x509.next() => match update {
                Some(set) => latest.x509 = Some(set?),
                None => return Ok(()),
            },
            update = jwt.next() => match update {
                Some(set) => latest.jwt = Some(set?),
                None => return Ok(()),
            },
        }
        *received = true;
        // The X.509 bundles come first on any agent; the JWT ones may follow.
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
            for authority in bundle.jwt_authorities() {
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
            source: format!("workload_api {endpoint}"),
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

//! The shipped deployment examples carry a Warrant config and policy: both must load.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use warrant::config::Config;
use warrant::policy::{Policy, PolicySource};

/// The `data` entries of the ConfigMaps in a multi-document YAML file.
fn configmap_data(path: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    documents
        .into_iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .flat_map(|d| {
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            d["data"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |(key, value)| {
                    (
                        name.clone(),
                        key,
                        value.as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect()
}

#[test]
fn the_kubernetes_configmaps_load() {
    let data = configmap_data("examples/kubernetes/configmap.yaml");
    let (_, _, config) = data
        .iter()
        .find(|(_, key, _)| key == "warrant.yaml")
        .expect("warrant.yaml");
    let config = Config::parse(Path::new("warrant.yaml"), config).unwrap();
    assert_eq!(config.policy, Path::new("/etc/warrant/policy"));
    assert!(config.reload.watch);
    let (_, key, policy) = data
        .iter()
        .find(|(name, _, _)| name == "warrant-policy")
        .expect("the policy ConfigMap");
    let policy = Policy::compile(
        &[PolicySource {
            path: key.into(),
            text: policy.clone(),
        }],
        &mut |_, _| Err(std::io::Error::other("no files")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(policy.warnings().is_empty());
}

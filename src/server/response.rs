//! [`Decision`] → CheckResponse: the one place that maps outcomes to the wire.
//!
//! - Allow → gRPC OK with an OkHttpResponse that overwrites the identity header and adds the
//!   rule's headers, removes its `remove_headers` and adds its `response_headers` to the
//!   client's response.
//! - Untrusted caller (stage `trust`) → UNAUTHENTICATED; any other deny → PERMISSION_DENIED.
//!   Both always carry a non-OK status: Envoy reads a CheckResponse without status as OK, so
//!   an empty response would fail open.
//! - Every response carries `dynamic_metadata` (decision, rule, spiffe_id, decision_id) for
//!   Envoy's access logs.
//!
//! Policy internals (the reason) stay out of the denied body: the caller learns the stage,
//! the rule id and the decision id, which an operator can look up.

use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::policy::{Decision, Stage, Verdict};

/// gRPC status codes (google.rpc.Code).
const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_UNAUTHENTICATED: i32 = 16;

/// The response Envoy enforces for `decision`.
pub fn check_response(decision: &Decision, identity_header: Option<&str>) -> CheckResponse {
    let metadata = dynamic_metadata(decision);
    match decision.verdict {
        Verdict::Allow => CheckResponse {
            status: Some(rpc::Status {
                code: GRPC_OK,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: upstream_headers(decision, identity_header)
                    .into_iter()
                    .map(|(key, value)| overwrite_header(key, value))
                    .collect(),
                headers_to_remove: removed_headers(decision, identity_header),
                response_headers_to_add: decision
                    .response_headers
                    .iter()
                    .map(|(key, value)| overwrite_header(key.clone(), value.clone()))
                    .collect(),
                ..Default::default()
            })),
            dynamic_metadata: Some(metadata),
        },
        Verdict::Deny => {
            let code = match decision.stage {
                Stage::Trust => GRPC_UNAUTHENTICATED,
                Stage::Rules | Stage::Default => GRPC_PERMISSION_DENIED,
            };
            CheckResponse {
                status: Some(rpc::Status {
                    code,
                    message: format!("{} denied at stage {}", decision.id, decision.stage),
                    details: Vec::new(),
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(decision.http_status),
                    }),
                    headers: std::iter::once(overwrite_header(
                        "content-type".to_owned(),
                        "application/json".to_owned(),
                    ))
                    .chain(
                        decision
                            .response_headers
                            .iter()
                            .map(|(key, value)| overwrite_header(key.clone(), value.clone())),
                    )
                    .collect(),
                    body: denied_body(decision),
                })),
                dynamic_metadata: Some(metadata),
            }
        }
    }
}

/// A CheckResponse that denies with `status`'s (non-OK) code and no decision: what a
/// CheckResponse must carry when the Check was not decided.
pub fn refused(status: &tonic::Status) -> CheckResponse {
    let code = match status.code() as i32 {
        GRPC_OK => GRPC_PERMISSION_DENIED,
        code => code,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message: status.message().to_owned(),
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// The headers an allowed request carries upstream: the rule's headers, then the verified
/// identity (last, so a rule cannot override it).
pub fn upstream_headers(
    decision: &Decision,
    identity_header: Option<&str>,
) -> Vec<(String, String)> {
    if decision.verdict != Verdict::Allow {
        return Vec::new();
    }
    let mut headers: Vec<(String, String)> = decision
        .headers
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != identity_header)
        .cloned()
        .collect();
    if let (Some(name), Some(id)) = (identity_header, &decision.identity) {
        headers.push((name.to_owned(), id.transport.spiffe_id.as_str().to_owned()));
    }
    headers
}

/// The request headers an allowed request loses before the upstream sees it: the rule's
/// `remove_headers`, never the identity header (which Warrant itself sets).
pub fn removed_headers(decision: &Decision, identity_header: Option<&str>) -> Vec<String> {
    decision
        .remove_headers
        .iter()
        .filter(|name| Some(name.as_str()) != identity_header)
        .cloned()
        .collect()
}

/// `{"decision":"deny","stage":…,"rule":…,"decision_id":…}`
pub fn denied_body(decision: &Decision) -> String {
    serde_json::json!({
        "decision": decision.verdict.as_str(),
        "stage": decision.stage.as_str(),
        "rule": decision.rule.as_deref(),
        "decision_id": decision.id,
    })
    .to_string()
}

fn overwrite_header(key: String, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key,
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn dynamic_metadata(decision: &Decision) -> Struct {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let fields = [
        ("decision", string(decision.verdict.as_str())),
        ("stage", string(decision.stage.as_str())),
        ("rule", string(decision.rule.as_deref().unwrap_or(""))),
        (
            "spiffe_id",
            string(
                decision
                    .identity
                    .as_ref()
                    .map_or("", |id| id.transport.spiffe_id.as_str()),
            ),
        ),
        (
            "origin_spiffe_id",
            string(
                decision
                    .identity
                    .as_ref()
                    .map_or("", |id| id.origin().0.as_str()),
            ),
        ),
        (
            "origin_via",
            string(
                decision
                    .identity
                    .as_ref()
                    .map_or("", |id| id.origin().1.as_str()),
            ),
        ),
        (
            "proxy_chain",
            string(
                &decision
                    .identity
                    .as_ref()
                    .map(|id| {
                        id.provenance
                            .proxy_chain
                            .iter()
                            .map(|hop| hop.uri.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            ),
        ),
        (
            "xfcc_spoofed",
            Value {
                kind: Some(Kind::BoolValue(
                    decision
                        .identity
                        .as_ref()
                        .is_some_and(|id| id.provenance.xfcc_spoofed()),
                )),
            },
        ),
        (
            "workload_spiffe_id",
            string(
                decision
                    .identity
                    .as_ref()
                    .and_then(|id| id.workload.verified())
                    .map_or("", |svid| svid.spiffe_id.as_str()),
            ),
        ),
        (
            "workload_verified",
            Value {
                kind: Some(Kind::BoolValue(
                    decision
                        .identity
                        .as_ref()
                        .is_some_and(|id| id.workload.verified().is_some()),
                )),
            },
        ),
        (
            "identity_bound",
            Value {
                kind: Some(Kind::BoolValue(
                    decision.identity.as_ref().is_some_and(|id| id.bound()),
                )),
            },
        ),
        ("decision_id", string(&decision.id)),
        ("policy_revision", string(&decision.policy_revision)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Struct { fields }
}

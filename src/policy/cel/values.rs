//! Building the CEL values of the environment's variables from one request (see
//! [`super::environment::VARIABLES`]): borrowed where the request's strings allow it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use cel::common::types::{
    CelBool, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
};
use chrono::{DateTime, Utc};

use super::environment::{CelVal, Inputs};
use crate::identity::SpiffeId;
use crate::request::HttpRequest;
use crate::trust::Via;

pub(super) fn string(s: &str) -> CelVal<'_> {
    Box::new(CelString::from(s))
}

pub(super) fn int(i: i64) -> CelVal<'static> {
    Box::new(CelInt::from(i))
}

pub(super) fn null() -> CelVal<'static> {
    Box::new(CelNull)
}

/// A map with fixed string keys.
pub(super) fn map<'a>(entries: impl Iterator<Item = (&'static str, CelVal<'a>)>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> =
        entries.map(|(k, v)| (CelMapKey::from(k), v)).collect();
    Box::new(CelMap::from(map))
}

pub(super) fn string_map<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = entries
        .map(|(k, v)| (CelMapKey::from(k), string(v)))
        .collect();
    Box::new(CelMap::from(map))
}

pub(super) fn list<'a>(items: impl Iterator<Item = CelVal<'a>>) -> CelVal<'a> {
    Box::new(CelList::from(items.collect::<Vec<_>>()))
}

/// Istio's `/ns/N/sa/S` namespace and service account, or empty strings.
pub(super) fn istio<'a>(inputs: &Inputs<'a>) -> (&'a str, &'a str) {
    inputs
        .peer
        .spiffe_id
        .istio_namespace_and_service_account()
        .unwrap_or(("", ""))
}

/// `source.certificate`: the forwarded SVID's details, or an empty map.
pub(super) fn certificate<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    let entries: Vec<(&'static str, CelVal<'a>)> = match &inputs.peer.svid {
        Some(svid) => vec![
            ("serial", string(svid.serial())),
            ("not_before", unix_timestamp(svid.not_before())),
            ("not_after", unix_timestamp(svid.not_after())),
            (
                "dns_names",
                list(svid.dns_names().iter().map(|n| string(n))),
            ),
        ],
        None => Vec::new(),
    };
    map(entries.into_iter())
}

/// `request.grpc`: `service` and `method` of a gRPC call, or an empty map.
pub(super) fn grpc<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    let call = inputs.http().and_then(HttpRequest::grpc);
    let entries = call.map(|(service, method)| [("service", service), ("method", method)]);
    string_map(entries.into_iter().flatten())
}

/// Filter metadata: filter name → its value.
pub(super) fn json_map<'a>(map: &BTreeMap<String, serde_json::Value>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = map
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.clone()), super::data::to_cel(v)))
        .collect();
    Box::new(CelMap::from(map))
}

/// `request.query`: decoded parameters, the first occurrence of a repeated one winning.
pub(super) fn query<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    let mut query: HashMap<CelMapKey<'a>, CelVal<'a>> = HashMap::new();
    if let Some(http) = inputs.http() {
        for (k, v) in form_urlencoded::parse(http.query_string().as_bytes()) {
            query
                .entry(CelMapKey::String(CelString::from(k)))
                .or_insert_with(|| Box::new(CelString::from(v)));
        }
    }
    Box::new(CelMap::from(query))
}

/// `context`: the route's `context_extensions`.
pub(super) fn context<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    string_map(
        inputs
            .request
            .context_extensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// `context[key]` without building the map: what [`context`] holds under `key`.
pub(super) fn context_extension<'a>(inputs: &Inputs<'a>, key: &str) -> Option<&'a str> {
    inputs
        .request
        .context_extensions
        .get(key)
        .map(String::as_str)
}

/// `request.query[key]` without building the map: what [`query`] holds under `key`.
pub(super) fn query_parameter<'a>(inputs: &Inputs<'a>, key: &str) -> Option<Cow<'a, str>> {
    form_urlencoded::parse(inputs.http()?.query_string().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `request.headers[name]` without building the map: what [`headers`] holds under `name` (the
/// last of repeated names, as the map keeps it; nothing for a header the policy cannot observe).
pub(super) fn header<'a>(inputs: &Inputs<'a>, name: &str) -> Option<&'a str> {
    if !inputs.headers_read.admits(name) {
        return None;
    }
    inputs
        .http()?
        .headers
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `request.headers`, borrowing names and values.
pub(super) fn headers<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    let headers = inputs
        .http()
        .map(|http| http.headers.as_slice())
        .unwrap_or_default();
    string_map(
        headers
            .iter()
            .filter(|(name, _)| inputs.headers_read.admits(name))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// `time` as a CEL timestamp; null when chrono cannot represent it (`From<SystemTime>` would
/// panic, and `request.time` comes from the CheckRequest).
pub(super) fn timestamp(time: SystemTime) -> CelVal<'static> {
    let utc = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs())
            .ok()
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, after.subsec_nanos())),
        Err(before) => {
            let before = before.duration();
            i64::try_from(before.as_secs()).ok().and_then(|secs| {
                DateTime::<Utc>::from_timestamp(-secs, 0).and_then(|t| {
                    t.checked_sub_signed(chrono::Duration::nanoseconds(i64::from(
                        before.subsec_nanos(),
                    )))
                })
            })
        }
    };
    match utc {
        Some(utc) => Box::new(CelTimestamp::from(utc.fixed_offset())),
        None => Box::new(CelNull),
    }
}

pub(super) fn unix_timestamp(secs: i64) -> CelVal<'static> {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(utc) => Box::new(CelTimestamp::from(utc.fixed_offset())),
        None => Box::new(CelNull),
    }
}

pub(super) fn boolean(b: bool) -> CelVal<'static> {
    Box::new(CelBool::from(b))
}

/// The originating identity and how it was established.
pub(super) fn origin<'a>(inputs: &Inputs<'a>) -> (&'a SpiffeId, Via) {
    inputs.provenance.origin(&inputs.peer.spiffe_id)
}

/// The origin's Istio namespace and service account, or empty strings.
pub(super) fn origin_istio<'a>(inputs: &Inputs<'a>) -> (&'a str, &'a str) {
    origin(inputs)
        .0
        .istio_namespace_and_service_account()
        .unwrap_or(("", ""))
}

/// `proxy_chain`: the believed hops as maps.
pub(super) fn proxy_chain<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    list(inputs.provenance.proxy_chain.iter().map(|hop| {
        map([
            ("by", string(&hop.by)),
            ("uri", string(&hop.uri)),
            ("hash", string(&hop.hash)),
            ("subject", string(&hop.subject)),
            ("dns", list(hop.dns.iter().map(|d| string(d)))),
            ("trusted", boolean(hop.trusted())),
        ]
        .into_iter())
    }))
}

/// The verified workload token's SPIFFE ID.
pub(super) fn workload_id<'a>(inputs: &Inputs<'a>) -> Option<&'a SpiffeId> {
    inputs.workload.verified().map(|svid| &svid.spiffe_id)
}

/// The workload's Istio namespace and service account, or empty strings.
pub(super) fn workload_istio<'a>(inputs: &Inputs<'a>) -> (&'a str, &'a str) {
    workload_id(inputs)
        .and_then(SpiffeId::istio_namespace_and_service_account)
        .unwrap_or(("", ""))
}

/// `workload.claims`: the verified token's claims, or an empty map.
pub(super) fn workload_claims<'a>(inputs: &Inputs<'a>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = inputs
        .workload
        .verified()
        .into_iter()
        .flat_map(|svid| svid.claims.iter())
        .map(|(k, v)| (CelMapKey::from(k.clone()), super::data::to_cel(v)))
        .collect();
    Box::new(CelMap::from(map))
}

//! The per-request values of the CEL variables, borrowing the request's strings.

use std::collections::HashMap;
use std::time::SystemTime;

use cel::common::types::{CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp};
use cel::common::value::Val;
use chrono::{DateTime, Utc};

use crate::request::AuthzRequest;
use crate::trust::VerifiedPeer;

/// A CEL value that may borrow from the request for `'a`.
pub type CelVal<'a> = Box<dyn Val + 'a>;

/// The value of top-level variable `name` for one request; `None` for an unknown name.
pub fn variable<'a>(
    name: &str,
    peer: &'a VerifiedPeer,
    request: &'a AuthzRequest,
    now: SystemTime,
) -> Option<CelVal<'a>> {
    Some(match name {
        "source" => source_value(peer, request),
        "destination" => destination_value(request),
        "request" => request_value(request),
        "context" => string_map(
            request
                .context_extensions
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
        "now" => timestamp(now),
        _ => return None,
    })
}

fn string(s: &str) -> CelVal<'_> {
    Box::new(CelString::from(s))
}

fn int(i: i64) -> CelVal<'static> {
    Box::new(CelInt::from(i))
}

fn map<'a>(entries: impl IntoIterator<Item = (&'static str, CelVal<'a>)>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(map))
}

fn string_map<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = entries
        .map(|(k, v)| (CelMapKey::from(k), string(v)))
        .collect();
    Box::new(CelMap::from(map))
}

fn list<'a>(items: impl Iterator<Item = CelVal<'a>>) -> CelVal<'a> {
    Box::new(CelList::from(items.collect::<Vec<_>>()))
}

/// `time` as a CEL timestamp; null when chrono cannot represent it (`From<SystemTime>` would
/// panic, and `request.time` comes from the CheckRequest).
fn timestamp(time: SystemTime) -> CelVal<'static> {
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

fn unix_timestamp(secs: i64) -> CelVal<'static> {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(utc) => Box::new(CelTimestamp::from(utc.fixed_offset())),
        None => Box::new(CelNull),
    }
}

fn source_value<'a>(peer: &'a VerifiedPeer, request: &'a AuthzRequest) -> CelVal<'a> {
    let id = &peer.spiffe_id;
    let (namespace, service_account) = id.istio_namespace_and_service_account().unwrap_or(("", ""));
    let certificate = match &peer.svid {
        Some(svid) => map([
            ("serial", string(svid.serial())),
            ("not_before", unix_timestamp(svid.not_before())),
            ("not_after", unix_timestamp(svid.not_after())),
            (
                "dns_names",
                list(svid.dns_names().iter().map(|n| string(n))),
            ),
        ]),
        None => map([]),
    };
    map([
        ("spiffe_id", string(id.as_str())),
        ("trust_domain", string(id.trust_domain())),
        ("path", string(id.path())),
        ("segments", list(id.segments().map(string))),
        ("namespace", string(namespace)),
        ("service_account", string(service_account)),
        ("principal", string(&request.source.principal)),
        ("address", string(&request.source.address)),
        ("port", int(i64::from(request.source.port))),
        ("certificate", certificate),
    ])
}

fn destination_value(request: &AuthzRequest) -> CelVal<'_> {
    let destination = &request.destination;
    map([
        ("principal", string(&destination.principal)),
        ("address", string(&destination.address)),
        ("port", int(i64::from(destination.port))),
    ])
}

fn request_value(request: &AuthzRequest) -> CelVal<'_> {
    let time = match request.time {
        Some(time) => timestamp(time),
        None => Box::new(CelNull),
    };
    let Some(http) = &request.http else {
        // A check from the network (TCP) filter: no HTTP attributes, empty fields.
        return map([
            ("method", string("")),
            ("path", string("")),
            ("query", map([])),
            ("host", string("")),
            ("hostname", string("")),
            ("scheme", string("")),
            ("protocol", string("")),
            ("headers", map([])),
            ("id", string("")),
            ("time", time),
        ]);
    };
    let mut query: HashMap<CelMapKey<'_>, CelVal<'_>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(http.query_string().as_bytes()) {
        // The first occurrence of a repeated parameter wins.
        query
            .entry(CelMapKey::String(CelString::from(k)))
            .or_insert_with(|| Box::new(CelString::from(v)));
    }
    map([
        ("method", string(&http.method)),
        ("path", string(http.path_without_query())),
        ("query", Box::new(CelMap::from(query))),
        ("host", string(&http.host)),
        ("hostname", string(http.hostname())),
        ("scheme", string(&http.scheme)),
        ("protocol", string(&http.protocol)),
        (
            "headers",
            string_map(http.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
        ("id", string(&http.id)),
        ("time", time),
    ])
}

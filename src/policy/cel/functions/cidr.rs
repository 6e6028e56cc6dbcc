//! `in_cidr(address, cidr)`: whether the IP `address` lies in `cidr`, one range or a list of
//! them, IPv4 and IPv6 (RFC 4632 / RFC 4291 prefix notation, `10.0.0.0/8`, `fd00::/8`).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
//! IPv4 client) are the IPv4 address they map, and a range within `::ffff:0:0/96` is the IPv4
//! range it maps: either way, `10.0.0.0/8` holds `::ffff:10.1.2.3`. A range with host bits
//! set (`10.1.2.3/8`) means its network (`10.0.0.0/8`), as Envoy's `CidrRange` does. An
//! address that is not an IP (`""` when Envoy did not say, a host name, an address with a
//! port) is an evaluation error, not a mismatch.

use core::net::IpAddr;
use std::sync::Arc;

use cel::ExecutionError;
use cel::Value;
use cel::common::types::{CelBool, CelString};
use cel::common::value::CowVal;
use ipnet::{IpNet, Ipv4Net};

use super::compiled::{Compile, argument, one_or_list};
use super::{NativeFunction, a, arguments, expect};

/// A set of ranges, each in canonical form (mapped IPv6 ranges as IPv4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cidrs(Vec<IpNet>);

impl Cidrs {
    /// Whether `address` lies in one of the ranges.
    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// Reads one range: an address as the standard library reads it (dotted-decimal IPv4 without
/// leading zeros, which some parsers read as octal), `/` and a prefix length.
fn parse_range(text: &str) -> Result<IpNet, String> {
    let invalid = || {
        format!(
            "{text:?} is not a CIDR range: write an address, \"/\" and a prefix length (\"10.0.0.0/8\", \"fd00::/8\")"
        )
    };
    let (address, prefix) = text.split_once('/').ok_or_else(invalid)?;
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    // Decimal without leading zeros (`/8`, not `/08`), as for the address.
    let digits = (prefix == "0" || !prefix.starts_with('0'))
        && (1..=3).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_digit());
    let prefix: u8 = prefix.parse().ok().filter(|_| digits).ok_or_else(invalid)?;
    let net = IpNet::new(address, prefix).map_err(|_| invalid())?.trunc();
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    })
}

fn compile(cidr: &Value) -> Result<Cidrs, String> {
    let range = |value: &Value| match value {
        Value::String(text) => parse_range(text),
        other => Err(format!(
            "a CIDR range is a string, not {}",
            a(other.type_of())
        )),
    };
    one_or_list(cidr, range).map(Cidrs)
}

pub(crate) const COMPILE: Compile = |value| Ok(Arc::new(compile(value)?));

/// The `in_cidr` function.
pub(crate) fn function() -> NativeFunction {
    Box::new(|ftx| {
        let [address, cidr] = arguments(ftx, "in_cidr", false)?;
        let text: &CelString = expect(address, "in_cidr", "address", "string")?;
        let cidrs = argument(cidr, "in_cidr", compile)?;
        let address: IpAddr = text.inner().parse().map_err(|_| {
            ExecutionError::function_error("in_cidr", "the address is not an IP address")
        })?;
        Ok(CowVal::owned(CelBool::from(cidrs.contains(address))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(ranges: &[&str]) -> Cidrs {
        let list = ranges
            .iter()
            .map(|r| Value::String(Arc::new((*r).to_owned())))
            .collect();
        compile(&Value::List(Arc::new(list))).expect("valid ranges")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP")
    }

    #[test]
    fn ipv4_and_ipv6_ranges() {
        let set = cidrs(&["10.0.0.0/8", "192.168.1.0/24", "fd00::/8"]);
        for inside in ["10.0.0.1", "10.255.255.255", "192.168.1.7", "fd12::1"] {
            assert!(set.contains(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.168.2.1", "fe80::1", "::1"] {
            assert!(!set.contains(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn mapped_addresses_and_ranges_are_ipv4() {
        assert!(cidrs(&["10.0.0.0/8"]).contains(ip("::ffff:10.1.2.3")));
        assert!(cidrs(&["::ffff:10.0.0.0/104"]).contains(ip("10.1.2.3")));
        assert!(!cidrs(&["::ffff:10.0.0.0/104"]).contains(ip("11.1.2.3")));
    }

    #[test]
    fn host_bits_mean_the_network() {
        assert!(cidrs(&["10.1.2.3/8"]).contains(ip("10.9.9.9")));
        assert!(cidrs(&["0.0.0.0/0"]).contains(ip("1.2.3.4")));
        assert!(!cidrs(&["0.0.0.0/0"]).contains(ip("::2")));
    }

    #[test]
    fn invalid_ranges_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0/8",
            "fd00::/129",
            "",
            "x/8",
        ] {
            assert!(
                compile(&Value::String(Arc::new(bad.to_owned()))).is_err(),
                "{bad}"
            );
        }
        assert!(compile(&Value::Int(1)).is_err());
        assert!(compile(&Value::List(Arc::new(vec![Value::Int(1)]))).is_err());
    }
}

//! Bounded resources on the Check path: at most `max_concurrent_checks` Checks decided at
//! once (one more is refused at once, never queued: under overload a fast refusal beats a
//! slow answer Envoy has stopped waiting for), and a deadline per Check — `check_timeout`, or
//! the caller's `grpc-timeout` when shorter. At a limit Envoy gets a gRPC error, not a
//! decision: with `failure_mode_allow: false` it denies with its `status_on_error`.
//!
//! Checks are decided on the decider threads (`deciders`), so the deadline answers on time
//! even while a slow rule runs: DEADLINE_EXCEEDED at the deadline. Evaluation itself is not
//! interrupted (rules are bounded in depth, not in steps), and its slot stays taken until it
//! ends; a decision reached after the deadline answered is recorded with that error, so the
//! audit does not show a decision Envoy never received, and a Check still queued at its
//! deadline is never decided.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;

/// The limits of one server.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    permits: Arc<Semaphore>,
    check_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&LimitsConfig::default())
    }
}

impl Limits {
    pub(super) fn new(config: &LimitsConfig) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(config.max_concurrent_checks.max(1))),
            check_timeout: config.check_timeout,
        }
    }

    /// A slot for one Check, or `None` at `max_concurrent_checks`.
    pub(super) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// The deadline of a Check whose caller sent `grpc_timeout` (the header's value).
    pub(super) fn deadline(&self, grpc_timeout: Option<&str>) -> Duration {
        grpc_timeout
            .and_then(parse_grpc_timeout)
            .map_or(self.check_timeout, |caller| caller.min(self.check_timeout))
    }
}

/// A `grpc-timeout` value (gRPC over HTTP/2: "TimeoutValue TimeoutUnit", at most 8 digits,
/// unit one of H M S m u n).
pub(super) fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = text.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.checked_mul(3600)?),
        "M" => Duration::from_secs(value.checked_mul(60)?),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("200m"), Some(Duration::from_millis(200)));
        assert_eq!(parse_grpc_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789m", "1x", "-1S", "1.5S", "ðS"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
        let limits = Limits::default();
        assert_eq!(limits.deadline(None), Duration::from_secs(1));
        assert_eq!(limits.deadline(Some("200m")), Duration::from_millis(200));
        assert_eq!(limits.deadline(Some("5S")), Duration::from_secs(1));
        assert_eq!(limits.deadline(Some("junk")), Duration::from_secs(1));
    }
}

//! Why Envoy got no decision for a Check: the reasons of `warrant_checks_refused_total`.

/// Why Envoy got no decision for a Check (`warrant_checks_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `limits.max_concurrent_checks`: refused at once.
    Overloaded = 0,
    /// Its deadline (`check_timeout`, or the caller's `grpc-timeout`) passed first.
    Timeout = 1,
    /// The caller cancelled first (Envoy's own timeout, a reset stream), or went away before
    /// its CheckRequest arrived in full.
    Cancelled = 2,
    /// Over `limits.max_request_bytes`: refused before decoding.
    TooLarge = 3,
    /// Not a CheckRequest Warrant can read (undecodable, unsupported compression).
    Malformed = 4,
    /// Cut off by shutdown after `shutdown_grace`.
    Shutdown = 5,
    /// Warrant failed to decide it (a bug: its decider failed).
    Error = 6,
}

impl Refusal {
    /// Every reason, in discriminant order: `refusal as usize` indexes arrays built from it.
    pub const ALL: [Refusal; 7] = [
        Refusal::Overloaded,
        Refusal::Timeout,
        Refusal::Cancelled,
        Refusal::TooLarge,
        Refusal::Malformed,
        Refusal::Shutdown,
        Refusal::Error,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Overloaded => "overloaded",
            Refusal::Timeout => "timeout",
            Refusal::Cancelled => "cancelled",
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::Shutdown => "shutdown",
            Refusal::Error => "error",
        }
    }
}

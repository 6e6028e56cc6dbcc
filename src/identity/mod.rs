//! Workload identity: SPIFFE IDs and X.509-SVIDs.
//!
//! Pure parsing and validation, with no I/O and no transport types, so it can be unit-tested,
//! benchmarked and fuzzed on its own.

pub mod spiffe_id;
pub mod svid;

pub use spiffe_id::{SpiffeId, SpiffeIdError};
pub use svid::{SvidError, X509Svid};

//! Workload identity: SPIFFE IDs, X.509-SVIDs and the trust bundles they are verified against.
//!
//! Pure parsing and validation, with no I/O and no transport types, so it can be unit-tested,
//! benchmarked and fuzzed on its own.

pub mod bundle;
pub mod jwt_key;
pub mod jwt_svid;
pub mod spiffe_id;
pub mod svid;
pub mod xfcc;

pub use bundle::{BundleError, BundleFormat, JwtAuthority, TrustBundle, X509Authority};
pub use jwt_key::{JwsAlgorithm, JwtPublicKey};
pub use jwt_svid::{JwtKeys, JwtSvid, JwtSvidError};
pub use spiffe_id::{SpiffeId, SpiffeIdError};
pub use svid::{SvidError, X509Svid};

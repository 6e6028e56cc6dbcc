//! Forwarded certificates already parsed and verified, per policy (issue 10 §3).
//!
//! A workload presents the same SVID for its whole lifetime, so its parsing and chain
//! verification are done once per distinct certificate and remembered: keyed by the SHA-256 of
//! the forwarded PEM, bounded ([`CAPACITY`] certificates, least recently used evicted), and
//! held by the compiled policy, so a new bundle (a reload) starts from an empty cache. A hit
//! is used only within the window the verification holds for — the latest `notBefore` and the
//! earliest `notAfter` of the leaf, the intermediates and the authorities — and everything
//! that depends on the request or the clock (the principal, the validity window, the lifetime,
//! revocation) is still checked on every Check, so a hit decides exactly as a miss would.
//!
//! Workload tokens (JWT-SVIDs) are remembered the same way ([`TokenCache`]): a token's
//! signature and claims are verified once; its times and revocation on every Check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::{JwtSvid, X509Svid};

/// Most certificates remembered per policy (about 2 KiB each).
pub(super) const CAPACITY: usize = 4096;

/// A certificate that parsed, and — when its trust domain has a bundle — chained to it.
#[derive(Debug)]
pub(super) struct Verified {
    pub svid: Arc<X509Svid>,
    /// Unix seconds during which the chain verification holds.
    pub from: i64,
    pub until: i64,
}

/// The cache of one policy.
pub(super) struct CertificateCache {
    entries: quick_cache::sync::Cache<[u8; 32], Arc<Verified>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CertificateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCache")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Default for CertificateCache {
    fn default() -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(CAPACITY),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

/// The cache key of a forwarded certificate.
pub(super) fn key(certificate: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

impl CertificateCache {
    /// The verified certificate under `key`, if it is remembered and its verification holds
    /// at `now` (Unix seconds).
    pub(super) fn get(&self, key: &[u8; 32], now: i64) -> Option<Arc<Verified>> {
        let found = self
            .entries
            .get(key)
            .filter(|verified| (verified.from..=verified.until).contains(&now));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(super) fn insert(&self, key: [u8; 32], verified: Arc<Verified>) {
        self.entries.insert(key, verified);
    }

    /// (hits, misses) so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// JWT-SVIDs validated under this policy, by the SHA-256 of the token.
pub(super) struct TokenCache(quick_cache::sync::Cache<[u8; 32], Arc<JwtSvid>>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.0.len())
            .finish_non_exhaustive()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(CAPACITY))
    }
}

impl TokenCache {
    pub(super) fn get(&self, key: &[u8; 32]) -> Option<Arc<JwtSvid>> {
        self.0.get(key)
    }

    pub(super) fn insert(&self, key: [u8; 32], svid: Arc<JwtSvid>) {
        self.0.insert(key, svid);
    }
}

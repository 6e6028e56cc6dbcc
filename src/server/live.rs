//! The policy that serves Checks, replaced whole by reloads.
//!
//! A Check takes the current policy with one lock-free load ([`ArcSwap`]) and decides on it to
//! the end, so a reload never changes a policy under a Check: Checks in flight finish on the
//! policy they started with, the next ones see the new one. A reload compiles the complete new
//! policy first; an invalid one is rejected as a whole and the old one keeps serving, its
//! errors logged as `FILE:LINE: …`, counted (`warrant_policy_reloads_total{result="failure"}`)
//! and kept for `/readyz` until a later reload succeeds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};

use crate::audit::Metrics;
use crate::loader::load_policy_with;
use crate::policy::{ExternalBundles, Policy};

/// When the serving policy was loaded, and the last reload failure since.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// When the serving policy was loaded: at start, or by the last reload that replaced it.
    pub loaded_at: SystemTime,
    /// The errors of the last failed reload (`FILE:LINE: …`, one per line) and when, cleared
    /// by the next reload that succeeds or finds the files unchanged.
    pub last_error: Option<(SystemTime, String)>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// A new revision serves.
    Replaced {
        /// The revision that served before.
        from: Arc<str>,
        /// The revision that serves now.
        to: Arc<str>,
    },
    /// The files hold the serving revision.
    Unchanged,
    /// The new policy is invalid; the old one keeps serving.
    Failed(String),
    /// The policy was given, not loaded from files.
    NotReloadable,
}

/// The serving policy.
#[derive(Debug)]
pub struct LivePolicy {
    current: ArcSwap<Policy>,
    /// The policy paths reloads read; empty for a policy given in code.
    paths: Vec<PathBuf>,
    metrics: Arc<Metrics>,
    /// Never touched by a Check.
    status: Mutex<ReloadStatus>,
    /// False once shutdown begins.
    serving: AtomicBool,
    /// The latest bundles of `trust.bundles_from`, which every reload compiles with.
    external: ArcSwap<ExternalBundles>,
}

impl LivePolicy {
    /// `policy`, loaded from `paths`, starts serving; `metrics` count it.
    pub fn new(policy: Policy, paths: Vec<PathBuf>, metrics: Arc<Metrics>) -> Self {
        metrics.set_policy(&policy);
        Self {
            current: ArcSwap::from_pointee(policy),
            paths,
            metrics,
            status: Mutex::new(ReloadStatus {
                loaded_at: SystemTime::now(),
                last_error: None,
            }),
            serving: AtomicBool::new(true),
            external: ArcSwap::default(),
        }
    }

    /// The Workload API delivered new bundles: the next reload compiles with them. Returns
    /// whether they differ from the last ones.
    pub fn set_external_bundles(&self, bundles: ExternalBundles) -> bool {
        if **self.external.load() == bundles {
            return false;
        }
        self.external.store(Arc::new(bundles));
        true
    }

    /// A policy that never reloads (tests, benchmarks, embedding).
    pub fn fixed(policy: Policy, metrics: Arc<Metrics>) -> Self {
        Self::new(policy, Vec::new(), metrics)
    }

    /// The serving policy: one lock-free load. Hold it for one Check.
    pub fn current(&self) -> Guard<Arc<Policy>> {
        self.current.load()
    }

    /// The metrics that count this policy's decisions.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The files the policy is read from, for the watcher: the policy paths, and every file
    /// the serving policy loaded.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.paths.clone();
        files.extend(self.current().files().iter().cloned());
        files
    }

    /// Loads the policy again and, when it is valid and differs, makes it serve. Reads
    /// files: call it off the async workers.
    pub fn reload(&self) -> Reload {
        if self.paths.is_empty() {
            return Reload::NotReloadable;
        }
        let external = self.external.load();
        let outcome = match load_policy_with(&self.paths, &external) {
            Ok((policy, _)) => {
                let from = Arc::clone(self.current().revision());
                if **policy.revision() == *from {
                    self.clear_error();
                    return Reload::Unchanged;
                }
                for warning in policy.warnings() {
                    tracing::warn!("{warning}");
                }
                let to = Arc::clone(policy.revision());
                self.metrics.set_policy(&policy);
                self.current.store(Arc::new(policy));
                let mut status = self.lock_status();
                status.loaded_at = SystemTime::now();
                status.last_error = None;
                Reload::Replaced { from, to }
            }
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!("{error}");
                }
                let text = errors.to_string();
                self.lock_status().last_error = Some((SystemTime::now(), text.clone()));
                Reload::Failed(text)
            }
        };
        match &outcome {
            Reload::Replaced { from, to } => {
                self.metrics.reloaded(true);
                let current = self.current();
                tracing::info!(
                    from = %from,
                    to = %to,
                    rules = current.rule_count(),
                    decided_on = super::decided_on(&current),
                    "policy reloaded"
                );
            }
            Reload::Failed(_) => {
                self.metrics.reloaded(false);
                tracing::error!(
                    revision = %self.current().revision(),
                    "policy reload failed; the previous policy keeps serving"
                );
            }
            Reload::Unchanged | Reload::NotReloadable => {}
        }
        outcome
    }

    fn clear_error(&self) {
        self.lock_status().last_error = None;
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        // The status holds no invariant a panic could break: use it as it is.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the serving policy was loaded, and the last reload failure.
    pub fn status(&self) -> ReloadStatus {
        self.lock_status().clone()
    }

    /// Ready: the serving revision; not ready: why.
    pub fn readiness(&self) -> Result<Arc<str>, &'static str> {
        if !self.serving.load(Ordering::Acquire) {
            return Err("shutting down");
        }
        let policy = self.current();
        if !policy.trust().pending_bundles().is_empty() {
            return Err(
                "waiting for trust bundles from the Workload API (trust.bundles_from): callers of those trust domains are untrusted until they arrive",
            );
        }
        Ok(Arc::clone(policy.revision()))
    }

    /// Marks the server as shutting down: readiness fails from now on.
    pub fn stop_serving(&self) {
        self.serving.store(false, Ordering::Release);
    }
}

//! What triggers a policy reload: SIGHUP, and with `reload.watch` a change to any file the
//! policy loads. Reloads run one at a time, off the async workers.
//!
//! The watcher watches the *directories* holding the policy and every file it loads (data
//! files, bundles), not the files: an editor replaces a file by renaming a new one over it,
//! and a Kubernetes ConfigMap volume swaps its `..data` symlink atomically, so the file
//! watched would be gone and the change missed. Any change there starts the debounce; when
//! the directories stay quiet for `debounce`, the policy is reloaded, and a reload that finds
//! the same revision changes nothing. Directories of files a new policy adds are watched from
//! then on.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::live::LivePolicy;
use crate::config::ReloadConfig;

/// Why a reload happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Hangup,
    Changed,
    /// New bundles from `trust.bundles_from`: reload at once.
    Bundles,
}

/// Asks the reloads for one (a `trust.bundles_from` source delivered new bundles).
#[derive(Debug, Clone)]
pub(super) struct ReloadTrigger(mpsc::Sender<Trigger>);

impl ReloadTrigger {
    /// Reloads the policy soon (once for a burst).
    pub(super) fn bundles_changed(&self) {
        // Full: a reload is already due.
        let _ = self.0.try_send(Trigger::Bundles);
    }
}

/// The reload triggers of one server, set up before it serves (so no change made after
/// [`Reloads::start`] returns is missed).
pub(super) struct Reloads {
    policy: Arc<LivePolicy>,
    debounce: std::time::Duration,
    tx: mpsc::Sender<Trigger>,
    rx: mpsc::Receiver<Trigger>,
    watch: Option<Watch>,
}

impl std::fmt::Debug for Reloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloads")
            .field("debounce", &self.debounce)
            .field(
                "watching",
                &self.watch.as_ref().map(|w| w.directories.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Reloads {
    /// Starts watching `policy`'s files when `settings.watch` is on.
    pub(super) fn start(policy: Arc<LivePolicy>, settings: &ReloadConfig) -> Self {
        let (tx, rx) = mpsc::channel::<Trigger>(64);
        let mut watch = settings.watch.then(|| Watch::start(tx.clone())).flatten();
        if let Some(watch) = &mut watch {
            watch.add(&policy);
        }
        Self {
            policy,
            debounce: settings.debounce,
            tx,
            rx,
            watch,
        }
    }

    /// A handle to ask for a reload.
    pub(super) fn trigger(&self) -> ReloadTrigger {
        ReloadTrigger(self.tx.clone())
    }

    /// Reloads on SIGHUP and on changes, until the returned future is dropped.
    pub(super) async fn run(self) {
        let Self {
            policy,
            debounce,
            tx,
            mut rx,
            mut watch,
        } = self;
        let _hangups = AbortOnDrop(tokio::spawn(hangups(tx)));
        run(policy, debounce, &mut rx, &mut watch).await;
    }
}

async fn run(
    policy: Arc<LivePolicy>,
    debounce: std::time::Duration,
    rx: &mut mpsc::Receiver<Trigger>,
    watcher: &mut Option<Watch>,
) {
    while let Some(trigger) = rx.recv().await {
        if trigger == Trigger::Changed {
            // Wait for the burst to end: every new change restarts the wait. A SIGHUP in
            // the meantime reloads at once.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(Trigger::Changed)) => continue,
                    Ok(Some(Trigger::Hangup | Trigger::Bundles)) | Err(_) => break,
                    Ok(None) => return,
                }
            }
        } else if trigger == Trigger::Hangup {
            tracing::info!("SIGHUP: reloading the policy");
        }
        let reloading = Arc::clone(&policy);
        let _ = tokio::task::spawn_blocking(move || reloading.reload()).await;
        if let Some(watch) = watcher {
            watch.add(&policy);
        }
    }
}

/// Stops a task when dropped (when the reloads stop, so does the SIGHUP listener).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn hangups(tx: mpsc::Sender<Trigger>) {
    #[cfg(unix)]
    {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload by restarting");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            if tx.send(Trigger::Hangup).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    drop(tx);
}

/// The file watcher, the directories it watches (each once, by its resolved path, with the
/// identity of the directory found there) and the paths in them that matter.
struct Watch {
    watcher: RecommendedWatcher,
    directories: HashMap<PathBuf, Option<DirectoryId>>,
    interest: Arc<std::sync::RwLock<Interest>>,
    tx: mpsc::Sender<Trigger>,
}

/// Which directory is at a path (device and inode): a directory replaced whole is another one.
type DirectoryId = (u64, u64);

fn directory_id(path: &Path) -> Option<DirectoryId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Which changes reload the policy: to a file it loaded (by the path given and by the path a
/// symlink resolves to), to a `*.yaml` of a policy directory, to a `..`-named entry (a
/// Kubernetes ConfigMap's `..data` swap), or to a watched directory itself (replaced whole).
/// Anything else in those directories — a decision log or Warrant's own log written next to
/// the policy — is ignored.
#[derive(Debug, Default)]
struct Interest {
    files: HashSet<PathBuf>,
    policy_directories: HashSet<PathBuf>,
    directories: HashSet<PathBuf>,
}

impl Interest {
    fn matters(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        self.files.contains(path)
            || self.directories.contains(path)
            || name.starts_with("..")
            || (yaml
                && path
                    .parent()
                    .is_some_and(|parent| self.policy_directories.contains(parent)))
    }
}

/// `path` absolute and without `.` segments (symlinks kept).
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

impl Watch {
    fn start(tx: mpsc::Sender<Trigger>) -> Option<Self> {
        let interest = Arc::new(std::sync::RwLock::new(Interest::default()));
        let filter = Arc::clone(&interest);
        let changed = tx.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            let relevant = match event {
                Ok(event) => {
                    changes(&event.kind) && {
                        let interest = filter
                            .read()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        event.paths.iter().any(|path| interest.matters(path))
                    }
                }
                // An overflowed or failed watch may have missed a change.
                Err(_) => true,
            };
            if relevant {
                // Full: a reload is already due.
                let _ = tx.try_send(Trigger::Changed);
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(Self {
                watcher,
                directories: HashMap::new(),
                interest,
                tx: changed,
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot watch the policy files; reload with SIGHUP");
                None
            }
        }
    }

    /// Watches what `policy` loads: the directories of its files (where symlinks point too),
    /// the policy directories, and their parents (a directory replaced whole shows there).
    /// Called after every reload, so a replaced directory is watched again.
    fn add(&mut self, policy: &LivePolicy) {
        let mut interest = Interest::default();
        let mut directories = HashSet::new();
        for file in policy.watched_files() {
            let file = absolute(&file);
            let mut paths = vec![file.clone()];
            if let Ok(resolved) = std::fs::canonicalize(&file) {
                paths.push(resolved);
            }
            for path in paths {
                let directory = if path.is_dir() {
                    interest.policy_directories.insert(path.clone());
                    path.clone()
                } else {
                    interest.files.insert(path.clone());
                    match path.parent() {
                        Some(parent) => parent.to_path_buf(),
                        None => continue,
                    }
                };
                interest.directories.insert(directory.clone());
                if let Some(parent) = directory.parent() {
                    directories.insert(parent.to_path_buf());
                }
                directories.insert(directory);
            }
        }
        *self
            .interest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = interest;
        // Watch every directory again: one replaced since is a new directory at the same path
        // (watching a directory watched already keeps its watch). Never unwatch one still
        // needed first: a change made in between would be missed.
        //
        // Each directory is watched once, by its resolved path: two paths to one directory
        // (through a symlink) would share one kernel watch, and forgetting either would end it.
        let directories: HashSet<PathBuf> = directories
            .into_iter()
            .map(|directory| std::fs::canonicalize(&directory).unwrap_or(directory))
            .collect();
        let stale: Vec<PathBuf> = self
            .directories
            .keys()
            .filter(|directory| !directories.contains(*directory))
            .cloned()
            .collect();
        for directory in stale {
            let _ = self.watcher.unwatch(&directory);
            self.directories.remove(&directory);
        }
        let mut replaced = false;
        for directory in directories {
            let id = directory_id(&directory);
            match self.watcher.watch(&directory, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(directory = %directory.display(), "watching for policy changes");
                    if let Some(before) = self.directories.insert(directory, id) {
                        replaced |= before != id;
                    }
                }
                Err(error) => tracing::warn!(
                    directory = %directory.display(),
                    %error,
                    "cannot watch; changes there need a SIGHUP"
                ),
            }
        }
        // A directory replaced since it was last watched may have changed again between the
        // reload reading it and this watch: look once more (a reload finding the same
        // revision changes nothing).
        if replaced {
            let _ = self.tx.try_send(Trigger::Changed);
        }
    }
}

/// Whether an event may have changed a file: anything but reading.
fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

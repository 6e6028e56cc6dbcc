//! The decision-log sink: one JSON line per decision, written on its own thread.
//!
//! A file log follows `logrotate`: it is reopened on SIGHUP ([`super::Auditor::reopen_decision_log`])
//! and whenever the path no longer names the open file (renamed or deleted by a rotation
//! without a signal; checked before each burst), so no line is lost: lines written before the
//! rotation are in the rotated file, the next ones in the new file at the path.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::metrics::{Metrics, Sink};
use super::{AuditError, DecisionLogTarget, Message, QUEUE_CAPACITY, SINK_POLL};

/// A burst is written once it reaches this size, even if more records are queued.
const MAX_BURST_BYTES: usize = 256 * 1024;

/// Where lines go.
enum Output {
    Stream(Box<dyn Write + Send>),
    File(LogFile),
}

/// A decision-log file and the identity of what was opened.
struct LogFile {
    path: PathBuf,
    file: File,
    /// (device, inode) of the open file, on Unix.
    id: Option<(u64, u64)>,
    /// After a failed reopen, when to try again unasked (a SIGHUP tries at once).
    retry_at: Option<std::time::Instant>,
}

/// How long after a failed reopen the path is checked again unasked.
const REOPEN_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

impl LogFile {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let id = file_id(&file.metadata()?);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            id,
            retry_at: None,
        })
    }

    /// Whether the path still names the open file (or a reopen failed a moment ago).
    fn is_current(&self) -> bool {
        if self
            .retry_at
            .is_some_and(|at| std::time::Instant::now() < at)
        {
            return true;
        }
        match (self.id, std::fs::metadata(&self.path)) {
            (Some(open), Ok(now)) => file_id(&now) == Some(open),
            (Some(_), Err(_)) => false,
            (None, _) => true,
        }
    }

    /// Opens the path again; on failure keeps writing to the open file (nothing is lost, but
    /// lines go on landing in the rotated file), logs and counts it, and tries again unasked
    /// after [`REOPEN_RETRY`].
    fn reopen(&mut self, metrics: &Metrics) {
        match Self::open(&self.path) {
            Ok(reopened) => *self = reopened,
            Err(error) => {
                metrics.decision_log_reopen_failed();
                self.retry_at = Some(std::time::Instant::now() + REOPEN_RETRY);
                tracing::error!(
                    path = %self.path.display(),
                    %error,
                    "cannot reopen the decision log; writing on to the file already open"
                );
            }
        }
    }
}

#[cfg(unix)]
fn file_id(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stream(stream) => stream.write(bytes),
            Output::File(log) => log.file.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stream(stream) => stream.flush(),
            Output::File(log) => log.file.flush(),
        }
    }
}

/// Opens `target` and starts the writer thread; returns its queue.
pub(super) fn start(
    target: &DecisionLogTarget,
    metrics: Arc<Metrics>,
) -> Result<SyncSender<Message>, AuditError> {
    let output =
        match target {
            DecisionLogTarget::Stdout => Output::Stream(Box::new(std::io::stdout())),
            DecisionLogTarget::Stderr => Output::Stream(Box::new(std::io::stderr())),
            DecisionLogTarget::File(path) => Output::File(LogFile::open(path).map_err(
                |source| AuditError::DecisionLog {
                    path: path.clone(),
                    source,
                },
            )?),
            DecisionLogTarget::Off => Output::Stream(Box::new(std::io::sink())),
        };
    let (tx, rx) = sync_channel(QUEUE_CAPACITY);
    std::thread::Builder::new()
        .name("warrant-decision-log".into())
        .spawn(move || write(rx, output, &metrics))
        .map_err(AuditError::Thread)?;
    Ok(tx)
}

/// Drains `rx` into `output` until every sender is gone. Whatever is queued is written as one
/// burst with one `write_all` and one `flush`, so a busy log costs one syscall per burst
/// rather than per line. A burst that fails to write or flush counts all its lines as
/// dropped: with no user-space buffer in between, a full or failing disk shows up in
/// `warrant_audit_dropped_total{sink="decision_log"}` at once, not a buffer later.
fn write(rx: Receiver<Message>, mut output: Output, metrics: &Metrics) {
    let mut burst = Vec::with_capacity(MAX_BURST_BYTES);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut lines = 0u64;
        let mut reopen = false;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Record(record) => {
                    record.write_json_line(&mut burst);
                    burst.push(b'\n');
                    lines += 1;
                }
                Message::Flush(ack) => acks.push(ack),
                Message::Reopen => reopen = true,
            }
            next = if burst.len() < MAX_BURST_BYTES && !reopen {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if let Output::File(log) = &mut output
            && !reopen
            && lines > 0
            && !log.is_current()
        {
            // Rotated away without a signal: the lines gathered go to the new file.
            log.reopen(metrics);
        }
        if lines > 0
            && output
                .write_all(&burst)
                .and_then(|()| output.flush())
                .is_err()
        {
            metrics.dropped(Sink::DecisionLog, lines);
        }
        metrics.queued(Sink::DecisionLog, -i64::try_from(lines).unwrap_or(i64::MAX));
        burst.clear();
        if reopen && let Output::File(log) = &mut output {
            log.reopen(metrics);
        }
        for ack in acks.drain(..) {
            let _ = ack.try_send(());
        }
        if lines > 0 {
            // Let the next burst gather instead of waiting on the queue (see SINK_POLL).
            std::thread::sleep(SINK_POLL);
        }
    }
}

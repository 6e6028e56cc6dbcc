//! The decision-log sink: one JSON line per decision, written on its own thread.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::metrics::{Metrics, Sink};
use super::{AuditError, DecisionLogTarget, Message, QUEUE_CAPACITY, SINK_POLL};

/// A burst is written once it reaches this size, even if more records are queued.
const MAX_BURST_BYTES: usize = 256 * 1024;

/// Opens `target` and starts the writer thread; returns its queue.
pub(super) fn start(
    target: &DecisionLogTarget,
    metrics: Arc<Metrics>,
) -> Result<SyncSender<Message>, AuditError> {
    let writer: Box<dyn Write + Send> = match target {
        DecisionLogTarget::Stdout => Box::new(std::io::stdout()),
        DecisionLogTarget::Stderr => Box::new(std::io::stderr()),
        DecisionLogTarget::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| AuditError::DecisionLog {
                    path: path.clone(),
                    source,
                })?,
        ),
        DecisionLogTarget::Off => Box::new(std::io::sink()),
    };
    let (tx, rx) = sync_channel(QUEUE_CAPACITY);
    std::thread::Builder::new()
        .name("warrant-decision-log".into())
        .spawn(move || write(rx, writer, &metrics))
        .map_err(AuditError::Thread)?;
    Ok(tx)
}

/// Drains `rx` into `writer` until every sender is gone. Whatever is queued is written as one
/// burst with one `write_all` and one `flush`, so a busy log costs one syscall per burst
/// rather than per line. A burst that fails to write or flush counts all its lines as
/// dropped: with no user-space buffer in between, a full or failing disk shows up in
/// `warrant_audit_dropped_total{sink="decision_log"}` at once, not a buffer later.
fn write(rx: Receiver<Message>, mut writer: Box<dyn Write + Send>, metrics: &Metrics) {
    let mut burst = Vec::with_capacity(MAX_BURST_BYTES);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut lines = 0u64;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Record(record) => {
                    record.write_json_line(&mut burst);
                    burst.push(b'\n');
                    lines += 1;
                }
                Message::Flush(ack) => acks.push(ack),
            }
            next = if burst.len() < MAX_BURST_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if lines > 0
            && writer
                .write_all(&burst)
                .and_then(|()| writer.flush())
                .is_err()
        {
            metrics.dropped(Sink::DecisionLog, lines);
        }
        burst.clear();
        for ack in acks.drain(..) {
            let _ = ack.try_send(());
        }
        if lines > 0 {
            // Let the next burst gather instead of waiting on the queue (see SINK_POLL).
            std::thread::sleep(SINK_POLL);
        }
    }
}

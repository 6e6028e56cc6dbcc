//! The threads that decide Checks, off the async runtime's workers.
//!
//! Deciding a Check is synchronous CPU work (the trust stage, then CEL) that cannot be
//! interrupted. On the async workers a slow rule would stall everything else they run: gRPC
//! health, the admin listener's `/readyz`, signal handling, the deadline timers and the
//! accounting of `max_concurrent_checks`. Here it stalls only other decisions, while the
//! workers keep answering: a Check past its deadline gets DEADLINE_EXCEEDED on time, one over
//! `max_concurrent_checks` is refused at once, and shutdown is bounded by `shutdown_grace`.
//!
//! Every Check is decided here: what a rule costs depends on the request (a 1 MiB body searched
//! once per entry of a list, a `replace` over a long path), so no policy is known at load to be
//! cheap enough for the workers. The hop costs about a sixth of the throughput on 2 cores.
//!
//! Who answers a Check is settled once by [`Answer`]: the decider when it finishes in time,
//! else the deadline, or the caller's cancelling first (Envoy's own timeout, a reset stream).
//! A decision that loses is audited as unanswered, never sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crossbeam_channel::{Receiver, Sender};

/// Stack of each decider thread: room for the deepest rule a policy may hold
/// (`policy::MAX_DEPTH`) without moving its evaluation to a fresh stack, even in a debug build.
pub const DECIDER_STACK: usize = 8 << 20;

/// A unit of work for a decider.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of decider threads, one per CPU this process may use. The threads end when
/// the pool is dropped and the jobs queued before have run.
#[derive(Debug)]
pub struct Deciders {
    jobs: Sender<Job>,
}

impl Deciders {
    /// Starts `threads` deciders (at least one).
    ///
    /// # Errors
    /// The operating system refused to start a thread.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for index in 0..threads.max(1) {
            let queue: Receiver<Job> = queue.clone();
            std::thread::Builder::new()
                .name(format!("warrant-decider-{index}"))
                .stack_size(DECIDER_STACK)
                .spawn(move || {
                    for job in queue {
                        // A panic is a bug; it must not take this thread, and every Check
                        // queued after, with it. The Check's answer is dropped unsent: its
                        // caller gets INTERNAL, which Envoy treats as a failure (a deny).
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// One thread per CPU this process may use (its affinity and cgroup quota).
    ///
    /// # Errors
    /// The operating system refused to start a thread.
    pub fn per_cpu() -> std::io::Result<Self> {
        Self::start(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Queues `job`; `false` when no decider is left to run it.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.send(Box::new(job)).is_ok()
    }
}

/// Who answers one Check, settled once by whichever of the decider, the deadline and the
/// caller's cancelling comes first; and the Check's slot of `max_concurrent_checks`, freed by
/// whoever ends the Check — at once when it is answered while still queued, by the decider
/// when it was deciding.
#[derive(Debug)]
pub struct Answer<S> {
    state: AtomicU8,
    slot: std::sync::Mutex<Option<S>>,
}

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const DECIDED: u8 = 2;
const TIMED_OUT_QUEUED: u8 = 3;
const CANCELLED_QUEUED: u8 = 4;
const TIMED_OUT_DECIDING: u8 = 5;
const CANCELLED_DECIDING: u8 = 6;

/// How a Check was answered when its decider came too late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preempted {
    /// DEADLINE_EXCEEDED, at the deadline.
    TimedOut,
    /// The caller cancelled the call (Envoy's own timeout, a reset stream or connection).
    Cancelled,
}

/// Whether a preempted Check was still queued (never decided) or being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum While {
    /// Still waiting for a decider: it was never decided.
    Queued,
    /// A decider had taken it and was deciding.
    Deciding,
}

impl<S> Answer<S> {
    /// A Check nobody has answered yet, holding `slot` until it ends.
    pub fn pending(slot: S) -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU8::new(PENDING),
            slot: std::sync::Mutex::new(Some(slot)),
        })
    }

    /// A decider takes the Check: `false` when it was answered (or cancelled) while queued,
    /// and must not be decided.
    pub fn start(&self) -> bool {
        self.settle(PENDING, STARTED)
    }

    /// The decider claims the answer: `Ok` when its decision is what the caller gets, else
    /// how the caller was answered instead.
    pub fn claim_decided(&self) -> Result<(), Preempted> {
        if self.settle(STARTED, DECIDED) {
            return Ok(());
        }
        Err(match self.state.load(Ordering::Acquire) {
            CANCELLED_DECIDING | CANCELLED_QUEUED => Preempted::Cancelled,
            _ => Preempted::TimedOut,
        })
    }

    /// The deadline claims the answer: `Some` when the caller gets DEADLINE_EXCEEDED, with
    /// whether the Check was still queued (then its slot is freed now).
    pub fn time_out(&self) -> Option<While> {
        self.preempt(TIMED_OUT_QUEUED, TIMED_OUT_DECIDING)
    }

    /// The caller went away before anyone answered: `Some` with whether the Check was still
    /// queued (then its slot is freed now); `None` once answered.
    pub fn cancel(&self) -> Option<While> {
        self.preempt(CANCELLED_QUEUED, CANCELLED_DECIDING)
    }

    /// Settles the Check as failed (its decider is gone) and frees its slot: no later
    /// claim, deadline or cancel applies.
    pub fn abandon(&self) {
        self.state.store(DECIDED, Ordering::Release);
        self.release();
    }

    /// Frees the Check's slot (once; later calls do nothing).
    pub fn release(&self) {
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(slot);
    }

    fn preempt(&self, queued: u8, deciding: u8) -> Option<While> {
        if self.settle(PENDING, queued) {
            self.release();
            Some(While::Queued)
        } else if self.settle(STARTED, deciding) {
            Some(While::Deciding)
        } else {
            None
        }
    }

    fn settle(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_claim_wins_and_the_slot_is_freed_by_whoever_ends_the_check() {
        let slot = Arc::new(());
        // Decided in time.
        let answer = Answer::pending(Arc::clone(&slot));
        assert!(answer.start());
        assert_eq!(answer.claim_decided(), Ok(()));
        assert_eq!(answer.time_out(), None);
        assert_eq!(answer.cancel(), None);
        assert_eq!(Arc::strong_count(&slot), 2, "the decider frees it");
        answer.release();
        assert_eq!(Arc::strong_count(&slot), 1);
        // Timed out while queued: freed at once, never started.
        let answer = Answer::pending(Arc::clone(&slot));
        assert_eq!(answer.time_out(), Some(While::Queued));
        assert_eq!(Arc::strong_count(&slot), 1);
        assert!(!answer.start());
        assert_eq!(answer.cancel(), None);
        // Cancelled while deciding: the decider keeps the slot and learns why.
        let answer = Answer::pending(Arc::clone(&slot));
        assert!(answer.start());
        assert_eq!(answer.cancel(), Some(While::Deciding));
        assert_eq!(Arc::strong_count(&slot), 2);
        assert_eq!(answer.time_out(), None);
        assert_eq!(answer.claim_decided(), Err(Preempted::Cancelled));
        // Timed out while deciding.
        let answer = Answer::pending(Arc::clone(&slot));
        assert!(answer.start());
        assert_eq!(answer.time_out(), Some(While::Deciding));
        assert_eq!(answer.claim_decided(), Err(Preempted::TimedOut));
        // Cancelled while queued.
        let answer = Answer::pending(Arc::clone(&slot));
        assert_eq!(answer.cancel(), Some(While::Queued));
        assert!(!answer.start());
    }

    #[test]
    fn jobs_run_on_the_deciders_and_threads_end_with_the_pool() {
        let deciders = Deciders::start(2).unwrap();
        let (done, results) = std::sync::mpsc::channel();
        for n in 0..10 {
            let done = done.clone();
            assert!(deciders.submit(move || {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = done.send((n, name));
            }));
        }
        drop(done);
        drop(deciders);
        let mut seen: Vec<_> = results.iter().collect();
        seen.sort();
        assert_eq!(seen.len(), 10);
        assert!(seen.iter().all(|(_, name)| {
            name.as_deref()
                .is_some_and(|n| n.starts_with("warrant-decider-"))
        }));
    }
}

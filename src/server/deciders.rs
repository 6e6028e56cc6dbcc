//! The threads that decide Checks, off the async runtime's workers.
//!
//! Deciding a Check is synchronous CPU work (the trust stage, then CEL) that cannot be
//! interrupted. On the async workers a slow rule would stall everything else they run: gRPC
//! health, the admin listener's `/readyz`, signal handling, the deadline timers and the
//! accounting of `max_concurrent_checks`. Here it stalls only other decisions, while the
//! workers keep answering: a Check past its deadline gets DEADLINE_EXCEEDED on time, one over
//! `max_concurrent_checks` is refused at once, and shutdown is bounded by `shutdown_grace`.
//!
//! Who answers a Check is settled once by [`Answer`]: the decider when it finishes in time,
//! the deadline otherwise; a decision that loses is audited as late, never sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::policy::Policy;

/// Stack of each decider thread: room for the deepest rule a policy may hold
/// (`policy::MAX_DEPTH`) without moving its evaluation to a fresh stack, even in a debug build.
pub const DECIDER_STACK: usize = 8 << 20;

/// The largest [`Policy::loop_bound`] decided on the async workers: a thousand macro
/// iterations take well under a millisecond in a release build.
pub const INLINE_LOOP_BOUND: u64 = 1_000;

/// Whether Checks of `policy` go to the deciders: when its rules may loop more than
/// [`INLINE_LOOP_BOUND`] times, or as often as a request makes them (a macro over
/// `request.headers`). Other policies' evaluation is bounded by the request's size, and is
/// cheaper decided where the request arrived.
pub fn needed(policy: &Policy) -> bool {
    policy
        .loop_bound()
        .is_none_or(|bound| bound > INLINE_LOOP_BOUND)
}

/// Where Checks of `policy` are decided, for logs and the status page: `"decider threads"`
/// or `"async workers"`.
pub fn placement(policy: &Policy) -> &'static str {
    if needed(policy) {
        "decider threads"
    } else {
        "async workers"
    }
}

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

/// Who answers one Check: settled once, by whichever of the decider and the deadline comes
/// first.
#[derive(Debug, Default)]
pub struct Answer(AtomicU8);

const PENDING: u8 = 0;
const DECIDED: u8 = 1;
const TIMED_OUT: u8 = 2;

impl Answer {
    /// A Check nobody has answered yet.
    pub fn pending() -> Arc<Self> {
        Arc::new(Self(AtomicU8::new(PENDING)))
    }

    /// The decider claims the answer: `true` when its decision is what the caller gets.
    pub fn claim_decided(&self) -> bool {
        self.settle(DECIDED)
    }

    /// The deadline claims the answer: `true` when the caller gets DEADLINE_EXCEEDED.
    pub fn claim_timed_out(&self) -> bool {
        self.settle(TIMED_OUT)
    }

    /// Whether the deadline has answered already (a decider skips such a queued Check).
    pub fn timed_out(&self) -> bool {
        self.0.load(Ordering::Acquire) == TIMED_OUT
    }

    fn settle(&self, outcome: u8) -> bool {
        self.0
            .compare_exchange(PENDING, outcome, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_claim_wins_and_only_once() {
        let answer = Answer::pending();
        assert!(!answer.timed_out());
        assert!(answer.claim_decided());
        assert!(!answer.claim_timed_out());
        assert!(!answer.claim_decided());
        assert!(!answer.timed_out());
        let answer = Answer::pending();
        assert!(answer.claim_timed_out());
        assert!(answer.timed_out());
        assert!(!answer.claim_decided());
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

//! The one writer. A dedicated thread owns the only read-write connection,
//! takes batches from a bounded queue and commits everything pending (up to
//! `group_batches_max`) in ONE `BEGIN IMMEDIATE` transaction: group commit,
//! so many concurrent sagas share one fsync. Each batch runs inside its own
//! SAVEPOINT: a batch that breaks a rule is rolled back and answered with its
//! error while the others commit. Every sender is answered only after COMMIT
//! (I5). When the disk itself fails (or a commit does not answer in time)
//! the store is poisoned: it refuses all further writes until restarted.
//! This file never looks inside a batch; `batch.rs` does.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, DropBehavior, TransactionBehavior};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::{StoreConfig, StoreError, WriteBatch, batch};
use crate::cpu_time;

/// What a sender of one batch is told.
pub(super) type Answer = Result<(), StoreError>;

/// How commits have gone so far (for `calsaga bench` and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Transactions committed (one fsync each).
    pub commits: u64,
    /// Batches answered by those commits (committed or refused alone).
    pub batches: u64,
    /// The most batches one commit carried.
    pub largest_group: u64,
    /// Database pages those commits wrote to the log (WAL frames): what a
    /// commit costs beyond its fsync.
    pub pages: u64,
    /// Time the writer spent applying those commits' batches, and in their
    /// COMMIT (log writes, fsync, checkpoints), in nanoseconds: with the
    /// time a phase took, where a step's time goes.
    pub apply_ns: u64,
    pub commit_ns: u64,
    /// CPU time of the writer thread in those commits (applying and
    /// COMMIT, the kernel's share of the log writes included), in
    /// nanoseconds: what they cost the machine apart from waiting on the
    /// disk, and what bounds commits when many sagas share each one.
    pub cpu_ns: u64,
}

/// Where one group's time went on the writer thread.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    apply: Duration,
    commit: Duration,
    cpu: Duration,
}

impl Spent {
    /// Runs `f`, adding its time to `apply`.
    fn applying<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.apply += started.elapsed();
        out
    }

    /// Commits `tx`, adding the time to `commit`.
    fn committing(&mut self, tx: rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        let started = Instant::now();
        let out = tx.commit().map_err(fatal);
        self.commit += started.elapsed();
        out
    }
}

/// Told the duration of every committed transaction (metrics). Called on the
/// writer thread between commits: keep it quick and never block.
pub trait CommitObserver: Send + Sync {
    fn committed(&self, elapsed: Duration);
}

pub(super) enum Reply {
    /// From async code, with the runtime it was sent from.
    Async(oneshot::Sender<Answer>, Option<Handle>),
    Blocking(std_mpsc::SyncSender<Answer>),
}

impl Reply {
    fn send(self, answer: Answer) {
        // A receiver that is gone gave up waiting; the outcome stays in the
        // database either way, so there is nobody left to tell.
        match self {
            Reply::Async(tx, _) => drop(tx.send(answer)),
            Reply::Blocking(tx) => drop(tx.send(answer)),
        }
    }
}

/// Answers for async senders, sent when dropped. Waking a task from this
/// thread takes the runtime's injection lock and often a futex call to wake
/// a worker; with 64 sagas at a time that was a tenth of the writer's time.
/// So a group's answers go to one task on the senders' runtime, which wakes
/// them all from inside it. Should that task never run (its runtime is
/// shutting down), dropping it still sends every answer. The task also
/// frees the batches, after answering: they were allocated on the runtime's
/// threads, and freeing them here took the allocator's lock of their arena
/// from the writer.
#[derive(Default)]
struct Answers {
    replies: Vec<(oneshot::Sender<Answer>, Answer)>,
    batches: Vec<WriteBatch>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        for (tx, answer) in self.replies.drain(..) {
            drop(tx.send(answer));
        }
    }
}

/// Sends every answer of a committed group: the async senders of the first
/// async sender's runtime from a task of that runtime when there are
/// several, every other sender at once (another runtime may not be running
/// tasks right now, and its senders must not wait for it).
pub(super) fn answer_group(group: Vec<Job>, answers: Vec<Answer>) {
    let mut later = Answers::default();
    let mut runtime: Option<Handle> = None;
    for (Job { batch, reply }, answer) in group.into_iter().zip(answers) {
        match reply {
            Reply::Async(tx, Some(handle))
                if runtime.get_or_insert_with(|| handle.clone()).id() == handle.id() =>
            {
                later.replies.push((tx, answer));
                later.batches.push(batch);
            }
            other => other.send(answer),
        }
    }
    match runtime {
        Some(handle) if later.replies.len() > 1 => drop(handle.spawn(async move { drop(later) })),
        _ => drop(later),
    }
}

pub(super) struct Job {
    pub(super) batch: WriteBatch,
    pub(super) reply: Reply,
}

/// State shared by the writer thread and the senders.
#[derive(Default)]
struct Shared {
    poison: OnceLock<StoreError>,
    commits: AtomicU64,
    batches: AtomicU64,
    largest_group: AtomicU64,
    pages: AtomicU64,
    apply_ns: AtomicU64,
    commit_ns: AtomicU64,
    cpu_ns: AtomicU64,
    /// Async commits waiting for their answer.
    in_flight: AtomicUsize,
    /// Signalled after the writer takes jobs off a full queue, for blocking
    /// senders waiting for room (async senders are woken by tokio).
    room: Mutex<()>,
    room_freed: Condvar,
    /// Set once (by `serve`); the writer reads it after each commit.
    observer: OnceLock<Arc<dyn CommitObserver>>,
}

impl Shared {
    /// Mark the store poisoned (first cause wins) and return the refusal.
    fn poison(&self, cause: StoreError) -> StoreError {
        self.poison.get_or_init(|| cause).clone()
    }

    fn signal_room(&self) {
        let _guard = self.room.lock().unwrap_or_else(PoisonError::into_inner);
        self.room_freed.notify_all();
    }

    fn count(&self, group: usize, pages: u64, spent: Spent) {
        let group = group as u64;
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.apply_ns.fetch_add(ns(spent.apply), Ordering::Relaxed);
        self.commit_ns
            .fetch_add(ns(spent.commit), Ordering::Relaxed);
        self.cpu_ns.fetch_add(ns(spent.cpu), Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.pages.fetch_add(pages, Ordering::Relaxed);
        self.batches.fetch_add(group, Ordering::Relaxed);
        self.largest_group.fetch_max(group, Ordering::Relaxed);
    }
}

/// Handle to the writer thread. Dropping it closes the queue, lets the thread
/// finish what is queued, and joins it (so the connection is closed).
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    commit_timeout: Duration,
}

impl Writer {
    pub(super) fn spawn(conn: Connection, config: &StoreConfig) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel(config.write_queue_max.max(1));
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread_config = config.clone();
        let thread = std::thread::Builder::new()
            .name("calsaga-store-writer".into())
            .spawn(move || run(conn, jobs, &thread_shared, &thread_config))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            shared,
            commit_timeout: Duration::from_millis(config.commit_timeout_ms.max(1)),
        })
    }

    pub(super) fn poisoned(&self) -> Option<&StoreError> {
        self.shared.poison.get()
    }

    /// Reports every later commit to `observer`; false if one was set before.
    pub(super) fn observe(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.shared.observer.set(observer).is_ok()
    }

    pub(super) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
            largest_group: self.shared.largest_group.load(Ordering::Relaxed),
            pages: self.shared.pages.load(Ordering::Relaxed),
            apply_ns: self.shared.apply_ns.load(Ordering::Relaxed),
            commit_ns: self.shared.commit_ns.load(Ordering::Relaxed),
            cpu_ns: self.shared.cpu_ns.load(Ordering::Relaxed),
        }
    }

    fn queue(&self) -> Result<&mpsc::Sender<Job>, StoreError> {
        if let Some(refusal) = self.poisoned() {
            return Err(refusal.clone());
        }
        self.queue.as_ref().ok_or_else(|| self.stopped())
    }

    fn stopped(&self) -> StoreError {
        self.shared.poison(StoreError::WriteFailed {
            detail: "the database writer thread stopped unexpectedly".into(),
        })
    }

    fn timed_out(&self) -> StoreError {
        self.shared.poison(StoreError::WriteFailed {
            detail: format!(
                "no answer from the database writer within {} ms (is the disk stalled?); the last writes may or may not be stored",
                self.commit_timeout.as_millis()
            ),
        })
    }

    pub(super) async fn commit(&self, batch: WriteBatch) -> Answer {
        let queue = self.queue()?;
        let deadline = tokio::time::Instant::now() + self.commit_timeout;
        let (tx, rx) = oneshot::channel();
        let job = Job {
            batch,
            reply: Reply::Async(tx, Handle::try_current().ok()),
        };
        let alone = self.shared.in_flight.fetch_add(1, Ordering::SeqCst) == 0;
        let _in_flight = InFlight(&self.shared.in_flight);
        match queue.send_timeout(job, self.commit_timeout).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(self.timed_out()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(self.stopped()),
        }
        let mut rx = rx;
        if alone {
            let until = Instant::now() + ANSWER_SPIN;
            while Instant::now() < until {
                match rx.try_recv() {
                    Ok(answer) => return answer,
                    Err(oneshot::error::TryRecvError::Closed) => return Err(self.stopped()),
                    Err(oneshot::error::TryRecvError::Empty) => tokio::task::yield_now().await,
                }
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(self.timed_out()),
        }
    }

    pub(super) fn commit_blocking(&self, batch: WriteBatch) -> Answer {
        let deadline = Instant::now() + self.commit_timeout;
        let answer = self.enqueue_blocking(batch, deadline)?;
        let left = deadline.saturating_duration_since(Instant::now());
        match answer.recv_timeout(left) {
            Ok(answer) => answer,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(self.timed_out()),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(self.stopped()),
        }
    }

    /// Queue a batch, waiting for room until `deadline`; the answer arrives
    /// on the returned receiver after COMMIT.
    pub(super) fn enqueue_blocking(
        &self,
        batch: WriteBatch,
        deadline: Instant,
    ) -> Result<std_mpsc::Receiver<Answer>, StoreError> {
        let queue = self.queue()?;
        let (tx, rx) = std_mpsc::sync_channel(1);
        let mut job = Job {
            batch,
            reply: Reply::Blocking(tx),
        };
        let mut guard = self
            .shared
            .room
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            match queue.try_send(job) {
                Ok(()) => return Ok(rx),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(self.stopped()),
                Err(mpsc::error::TrySendError::Full(back)) => job = back,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            guard = self
                .shared
                .room_freed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // A panicked writer has already dropped its connection; there is
            // nothing more to release here.
            let _ = thread.join();
        }
    }
}

/// The writer thread: wait for a batch, take whatever else is pending, commit
/// it all at once, answer. Ends when every sender is gone.
fn run(mut conn: Connection, mut jobs: mpsc::Receiver<Job>, shared: &Shared, config: &StoreConfig) {
    let group_max = config.group_batches_max.max(1);
    while let Some(first) = next_job(&mut jobs) {
        let mut group = vec![first];
        while group.len() < group_max {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        shared.signal_room();
        let started = Instant::now();
        let mut spent = Spent::default();
        let cpu_before = cpu_time::thread();
        let answers = match shared.poison.get() {
            Some(refusal) => Err(refusal.clone()),
            None => commit_group(&mut conn, &group, config, &mut spent),
        };
        spent.cpu = cpu_time::thread() - cpu_before;
        match answers {
            Ok(answers) => {
                shared.count(group.len(), pages_written(&conn), spent);
                if let Some(observer) = shared.observer.get() {
                    observer.committed(started.elapsed());
                }
                answer_group(group, answers);
            }
            Err(failure) => {
                let refusal = shared.poison(failure);
                for job in group {
                    job.reply.send(Err(refusal.clone()));
                }
            }
        }
    }
}

/// How long a commit with no other in flight looks for its answer before
/// its task sleeps: one saga stepping alone would otherwise pay a wake-up
/// of its runtime thread on every step. Others in flight mean group commit
/// is at work, and their tasks sleep at once so the CPU goes to them.
const ANSWER_SPIN: Duration = Duration::from_micros(400);

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long the writer keeps looking for the next batch before it sleeps.
/// A saga's next step usually arrives within ~50 µs of the answer to its
/// last one, and waking a sleeping thread costs ~20 µs on a small VM: the
/// whole latency budget of a step beyond its fsync. Busy only after a
/// commit, so an idle store burns nothing.
const NEXT_JOB_SPIN: Duration = Duration::from_micros(100);

/// The next batch: looked for briefly (yielding the CPU between looks),
/// then waited for.
fn next_job(jobs: &mut mpsc::Receiver<Job>) -> Option<Job> {
    let until = Instant::now() + NEXT_JOB_SPIN;
    while Instant::now() < until {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    jobs.blocking_recv()
}

fn fatal(e: rusqlite::Error) -> StoreError {
    StoreError::WriteFailed {
        detail: e.to_string(),
    }
}

/// One transaction for the whole group. Batches are almost never refused,
/// so the group first runs without savepoints: a savepoint copies every page
/// it touches into a statement journal (spilled to a temp file past 64 KiB),
/// which cost about as much as the batches themselves. Only when a batch is
/// refused is the transaction rolled back and the group run again with one
/// savepoint per batch, so that batch alone is rolled back. `Err` means the
/// transaction as a whole failed (and was rolled back): every batch of the
/// group gets it.
fn commit_group(
    conn: &mut Connection,
    group: &[Job],
    config: &StoreConfig,
    spent: &mut Spent,
) -> Result<Vec<Answer>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fatal)?;
    let applied = spent.applying(|| {
        group
            .iter()
            .try_for_each(|job| batch::apply(&tx, &job.batch, config))
    });
    match applied {
        Ok(()) => {
            spent.committing(tx)?;
            Ok(group.iter().map(|_| Ok(())).collect())
        }
        Err(e) if e.is_fatal() => Err(e),
        Err(_) => {
            tx.rollback().map_err(fatal)?;
            commit_isolated(conn, group, config, spent)
        }
    }
}

/// The group again, each batch in its own savepoint: a refused batch is
/// rolled back and answered with its error while the others commit.
fn commit_isolated(
    conn: &mut Connection,
    group: &[Job],
    config: &StoreConfig,
    spent: &mut Spent,
) -> Result<Vec<Answer>, StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fatal)?;
    let mut answers = Vec::with_capacity(group.len());
    for job in group {
        let mut savepoint = tx.savepoint().map_err(fatal)?;
        let answer = spent.applying(|| batch::apply(&savepoint, &job.batch, config));
        match &answer {
            Err(e) if e.is_fatal() => return Err(e.clone()),
            Err(_) => {
                savepoint.set_drop_behavior(DropBehavior::Rollback);
                savepoint.finish().map_err(fatal)?;
            }
            Ok(()) => savepoint.commit().map_err(fatal)?,
        }
        answers.push(answer);
    }
    spent.committing(tx)?;
    Ok(answers)
}

/// Pages this connection has written since the last call: in WAL mode, the
/// frames its commits appended to the log.
fn pages_written(conn: &Connection) -> u64 {
    let (mut current, mut highest) = (0, 0);
    // SAFETY: the handle is the live connection this thread owns, and
    // sqlite3_db_status only reads (and here resets) one of its counters.
    let status = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_CACHE_WRITE,
            &mut current,
            &mut highest,
            1,
        )
    };
    if status == rusqlite::ffi::SQLITE_OK {
        u64::try_from(current).unwrap_or(0)
    } else {
        0
    }
}

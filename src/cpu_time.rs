//! CPU time spent by this process and by the calling thread, apart from
//! the wall clock: on a shared machine a phase's wall clock moves with the
//! neighbours and the disk, while the CPU it burns does not, so the
//! benchmarks report both. Zero where the platform has no such clock.

use std::time::Duration;

/// CPU time of every thread of the process so far.
pub fn process() -> Duration {
    #[cfg(unix)]
    return read(rustix::time::ClockId::ProcessCPUTime);
    #[cfg(not(unix))]
    Duration::ZERO
}

/// CPU time of the calling thread so far.
pub fn thread() -> Duration {
    #[cfg(unix)]
    return read(rustix::time::ClockId::ThreadCPUTime);
    #[cfg(not(unix))]
    Duration::ZERO
}

#[cfg(unix)]
fn read(clock: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_on_this_thread_shows_in_both_clocks() {
        // The process clock is read around the thread's, so its interval
        // holds the thread's.
        let process_before = process();
        let thread_before = thread();
        // Spins until the thread clock shows 20 ms of work, or gives up
        // after 5 s of wall clock (a clock that does not run).
        let gave_up = std::time::Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while thread() - thread_before < Duration::from_millis(20)
            && std::time::Instant::now() < gave_up
        {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spent = thread() - thread_before;
        let all = process() - process_before;
        assert!(spent >= Duration::from_millis(20), "thread CPU {spent:?}");
        // The process clock may lag by a scheduler tick (it is summed at
        // ticks while a process-wide CPU timer runs).
        assert!(all >= Duration::from_millis(10), "process CPU {all:?}");
    }
}

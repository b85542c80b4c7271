//! Random sagas against a small model of Cal.com, driven the way the runner
//! drives them, with a fault tape: refusals, retryable errors, lost replies
//! (before or after Cal.com acted), crashes between intent and outcome,
//! lagging booking lists, admin interventions. Faults stop when the tape
//! ends, so every saga must then end (I3). Checked after every commit:
//! fold(log) == state (I7). Checked at the end against the model: one live
//! booking per booked segment and none elsewhere (I1, I2, I4), originals
//! untouched by a failed reschedule, gone after a cancel or reschedule.

use chrono::Duration;
use proptest::prelude::*;

use super::*;

/// Every step of a saga with faults fits easily; more means it never ends.
const SIM_STEPS_MAX: usize = 2_000;

struct CalBooking {
    uid: String,
    workflow: Uuid,
    segment: u16,
    live: bool,
}

/// What Cal.com holds, as far as the saga's bookings go.
#[derive(Default)]
struct World {
    bookings: Vec<CalBooking>,
    uids_issued: u64,
    /// A list lagged at least once, so a second create was possible.
    lagged: bool,
}

impl World {
    fn with_original(n: usize) -> World {
        let mut world = World::default();
        for s in original(n).segments {
            world.bookings.push(CalBooking {
                uid: s.calcom_uid,
                workflow: ORIGINAL_WF,
                segment: s.segment.index,
                live: true,
            });
        }
        world
    }

    fn uid(&mut self, prefix: &str) -> String {
        self.uids_issued += 1;
        format!("{prefix}-{}", self.uids_issued)
    }

    fn live(&self, workflow: Uuid, segment: u16) -> Vec<String> {
        self.bookings
            .iter()
            .filter(|b| b.live && b.workflow == workflow && b.segment == segment)
            .map(|b| b.uid.clone())
            .collect()
    }

    fn cancel(&mut self, uid: &str) {
        for b in self.bookings.iter_mut().filter(|b| b.uid == uid) {
            b.live = false;
        }
    }

    /// Acts on a call (unless the fault stops it first) and says what the
    /// runner hears: None when the process dies before the outcome is saved.
    fn perform(
        &mut self,
        call: &Call,
        fault: u8,
        saga: &Saga,
        now: DateTime<Utc>,
    ) -> Option<Vec<Event>> {
        let retry_at = Some(now + Duration::seconds(i64::from(fault % 7) * 10));
        let acts = !matches!(fault, 0 | 1 | 4 | 6);
        let reply = match call {
            Call::Create(c) => {
                if !self.lagged {
                    assert!(
                        self.live(c.workflow, c.segment.index).is_empty(),
                        "I1: a second create for segment {} while one is live",
                        c.segment.index
                    );
                }
                let uid = acts.then(|| {
                    let uid = self.uid("b");
                    self.bookings.push(CalBooking {
                        uid: uid.clone(),
                        workflow: c.workflow,
                        segment: c.segment.index,
                        live: true,
                    });
                    uid
                });
                match (fault, uid) {
                    (0, _) => vec![c.failed(permanent("HTTP 409: booking conflict"))],
                    (1, _) => vec![c.failed(retryable("HTTP 503", retry_at))],
                    (3 | 4, _) => vec![c.unknown("timeout".into())],
                    (_, Some(uid)) => vec![c.booked(uid, c.segment.start, c.segment.end)],
                    (_, None) => Vec::new(),
                }
            }
            Call::Reconcile(r) => {
                let known = saga.known_uids();
                let found: Vec<String> = self
                    .live(r.workflow, r.segment.index)
                    .into_iter()
                    .filter(|u| !known.contains(&u.as_str()))
                    .collect();
                match fault {
                    1 => vec![r.failed(retryable("HTTP 502", retry_at))],
                    2 => vec![r.failed(permanent("HTTP 401: bad key"))],
                    3 => {
                        self.lagged = true;
                        r.found(&[])
                    }
                    _ => r.found(&found),
                }
            }
            Call::Cancel(c) => {
                if acts {
                    self.cancel(&c.calcom_uid);
                }
                match fault {
                    0 => vec![c.failed(permanent("HTTP 403"))],
                    1 | 3 | 4 => vec![c.failed(retryable("HTTP 503", retry_at))],
                    _ => vec![c.cancelled()],
                }
            }
            // The model's plans keep every reschedule apart from its
            // original; moves are simulated against the mock (src/tools/sim).
            Call::Move(_) | Call::MoveBack(_) => {
                unreachable!("the model's plans never move a booking")
            }
            Call::Reserve(c) => {
                let until = now + Duration::minutes(i64::from(c.reservation_min));
                match fault {
                    0 => vec![c.failed(permanent("HTTP 422: already reserved"))],
                    1 | 3 | 4 => vec![c.failed(retryable("HTTP 503", retry_at))],
                    _ => vec![c.made(self.uid("r"), until)],
                }
            }
            Call::Release(c) => match fault {
                0 => vec![c.failed(permanent("HTTP 403"))],
                1 | 3 | 4 => vec![c.failed(retryable("HTTP 503", retry_at))],
                _ => vec![c.released()],
            },
        };
        // 5: dies after acting; 6: dies before acting.
        (!matches!(fault, 5 | 6)).then_some(reply)
    }

    /// The runtime's orphan check: live bookings of this saga it does not know.
    fn orphans(&self, saga: &Saga) -> Vec<Event> {
        let known = saga.known_uids();
        self.bookings
            .iter()
            .filter(|b| b.live && b.workflow == saga.workflow && !known.contains(&b.uid.as_str()))
            .map(|b| Event::DuplicateFound {
                segment: b.segment,
                uid: b.uid.clone(),
            })
            .collect()
    }
}

fn first_event(kind: u8, n: usize, reserve: bool) -> Event {
    let reserve_min = reserve.then_some(5);
    match kind % 4 {
        0 => book(n, reserve_min),
        1 => hold(n, 15),
        2 => Event::RescheduleRequested {
            workflow: WF,
            original: original(n),
            request: request(n),
            reserve_min,
        },
        _ => cancel(n),
    }
}

/// Drives one saga to its end; returns the run and the model.
fn simulate(kind: u8, n: usize, reserve: bool, tape: &[u8]) -> (Run, World) {
    let mut world = World::with_original(n);
    let mut run = Run::start(first_event(kind, n, reserve));
    let mut faults = tape.iter().map(|b| b % 16);
    for _ in 0..SIM_STEPS_MAX {
        let fault = faults.next().unwrap_or(15);
        match run.then.clone() {
            Then::Call(call) => {
                if fault == 7 {
                    // An admin acts while the call is in flight; the
                    // runner's outcome append then follows the new state.
                    let _ = run.append(Event::AdminCompensateRequested {
                        reason: "admin".into(),
                    });
                }
                match world.perform(&call, fault, &run.saga, run.now) {
                    Some(outcomes) => run.reply(outcomes),
                    None => run.restart(),
                };
            }
            Then::WaitUntil(at) => {
                if matches!(run.saga.phase, Phase::Held { .. }) && fault % 2 == 0 {
                    run.append(Event::ConfirmRequested).unwrap();
                } else {
                    run.now = at;
                }
                run.reply(Vec::new());
            }
            Then::Idle if run.saga.failure.is_some() => {
                run.append(Event::AdminResumeRequested).unwrap();
                run.reply(Vec::new());
            }
            Then::Idle => {
                let orphans = world.orphans(&run.saga);
                if orphans.is_empty() {
                    return (run, world);
                }
                run.reply(orphans);
            }
        }
    }
    panic!(
        "the saga did not end in {SIM_STEPS_MAX} steps: {:#?}",
        run.log
    );
}

fn check_world(run: &Run, world: &World, n: usize) {
    let saga = &run.saga;
    let originals_live = (0..n as u16)
        .filter(|k| !world.live(ORIGINAL_WF, *k).is_empty())
        .count();
    let booked_segments = |expect_live: bool| {
        for (k, s) in saga.segments.iter().enumerate() {
            let live = world.live(WF, k as u16);
            match (expect_live, s.booking.done()) {
                (true, Some(b)) => assert_eq!(live, vec![b.calcom_uid.clone()], "segment {k}"),
                _ => assert!(live.is_empty(), "segment {k} left live: {live:?}"),
            }
        }
    };
    match saga.phase {
        Phase::Booked | Phase::Rescheduled => booked_segments(true),
        _ => booked_segments(false),
    }
    match (saga.kind, &saga.phase) {
        (Kind::Reschedule, Phase::Rescheduled) | (Kind::Cancel, _) => {
            assert_eq!(originals_live, 0, "originals left live")
        }
        (Kind::Reschedule, Phase::Compensated { .. }) => {
            assert_eq!(
                originals_live, n,
                "a failed reschedule touched the original"
            )
        }
        _ => {}
    }
    let end = match saga.kind {
        Kind::Book => vec!["booked", "compensated"],
        Kind::Hold => vec!["booked", "compensated", "expired"],
        Kind::Reschedule => vec!["rescheduled", "compensated"],
        Kind::Cancel => vec!["cancelled"],
    };
    assert!(end.contains(&saga.state_name()), "{}", saga.state_name());
    assert!(saga.is_terminal());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_sagas_end_and_keep_the_invariants(
        kind in 0u8..4,
        n in 1usize..=3,
        reserve in any::<bool>(),
        tape in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let (run, world) = simulate(kind, n, reserve, &tape);
        check_world(&run, &world, n);
    }
}

#[test]
fn a_lagging_list_leaves_an_orphan_that_the_orphan_check_cancels() {
    // Create: reply lost after acting (3); reconcile: the list lags (3), so
    // attempt 2 books again; the orphan check finds the first booking.
    let (run, world) = simulate(0, 1, false, &[3, 3]);
    assert_eq!(run.saga.state_name(), "booked");
    assert!(run.kinds().contains(&"duplicate_found"));
    check_world(&run, &world, 1);
}

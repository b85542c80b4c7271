//! Every event, legal and illegal, against hand-written logs: one table.

use chrono::Duration;

use super::*;

fn intend(segment: u16, attempt: u32) -> Event {
    Event::SegmentBookingIntended { segment, attempt }
}

fn booked(segment: u16) -> Event {
    let p = &request(3).plan.segments[usize::from(segment)];
    Event::SegmentBooked {
        segment,
        calcom_uid: format!("u-{segment}"),
        start: p.start,
        end: p.end,
    }
}

fn reserve(segment: u16, attempt: u32) -> Event {
    Event::ReservationIntended { segment, attempt }
}

fn made(segment: u16) -> Event {
    Event::ReservationMade {
        segment,
        reservation_uid: format!("r-{segment}"),
        until: now0() + Duration::minutes(5),
    }
}

fn cancel_intend(target: CancelTarget, attempt: u32) -> Event {
    Event::CancelIntended { target, attempt }
}

fn seg(k: u16) -> CancelTarget {
    CancelTarget::Segment(k)
}

fn orig(k: u16) -> CancelTarget {
    CancelTarget::Original(k)
}

fn reason(r: &str) -> String {
    r.into()
}

fn with(mut log: Vec<Event>, more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    log.extend(more);
    log
}

/// Segment `segment` moves from host 1 (event type 101) to `host`.
fn switch(segment: u16, host: u64) -> Event {
    Event::SegmentHostSwitched {
        segment,
        from: 1,
        host,
        event_type_id: host * 101,
        reason: reason("Cal.com refused host 1: taken"),
    }
}

fn taken_booking(segment: u16) -> Event {
    Event::SegmentBookingFailed {
        segment,
        attempt: 1,
        failure: Failure::Taken {
            reason: reason("already has booking"),
        },
    }
}

/// A booking whose first segment (host 1) may also go to host 9.
fn booking_with_alternative(reserve_min: Option<u32>) -> Vec<Event> {
    let mut request = request(1);
    request.plan.segments[0].alternatives = vec![crate::catalog::StaffOption {
        host: 9,
        event_type_id: 909,
    }];
    vec![Event::Requested {
        workflow: WF,
        request,
        reserve_min,
    }]
}

// ----------------------------------------------------------- given logs

fn booking(n: usize) -> Vec<Event> {
    vec![book(n, None)]
}

fn all_booked(n: usize) -> Vec<Event> {
    let mut log = booking(n);
    for k in 0..n as u16 {
        log.extend([intend(k, 1), booked(k)]);
    }
    log
}

fn reserving(n: usize) -> Vec<Event> {
    vec![book(n, Some(5))]
}

fn all_reserved(first: Event, n: usize) -> Vec<Event> {
    let mut log = vec![first];
    for k in 0..n as u16 {
        log.extend([reserve(k, 1), made(k)]);
    }
    log
}

fn reserved_and_booked() -> Vec<Event> {
    with(all_reserved(book(1, Some(5)), 1), [intend(0, 1), booked(0)])
}

fn held() -> Vec<Event> {
    with(
        all_reserved(hold(1, 15), 1),
        [Event::Held {
            expires_at: now0() + Duration::minutes(15),
        }],
    )
}

fn compensating() -> Vec<Event> {
    with(
        all_booked(1),
        [Event::CompensationStarted {
            reason: reason("slot taken"),
        }],
    )
}

fn switching() -> Vec<Event> {
    vec![
        reschedule(1),
        intend(0, 1),
        booked(0),
        cancel_intend(orig(0), 1),
    ]
}

fn failed() -> Vec<Event> {
    vec![
        cancel(1),
        cancel_intend(orig(0), 1),
        Event::CancelFailed {
            target: orig(0),
            attempt: 1,
            failure: permanent("HTTP 403"),
        },
        Event::Failed {
            reason: reason("HTTP 403"),
        },
    ]
}

/// `Ok(state)`: legal, and the saga is then in `state`; `Err(problem)`:
/// refused with a message containing `problem`.
type Expect = Result<&'static str, &'static str>;

fn check(name: &str, given: &[Event], event: Event, expect: Expect) {
    let outcome = match given.split_first() {
        None => Saga::start(&event),
        Some(_) => {
            let mut saga = fold(given).unwrap_or_else(|e| panic!("{name}: given log: {e}"));
            let before = saga.clone();
            let applied = saga.apply(&event);
            if applied.is_err() {
                assert_eq!(saga, before, "{name}: a refused event changed the state");
            }
            applied.map(|()| saga)
        }
    };
    match (outcome, expect) {
        (Ok(saga), Ok(state)) => assert_eq!(saga.state_name(), state, "{name}"),
        (Err(e), Err(problem)) => {
            let text = e.to_string();
            assert!(
                text.contains(problem),
                "{name}: expected {problem:?} in {text}"
            );
            assert!(
                text.contains(event.kind()),
                "{name}: {text} must name the event"
            );
        }
        (got, want) => panic!("{name}: expected {want:?}, got {got:?}"),
    }
}

#[test]
fn every_transition_is_checked() {
    let unknown = Event::SegmentOutcomeUnknown {
        segment: 0,
        attempt: 1,
        reason: reason("timeout"),
    };
    let cases: Vec<(&str, Vec<Event>, Event, Expect)> = vec![
        // failover
        (
            "switch after taken",
            with(
                booking_with_alternative(None),
                [intend(0, 1), taken_booking(0)],
            ),
            switch(0, 9),
            Ok("booking"),
        ),
        (
            "switch after a permanent refusal",
            with(
                booking_with_alternative(None),
                [
                    intend(0, 1),
                    Event::SegmentBookingFailed {
                        segment: 0,
                        attempt: 1,
                        failure: permanent("HTTP 400 bad field"),
                    },
                ],
            ),
            switch(0, 9),
            Err("not refused as taken"),
        ),
        (
            "switch to an option not left",
            with(
                booking_with_alternative(None),
                [intend(0, 1), taken_booking(0)],
            ),
            switch(0, 7),
            Err("not a remaining option"),
        ),
        (
            "switch twice to one option",
            with(
                booking_with_alternative(None),
                [
                    intend(0, 1),
                    taken_booking(0),
                    switch(0, 9),
                    intend(0, 1),
                    taken_booking(0),
                ],
            ),
            Event::SegmentHostSwitched {
                segment: 0,
                from: 9,
                host: 9,
                event_type_id: 909,
                reason: reason("taken again"),
            },
            Err("not a remaining option"),
        ),
        (
            "switch a pinned segment",
            with(booking(1), [intend(0, 1), taken_booking(0)]),
            switch(0, 9),
            Err("not a remaining option"),
        ),
        (
            "switch a reservation refused as taken",
            with(
                booking_with_alternative(Some(5)),
                [
                    reserve(0, 1),
                    Event::ReservationFailed {
                        segment: 0,
                        attempt: 1,
                        failure: Failure::Taken {
                            reason: reason("422 overlapping reservation"),
                        },
                    },
                ],
            ),
            switch(0, 9),
            Ok("reserving"),
        ),
        (
            "switched segment books the new host from attempt 1",
            with(
                booking_with_alternative(None),
                [intend(0, 1), taken_booking(0), switch(0, 9)],
            ),
            intend(0, 1),
            Ok("booking"),
        ),
        // starts
        ("book", vec![], book(2, None), Ok("booking")),
        (
            "book reserving first",
            vec![],
            book(2, Some(5)),
            Ok("reserving"),
        ),
        ("hold", vec![], hold(2, 15), Ok("reserving")),
        ("reschedule", vec![], reschedule(2), Ok("booking")),
        ("cancel", vec![], cancel(2), Ok("cancelling")),
        (
            "not a start",
            vec![],
            Event::Booked,
            Err("a saga starts with"),
        ),
        (
            "started twice",
            booking(1),
            book(1, None),
            Err("already started"),
        ),
        (
            "zero reservation",
            vec![],
            book(1, Some(0)),
            Err("at least 1 minute"),
        ),
        ("empty plan", vec![], empty_plan(), Err("it needs 1 to 16")),
        (
            "overlapping plan",
            vec![],
            overlapping_plan(),
            Err("starts before segment 0 ends"),
        ),
        (
            "misnumbered original",
            vec![],
            misnumbered_original(),
            Err("original segment 0 carries another index"),
        ),
        (
            "changing itself",
            vec![],
            self_original(),
            Err("cannot change itself"),
        ),
        // reservations
        ("reserve", reserving(2), reserve(0, 1), Ok("reserving")),
        (
            "reserve without reserving",
            booking(1),
            reserve(0, 1),
            Err("phase to be one of"),
        ),
        (
            "reserve out of order",
            reserving(2),
            reserve(1, 1),
            Err("segment 0 comes first"),
        ),
        (
            "reserve wrong attempt",
            reserving(1),
            reserve(0, 2),
            Err("attempt 2 given, 1 expected"),
        ),
        (
            "reserve no segment",
            reserving(1),
            reserve(4, 1),
            Err("there is no segment 4"),
        ),
        (
            "reserve again after a lost reply",
            with(reserving(1), [reserve(0, 1)]),
            reserve(0, 2),
            Ok("reserving"),
        ),
        (
            "made",
            with(reserving(1), [reserve(0, 1)]),
            made(0),
            Ok("reserving"),
        ),
        ("made unasked", reserving(1), made(0), Err("no intent")),
        (
            "reservation failed",
            with(reserving(1), [reserve(0, 1)]),
            Event::ReservationFailed {
                segment: 0,
                attempt: 1,
                failure: permanent("422"),
            },
            Ok("reserving"),
        ),
        (
            "reservation failed wrong attempt",
            with(reserving(1), [reserve(0, 1)]),
            Event::ReservationFailed {
                segment: 0,
                attempt: 2,
                failure: permanent("422"),
            },
            Err("attempt 1 is intended, not attempt 2"),
        ),
        (
            "release",
            reserved_and_booked(),
            Event::ReleaseIntended {
                segment: 0,
                attempt: 1,
            },
            Ok("booking"),
        ),
        (
            "release before booked",
            all_reserved(book(1, Some(5)), 1),
            Event::ReleaseIntended {
                segment: 0,
                attempt: 1,
            },
            Err("phase to be one of"),
        ),
        (
            "release before every segment is booked",
            with(all_reserved(book(2, Some(5)), 2), [intend(0, 1), booked(0)]),
            Event::ReleaseIntended {
                segment: 0,
                attempt: 1,
            },
            Err("only once every segment is booked"),
        ),
        (
            "release nothing",
            all_booked(1),
            Event::ReleaseIntended {
                segment: 0,
                attempt: 1,
            },
            Err("has no reservation"),
        ),
        (
            "released",
            with(
                reserved_and_booked(),
                [Event::ReleaseIntended {
                    segment: 0,
                    attempt: 1,
                }],
            ),
            Event::ReservationReleased { segment: 0 },
            Ok("booking"),
        ),
        (
            "released unasked",
            reserved_and_booked(),
            Event::ReservationReleased { segment: 0 },
            Err("no intent"),
        ),
        (
            "release failed",
            with(
                reserved_and_booked(),
                [Event::ReleaseIntended {
                    segment: 0,
                    attempt: 1,
                }],
            ),
            Event::ReleaseFailed {
                segment: 0,
                attempt: 1,
                failure: retryable("503", None),
            },
            Ok("booking"),
        ),
        // hold
        (
            "held",
            all_reserved(hold(1, 15), 1),
            Event::Held { expires_at: now0() },
            Ok("held"),
        ),
        (
            "held without hold",
            all_reserved(book(1, Some(5)), 1),
            Event::Held { expires_at: now0() },
            Err("only a hold"),
        ),
        (
            "held too early",
            with(vec![hold(1, 15)], [reserve(0, 1)]),
            Event::Held { expires_at: now0() },
            Err("not every segment is reserved"),
        ),
        ("confirm", held(), Event::ConfirmRequested, Ok("booking")),
        (
            "confirm unheld",
            booking(1),
            Event::ConfirmRequested,
            Err("phase to be one of [\"held\"]"),
        ),
        ("expire", held(), Event::HoldExpired, Ok("expiring")),
        (
            "expire unheld",
            all_reserved(hold(1, 15), 1),
            Event::HoldExpired,
            Err("phase to be one of"),
        ),
        // bookings
        ("intend", booking(2), intend(0, 1), Ok("booking")),
        (
            "intend after reserving",
            all_reserved(book(1, Some(5)), 1),
            intend(0, 1),
            Ok("booking"),
        ),
        (
            "intend while reserving",
            reserving(1),
            intend(0, 1),
            Err("after every slot is reserved"),
        ),
        (
            "intend a hold",
            all_reserved(hold(1, 15), 1),
            intend(0, 1),
            Err("waits for confirm_requested"),
        ),
        (
            "intend out of order",
            booking(2),
            intend(1, 1),
            Err("segment 0 comes first"),
        ),
        (
            "intend twice (I1)",
            with(booking(1), [intend(0, 1)]),
            intend(0, 2),
            Err("not open for a new attempt"),
        ),
        (
            "intend after unknown (I1)",
            with(booking(1), [intend(0, 1), unknown.clone()]),
            intend(0, 2),
            Err("not open for a new attempt"),
        ),
        (
            "intend after permanent",
            with(
                booking(1),
                [
                    intend(0, 1),
                    Event::SegmentBookingFailed {
                        segment: 0,
                        attempt: 1,
                        failure: permanent("409"),
                    },
                ],
            ),
            intend(0, 2),
            Err("not open for a new attempt"),
        ),
        (
            "intend retry",
            with(
                booking(1),
                [
                    intend(0, 1),
                    Event::SegmentBookingFailed {
                        segment: 0,
                        attempt: 1,
                        failure: retryable("503", None),
                    },
                ],
            ),
            intend(0, 2),
            Ok("booking"),
        ),
        (
            "booked",
            with(booking(2), [intend(0, 1)]),
            booked(0),
            Ok("booking"),
        ),
        ("booked unasked", booking(2), booked(0), Err("no intent")),
        ("booked twice", all_booked(1), booked(0), Err("no intent")),
        (
            "booked known uid",
            with(booking(2), [intend(0, 1), booked(0), intend(1, 1)]),
            Event::SegmentBooked {
                segment: 1,
                calcom_uid: "u-0".into(),
                start: now0(),
                end: now0(),
            },
            Err("already recorded"),
        ),
        (
            "booking failed",
            with(booking(1), [intend(0, 1)]),
            Event::SegmentBookingFailed {
                segment: 0,
                attempt: 1,
                failure: permanent("409"),
            },
            Ok("booking"),
        ),
        (
            "unknown",
            with(booking(1), [intend(0, 1)]),
            unknown.clone(),
            Ok("booking"),
        ),
        (
            "unknown unasked",
            booking(1),
            unknown.clone(),
            Err("no intent"),
        ),
        (
            "reconciled found",
            with(booking(1), [intend(0, 1), unknown.clone()]),
            Event::SegmentReconciled {
                segment: 0,
                found: Some("u-0".into()),
            },
            Ok("booking"),
        ),
        (
            "reconciled after crash",
            with(booking(1), [intend(0, 1)]),
            Event::SegmentReconciled {
                segment: 0,
                found: None,
            },
            Ok("booking"),
        ),
        (
            "reconciled certain",
            all_booked(1),
            Event::SegmentReconciled {
                segment: 0,
                found: None,
            },
            Err("not uncertain"),
        ),
        (
            "reconcile failed",
            with(booking(1), [intend(0, 1)]),
            Event::ReconcileFailed {
                segment: 0,
                failure: retryable("502", None),
            },
            Ok("booking"),
        ),
        (
            "duplicate",
            all_booked(1),
            Event::DuplicateFound {
                segment: 0,
                uid: "x".into(),
            },
            Ok("booking"),
        ),
        (
            "orphan",
            with(
                booking(1),
                [
                    intend(0, 1),
                    unknown.clone(),
                    Event::SegmentReconciled {
                        segment: 0,
                        found: None,
                    },
                ],
            ),
            Event::DuplicateFound {
                segment: 0,
                uid: "x".into(),
            },
            Ok("booking"),
        ),
        (
            "duplicate of the uncertain",
            with(booking(1), [intend(0, 1)]),
            Event::DuplicateFound {
                segment: 0,
                uid: "x".into(),
            },
            Err("record x with segment_reconciled"),
        ),
        (
            "duplicate of itself",
            all_booked(1),
            Event::DuplicateFound {
                segment: 0,
                uid: "u-0".into(),
            },
            Err("already recorded"),
        ),
        // cancellations
        (
            "compensate",
            booking(1),
            Event::CompensationStarted {
                reason: reason("x"),
            },
            Ok("compensating"),
        ),
        (
            "compensate held",
            held(),
            Event::CompensationStarted {
                reason: reason("x"),
            },
            Ok("compensating"),
        ),
        (
            "compensate switching",
            switching(),
            Event::CompensationStarted {
                reason: reason("x"),
            },
            Err("phase to be one of"),
        ),
        (
            "compensate cancel",
            vec![cancel(1)],
            Event::CompensationStarted {
                reason: reason("x"),
            },
            Err("phase to be one of"),
        ),
        (
            "compensate failed",
            failed(),
            Event::CompensationStarted {
                reason: reason("x"),
            },
            Err("waits for an admin"),
        ),
        (
            "cancel own",
            compensating(),
            cancel_intend(seg(0), 1),
            Ok("compensating"),
        ),
        (
            "cancel own while booking",
            all_booked(1),
            cancel_intend(seg(0), 1),
            Err("phase to be one of"),
        ),
        (
            "cancel own unbooked",
            with(
                booking(1),
                [Event::CompensationStarted {
                    reason: reason("x"),
                }],
            ),
            cancel_intend(seg(0), 1),
            Err("no booking to cancel"),
        ),
        (
            "cancel original",
            vec![cancel(2)],
            cancel_intend(orig(1), 1),
            Ok("cancelling"),
        ),
        (
            "cancel original early",
            vec![reschedule(2), intend(0, 1), booked(0)],
            cancel_intend(orig(0), 1),
            Err("only after every new segment is booked"),
        ),
        (
            "switch",
            vec![reschedule(1), intend(0, 1), booked(0)],
            cancel_intend(orig(0), 1),
            Ok("switching"),
        ),
        (
            "cancel original of a booking",
            all_booked(1),
            cancel_intend(orig(0), 1),
            Err("only after every new segment"),
        ),
        (
            "cancel no original",
            vec![cancel(1)],
            cancel_intend(orig(3), 1),
            Err("no original segment 3"),
        ),
        (
            "cancel unknown duplicate",
            all_booked(1),
            cancel_intend(CancelTarget::Duplicate("x".into()), 1),
            Err("not a known duplicate"),
        ),
        (
            "cancel duplicate after the end",
            with(
                all_booked(1),
                [
                    Event::Booked,
                    Event::DuplicateFound {
                        segment: 0,
                        uid: "x".into(),
                    },
                ],
            ),
            cancel_intend(CancelTarget::Duplicate("x".into()), 1),
            Ok("booked"),
        ),
        (
            "cancelled",
            with(vec![cancel(1)], [cancel_intend(orig(0), 1)]),
            Event::BookingCancelled { target: orig(0) },
            Ok("cancelling"),
        ),
        (
            "cancelled unasked",
            vec![cancel(1)],
            Event::BookingCancelled { target: orig(0) },
            Err("no intent"),
        ),
        (
            "cancel failed",
            with(vec![cancel(1)], [cancel_intend(orig(0), 1)]),
            Event::CancelFailed {
                target: orig(0),
                attempt: 1,
                failure: retryable("503", None),
            },
            Ok("cancelling"),
        ),
        // ends
        ("booked end", all_booked(2), Event::Booked, Ok("booked")),
        (
            "booked early",
            with(booking(2), [intend(0, 1), booked(0)]),
            Event::Booked,
            Err("not every segment is booked"),
        ),
        (
            "booked unreleased",
            reserved_and_booked(),
            Event::Booked,
            Err("reservation released"),
        ),
        (
            "booked reschedule",
            vec![reschedule(1), intend(0, 1), booked(0)],
            Event::Booked,
            Err("ends rescheduled"),
        ),
        (
            "booked with a live duplicate",
            with(
                all_booked(1),
                [Event::DuplicateFound {
                    segment: 0,
                    uid: "x".into(),
                }],
            ),
            Event::Booked,
            Err("duplicate booking x of segment 0"),
        ),
        (
            "rescheduled",
            with(switching(), [Event::BookingCancelled { target: orig(0) }]),
            Event::Rescheduled,
            Ok("rescheduled"),
        ),
        (
            "rescheduled early",
            switching(),
            Event::Rescheduled,
            Err("not every original segment is cancelled"),
        ),
        (
            "cancelled end",
            with(
                vec![cancel(1)],
                [
                    cancel_intend(orig(0), 1),
                    Event::BookingCancelled { target: orig(0) },
                ],
            ),
            Event::Cancelled,
            Ok("cancelled"),
        ),
        (
            "cancelled early",
            vec![cancel(1)],
            Event::Cancelled,
            Err("not every original"),
        ),
        (
            "compensated",
            with(
                compensating(),
                [
                    cancel_intend(seg(0), 1),
                    Event::BookingCancelled { target: seg(0) },
                ],
            ),
            Event::Compensated {
                reason: reason("slot taken"),
            },
            Ok("compensated"),
        ),
        (
            "compensated live",
            compensating(),
            Event::Compensated {
                reason: reason("x"),
            },
            Err("live or uncertain booking"),
        ),
        (
            "compensated uncertain",
            with(
                booking(1),
                [
                    intend(0, 1),
                    Event::CompensationStarted {
                        reason: reason("x"),
                    },
                ],
            ),
            Event::Compensated {
                reason: reason("x"),
            },
            Err("live or uncertain booking"),
        ),
        (
            "expired",
            with(
                held(),
                [
                    Event::HoldExpired,
                    Event::ReleaseIntended {
                        segment: 0,
                        attempt: 1,
                    },
                    Event::ReservationReleased { segment: 0 },
                ],
            ),
            Event::Expired,
            Ok("expired"),
        ),
        (
            "expired unreleased",
            with(held(), [Event::HoldExpired]),
            Event::Expired,
            Err("not released yet"),
        ),
        (
            "failed",
            booking(1),
            Event::Failed {
                reason: reason("x"),
            },
            Ok("failed"),
        ),
        (
            "failed twice",
            failed(),
            Event::Failed {
                reason: reason("x"),
            },
            Err("no work left"),
        ),
        (
            "failed after the end",
            with(all_booked(1), [Event::Booked]),
            Event::Failed {
                reason: reason("x"),
            },
            Err("no work left"),
        ),
        // after the end and while failed
        (
            "intend after the end",
            with(all_booked(1), [Event::Booked]),
            intend(0, 2),
            Err("phase to be one of"),
        ),
        (
            "outcome after the end",
            with(all_booked(1), [Event::Booked]),
            unknown.clone(),
            Err("has ended"),
        ),
        (
            "intend while failed",
            failed(),
            cancel_intend(orig(0), 2),
            Err("waits for an admin"),
        ),
        // admin
        (
            "resume",
            failed(),
            Event::AdminResumeRequested,
            Ok("cancelling"),
        ),
        (
            "resume running",
            booking(1),
            Event::AdminResumeRequested,
            Err("only a failed saga"),
        ),
        (
            "admin compensate",
            booking(1),
            Event::AdminCompensateRequested {
                reason: reason("x"),
            },
            Ok("compensating"),
        ),
        (
            "admin compensate booked",
            with(all_booked(1), [Event::Booked]),
            Event::AdminCompensateRequested {
                reason: reason("x"),
            },
            Err("phase to be one of"),
        ),
        (
            "admin compensate switching",
            switching(),
            Event::AdminCompensateRequested {
                reason: reason("x"),
            },
            Err("phase to be one of"),
        ),
        (
            "admin compensate a failed booking",
            with(
                booking(1),
                [
                    intend(0, 1),
                    Event::Failed {
                        reason: reason("reconcile refused"),
                    },
                ],
            ),
            Event::AdminCompensateRequested {
                reason: reason("x"),
            },
            Ok("compensating"),
        ),
    ];
    for (name, given, event, expect) in cases {
        check(name, &given, event, expect);
    }
}

#[test]
fn an_empty_log_does_not_fold() {
    let e = fold(&[]).unwrap_err().to_string();
    assert!(e.contains("the log is empty"), "{e}");
}

#[test]
fn a_resume_turns_permanent_refusals_into_retries_due_now() {
    let mut saga = fold(&failed()).unwrap();
    saga.apply(&Event::AdminResumeRequested).unwrap();
    assert_eq!(
        saga.originals[0],
        Undo::Failed {
            attempt: 1,
            failure: retryable("HTTP 403", None)
        }
    );
    assert_eq!(
        decide(&saga, now0()),
        Command::Call(Call::Cancel(CancelCall {
            target: orig(0),
            attempt: 2,
            calcom_uid: "old-0".into(),
            reason: "customer cancelled".into(),
        }))
    );
}

fn empty_plan() -> Event {
    let mut r = request(1);
    r.plan.segments.clear();
    Event::Requested {
        workflow: WF,
        request: r,
        reserve_min: None,
    }
}

fn overlapping_plan() -> Event {
    let mut r = request(2);
    r.plan.segments[1].start = r.plan.segments[0].start;
    Event::Requested {
        workflow: WF,
        request: r,
        reserve_min: None,
    }
}

fn misnumbered_original() -> Event {
    let mut original = original(2);
    original.segments.swap(0, 1);
    Event::CancelRequested {
        workflow: WF,
        original,
        reason: reason("x"),
    }
}

fn self_original() -> Event {
    let mut original = original(1);
    original.workflow = WF;
    Event::CancelRequested {
        workflow: WF,
        original,
        reason: reason("x"),
    }
}

/// One of every variant: each survives JSON and carries its `kind` tag.
fn every_event() -> Vec<Event> {
    let at = now0();
    vec![
        book(2, Some(5)),
        hold(1, 15),
        reschedule(1),
        cancel(1),
        reserve(0, 1),
        made(0),
        Event::ReservationFailed {
            segment: 0,
            attempt: 1,
            failure: retryable("503", Some(at)),
        },
        Event::ReleaseIntended {
            segment: 0,
            attempt: 1,
        },
        Event::ReservationReleased { segment: 0 },
        Event::ReleaseFailed {
            segment: 0,
            attempt: 1,
            failure: permanent("403"),
        },
        Event::Held { expires_at: at },
        Event::ConfirmRequested,
        Event::HoldExpired,
        intend(0, 1),
        booked(0),
        Event::SegmentBookingFailed {
            segment: 0,
            attempt: 1,
            failure: permanent("409"),
        },
        Event::SegmentOutcomeUnknown {
            segment: 0,
            attempt: 1,
            reason: reason("timeout"),
        },
        Event::SegmentReconciled {
            segment: 0,
            found: Some("u".into()),
        },
        Event::ReconcileFailed {
            segment: 0,
            failure: retryable("502", None),
        },
        switch(0, 9),
        Event::DuplicateFound {
            segment: 0,
            uid: "d".into(),
        },
        Event::CompensationStarted {
            reason: reason("x"),
        },
        cancel_intend(CancelTarget::Duplicate("d".into()), 1),
        Event::BookingCancelled { target: seg(1) },
        Event::CancelFailed {
            target: orig(0),
            attempt: 3,
            failure: retryable("x", None),
        },
        Event::Booked,
        Event::Rescheduled,
        Event::Compensated {
            reason: reason("x"),
        },
        Event::Cancelled,
        Event::Expired,
        Event::Failed {
            reason: reason("x"),
        },
        Event::AdminResumeRequested,
        Event::AdminCompensateRequested {
            reason: reason("x"),
        },
    ]
}

#[test]
fn every_event_survives_json_with_its_kind_tag() {
    let events = every_event();
    let mut kinds: Vec<_> = events.iter().map(Event::kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), 33, "one sample per variant");
    for e in events {
        let value = serde_json::to_value(&e).unwrap();
        assert_eq!(value["kind"], e.kind(), "{value}");
        assert_eq!(serde_json::from_value::<Event>(value).unwrap(), e);
    }
}

#[test]
fn the_log_reads_like_what_happened() {
    let e = Event::CancelFailed {
        target: orig(1),
        attempt: 2,
        failure: retryable("HTTP 503", Some(t("2030-03-05T09:00:00Z"))),
    };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"kind":"cancel_failed","target":{"original":1},"attempt":2,"failure":{"class":"retryable","reason":"HTTP 503","retry_at":"2030-03-05T09:00:00Z"}}"#
    );
}

#[test]
fn every_state_name_is_one_the_state_filters_accept() {
    let at = chrono::DateTime::UNIX_EPOCH;
    let reason = || "r".to_string();
    let phases = [
        Phase::Reserving,
        Phase::Held { expires_at: at },
        Phase::Booking,
        Phase::Switching,
        Phase::Cancelling,
        Phase::Compensating { reason: reason() },
        Phase::Expiring,
        Phase::Booked,
        Phase::Rescheduled,
        Phase::Compensated { reason: reason() },
        Phase::Cancelled,
        Phase::Expired,
    ];
    let mut names: Vec<&str> = phases.iter().map(Phase::name).collect();
    names.push("failed");
    assert_eq!(names, STATES);
    let ends: Vec<&str> = phases
        .iter()
        .filter(|p| p.is_end())
        .map(Phase::name)
        .collect();
    assert_eq!([&ends[..], &["failed"]].concat(), TERMINAL_STATES);
    assert_eq!([RUNNING_STATES, TERMINAL_STATES].concat(), STATES);
}

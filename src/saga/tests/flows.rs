//! Whole sagas, driven step by step: what a user of calsaga relies on.

use chrono::Duration;

use super::*;

fn target_segment(k: u16) -> CancelTarget {
    CancelTarget::Segment(k)
}

#[test]
fn a_booking_costs_one_commit_per_step_plus_one() {
    let mut run = Run::start(book(3, None));
    for k in 0..3 {
        let c = run.create(k, 1);
        assert_eq!((c.workflow, c.attempt), (WF, 1));
        assert_eq!(c.segment, run.saga.planned()[usize::from(k)]);
        assert_eq!(c.attendee.name, "Mia Kunde");
        assert_eq!(c.service_id, "highlights-toner-blowdry");
        run.book_segment(k);
    }
    assert_eq!(run.then, Then::Idle);
    assert_eq!(run.saga.state_name(), "booked");
    assert!(run.saga.is_terminal());
    // API commit + one per call (outcome k with intent k+1) + nothing else.
    assert_eq!(run.commits, 1 + 3 + 1);
    assert_eq!(
        run.kinds(),
        [
            "requested",
            "segment_booking_intended",
            "segment_booked",
            "segment_booking_intended",
            "segment_booked",
            "segment_booking_intended",
            "segment_booked",
            "booked"
        ]
    );
    let view = run.saga.segments_view();
    assert!(view.iter().all(|s| s.status == SegmentStatus::Booked));
    assert_eq!(view[2].calcom_uid.as_deref(), Some("new-2"));
    assert_eq!(
        run.claims,
        vec![ClaimChange::Acquire {
            replacing: None,
            workflow: WF,
            claims: request(3).plan.claims()
        }]
    );
}

#[test]
fn reserving_first_reserves_every_slot_then_books_then_releases() {
    let mut run = Run::start(book(2, Some(10)));
    run.reserve_segment(0);
    assert_eq!(run.reserve(1, 1).reservation_min, 10);
    run.reserve_segment(1);
    run.book_segment(0);
    run.book_segment(1);
    run.release_segment(0);
    run.release_segment(1);
    assert_eq!(run.saga.state_name(), "booked");
    let order: Vec<_> = run
        .kinds()
        .into_iter()
        .filter(|k| k.ends_with("intended"))
        .collect();
    assert_eq!(
        order,
        [
            "reservation_intended",
            "reservation_intended",
            "segment_booking_intended",
            "segment_booking_intended",
            "release_intended",
            "release_intended"
        ]
    );
}

#[test]
fn a_taken_slot_while_reserving_compensates_without_any_booking() {
    let mut run = Run::start(book(2, Some(10)));
    run.reserve_segment(0);
    let c = run.reserve(1, 1);
    run.reply(vec![c.failed(permanent("HTTP 422: already reserved"))]);
    run.release_segment(0);
    assert_eq!(run.saga.state_name(), "compensated");
    assert!(!run.kinds().contains(&"segment_booking_intended"));
    assert_eq!(
        run.claims.last(),
        Some(&ClaimChange::ReleaseAll { workflow: WF })
    );
}

#[test]
fn compensation_cancels_booked_segments_newest_first() {
    let mut run = Run::start(book(3, None));
    run.book_segment(0);
    run.book_segment(1);
    let c = run.create(2, 1);
    run.reply(vec![c.failed(permanent("HTTP 409: booking conflict"))]);
    let Phase::Compensating { reason } = &run.saga.phase else {
        panic!("{:?}", run.saga.phase)
    };
    assert!(
        reason.contains("segment 2 (blow-dry) with host 2") && reason.contains("HTTP 409"),
        "{reason}"
    );
    let first = run.cancel(&target_segment(1));
    assert_eq!(first.calcom_uid, "new-1");
    assert_eq!(first.reason, *reason);
    run.cancel_target(target_segment(1));
    run.cancel_target(target_segment(0));
    assert_eq!(run.saga.state_name(), "compensated");
    assert!(
        run.saga.segments_view()[..2]
            .iter()
            .all(|s| s.status == SegmentStatus::Cancelled)
    );
    assert_eq!(
        run.claims.last(),
        Some(&ClaimChange::ReleaseAll { workflow: WF })
    );
}

#[test]
fn a_cancel_that_keeps_failing_is_retried_without_limit() {
    let mut run = Run::start(book(2, None));
    run.book_segment(0);
    let c = run.create(1, 1);
    run.reply(vec![c.failed(permanent("HTTP 400: not available"))]);
    for attempt in 1..=RETRY_ATTEMPTS_MAX * 2 {
        let c = run.cancel(&target_segment(0));
        assert_eq!(c.attempt, attempt);
        let retry_at = run.now + Duration::seconds(30);
        run.reply(vec![c.failed(retryable("HTTP 503", Some(retry_at)))]);
        assert_eq!(run.then, Then::WaitUntil(retry_at));
        run.now = retry_at;
        run.reply(Vec::new());
    }
    run.cancel_target(target_segment(0));
    assert_eq!(run.saga.state_name(), "compensated");
}

#[test]
fn a_retryable_failure_waits_for_its_retry_at_then_retries() {
    let mut run = Run::start(book(1, None));
    let c = run.create(0, 1);
    let retry_at = run.now + Duration::seconds(42);
    run.reply(vec![c.failed(retryable("HTTP 429", Some(retry_at)))]);
    assert_eq!(run.then, Then::WaitUntil(retry_at));
    run.now = retry_at - Duration::seconds(1);
    assert_eq!(run.reply(Vec::new()), &Then::WaitUntil(retry_at));
    run.now = retry_at;
    run.reply(Vec::new());
    run.create(0, 2);
}

#[test]
fn too_many_attempts_compensate() {
    let mut run = Run::start(book(2, None));
    run.book_segment(0);
    for attempt in 1..=RETRY_ATTEMPTS_MAX {
        let c = run.create(1, attempt);
        run.reply(vec![c.failed(retryable("HTTP 500", None))]);
    }
    let Phase::Compensating { reason } = &run.saga.phase else {
        panic!("{:?}", run.saga.phase)
    };
    assert!(
        reason.contains("gave up after 8 attempts (last: HTTP 500)"),
        "{reason}"
    );
    run.cancel_target(target_segment(0));
    assert_eq!(run.saga.state_name(), "compensated");
}

#[test]
fn an_unknown_outcome_is_reconciled_never_created_twice() {
    let mut run = Run::start(book(2, None));
    let c = run.create(0, 1);
    run.reply(vec![c.unknown("timeout after 10 s".into())]);
    let r = run.reconcile(0);
    assert_eq!((r.workflow, r.attempt), (WF, 1));
    assert_eq!(r.segment, c.segment);
    assert_eq!((r.segment.host, r.segment.event_type_id), (1, 102));
    assert_eq!(run.saga.segments_view()[0].status, SegmentStatus::Uncertain);
    // Found: the segment counts as booked and the saga moves on.
    run.reply(r.found(&["lost-0".into()]));
    assert_eq!(
        run.saga.segments_view()[0].calcom_uid.as_deref(),
        Some("lost-0")
    );
    run.create(1, 1);
}

#[test]
fn a_crash_after_an_intent_reconciles_on_restart() {
    let mut run = Run::start(book(1, None));
    run.create(0, 1);
    // The process dies during the call: only the intent is in the log.
    run.restart();
    let r = run.reconcile(0);
    // Not found: the step runs again as the next attempt.
    run.reply(r.found(&[]));
    run.create(0, 2);
    let intents = run
        .kinds()
        .iter()
        .filter(|k| **k == "segment_booking_intended")
        .count();
    assert_eq!(intents, 2);
}

#[test]
fn a_failing_reconcile_waits_and_a_refused_one_needs_an_admin() {
    let mut run = Run::start(book(1, None));
    run.create(0, 1);
    run.restart();
    let r = run.reconcile(0);
    let retry_at = run.now + Duration::seconds(5);
    run.reply(vec![r.failed(retryable("HTTP 502", Some(retry_at)))]);
    assert_eq!(run.then, Then::WaitUntil(retry_at));
    run.now = retry_at;
    run.reply(Vec::new());
    let r = run.reconcile(0);
    run.reply(vec![r.failed(permanent("HTTP 401: bad API key"))]);
    assert_eq!(run.saga.state_name(), "failed");
    assert!(run.saga.is_terminal());
    assert_eq!(run.then, Then::Idle);
    // The admin fixes the key and resumes: the reconcile runs again.
    run.append(Event::AdminResumeRequested).unwrap();
    run.reply(Vec::new());
    run.reconcile(0);
}

#[test]
fn duplicates_found_while_reconciling_are_cancelled_first() {
    let mut run = Run::start(book(2, None));
    let c = run.create(0, 1);
    run.reply(vec![c.unknown("reset".into())]);
    let r = run.reconcile(0);
    run.reply(r.found(&["a".into(), "b".into()]));
    let d = run.cancel(&CancelTarget::Duplicate("b".into()));
    assert_eq!(d.calcom_uid, "b");
    run.cancel_target(CancelTarget::Duplicate("b".into()));
    assert!(run.kinds().contains(&"booking_cancelled"));
    run.create(1, 1);
}

#[test]
fn a_duplicate_found_after_booked_is_cancelled_and_the_saga_stays_booked() {
    let mut run = Run::start(book(1, None));
    run.book_segment(0);
    assert!(run.saga.is_terminal());
    run.append(Event::DuplicateFound {
        segment: 0,
        uid: "orphan".into(),
    })
    .unwrap();
    assert!(!run.saga.is_terminal());
    run.reply(Vec::new());
    run.cancel_target(CancelTarget::Duplicate("orphan".into()));
    assert_eq!(run.then, Then::Idle);
    assert_eq!(run.saga.state_name(), "booked");
    assert!(run.saga.is_terminal());
}

#[test]
fn reschedule_cancels_the_originals_only_after_every_new_segment_exists() {
    let mut run = Run::start(reschedule(2));
    run.book_segment(0);
    assert!(!run.kinds().contains(&"cancel_intended"));
    run.book_segment(1);
    // The first cancel is intended in the commit of the last booking.
    let kinds = run.kinds();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["segment_booked", "cancel_intended"]
    );
    assert_eq!(run.saga.state_name(), "switching");
    let c = run.cancel(&CancelTarget::Original(1));
    assert_eq!(c.calcom_uid, "old-1");
    assert!(c.reason.contains("rescheduled"), "{}", c.reason);
    run.cancel_target(CancelTarget::Original(1));
    run.cancel_target(CancelTarget::Original(0));
    assert_eq!(run.saga.state_name(), "rescheduled");
    assert_eq!(
        run.claims.last(),
        Some(&ClaimChange::ReleaseAll {
            workflow: ORIGINAL_WF
        })
    );
    // The result can itself be rescheduled or cancelled.
    let again = run.saga.as_original().unwrap();
    assert_eq!(again.workflow, WF);
    assert_eq!(again.segments[1].calcom_uid, "new-1");
}

#[test]
fn a_failed_reschedule_leaves_the_original_untouched() {
    let mut run = Run::start(reschedule(2));
    run.book_segment(0);
    let c = run.create(1, 1);
    run.reply(vec![c.failed(permanent("HTTP 409"))]);
    run.cancel_target(target_segment(0));
    assert_eq!(run.saga.state_name(), "compensated");
    assert!(run.saga.originals.iter().all(|u| *u == Undo::Live));
    let cancelled_originals = run.log.iter().any(|e| {
        matches!(
            e,
            Event::CancelIntended {
                target: CancelTarget::Original(_),
                ..
            }
        )
    });
    assert!(!cancelled_originals);
    assert_eq!(
        run.claims.last(),
        Some(&ClaimChange::ReleaseAll { workflow: WF }),
        "only the new claims go"
    );
}

#[test]
fn cancel_goes_forward_until_every_segment_is_cancelled() {
    let mut run = Run::start(cancel(2));
    let c = run.cancel(&CancelTarget::Original(1));
    assert_eq!(c.reason, "customer cancelled");
    run.reply(vec![c.failed(retryable("reset", None))]);
    run.cancel_target(CancelTarget::Original(1));
    let c = run.cancel(&CancelTarget::Original(0));
    run.reply(vec![c.failed(permanent("HTTP 403"))]);
    assert_eq!(run.saga.state_name(), "failed");
    let e = run
        .append(Event::AdminCompensateRequested {
            reason: "stop".into(),
        })
        .unwrap_err();
    assert!(e.problem.contains("phase"), "{e}");
    run.append(Event::AdminResumeRequested).unwrap();
    run.reply(Vec::new());
    run.cancel_target(CancelTarget::Original(0));
    assert_eq!(run.saga.state_name(), "cancelled");
    let view = run.saga.segments_view();
    assert!(view.iter().all(|s| s.status == SegmentStatus::Cancelled));
    assert_eq!(
        run.claims.last(),
        Some(&ClaimChange::ReleaseAll {
            workflow: ORIGINAL_WF
        })
    );
}

#[test]
fn a_hold_expires_and_releases_its_reservations() {
    let mut run = Run::start(hold(2, 15));
    assert_eq!(run.reserve(0, 1).reservation_min, 15);
    run.reserve_segment(0);
    run.now += Duration::seconds(2);
    run.reserve_segment(1);
    let expires_at = now0() + Duration::minutes(15);
    assert_eq!(run.saga.phase, Phase::Held { expires_at });
    assert_eq!(run.then, Then::WaitUntil(expires_at));
    run.now = expires_at;
    run.reply(Vec::new());
    run.release_segment(0);
    run.release_segment(1);
    assert_eq!(run.saga.state_name(), "expired");
    assert!(run.kinds().contains(&"hold_expired"));
    assert_eq!(
        run.claims.last(),
        Some(&ClaimChange::ReleaseAll { workflow: WF })
    );
}

#[test]
fn a_confirmed_hold_is_booked() {
    let mut run = Run::start(hold(1, 15));
    run.reserve_segment(0);
    run.append(Event::ConfirmRequested).unwrap();
    run.reply(Vec::new());
    run.book_segment(0);
    run.release_segment(0);
    assert_eq!(run.saga.state_name(), "booked");
    // Expiry cannot win after the confirm.
    assert!(run.append(Event::HoldExpired).is_err());
}

#[test]
fn an_admin_can_compensate_a_running_saga_but_not_a_switching_one() {
    let mut run = Run::start(book(2, None));
    run.book_segment(0);
    // Appended while the create of segment 1 is in flight: its outcome still lands.
    run.append(Event::AdminCompensateRequested {
        reason: "customer called".into(),
    })
    .unwrap();
    let c = run.create(1, 1);
    run.reply(vec![c.booked(
        "new-1".into(),
        c.segment.start,
        c.segment.end,
    )]);
    run.cancel_target(target_segment(1));
    run.cancel_target(target_segment(0));
    assert_eq!(
        run.saga.phase,
        Phase::Compensated {
            reason: "customer called".into()
        }
    );

    let mut run = Run::start(reschedule(1));
    run.book_segment(0);
    let e = run
        .append(Event::AdminCompensateRequested {
            reason: "late".into(),
        })
        .unwrap_err();
    assert_eq!(e.state, "switching");
}

#[test]
fn uncertain_reservations_are_repeated_and_lapse_when_compensating() {
    let mut run = Run::start(book(2, Some(5)));
    run.reserve(0, 1);
    run.restart();
    // A reservation is harmless to repeat: the lost one lapses by itself.
    run.reserve(0, 2);
    run.append(Event::AdminCompensateRequested {
        reason: "stop".into(),
    })
    .unwrap();
    run.restart();
    assert_eq!(run.saga.state_name(), "compensated");
}

#[test]
fn a_permanent_release_failure_is_left_to_lapse() {
    let mut run = Run::start(book(1, Some(5)));
    run.reserve_segment(0);
    run.book_segment(0);
    let c = run.release(0);
    run.reply(vec![c.failed(permanent("HTTP 403"))]);
    assert_eq!(run.saga.state_name(), "booked");
}

#[test]
fn only_booked_sagas_can_be_changed() {
    let run = Run::start(book(1, None));
    let e = run.saga.as_original().unwrap_err();
    assert!(e.to_string().contains("is booking, not booked"), "{e}");
}

use super::*;

/// An empty database in a temp folder (kept while the folder lives).
fn scratch_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path().join("m.db"),
        crate::store::StoreConfig::default(),
    );
    (dir, store.unwrap())
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn a_histogram_is_written_cumulative_with_inf_sum_and_count() {
    let mut h = Histogram::new(&[0.1, 1.0]);
    for v in [0.05, 0.1, 0.5, 3.0] {
        h.observe(v);
    }
    let mut out = Exposition::default();
    out.family("x_seconds", Kind::Histogram, "help");
    out.histogram("x_seconds", &[("route", "/a")], &h);
    assert_eq!(
        lines(&out.finish()),
        [
            "# HELP x_seconds help",
            "# TYPE x_seconds histogram",
            "x_seconds_bucket{route=\"/a\",le=\"0.1\"} 2",
            "x_seconds_bucket{route=\"/a\",le=\"1\"} 3",
            "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4",
            "x_seconds_sum{route=\"/a\"} 3.65",
            "x_seconds_count{route=\"/a\"} 4",
        ]
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut out = Exposition::default();
    out.family("g", Kind::Gauge, "a \\ b\nc");
    out.sample("g", &[("k", "say \"hi\"\\\n")], 1);
    out.sample("g", &[], 2);
    assert_eq!(
        lines(&out.finish()),
        [
            "# HELP g a \\\\ b\\nc",
            "# TYPE g gauge",
            "g{k=\"say \\\"hi\\\"\\\\\\n\"} 1",
            "g 2",
        ]
    );
}

#[test]
fn requests_are_labelled_by_route_pattern_and_status_class_never_by_raw_path() {
    let m = Metrics::default();
    let ms = Duration::from_millis;
    m.observe_request(Some(("GET", "/api/v2/bookings/{id}")), 200, ms(3));
    m.observe_request(Some(("GET", "/api/v2/bookings/{id}")), 204, ms(30));
    m.observe_request(Some(("GET", "/api/v2/bookings/{id}")), 404, ms(1));
    m.observe_request(None, 404, ms(1));
    let mut out = Exposition::default();
    m.render_http(&mut out);
    let text = out.finish();
    let count = |labels: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "calsaga_http_request_duration_seconds_count{{{labels}}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    let booking = "route=\"/api/v2/bookings/{id}\",method=\"GET\"";
    assert_eq!(
        count(&format!("{booking},status=\"2xx\"")).as_deref(),
        Some("2")
    );
    assert_eq!(
        count(&format!("{booking},status=\"4xx\"")).as_deref(),
        Some("1")
    );
    assert_eq!(
        count("route=\"unmatched\",method=\"unmatched\",status=\"4xx\"").as_deref(),
        Some("1")
    );
    assert!(
        text.contains("calsaga_http_request_duration_seconds_bucket{route=\"/api/v2/bookings/{id}\",method=\"GET\",status=\"2xx\",le=\"0.005\"} 1")
    );
}

#[test]
fn cal_com_attempts_are_grouped_by_route_family_and_outcome_class() {
    assert_eq!(route_family("POST /v2/bookings/{uid}/cancel"), "bookings");
    assert_eq!(route_family("GET /v2/slots/reservations/{uid}"), "slots");
    assert_eq!(route_family("GET /v2/event-types"), "event-types");
    assert_eq!(route_family("GET /"), "other");
    assert_eq!(outcome_class(CallOutcome::Status(201)), "2xx");
    assert_eq!(outcome_class(CallOutcome::Status(429)), "429");
    assert_eq!(outcome_class(CallOutcome::Status(503)), "5xx");
    assert_eq!(outcome_class(CallOutcome::MaybeSent), "maybe_sent");
    let m = Metrics::default();
    for (outcome, latency_ms) in [(CallOutcome::Status(200), 40), (CallOutcome::NotSent, 2)] {
        m.record(&CallRecord {
            route: "GET /v2/bookings",
            outcome,
            latency_ms,
            attempt: 1,
        });
    }
    let mut out = Exposition::default();
    m.render_calcom(&mut out);
    let text = out.finish();
    assert!(text.contains(
        "calsaga_calcom_request_duration_seconds_count{family=\"bookings\",class=\"2xx\"} 1"
    ));
    assert!(text.contains(
        "calsaga_calcom_request_duration_seconds_sum{family=\"bookings\",class=\"2xx\"} 0.04"
    ));
    assert!(text.contains(
        "calsaga_calcom_request_duration_seconds_count{family=\"bookings\",class=\"not_sent\"} 1"
    ));
}

#[test]
fn an_empty_database_renders_every_family_and_zero_log_counters() {
    let (_dir, store) = scratch_store();
    let m = Metrics::default();
    m.committed(Duration::from_micros(1_500));
    let text = m.render(&store, chrono::Utc::now()).unwrap();
    for family in [
        "calsaga_http_request_duration_seconds",
        "calsaga_calcom_request_duration_seconds",
        "calsaga_store_commit_duration_seconds",
        "calsaga_store_commit_batches_total",
        "calsaga_store_poisoned",
        "calsaga_workflows",
        "calsaga_webhook_inbox_entries",
        "calsaga_compensations_total",
        "calsaga_reconciliations_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    assert!(text.contains("calsaga_store_commit_duration_seconds_bucket{le=\"0.002\"} 1\n"));
    assert!(text.contains("calsaga_store_commit_duration_seconds_bucket{le=\"0.001\"} 0\n"));
    assert!(text.contains("calsaga_compensations_total{phase=\"started\"} 0\n"));
    assert!(text.contains("calsaga_reconciliations_total{phase=\"failed\"} 0\n"));
    assert!(text.contains("calsaga_store_poisoned 0\n"));
}

/// `calsaga_...` names in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("calsaga_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_and_the_docs_name_exactly_the_metrics_we_write() {
    let (_dir, store) = scratch_store();
    let m = Metrics::default();
    m.observe_request(None, 200, Duration::from_millis(1));
    m.record(&CallRecord {
        route: "GET /v2/slots",
        outcome: CallOutcome::Status(200),
        latency_ms: 1,
        attempt: 1,
    });
    let text = m.render(&store, chrono::Utc::now()).unwrap();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    // Gauges read from tables have no samples in an empty database.
    let written: std::collections::BTreeSet<String> = metric_names(&text)
        .into_iter()
        .chain(families.iter().map(|f| f.to_string()))
        .collect();
    let dashboard = include_str!("../../docs/grafana-dashboard.json");
    for name in metric_names(dashboard) {
        assert!(
            written.contains(&name),
            "the dashboard uses {name}, which is not written"
        );
    }
    let doc = include_str!("../../docs/METRICS.md");
    for family in families {
        assert!(
            doc.contains(&format!("| `{family}` |")),
            "docs/METRICS.md lacks {family}"
        );
    }
}

#[test]
fn log_counters_count_events_of_their_kinds_and_are_recounted_only_after_the_refresh() {
    use crate::store::{NewEvent, WriteOp};
    let (_dir, store) = scratch_store();
    let at = chrono::Utc::now();
    let workflow = uuid::Uuid::new_v4();
    let event = |kind: &str| NewEvent {
        at,
        kind: kind.into(),
        payload: "{}".into(),
    };
    let append = |expected_seq, kinds: &[&str]| WriteOp::AppendEvents {
        workflow,
        expected_seq,
        events: kinds.iter().map(|k| event(k)).collect(),
        projection: None,
    };
    let create = WriteOp::CreateWorkflow {
        id: workflow,
        kind: "book".into(),
        service: "haircut".into(),
        state: "compensated".into(),
        at,
        projection: "{}".into(),
    };
    let kinds = [
        "requested",
        "compensation_started",
        "compensated",
        "segment_reconciled",
    ];
    store
        .commit_blocking(vec![create, append(0, &kinds)])
        .unwrap();
    let m = Metrics::default();
    let first = m.render(&store, chrono::Utc::now()).unwrap();
    for line in [
        "calsaga_compensations_total{phase=\"started\"} 1",
        "calsaga_compensations_total{phase=\"finished\"} 1",
        "calsaga_reconciliations_total{phase=\"resolved\"} 1",
        "calsaga_reconciliations_total{phase=\"failed\"} 0",
        "calsaga_workflows{kind=\"book\",state=\"compensated\"} 1",
    ] {
        assert!(first.lines().any(|l| l == line), "{line} not in\n{first}");
    }
    store
        .commit_blocking(vec![append(4, &["reconcile_failed"])])
        .unwrap();
    let cached = m.render(&store, chrono::Utc::now()).unwrap();
    assert!(cached.contains("calsaga_reconciliations_total{phase=\"failed\"} 0\n"));
    *lock(&m.log_counts.last) = None;
    let recounted = m.render(&store, chrono::Utc::now()).unwrap();
    assert!(recounted.contains("calsaga_reconciliations_total{phase=\"failed\"} 1\n"));
}

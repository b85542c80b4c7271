//! The validated configuration of `calsaga serve`, built once from flags and
//! environment variables. Everything is checked here, before anything opens
//! a file or a socket, and each problem says which flag or variable to fix.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::health::alerts::{AlertConfig, AlertFormat, AlertTarget};
use crate::http::{HttpSettings, Quota};
use crate::runtime::EngineConfig;

/// Where Cal.com is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalcomTarget {
    /// The embedded mock, started on a loopback port (no API key configured).
    Embedded {
        fixture: PathBuf,
        /// 0 picks a free port.
        port: u16,
        scenario: Option<String>,
        state_file: Option<PathBuf>,
    },
    /// A real Cal.com (or a mock in another process).
    Remote {
        base_url: String,
        api_key: String,
        /// Cal.com's limit for this key (120 unless Cal.com raised it).
        requests_per_minute_max: u32,
    },
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: PathBuf,
    pub bind: SocketAddr,
    pub workflows: PathBuf,
    pub calcom: CalcomTarget,
    /// Deadline of one Cal.com request.
    pub calcom_timeout: Duration,
    pub engine: EngineConfig,
    pub http: HttpSettings,
    pub health: HealthSettings,
}

/// The Cal.com health checks of `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// The quick route reuses a report younger than this.
    pub cache_ttl: Duration,
    /// Run every check this often (and alert on changes); None: only on request.
    pub interval: Option<Duration>,
    pub alerts: AlertConfig,
}

/// The raw inputs, as clap hands them over.
#[derive(Debug, Clone)]
pub struct ServeInputs {
    pub db: PathBuf,
    pub bind: SocketAddr,
    pub workflows: PathBuf,
    pub calcom_url: Option<String>,
    pub calcom_api_key: Option<String>,
    pub calcom_requests_per_minute: u32,
    pub calcom_timeout_s: u64,
    pub mock_fixture: PathBuf,
    pub mock_port: u16,
    pub mock_scenario: Option<String>,
    pub mock_state_file: Option<PathBuf>,
    pub sagas_concurrent_max: usize,
    pub reserve_min: Option<u32>,
    pub slot_interval_min: u32,
    pub rate_limit_per_min: u32,
    pub rate_limit_burst: u32,
    pub webhook_secret: Option<String>,
    pub webhook_secret_previous: Option<String>,
    pub broken_policy: String,
    pub health_cache_ttl_s: u64,
    pub health_interval_s: u64,
    pub alert_slack_urls: Vec<String>,
    pub alert_webhook_urls: Vec<String>,
    /// Cancel orphaned Cal.com bookings on start (`--orphan-scan`).
    pub orphan_scan: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {what}: {problem}")]
    Invalid { what: &'static str, problem: String },
}

fn invalid(what: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what,
        problem: problem.into(),
    }
}

impl ServeConfig {
    pub fn from_inputs(i: ServeInputs) -> Result<ServeConfig, ConfigError> {
        let calcom = calcom_target(&i)?;
        if i.sagas_concurrent_max == 0 || i.sagas_concurrent_max > 4096 {
            return Err(invalid("--sagas-max", "must be between 1 and 4096"));
        }
        let slot_interval_min = NonZeroU32::new(i.slot_interval_min)
            .filter(|m| m.get() <= 24 * 60)
            .ok_or_else(|| invalid("--slot-interval-min", "must be between 1 and 1440 minutes"))?;
        if !(1..=300).contains(&i.calcom_timeout_s) {
            return Err(invalid(
                "--calcom-timeout-s",
                "must be between 1 and 300 seconds",
            ));
        }
        let calcom_timeout = Duration::from_secs(i.calcom_timeout_s);
        if i.reserve_min.is_some_and(|m| m == 0 || m > 60) {
            return Err(invalid("--reserve-min", "must be between 1 and 60 minutes"));
        }
        let http = HttpSettings {
            rate: rate_quota(&i)?,
            webhook_secrets: webhook_secrets(&i, &calcom)?,
            broken_policy: i
                .broken_policy
                .parse()
                .map_err(|e: String| invalid("--broken-policy", e))?,
        };
        let health = health_settings(&i)?;
        Ok(ServeConfig {
            db: i.db,
            bind: i.bind,
            workflows: i.workflows,
            calcom,
            calcom_timeout,
            engine: EngineConfig {
                // A request cut off by a crash or a timeout may still be
                // processed by Cal.com; give it twice its deadline to land.
                reconcile_settle: calcom_timeout * 2,
                sagas_concurrent_max: i.sagas_concurrent_max,
                reserve_min: i.reserve_min,
                slot_interval_min,
                rng_seed: rand::random(),
                orphan_scan_on_start: i.orphan_scan,
                ..EngineConfig::default()
            },
            http,
            health,
        })
    }
}

fn health_settings(i: &ServeInputs) -> Result<HealthSettings, ConfigError> {
    if !(1..=3600).contains(&i.health_cache_ttl_s) {
        return Err(invalid(
            "--health-cache-ttl-s",
            "must be between 1 and 3600 seconds",
        ));
    }
    if i.health_interval_s != 0 && !(10..=86_400).contains(&i.health_interval_s) {
        return Err(invalid(
            "--health-interval-s",
            "must be 0 (off) or between 10 and 86400 seconds",
        ));
    }
    let slack = i.alert_slack_urls.iter().map(|u| (u, AlertFormat::Slack));
    let generic = i
        .alert_webhook_urls
        .iter()
        .map(|u| (u, AlertFormat::Generic));
    let targets = slack
        .chain(generic)
        .map(|(url, format)| {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(AlertTarget {
                    url: url.clone(),
                    format,
                })
            } else {
                // The URL itself may hold a token: never echo it.
                Err(invalid(
                    "--alert-slack-url/--alert-webhook-url",
                    "an alert URL is not an http(s) URL; paste the whole incoming-webhook URL",
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HealthSettings {
        cache_ttl: Duration::from_secs(i.health_cache_ttl_s),
        interval: (i.health_interval_s > 0).then(|| Duration::from_secs(i.health_interval_s)),
        alerts: AlertConfig {
            targets,
            ..AlertConfig::default()
        },
    })
}

fn rate_quota(i: &ServeInputs) -> Result<Quota, ConfigError> {
    if !(1..=1_000_000).contains(&i.rate_limit_per_min) {
        return Err(invalid(
            "--rate-limit-per-min",
            "must be between 1 and 1000000",
        ));
    }
    if !(1..=100_000).contains(&i.rate_limit_burst) {
        return Err(invalid(
            "--rate-limit-burst",
            "must be between 1 and 100000",
        ));
    }
    Ok(Quota {
        per_min: i.rate_limit_per_min,
        burst: i.rate_limit_burst,
    })
}

/// The current secret first, then the previous one during a rotation.
fn webhook_secrets(i: &ServeInputs, calcom: &CalcomTarget) -> Result<Vec<String>, ConfigError> {
    let given = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let (current, previous) = (given(&i.webhook_secret), given(&i.webhook_secret_previous));
    for (what, secret) in [
        ("CALSAGA_WEBHOOK_SECRET", &current),
        ("CALSAGA_WEBHOOK_SECRET_PREVIOUS", &previous),
    ] {
        if secret
            .as_deref()
            .is_some_and(|s| s.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(invalid(
                what,
                "contains spaces or control characters; paste the secret exactly as set in Cal.com",
            ));
        }
    }
    match (current, previous) {
        (None, Some(_)) => Err(invalid(
            "CALSAGA_WEBHOOK_SECRET_PREVIOUS",
            "is set without CALSAGA_WEBHOOK_SECRET; set the new secret too (the previous one is only for a rotation)",
        )),
        (None, None) if is_real(calcom) => Err(invalid(
            "CALSAGA_WEBHOOK_SECRET",
            "is not set; against a real Cal.com calsaga needs the secret of the Cal.com webhook that posts to /webhooks/calcom (--webhook-secret)",
        )),
        (current, previous) => Ok(current.into_iter().chain(previous).collect()),
    }
}

/// A Cal.com off this machine. One on a loopback address is a mock or a
/// development setup, which may run without webhooks.
fn is_real(calcom: &CalcomTarget) -> bool {
    let CalcomTarget::Remote { base_url, .. } = calcom else {
        return false;
    };
    let authority = base_url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

fn calcom_target(i: &ServeInputs) -> Result<CalcomTarget, ConfigError> {
    let Some(api_key) = i.calcom_api_key.as_deref().filter(|k| !k.is_empty()) else {
        if i.calcom_url.is_some() {
            return Err(invalid(
                "CALCOM_API_KEY",
                "is not set but --calcom-url is; set the key of that Cal.com account, or drop \
                 --calcom-url to use the embedded mock",
            ));
        }
        return Ok(CalcomTarget::Embedded {
            fixture: i.mock_fixture.clone(),
            port: i.mock_port,
            scenario: i.mock_scenario.clone(),
            state_file: i.mock_state_file.clone(),
        });
    };
    remote_calcom(
        api_key,
        i.calcom_url.as_deref(),
        i.calcom_requests_per_minute,
    )
}

/// A real Cal.com (or a mock in another process) at `calcom_url` (default
/// https://api.cal.com), checked as `serve` checks it; the admin commands
/// use it too.
pub fn remote_calcom(
    api_key: &str,
    calcom_url: Option<&str>,
    requests_per_minute: u32,
) -> Result<CalcomTarget, ConfigError> {
    if api_key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "CALCOM_API_KEY",
            "contains spaces or control characters; paste the key exactly as Cal.com shows it",
        ));
    }
    let base_url = calcom_url.unwrap_or("https://api.cal.com").to_string();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(invalid(
            "--calcom-url",
            format!("{base_url:?} is not an http(s) URL; use e.g. https://api.cal.com"),
        ));
    }
    if requests_per_minute == 0 {
        return Err(invalid(
            "--calcom-requests-per-minute",
            "must be at least 1; Cal.com's default is 120 per API key",
        ));
    }
    Ok(CalcomTarget::Remote {
        base_url: base_url.trim_end_matches('/').to_string(),
        api_key: api_key.to_string(),
        requests_per_minute_max: requests_per_minute,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ServeInputs {
        ServeInputs {
            db: "calsaga.db".into(),
            bind: "127.0.0.1:8080".parse().unwrap(),
            workflows: "workflows".into(),
            mock_fixture: "fixtures/mock/salon.json".into(),
            calcom_url: None,
            calcom_api_key: None,
            calcom_requests_per_minute: 120,
            calcom_timeout_s: 30,
            mock_port: 0,
            mock_scenario: None,
            mock_state_file: None,
            sagas_concurrent_max: 64,
            reserve_min: None,
            slot_interval_min: 15,
            rate_limit_per_min: 600,
            rate_limit_burst: 100,
            webhook_secret: None,
            webhook_secret_previous: None,
            broken_policy: "cancel-rest".into(),
            health_cache_ttl_s: 30,
            health_interval_s: 60,
            alert_slack_urls: Vec::new(),
            alert_webhook_urls: Vec::new(),
            orphan_scan: true,
        }
    }

    #[test]
    fn no_api_key_means_the_embedded_mock() {
        let config = ServeConfig::from_inputs(inputs()).unwrap();
        assert!(matches!(config.calcom, CalcomTarget::Embedded { .. }));
    }

    #[test]
    fn a_key_means_the_real_cal_com_by_default() {
        let config = ServeConfig::from_inputs(ServeInputs {
            calcom_api_key: Some("cal_live_abc".into()),
            webhook_secret: Some("whsec".into()),
            ..inputs()
        })
        .unwrap();
        assert_eq!(
            config.calcom,
            CalcomTarget::Remote {
                base_url: "https://api.cal.com".into(),
                api_key: "cal_live_abc".into(),
                requests_per_minute_max: 120,
            }
        );
    }

    #[test]
    fn a_cal_com_on_loopback_may_run_without_a_webhook_secret() {
        for url in [
            "http://127.0.0.1:5555",
            "http://localhost:3000/",
            "http://[::1]:80",
        ] {
            let config = ServeConfig::from_inputs(ServeInputs {
                calcom_api_key: Some("k".into()),
                calcom_url: Some(url.into()),
                ..inputs()
            });
            assert!(
                config.is_ok_and(|c| c.http.webhook_secrets.is_empty()),
                "{url}"
            );
        }
        let real = ServeConfig::from_inputs(ServeInputs {
            calcom_api_key: Some("k".into()),
            ..inputs()
        });
        assert!(real.is_err(), "api.cal.com needs a webhook secret");
    }

    #[test]
    fn each_bad_input_names_what_to_fix() {
        let cases = [
            (
                ServeInputs {
                    calcom_url: Some("http://127.0.0.1:1".into()),
                    ..inputs()
                },
                "CALCOM_API_KEY: is not set",
            ),
            (
                ServeInputs {
                    calcom_api_key: Some("cal_ x".into()),
                    ..inputs()
                },
                "paste the key exactly",
            ),
            (
                ServeInputs {
                    calcom_api_key: Some("k".into()),
                    calcom_url: Some("api.cal.com".into()),
                    ..inputs()
                },
                "--calcom-url: \"api.cal.com\" is not an http(s) URL",
            ),
            (
                ServeInputs {
                    sagas_concurrent_max: 0,
                    ..inputs()
                },
                "--sagas-max",
            ),
            (
                ServeInputs {
                    slot_interval_min: 0,
                    ..inputs()
                },
                "--slot-interval-min",
            ),
            (
                ServeInputs {
                    reserve_min: Some(0),
                    ..inputs()
                },
                "--reserve-min",
            ),
            (
                ServeInputs {
                    rate_limit_burst: 0,
                    ..inputs()
                },
                "--rate-limit-burst",
            ),
            (
                ServeInputs {
                    calcom_api_key: Some("k".into()),
                    calcom_url: Some("https://cal.example.com:8443/api".into()),
                    ..inputs()
                },
                "CALSAGA_WEBHOOK_SECRET: is not set; against a real Cal.com",
            ),
            (
                ServeInputs {
                    webhook_secret_previous: Some("old".into()),
                    ..inputs()
                },
                "CALSAGA_WEBHOOK_SECRET_PREVIOUS: is set without",
            ),
            (
                ServeInputs {
                    broken_policy: "ignore".into(),
                    ..inputs()
                },
                "--broken-policy: \"ignore\" is not a policy",
            ),
            (
                ServeInputs {
                    health_cache_ttl_s: 0,
                    ..inputs()
                },
                "--health-cache-ttl-s",
            ),
            (
                ServeInputs {
                    health_interval_s: 5,
                    ..inputs()
                },
                "--health-interval-s: must be 0 (off)",
            ),
            (
                ServeInputs {
                    alert_slack_urls: vec!["hooks.slack.com/services/T0/B0/secret".into()],
                    ..inputs()
                },
                "an alert URL is not an http(s) URL",
            ),
        ];
        for (input, expected) in cases {
            let e = ServeConfig::from_inputs(input).unwrap_err().to_string();
            assert!(e.contains(expected), "{expected:?} not in {e}");
        }
    }

    #[test]
    fn alert_urls_become_targets_and_interval_zero_turns_periodic_checks_off() {
        let config = ServeConfig::from_inputs(ServeInputs {
            health_interval_s: 0,
            alert_slack_urls: vec!["https://hooks.slack.com/services/x".into()],
            alert_webhook_urls: vec!["http://127.0.0.1:9/alerts".into()],
            ..inputs()
        })
        .unwrap();
        assert_eq!(config.health.interval, None);
        let formats: Vec<AlertFormat> = config
            .health
            .alerts
            .targets
            .iter()
            .map(|t| t.format)
            .collect();
        assert_eq!(formats, [AlertFormat::Slack, AlertFormat::Generic]);
        let default = ServeConfig::from_inputs(inputs()).unwrap();
        assert_eq!(default.health.interval, Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_bad_alert_url_is_refused_without_echoing_it() {
        let e = ServeConfig::from_inputs(ServeInputs {
            alert_webhook_urls: vec!["ftp://alerts.example.com/t0k3n".into()],
            ..inputs()
        })
        .unwrap_err()
        .to_string();
        assert!(!e.contains("t0k3n"), "{e}");
    }
}

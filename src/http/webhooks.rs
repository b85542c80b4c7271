//! `POST /webhooks/calcom`: Cal.com's webhook deliveries. The body (its
//! size already capped from Content-Length, 413) is verified before it is
//! parsed: `X-Cal-Signature-256` must be the lower-case hex HMAC-SHA256 of
//! the exact bytes under one of the configured secrets (two during a
//! rotation), compared with `verify_slice`; then `createdAt` must be within
//! 300 s of now. Every failure gets the same 401, and only the log says
//! why. A verified body is committed to the inbox (deduplicated by its
//! hash) and acknowledged at once; `inbox.rs` processes it later (I5).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::App;
use super::call::Call;
use super::calls::run;
use super::reply::{ApiError, Reply};
use crate::calcom::wire::{NO_SECRET_SIGNATURE, SIGNATURE_HEADER};
use crate::runtime::EngineError;
use crate::store::{StoreError, WriteOp, body_sha256};

/// How far `createdAt` may be from now: older deliveries are replays.
pub const CREATED_AT_WINDOW: Duration = Duration::from_secs(300);

/// Why a delivery was refused (logged; the client sees one 401 for all).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejected {
    NoSecretConfigured,
    MissingSignature,
    NoSecretProvided,
    MalformedSignature,
    BadSignature,
    NotUtf8,
    NotJson,
    NoCreatedAt,
    Stale { age_s: i64 },
}

impl Rejected {
    fn reason(&self) -> String {
        match self {
            Rejected::NoSecretConfigured => {
                "calsaga has no webhook secret; start it with --webhook-secret".into()
            }
            Rejected::MissingSignature => format!("no {SIGNATURE_HEADER} header"),
            Rejected::NoSecretProvided => {
                "the Cal.com webhook has no secret (signature \"no-secret-provided\")".into()
            }
            Rejected::MalformedSignature => "the signature is not 64 lower-case hex digits".into(),
            Rejected::BadSignature => "the signature matches no configured secret".into(),
            Rejected::NotUtf8 => "the body is not UTF-8".into(),
            Rejected::NotJson => "the body is not a JSON object".into(),
            Rejected::NoCreatedAt => "the body has no RFC 3339 createdAt".into(),
            Rejected::Stale { age_s } => format!(
                "createdAt is {age_s} s from now, outside the {} s window",
                CREATED_AT_WINDOW.as_secs()
            ),
        }
    }
}

pub fn receive(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let secrets = &app.settings.webhook_secrets;
    let verified = verify(secrets, call.header(SIGNATURE_HEADER), &call.body)
        .and_then(|()| std::str::from_utf8(&call.body).map_err(|_| Rejected::NotUtf8))
        .and_then(|text| fresh(text, now).map(|()| text));
    let text = match verified {
        Ok(text) => text,
        Err(rejected) => {
            tracing::warn!(id = call.request_id, peer = %call.peer, reason = %rejected.reason(), "webhook refused");
            return Err(ApiError::new(
                401,
                "webhook_rejected",
                "the webhook was not accepted; check that the secret of the Cal.com webhook matches calsaga's --webhook-secret",
            ));
        }
    };
    let sha = body_sha256(text);
    let stored = run(
        app,
        app.engine.store().commit(vec![WriteOp::InboxInsert {
            body: text.to_string(),
            received_at: now,
        }]),
    );
    match stored {
        Ok(()) => {
            tracing::info!(id = call.request_id, sha256 = %sha, "webhook stored");
            app.inbox.notify_one();
            Ok(Reply::json(200, &json!({ "status": "accepted" })))
        }
        Err(StoreError::InboxDuplicate { .. }) => {
            tracing::info!(id = call.request_id, sha256 = %sha, "webhook duplicate");
            Ok(Reply::json(200, &json!({ "status": "duplicate" })))
        }
        Err(e) => Err(EngineError::from(e).into()),
    }
}

/// The signature against every configured secret; `verify_slice` compares
/// in constant time.
fn verify(secrets: &[String], header: Option<&str>, body: &[u8]) -> Result<(), Rejected> {
    if secrets.is_empty() {
        return Err(Rejected::NoSecretConfigured);
    }
    let signature = header.ok_or(Rejected::MissingSignature)?;
    if signature == NO_SECRET_SIGNATURE {
        return Err(Rejected::NoSecretProvided);
    }
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if signature.len() != 64 || !signature.bytes().all(lower_hex) {
        return Err(Rejected::MalformedSignature);
    }
    let signature = hex::decode(signature).map_err(|_| Rejected::MalformedSignature)?;
    let matched = secrets.iter().fold(false, |matched, secret| {
        let ok = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map(|mut mac| {
                mac.update(body);
                mac.verify_slice(&signature).is_ok()
            })
            .unwrap_or(false);
        matched | ok
    });
    if matched {
        Ok(())
    } else {
        Err(Rejected::BadSignature)
    }
}

/// `createdAt` within the window around `now`.
fn fresh(text: &str, now: DateTime<Utc>) -> Result<(), Rejected> {
    let body: Value = serde_json::from_str(text).map_err(|_| Rejected::NotJson)?;
    if !body.is_object() {
        return Err(Rejected::NotJson);
    }
    let created = body["createdAt"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .ok_or(Rejected::NoCreatedAt)?;
    let age_s = (now - created.to_utc()).num_seconds();
    if age_s.unsigned_abs() > CREATED_AT_WINDOW.as_secs() {
        return Err(Rejected::Stale { age_s });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::sign;

    #[test]
    fn only_a_lower_case_hmac_under_a_configured_secret_verifies() {
        let secrets = vec!["new".to_string(), "old".to_string()];
        let body = br#"{"createdAt":"2030-03-01T00:00:00Z"}"#;
        let good = sign(Some("old"), body);
        assert_eq!(verify(&secrets, Some(&good), body), Ok(()));
        assert_eq!(
            verify(&secrets, Some(&sign(Some("new"), body)), body),
            Ok(())
        );
        assert_eq!(
            verify(&[], Some(&good), body),
            Err(Rejected::NoSecretConfigured)
        );
        assert_eq!(
            verify(&secrets, None, body),
            Err(Rejected::MissingSignature)
        );
        assert_eq!(
            verify(&secrets, Some("no-secret-provided"), body),
            Err(Rejected::NoSecretProvided)
        );
        let upper = good.to_ascii_uppercase();
        assert_eq!(
            verify(&secrets, Some(&upper), body),
            Err(Rejected::MalformedSignature)
        );
        assert_eq!(
            verify(&secrets, Some(&good[..63]), body),
            Err(Rejected::MalformedSignature)
        );
        let mut flipped = body.to_vec();
        flipped[3] ^= 1;
        assert_eq!(
            verify(&secrets, Some(&good), &flipped),
            Err(Rejected::BadSignature)
        );
        let other = sign(Some("guess"), body);
        assert_eq!(
            verify(&secrets, Some(&other), body),
            Err(Rejected::BadSignature)
        );
    }

    #[test]
    fn created_at_must_be_within_five_minutes_either_way() {
        let now: DateTime<Utc> = "2030-03-01T00:05:00Z".parse().unwrap();
        let at = |t: &str| format!(r#"{{"createdAt":"{t}"}}"#);
        assert_eq!(fresh(&at("2030-03-01T00:00:00Z"), now), Ok(()));
        assert_eq!(fresh(&at("2030-03-01T00:10:00Z"), now), Ok(()));
        assert_eq!(
            fresh(&at("2030-02-28T23:59:59Z"), now),
            Err(Rejected::Stale { age_s: 301 })
        );
        assert_eq!(fresh("{}", now), Err(Rejected::NoCreatedAt));
        assert_eq!(fresh("[1]", now), Err(Rejected::NotJson));
        assert_eq!(fresh("not json", now), Err(Rejected::NotJson));
    }
}

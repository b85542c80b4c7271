//! Mock-only control routes, outside Cal.com's API and its guards (no auth,
//! no throttling, no faults): `GET /_mock/state`, `POST /_mock/reset`,
//! `GET|POST|DELETE /_mock/faults`. Bodies are plain JSON, not envelopes.

use serde::Deserialize;
use serde_json::json;

use super::engine::Mock;
use super::faults::FaultRule;
use super::reply::Answer;
use crate::calcom::Method;

/// What `POST /_mock/faults` takes: one rule, a list, or `{"rules":[...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultInput {
    One(FaultRule),
    Many(Vec<FaultRule>),
    Wrapped { rules: Vec<FaultRule> },
}

pub fn serve(mock: &Mock, method: Method, path: &str, body: Option<&[u8]>) -> Answer {
    match (method, path) {
        (Method::Get, "/_mock/state") => Answer::plain(200, mock.view()),
        (Method::Post, "/_mock/reset") => match mock.reset() {
            Ok(()) => Answer::plain(200, mock.view()),
            Err(_) => refuse(
                500,
                "the state file could not be written; see the mock's stderr",
            ),
        },
        (Method::Get, "/_mock/faults") => faults(mock),
        (Method::Delete, "/_mock/faults") => {
            mock.clear_faults();
            faults(mock)
        }
        (Method::Post, "/_mock/faults") => add_faults(mock, body.unwrap_or_default()),
        _ => refuse(
            404,
            "unknown control route; use GET /_mock/state, POST /_mock/reset or GET|POST|DELETE /_mock/faults",
        ),
    }
}

fn faults(mock: &Mock) -> Answer {
    Answer::plain(200, json!({ "rules": mock.fault_rules() }))
}

fn add_faults(mock: &Mock, body: &[u8]) -> Answer {
    let rules = match serde_json::from_slice::<FaultInput>(body) {
        Ok(FaultInput::One(r)) => vec![r],
        Ok(FaultInput::Many(rs) | FaultInput::Wrapped { rules: rs }) => rs,
        Err(e) => {
            return refuse(
                400,
                &format!(
                    "not a fault rule ({e}); send e.g. {{\"route\":\"POST /v2/bookings\",\"nth\":1,\"status\":500}}"
                ),
            );
        }
    };
    match mock.add_faults(rules) {
        Ok(()) => faults(mock),
        Err(problem) => refuse(400, &problem),
    }
}

fn refuse(status: u16, message: &str) -> Answer {
    Answer::plain(status, json!({ "error": message }))
}

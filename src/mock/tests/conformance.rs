//! Conformance with Cal.com's own contract. The real client drives the mock
//! through every route it uses, successes and errors, and each exchange is
//! checked against `fixtures/calcom/openapi-v2-subset.json` (Cal.com's
//! OpenAPI document, those routes): the request's `cal-api-version`, its
//! query names and its JSON body against the operation, the answer's body
//! against the schema of its status. The document describes no error
//! answers, so those are checked against the envelope of Cal.com's
//! exception filters (`fixtures/calcom/error-envelope.schema.json`). Where
//! the document is wrong per Cal.com's source, `EXCEPTIONS` names the
//! place, what is checked instead and the source that settles it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{KEY, World};
use crate::calcom::wire::{
    BookingFilter, CancelBooking, CreateBooking, CreateEventType, CreateWebhook, NewAttendee,
    RescheduleBooking, ReserveSlot, SlotsQuery, UpdateEventType, UpdateWebhook,
};
use crate::calcom::{
    ApiRequest, ApiResponse, CalcomApi, Client, Method, Transport, TransportError,
};
use crate::mock::MockTransport;

const DOCUMENT: &str = include_str!("../../../fixtures/calcom/openapi-v2-subset.json");
const ERROR_ENVELOPE: &str = include_str!("../../../fixtures/calcom/error-envelope.schema.json");

/// Where Cal.com's document disagrees with its source: where (a JSON
/// pointer; `*` in a schema name matches any run of characters), what is
/// checked there instead, and the source that settles it.
const EXCEPTIONS: &[(&str, Fix, &str)] = &[
    (
        "/paths/~1v2~1slots/get/responses/200/content/application~1json/schema",
        Fix::Replace(
            r#"{"type": "object", "required": ["status", "data"], "properties": {
                "status": {"const": "success"},
                "data": {"type": "object", "additionalProperties": {"type": "array", "items": {
                    "type": "object", "required": ["start"],
                    "properties": {"start": {"type": "string"}, "end": {"type": "string"}}}}}}}"#,
        ),
        "apps/api/v2/src/modules/slots/slots-2024-09-04/controllers/slots.controller.ts getAvailableSlots returns {status: SUCCESS_STATUS, data}; each slot is {start}, or {start, end} with format=range (services/slots-output.service.ts). The document leaves out the envelope and gives the default format as bare strings.",
    ),
    (
        "/components/schemas/GetReservedSlotOutput_2024_09_04/properties/data",
        Fix::Replace(
            r##"{"nullable": true, "allOf": [{"$ref": "#/components/schemas/ReserveSlotOutput_2024_09_04"}]}"##,
        ),
        "apps/api/v2/src/modules/slots/slots-2024-09-04/outputs/get-reserved-slot.output.ts: the answer and its data share the class name GetReservedSlotOutput_2024_09_04, so the document's data refers to the answer itself; data has the reservation's fields (slots.repository.ts), or is null for an unknown uid.",
    ),
    (
        "/components/schemas/*Booking*Output_2024_08_13/properties/rating",
        Fix::Nullable,
        "apps/api/v2/src/ee/bookings/2024-08-13/services/output.service.ts getOutputBooking copies rating from the database, null until the attendee rates.",
    ),
    (
        "/components/schemas/*Booking*Output_2024_08_13/properties/updatedAt",
        Fix::Nullable,
        "apps/api/v2/src/ee/bookings/2024-08-13/services/output.service.ts getOutputBooking copies updatedAt from the database, null until the booking changes.",
    ),
    (
        "/components/schemas/EventTypeOutput_2024_06_14/properties/users/items",
        Fix::Replace(r#"{"type": "object", "required": ["id", "name", "username"]}"#),
        "packages/platform/types/event-types/event-types_2024_06_14/outputs/event-type.output.ts: users!: User_2024_06_14[] (id, name, username, avatarUrl), not strings.",
    ),
    (
        "/components/schemas/UserWebhookOutputDto/properties/id",
        Fix::Replace(r#"{"type": "string"}"#),
        "packages/prisma/schema.prisma model Webhook: id String @id (a UUID), passed through unchanged; the `id!: number` of apps/api/v2/src/modules/webhooks/outputs/webhook.output.ts is never converted to.",
    ),
    (
        "/components/schemas/UserWebhookOutputDto/properties/payloadTemplate",
        Fix::Nullable,
        "packages/prisma/schema.prisma model Webhook: payloadTemplate String?, null unless one was set.",
    ),
    (
        "/components/schemas/*WebhookInputDto/properties/triggers",
        Fix::ArrayOfIt,
        "apps/api/v2/src/modules/webhooks/inputs/webhook.input.ts: @IsArray() @IsEnum(WebhookTriggerEvents, { each: true }) triggers; the document gives one enum string.",
    ),
];

/// How an exception changes the document's schema.
enum Fix {
    /// This schema instead.
    Replace(&'static str),
    /// The same, or null.
    Nullable,
    /// An array of what the document gives.
    ArrayOfIt,
}

impl Fix {
    fn apply(&self, schema: &mut Value) {
        *schema = match self {
            Fix::Replace(instead) => serde_json::from_str(instead).expect("an exception is JSON"),
            Fix::Nullable => json!({"anyOf": [schema.clone(), {"type": "null"}]}),
            Fix::ArrayOfIt => json!({"type": "array", "items": schema.clone()}),
        };
    }
}

/// The pointers `pattern` names in `document` (`*` only in a schema name).
fn pointers(document: &Value, pattern: &str) -> Vec<String> {
    const SCHEMAS: &str = "/components/schemas/";
    let Some(rest) = pattern.strip_prefix(SCHEMAS).filter(|r| r.contains('*')) else {
        return vec![pattern.to_string()];
    };
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    document["components"]["schemas"]
        .as_object()
        .into_iter()
        .flat_map(|schemas| schemas.keys())
        .filter(|candidate| glob(name, candidate))
        .map(|candidate| format!("{SCHEMAS}{candidate}/{tail}"))
        .filter(|pointer| document.pointer(pointer).is_some())
        .collect()
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name.ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    parts[1..parts.len() - 1]
        .iter()
        .all(|part| match rest.find(part) {
            Some(i) => {
                rest = &rest[i + part.len()..];
                true
            }
            None => false,
        })
}

/// The mock behind the client, keeping every exchange.
struct Recording {
    inner: MockTransport,
    seen: Mutex<Vec<(ApiRequest, ApiResponse)>>,
}

#[async_trait]
impl Transport for Recording {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError> {
        let answer = self.inner.send(request.clone()).await;
        if let Ok(response) = &answer {
            self.seen.lock().unwrap().push((request, response.clone()));
        }
        answer
    }
}

/// Cal.com's operations, as JSON Schema.
struct Contract {
    document: Value,
    components: Value,
    errors: jsonschema::Validator,
}

impl Contract {
    fn load() -> Contract {
        let mut raw: Value = serde_json::from_str(DOCUMENT).expect("the subset is JSON");
        for (pattern, fix, _source) in EXCEPTIONS {
            let found = pointers(&raw, pattern);
            assert!(
                !found.is_empty(),
                "exception {pattern} is not in the document"
            );
            for pointer in found {
                fix.apply(raw.pointer_mut(&pointer).expect("found above"));
            }
        }
        let document = json_schema(&raw);
        let components = document["components"].clone();
        let envelope: Value = serde_json::from_str(ERROR_ENVELOPE).expect("JSON");
        Contract {
            document,
            components,
            errors: jsonschema::validator_for(&envelope).expect("the envelope compiles"),
        }
    }

    /// The documented path template and operation of a request.
    fn operation(&self, method: Method, path: &str) -> Option<(String, &Value)> {
        let path = path.split('?').next().unwrap_or_default();
        let wanted: Vec<&str> = path.split('/').collect();
        let method = method.as_str().to_lowercase();
        self.document["paths"]
            .as_object()?
            .iter()
            .filter(|(template, _)| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == wanted.len()
                    && parts
                        .iter()
                        .zip(&wanted)
                        .all(|(p, w)| p == w || (p.starts_with('{') && !w.is_empty()))
            })
            // A literal segment beats a parameter (`/reservations` vs `/{uid}`).
            .max_by_key(|(template, _)| template.matches('{').count() == 0)
            .and_then(|(template, ops)| Some((template.clone(), ops.get(&method)?)))
    }

    /// Validates `value` against `schema` (which may `$ref` the components).
    fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut root = schema.clone();
        if let Some(map) = root.as_object_mut() {
            map.insert("components".into(), self.components.clone());
        }
        let validator = jsonschema::validator_for(&root).expect("Cal.com's schema compiles");
        validator
            .iter_errors(value)
            .flat_map(|e| explain(&e))
            .collect()
    }

    /// Every way one exchange departs from the contract.
    fn problems(&self, request: &ApiRequest, response: &ApiResponse) -> Vec<String> {
        let name = format!("{} {}", request.method.as_str(), request.path);
        let Some((template, op)) = self.operation(request.method, &request.path) else {
            return vec![format!("{name}: not an operation of Cal.com's document")];
        };
        let mut problems: Vec<String> = self
            .request_problems(request, op)
            .into_iter()
            .chain(self.response_problems(response, op))
            .map(|p| {
                format!(
                    "{} {template} ({}): {p}",
                    request.method.as_str(),
                    response.status
                )
            })
            .collect();
        problems.dedup();
        problems
    }

    fn request_problems(&self, request: &ApiRequest, op: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let documented: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for (name, _) in query_of(&request.path) {
            if !documented.contains(name.as_str()) {
                problems.push(format!("query parameter {name:?} is not documented"));
            }
        }
        let version = params
            .iter()
            .find(|p| p["name"] == "cal-api-version")
            .and_then(|p| p["schema"]["default"].as_str());
        if let Some(version) = version
            && request.header("cal-api-version") != Some(version)
        {
            problems.push(format!(
                "cal-api-version is {:?}, the operation wants {version:?}",
                request.header("cal-api-version")
            ));
        }
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        match (&request.body, schema.is_null()) {
            (Some(body), false) => {
                let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                problems.extend(
                    self.validate(schema, &body)
                        .into_iter()
                        .map(|e| format!("request body: {e}")),
                );
            }
            (Some(_), true) => problems.push("sends a body the operation does not take".into()),
            (None, _) => {}
        }
        problems
    }

    fn response_problems(&self, response: &ApiResponse, op: &Value) -> Vec<String> {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let documented = &op["responses"][response.status.to_string()];
        let schema = &documented["content"]["application/json"]["schema"];
        if !schema.is_null() {
            return self
                .validate(schema, &body)
                .into_iter()
                .map(|e| format!("answer: {e}"))
                .collect();
        }
        if response.status >= 400 {
            return self
                .errors
                .iter_errors(&body)
                .map(|e| format!("error answer {body}: {e}"))
                .collect();
        }
        vec![format!("status {} is not documented", response.status)]
    }
}

/// What failed: for a union, the failures of its closest branch, so the
/// message names the field rather than "not valid under any schema".
fn explain(e: &jsonschema::ValidationError<'_>) -> Vec<String> {
    match e.kind() {
        // A branch whose errors lie deeper than the union itself had the
        // right shape; of those, the one with the fewest errors.
        jsonschema::error::ValidationErrorKind::AnyOf { context } => {
            let here = e.instance_path().to_string();
            context
                .iter()
                .min_by_key(|branch| {
                    let shallow = branch.iter().any(|b| b.instance_path().to_string() == here);
                    (shallow, branch.len())
                })
                .map(|branch| branch.iter().flat_map(explain).collect())
                .unwrap_or_default()
        }
        _ => {
            // The value is echoed first; its end says what was wrong.
            let text = e.to_string();
            let cut = text.char_indices().rev().nth(160).map_or(0, |(i, _)| i);
            vec![format!("...{} at {}", &text[cut..], e.instance_path())]
        }
    }
}

/// OpenAPI 3.0 schema objects as JSON Schema 2020-12: `nullable` becomes a
/// `null` type, and `oneOf` becomes `anyOf`, since Cal.com's unions are not
/// exclusive (a plain booking also matches its recurring and seated forms).
/// A bare `{"type": "object"}` says nothing: @nestjs/swagger writes it for
/// every TypeScript type it cannot reflect (`isDefault: true`, `slotInterval:
/// number | null`, the trigger enum of a webhook), so it accepts any value.
fn json_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let converted = match key.as_str() {
                    // Keys of `properties` are field names, not keywords.
                    "properties" => Value::Object(
                        value
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), json_schema(v)))
                            .collect(),
                    ),
                    "example" | "examples" | "nullable" => continue,
                    _ => json_schema(value),
                };
                let key = if key == "oneOf" { "anyOf" } else { key };
                out.insert(key.to_string(), converted);
            }
            let shaped = [
                "properties",
                "additionalProperties",
                "required",
                "allOf",
                "anyOf",
                "$ref",
            ];
            if out.get("type") == Some(&json!("object"))
                && !shaped.iter().any(|k| out.contains_key(*k))
            {
                out.remove("type");
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                nullable(out)
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

fn nullable(mut schema: Map<String, Value>) -> Value {
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some(t) => {
            let t = t.to_string();
            schema.insert("type".into(), json!([t, "null"]));
            Value::Object(schema)
        }
        None => json!({"anyOf": [Value::Object(schema), {"type": "null"}]}),
    }
}

fn query_of(path: &str) -> Vec<(String, String)> {
    path.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn client(world: &World, transport: Arc<Recording>, key: &str) -> Client {
    let retry = crate::calcom::RetryPolicy::default();
    crate::tools::sim::Salon::client_over(transport, key, retry, world.clock.clone(), 7)
}

/// Every route the client calls, as calsaga uses them, and the errors it
/// relies on telling apart.
async fn drive(calcom: &Client, stranger: &Client, world: &World) {
    let slots = calcom
        .slots(&SlotsQuery {
            event_type_id: 101,
            start: "2030-03-05".into(),
            end: "2030-03-05".into(),
            time_zone: Some("Europe/Berlin".into()),
            duration_min: None,
            range: true,
            booking_uid_to_reschedule: None,
        })
        .await
        .expect("slots");
    let starts: Vec<chrono::DateTime<chrono::Utc>> = slots["2030-03-05"]
        .iter()
        .map(|s| super::t(&s.start))
        .collect();
    let reservation = calcom
        .reserve_slot(&ReserveSlot {
            event_type_id: 101,
            slot_start: starts[0],
            slot_duration: None,
            reservation_duration: Some(10),
        })
        .await
        .expect("reserve");
    calcom
        .get_reservation(&reservation.reservation_uid)
        .await
        .expect("read the reservation");
    calcom
        .release_reservation(&reservation.reservation_uid)
        .await
        .expect("release");
    calcom
        .get_reservation("no-such-reservation")
        .await
        .expect("unknown: null");

    let book = |start| CreateBooking {
        start,
        event_type_id: 101,
        attendee: NewAttendee {
            name: "Jo Client".into(),
            time_zone: "Europe/Berlin".into(),
            email: Some("jo@example.com".into()),
            phone_number: None,
            language: None,
        },
        metadata: BTreeMap::from([("calsaga_workflow".into(), "wf-1".into())]),
        length_in_minutes: None,
        guests: Vec::new(),
        booking_fields_responses: None,
    };
    let booked = calcom.create_booking(&book(starts[0])).await.expect("book");
    calcom
        .create_booking(&book(starts[0]))
        .await
        .expect_err("the same slot twice: 400");
    calcom.get_booking(&booked.uid).await.expect("get");
    calcom
        .get_booking("no-such-booking")
        .await
        .expect_err("404");
    calcom
        .list_bookings(&BookingFilter {
            status: vec!["upcoming".into()],
            attendee_email: Some("jo@example.com".into()),
            event_type_ids: vec![101],
            after_start: Some(starts[0]),
            before_end: Some(starts[0] + chrono::Duration::days(1)),
            take: Some(50),
            skip: Some(0),
            sort_start: Some("asc".into()),
            ..BookingFilter::default()
        })
        .await
        .expect("list");
    let moved = calcom
        .reschedule_booking(
            &booked.uid,
            &RescheduleBooking {
                start: starts[2],
                rescheduled_by: None,
                rescheduling_reason: Some("later".into()),
            },
        )
        .await
        .expect("reschedule");
    let cancel = CancelBooking {
        cancellation_reason: Some("flu".into()),
        cancel_subsequent_bookings: None,
    };
    calcom
        .cancel_booking(&moved.uid, &cancel)
        .await
        .expect("cancel");
    calcom
        .cancel_booking(&moved.uid, &cancel)
        .await
        .expect_err("cancelled already: 400");

    calcom.list_event_types(None).await.expect("event types");
    calcom.list_event_types(Some("anna")).await.expect("anna's");
    calcom.get_event_type(101).await.expect("event type");
    calcom.get_event_type(999_999).await.expect_err("404");
    let created = calcom
        .create_event_type(&CreateEventType {
            length_in_minutes: 20,
            title: "Fringe".into(),
            slug: "fringe-20".into(),
            description: None,
            hidden: Some(false),
        })
        .await
        .expect("create an event type");
    calcom
        .update_event_type(
            created.id,
            &UpdateEventType {
                length_in_minutes: Some(25),
                ..UpdateEventType::default()
            },
        )
        .await
        .expect("patch");
    calcom.delete_event_type(created.id).await.expect("delete");

    let hook = CreateWebhook {
        subscriber_url: "https://calsaga.example/webhooks/calcom".into(),
        triggers: vec!["BOOKING_CREATED".into(), "BOOKING_CANCELLED".into()],
        active: true,
        secret: Some("s".repeat(32)),
        payload_template: None,
    };
    let webhook = calcom.create_webhook(&hook).await.expect("subscribe");
    calcom
        .create_webhook(&hook)
        .await
        .expect_err("the same url twice: 409");
    calcom
        .list_webhooks(Some(10), Some(0))
        .await
        .expect("webhooks");
    calcom.get_webhook(&webhook.id).await.expect("webhook");
    calcom
        .update_webhook(
            &webhook.id,
            &UpdateWebhook {
                active: Some(false),
                ..UpdateWebhook::default()
            },
        )
        .await
        .expect("patch");
    calcom
        .delete_webhook(&webhook.id)
        .await
        .expect("unsubscribe");

    stranger.list_event_types(None).await.expect_err("401");
    world
        .mock
        .add_faults(vec![
            serde_json::from_value(json!({"route": "GET /v2/bookings/{uid}", "status": 500}))
                .unwrap(),
            serde_json::from_value(json!({"route": "GET /v2/slots", "status": 429})).unwrap(),
        ])
        .unwrap();
    calcom.get_booking(&booked.uid).await.expect_err("500");
    calcom
        .slots(&SlotsQuery {
            event_type_id: 101,
            start: "2030-03-05".into(),
            end: "2030-03-05".into(),
            time_zone: None,
            duration_min: None,
            range: false,
            booking_uid_to_reschedule: None,
        })
        .await
        .expect_err("429");
    world.mock.clear_faults();
}

#[tokio::test(flavor = "current_thread")]
async fn every_exchange_of_the_client_with_the_mock_follows_cal_coms_own_document() {
    let world = World::new();
    let transport = Arc::new(Recording {
        inner: MockTransport::new(world.mock.clone()),
        seen: Mutex::new(Vec::new()),
    });
    let calcom = client(&world, transport.clone(), KEY);
    let stranger = client(&world, transport.clone(), "cal_live_unknown");
    drive(&calcom, &stranger, &world).await;

    let contract = Contract::load();
    let seen = transport.seen.lock().unwrap();
    let mut covered = BTreeSet::new();
    let mut problems = Vec::new();
    for (request, response) in seen.iter() {
        if let Some((template, _)) = contract.operation(request.method, &request.path) {
            covered.insert((request.method.as_str(), template, response.status / 100));
        }
        problems.extend(contract.problems(request, response));
    }
    let statuses: BTreeSet<u16> = seen.iter().map(|(_, r)| r.status).collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [200, 201, 400, 401, 404, 409, 429, 500],
        "successes and every error class the client tells apart"
    );
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let documented: BTreeSet<(String, String)> = contract.document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    let used: BTreeSet<(String, String)> = covered
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.clone()))
        .collect();
    let unused: Vec<_> = documented.difference(&used).collect();
    assert_eq!(
        unused,
        [&(
            "PATCH".to_string(),
            "/v2/slots/reservations/{uid}".to_string()
        )],
        "every operation but the one calsaga never calls is exercised"
    );
}

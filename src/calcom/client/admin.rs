//! The admin calls that sagas never make, as inherent methods of `Client`:
//! event types (API 2024-06-14) and webhook subscriptions (`/v2/webhooks`,
//! which takes no version). Setup and `catalog sync` work; each is one
//! `Call` through the same send path as everything else.

use super::request::{Call, Query, event_type_path, webhook_path};
use super::{CalcomError, Client, Method};
use crate::calcom::wire::{
    CreateEventType, CreateWebhook, Envelope, EventType, UpdateEventType, UpdateWebhook, Webhook,
};

impl Client {
    /// `GET /v2/event-types`: the caller's own event types, or `username`'s.
    pub async fn list_event_types(
        &self,
        username: Option<&str>,
    ) -> Result<Vec<EventType>, CalcomError> {
        let path = Query::new("/v2/event-types")
            .opt("username", username)
            .finish();
        let call = Call::event_types("GET /v2/event-types", Method::Get, path);
        self.send::<Envelope<Vec<EventType>>>(call).await
    }

    /// `GET /v2/event-types/{id}`.
    pub async fn get_event_type(&self, id: u64) -> Result<EventType, CalcomError> {
        let call = Call::event_types("GET /v2/event-types/{id}", Method::Get, event_type_path(id));
        self.send::<Envelope<EventType>>(call).await
    }

    /// `POST /v2/event-types`. Not repeated on an unknown outcome.
    pub async fn create_event_type(
        &self,
        input: &CreateEventType,
    ) -> Result<EventType, CalcomError> {
        let path = "/v2/event-types".to_string();
        let call = Call::event_types("POST /v2/event-types", Method::Post, path).json(input);
        self.send::<Envelope<EventType>>(call).await
    }

    /// `PATCH /v2/event-types/{id}`: returns the whole updated event type.
    pub async fn update_event_type(
        &self,
        id: u64,
        input: &UpdateEventType,
    ) -> Result<EventType, CalcomError> {
        let route = "PATCH /v2/event-types/{id}";
        let call = Call::event_types(route, Method::Patch, event_type_path(id)).json(input);
        self.send::<Envelope<EventType>>(call).await
    }

    /// `DELETE /v2/event-types/{id}`: returns what Cal.com echoes of it
    /// (id, length, slug, title).
    pub async fn delete_event_type(&self, id: u64) -> Result<EventType, CalcomError> {
        let route = "DELETE /v2/event-types/{id}";
        let call = Call::event_types(route, Method::Delete, event_type_path(id));
        self.send::<Envelope<EventType>>(call).await
    }

    /// `GET /v2/webhooks`: one page (Cal.com: `take` 1..=250, default 250).
    pub async fn list_webhooks(
        &self,
        take: Option<u32>,
        skip: Option<u32>,
    ) -> Result<Vec<Webhook>, CalcomError> {
        let path = Query::new("/v2/webhooks")
            .opt("take", take)
            .opt("skip", skip)
            .finish();
        let call = Call::webhooks("GET /v2/webhooks", Method::Get, path);
        self.send::<Envelope<Vec<Webhook>>>(call).await
    }

    /// `GET /v2/webhooks/{id}`.
    pub async fn get_webhook(&self, id: &str) -> Result<Webhook, CalcomError> {
        let call = Call::webhooks("GET /v2/webhooks/{id}", Method::Get, webhook_path(id));
        self.send::<Envelope<Webhook>>(call).await
    }

    /// `POST /v2/webhooks` (409 when this URL is already subscribed).
    pub async fn create_webhook(&self, input: &CreateWebhook) -> Result<Webhook, CalcomError> {
        let path = "/v2/webhooks".to_string();
        let call = Call::webhooks("POST /v2/webhooks", Method::Post, path).json(input);
        self.send::<Envelope<Webhook>>(call).await
    }

    /// `PATCH /v2/webhooks/{id}`.
    pub async fn update_webhook(
        &self,
        id: &str,
        input: &UpdateWebhook,
    ) -> Result<Webhook, CalcomError> {
        let route = "PATCH /v2/webhooks/{id}";
        let call = Call::webhooks(route, Method::Patch, webhook_path(id)).json(input);
        self.send::<Envelope<Webhook>>(call).await
    }

    /// `DELETE /v2/webhooks/{id}`: returns the deleted subscription.
    pub async fn delete_webhook(&self, id: &str) -> Result<Webhook, CalcomError> {
        let call = Call::webhooks("DELETE /v2/webhooks/{id}", Method::Delete, webhook_path(id));
        self.send::<Envelope<Webhook>>(call).await
    }
}

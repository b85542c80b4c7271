//! `calsaga webhooks register / list / delete`: the Cal.com webhook
//! subscriptions that deliver booking changes to `/webhooks/calcom`.
//! Registering makes a fresh 32-byte secret from the operating system's
//! generator and returns it once, for `calsaga serve` to verify signatures
//! with (CALSAGA_WEBHOOK_SECRET); it is never stored or logged here.

use std::fmt::Write as _;

use rand::RngCore;
use rand::rngs::OsRng;

use crate::calcom::Client;
use crate::calcom::wire::{
    CreateWebhook, TRIGGER_CANCELLED, TRIGGER_CREATED, TRIGGER_RESCHEDULED, Webhook,
};
use crate::calcom_admin::{AdminError, failed};

/// The triggers calsaga's webhook receiver acts on.
pub const TRIGGERS: [&str; 3] = [TRIGGER_CREATED, TRIGGER_RESCHEDULED, TRIGGER_CANCELLED];
/// Bytes of a new secret (64 hex characters).
pub const SECRET_BYTES: usize = 32;
/// Subscriptions per page (Cal.com's most) and pages read at most.
const PAGE_TAKE: u32 = 250;
const PAGES_MAX: u32 = 40;

/// A new subscription and its secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub webhook: Webhook,
    pub secret: String,
}

/// A fresh secret: 32 random bytes from the OS, hex-encoded.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Subscribes `url` to the booking triggers calsaga handles, signed with
/// a new secret.
pub async fn register(client: &Client, url: &str) -> Result<Registered, AdminError> {
    let secret = new_secret();
    let input = CreateWebhook {
        subscriber_url: url.to_string(),
        triggers: TRIGGERS.iter().map(|t| t.to_string()).collect(),
        active: true,
        secret: Some(secret.clone()),
        payload_template: None,
    };
    let webhook = client.create_webhook(&input).await.map_err(failed(format!(
        "subscribing {url} to Cal.com's booking webhooks (if it is already subscribed, delete that subscription first)"
    )))?;
    Ok(Registered { webhook, secret })
}

/// Every subscription of the key's user, page by page (bounded).
pub async fn list(client: &Client) -> Result<Vec<Webhook>, AdminError> {
    let mut all = Vec::new();
    for page in 0..PAGES_MAX {
        let batch = client
            .list_webhooks(Some(PAGE_TAKE), Some(page * PAGE_TAKE))
            .await
            .map_err(failed("listing Cal.com webhook subscriptions"))?;
        let last = batch.len() < PAGE_TAKE as usize;
        all.extend(batch);
        if last {
            break;
        }
    }
    Ok(all)
}

pub async fn delete(client: &Client, id: &str) -> Result<Webhook, AdminError> {
    client.delete_webhook(id).await.map_err(failed(format!(
        "deleting Cal.com webhook subscription {id} (see `calsaga webhooks list` for the ids)"
    )))
}

/// What `serve` needs to verify the new subscription's deliveries.
pub fn registered_report(r: &Registered) -> String {
    format!(
        "registered Cal.com webhook {} for {} ({})\n\
         its secret is shown only this once; give it to calsaga serve:\n\
         CALSAGA_WEBHOOK_SECRET={}\n\
         (or --webhook-secret {}; during a rotation move the old one to CALSAGA_WEBHOOK_SECRET_PREVIOUS)\n",
        r.webhook.id,
        r.webhook.subscriber_url,
        r.webhook.triggers.join(", "),
        r.secret,
        r.secret
    )
}

/// Subscriptions as a table.
pub fn table(webhooks: &[Webhook]) -> String {
    let mut out = format!(
        "{:<38} {:<7} {:<60} {}\n",
        "ID", "ACTIVE", "URL", "TRIGGERS"
    );
    for w in webhooks {
        let _ = writeln!(
            out,
            "{:<38} {:<7} {:<60} {}",
            w.id,
            if w.active { "yes" } else { "no" },
            w.subscriber_url,
            w.triggers.join(",")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_64_hex_characters_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 2 * SECRET_BYTES);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

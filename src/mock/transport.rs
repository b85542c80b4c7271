//! `MockTransport`: the mock behind the client's `Transport` seam, with no
//! socket. Latency faults are waited through the mock's clock (a SimClock
//! makes them free and visible), and a lost reply becomes
//! `TransportError::MaybeSent` - exactly what a client sees when a real
//! connection dies after the request went out.

use std::sync::Arc;

use async_trait::async_trait;

use super::engine::Mock;
use crate::calcom::{ApiRequest, ApiResponse, Transport, TransportError};

#[derive(Clone)]
pub struct MockTransport {
    mock: Arc<Mock>,
}

impl MockTransport {
    pub fn new(mock: Arc<Mock>) -> Self {
        Self { mock }
    }

    pub fn mock(&self) -> &Arc<Mock> {
        &self.mock
    }
}

#[async_trait]
impl Transport for MockTransport {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError> {
        let reply = self.mock.handle(&request);
        if !reply.latency.is_zero() {
            self.mock.clock.sleep(reply.latency).await;
        }
        reply.response.ok_or_else(|| TransportError::MaybeSent {
            reason: "the mock applied the request and dropped its reply (fault replyLost)".into(),
        })
    }
}

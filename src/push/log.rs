//! The log provider: the default when no credentials are configured. It
//! records that a message would have been sent, without its content or the
//! device's token.

use futures_util::future::BoxFuture;

use super::{Attempt, DeviceTarget, Outcome, Provider, PushMessage};

#[derive(Debug, Default, Clone, Copy)]
pub struct LogProvider;

impl Provider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(
        &'a self,
        message: &'a PushMessage,
        target: &'a DeviceTarget,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            tracing::info!(
                notification_id = %message.payload.notification_id,
                kind = message.payload.kind.as_str(),
                device_kind = target.kind().as_str(),
                urgency = message.urgency.as_str(),
                "push (log provider): would deliver"
            );
            Attempt {
                outcome: Outcome::Delivered,
                status: None,
                reason: None,
            }
        })
    }
}

//! The port the HTTP layer calls: a DUIS document in, a synchronous answer out.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that the handler can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the service answers synchronously to a DUIS document posted to
/// `/api/v1/serviceS`: an I99 acknowledgement, a command for local delivery
/// (command variant 2 or 3), or an error acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnswer {
    /// HTTP status (200 for every DUIS answer, errors included, as the DCC
    /// interface does; 503 when the service sheds load).
    pub http_status: u16,
    /// The DUIS response document.
    pub body: Vec<u8>,
}

/// Takes DUIS service requests. `ecos-party` implements it for 6.23; the
/// HTTP layer holds it as `Arc<dyn ServiceRequestHandler>`.
pub trait ServiceRequestHandler: Send + Sync + 'static {
    /// Process one posted document received at `received_at`. The request
    /// and its decision are durable before this returns.
    fn submit<'a>(
        &'a self,
        body: &'a [u8],
        received_at: jiff::Timestamp,
    ) -> BoxFuture<'a, SyncAnswer>;
}

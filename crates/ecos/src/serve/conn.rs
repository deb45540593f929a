//! The connection loop: hyper with a header-read timeout (slow clients
//! cannot hold a connection open by trickling headers), a bound on open
//! connections, and graceful shutdown that lets requests under way finish.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections open at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time allowed to receive a request's headers.
    pub header_read_timeout: Duration,
}

/// Put the peer address in each request's extensions (`ConnectInfo`).
fn with_peer<B>(
    addr: std::net::SocketAddr,
) -> impl FnMut(axum::http::Request<B>) -> axum::http::Request<B> + Clone {
    move |mut req| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        req
    }
}

/// Serve `app` on `listener` until `stop` turns true, then stop accepting,
/// ask every connection to close after its current request, and wait up to
/// `grace` for them. Returns whether every connection closed in time.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> bool
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // HTTP/1.1 only, as DUIS clients speak it.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let (io, addr) = tokio::select! {
            c = listener.accept() => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        // The peer address, for handlers that treat loopback clients differently.
        // The peer address, for handlers that treat loopback clients differently.
        let svc = TowerToHyperService::new(app.clone().map_request(with_peer(addr)));
        let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(?addr, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => true,
        _ = tokio::time::sleep(grace) => false,
    }
}

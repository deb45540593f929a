//! `ecos serve`: run the service.

use anyhow::Context;
use clap::Args;

use crate::config::{Config, ConfigArgs, LogConfig, LogFormat};
use crate::serve::{Parts, Server, Settings, tls};

/// `ecos serve` arguments: the configuration flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Install the tracing subscriber for `log`.
pub fn init_logging(log: &LogConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.filter)
        .with_context(|| format!("log.filter {:?} is not a valid filter", log.filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let r = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Run `ecos serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    init_logging(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        tracing::warn!(
            "no DUIS request handler is wired in yet: /readyz reports not ready and /api/v1/serviceS answers 503"
        );
        serve_until(&config, Parts::default(), shutdown_signal()).await
    })
}

/// Check the keys, create the data directory, bind (with TLS when
/// configured), print the address, and serve until `shutdown` resolves.
/// This is the entry point for wiring the pipeline in: put its handler,
/// readiness probe and outbound queue in `parts` (or install the handler
/// later through the [`crate::serve::ServiceHandle`] given to `on_bound`).
pub async fn serve_until(
    config: &Config,
    parts: Parts,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(config, parts, |_| {}, shutdown).await
}

/// [`serve_until`], calling `on_bound` with the service handle once bound.
pub async fn serve_with(
    config: &Config,
    mut parts: Parts,
    on_bound: impl FnOnce(crate::serve::ServiceHandle),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Refuse to start with unprotected or unusable keys (the TLS key included).
    config.check_key_files()?;
    let _keys = config.load_keys()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let tls = match (&config.http.tls.cert, &config.http.tls.key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    if parts.config.is_none() {
        parts.config = Some(config.clone());
    }
    let server = Server::bind(Settings::from(config), tls, parts).await?;
    let addr = server.local_addr();
    println!("ecos: listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, admin_api = config.admin.token.is_some(), "listening");
    if config.delivery.poll_tokens.is_empty() {
        tracing::warn!(
            "GET /api/v1/responses is open to anyone who can reach the service: set delivery.poll_tokens"
        );
    }
    on_bound(server.handle());
    server.run(shutdown).await?;
    Ok(())
}

/// Resolve on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("ctrl-c received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

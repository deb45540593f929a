//! One module per top-level command.
pub mod audit;
pub mod bench;
pub mod check;
pub mod config;
pub mod data;
pub mod demo;
pub mod duis;
pub mod gbcs;
pub mod inventory;
pub mod migrate;
pub mod pki;
pub mod readiness;
pub mod regdata;
pub mod report;
pub mod serve;
pub mod sim;

/// Run `fut` on a multi-thread runtime (one worker a core), with logs on
/// stderr filtered by `ECOS_LOG` (or `default_filter` where it is unset).
pub fn run_logged<T>(
    default_filter: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ECOS_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fut)
}

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
    /// The PKI directory (`ecos pki init`) with the trust anchors, the XML
    /// Sign certificates and the CoS, ACB and DSP keys (default:
    /// `<data-dir>/pki` when it exists). Without one, the service starts
    /// without the 6.23 pipeline and reports not ready.
    #[arg(long, env = "ECOS_PKI_DIR")]
    pki: Option<std::path::PathBuf>,
    /// Put simulated meters (the demo data set's) behind the pipeline
    /// instead of a WAN: for demos and supplier testing.
    #[arg(long)]
    simulate_devices: bool,
}

/// The dashboard's readiness inputs from a PKI directory written by `ecos pki
/// init`: its trust store and every `xml-sign` certificate of its index.
fn readiness_inputs(
    dir: &std::path::Path,
    config: ecos_party::PartyConfig,
) -> anyhow::Result<crate::serve::dashboard::ReadinessInputs> {
    let index_path = dir.join("index.json");
    let index: ecos_smki::testpki::Index = serde_json::from_slice(
        &std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not an ecos PKI index", index_path.display()))?;
    let certificates = index
        .entries
        .iter()
        .filter(|e| e.credential == "xml-sign")
        .map(|e| {
            ecos_smki::Certificate::load(dir.join(&e.certificate))
                .with_context(|| format!("certificate {}", e.certificate))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let smki = crate::wiring::load_pki_dir(dir)?.registry;
    Ok(crate::serve::dashboard::ReadinessInputs::new(
        smki,
        config,
        certificates,
    ))
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
    let pki_dir = args
        .pki
        .clone()
        .or_else(|| Some(config.data_dir.join("pki")).filter(|d| d.join("index.json").exists()));
    runtime.block_on(async move {
        let mut parts = Parts::default();
        let mut background = Vec::new();
        let mut store_for_bridge = None;
        let mut key_token: Option<ecos_pkcs11::Token> = None;
        match pki_dir {
            Some(dir) => {
                let mut pki = crate::wiring::load_pki_dir(&dir)?;
                let (token, sources) = crate::wiring::apply_configured_keys(&config, &mut pki)?;
                for (setting, source) in &sources.replaced {
                    tracing::info!(setting, source = %source, "signing key from the configuration");
                }
                // The token's session lives as long as the service.
                key_token = token;
                let store = crate::wiring::open_store(&config).await?;
                let party_keys = pki.keys.clone();
                let mut migration_runner = None;
                let mut party = ecos_party::Party::new(
                    config.party.clone(),
                    ecos_smki::MpidRules::default(),
                    pki.registry,
                    store.clone(),
                    pki.keys,
                );
                let mut receiver = None;
                if args.simulate_devices {
                    let test_pki = std::sync::Arc::new(ecos_party::demo::pki(
                        serde_json::from_slice::<ecos_smki::testpki::Index>(&std::fs::read(
                            dir.join("index.json"),
                        )?)?
                        .seed,
                    )?);
                    let fleet = crate::wiring::demo_fleet(&test_pki, ecos_party::demo::SUPPLIER_A)?;
                    // The migration's own link to the same meters; their answers to it
                    // are kept in the store's migration inbox.
                    let (mlink, mrx) = crate::wiring::SimLink::new(fleet.clone());
                    background.push(crate::wiring::spawn_migration_inbox(store.clone(), mrx));
                    migration_runner = Some(ecos_migration::Migrator::new(
                        store.clone(),
                        party_keys,
                        vec![test_pki.issuing_ca().cert.clone()],
                        ecos_migration::MigrationConfig::default(),
                        std::sync::Arc::new(mlink),
                    )?);
                    let (link, rx) = crate::wiring::SimLink::new(fleet);
                    party = party.with_transport(std::sync::Arc::new(link));
                    receiver = Some(rx);
                } else {
                    tracing::warn!(
                        "no device transport: accepted commands are stored and audited but not sent (use --simulate-devices for simulated meters)"
                    );
                }
                let party = std::sync::Arc::new(party);
                background.push(crate::wiring::spawn_revalidation_on_import(
                    party.clone(),
                    crate::wiring::REVALIDATION_POLL,
                ));
                background.push(crate::wiring::spawn_device_timeouts(
                    party.clone(),
                    crate::wiring::DEVICE_TIMEOUT_POLL,
                ));
                if let Some(rx) = receiver {
                    background.push(crate::wiring::spawn_device_receiver(party.clone(), rx));
                }
                let ready_store = store.clone();
                parts.readiness = Some(std::sync::Arc::new(move || {
                    let s = ready_store.clone();
                    Box::pin(async move { s.ping().await.map_err(|e| e.to_string()) })
                }));
                parts.handler = Some(party);
                parts.migration = Some(crate::serve::migration::MigrationControl::new(
                    store.clone(),
                    ecos_migration::MigrationConfig::default(),
                    migration_runner,
                    std::time::Duration::from_secs(5),
                ));
                let mut dashboard = crate::serve::dashboard::Dashboard::new(store.clone());
                match readiness_inputs(&dir, config.party.clone()) {
                    Ok(r) => dashboard = dashboard.with_readiness(r),
                    Err(e) => tracing::warn!("dashboard readiness view off: {e:#}"),
                }
                parts.dashboard = Some(std::sync::Arc::new(dashboard));
                parts.store = Some(store.clone());
                store_for_bridge = Some(store);
                tracing::info!(pki = %dir.display(), "6.23 pipeline ready");
            }
            None => tracing::warn!(
                "no PKI directory (--pki, or <data-dir>/pki from `ecos pki init`): the 6.23 pipeline is not installed; /readyz reports not ready and /api/v1/serviceS answers 503"
            ),
        }
        serve_with(
            &config,
            parts,
            |handle| {
                if let Some(store) = store_for_bridge {
                    background.push(crate::wiring::spawn_outbound_bridge(store, handle.outbound()));
                }
            },
            shutdown_signal(),
        )
        .await?;
        drop(key_token);
        Ok(())
    })
}

/// Check the keys, create the data directory, bind (with TLS when
/// configured), print the address, call `on_bound` with the service handle
/// (to reach the outbound queue or install the handler), and serve until
/// `shutdown` resolves.
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

//! Wiring the pipeline to its surroundings: a simulated fleet behind the
//! party's device transport, and the store's outbound queue feeding the
//! service's delivery worker.

use std::sync::Arc;
use std::time::Duration;

use ecos_party::api::BoxFuture;
use ecos_party::{DeviceTransport, Party};
use ecos_sim::{CosCredential, DeviceContext, DeviceKind, Fleet, FleetError, KeySource, Templates};
use ecos_smki::{Eui64, PathPolicy, TestPki};
use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::serve::delivery::{OutboundMessage, OutboundQueue};

/// Device answers waiting to be taken, at most, on a [`SimLink`]'s channel:
/// beyond it a send waits for room (back-pressure on whoever sends the
/// commands) instead of the backlog growing without bound.
pub const ANSWER_QUEUE: usize = 4096;

/// Workers of [`spawn_device_receiver`]: answers taken at once, at most.
pub const ANSWER_WORKERS: usize = 16;

/// A simulated fleet as the party's device transport: a command is run
/// through the device at once and its response handed back on a bounded
/// channel ([`ANSWER_QUEUE`]; a device that refuses a command answers
/// nothing, as on the WAN).
#[derive(Debug)]
pub struct SimLink {
    fleet: Arc<Fleet>,
    responses: mpsc::Sender<(Eui64, Vec<u8>)>,
}

impl SimLink {
    /// A link to `fleet`; responses go to the returned receiver.
    pub fn new(fleet: Arc<Fleet>) -> (Self, mpsc::Receiver<(Eui64, Vec<u8>)>) {
        let (tx, rx) = mpsc::channel(ANSWER_QUEUE);
        (
            SimLink {
                fleet,
                responses: tx,
            },
            rx,
        )
    }
}

impl DeviceTransport for SimLink {
    fn send<'a>(&'a self, device: Eui64, message: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        let r = self.fleet.handle(device, &message, Timestamp::now(), None);
        Box::pin(async move {
            match r {
                Ok(h) => {
                    let _ = self.responses.send((device, h.response)).await;
                    Ok(())
                }
                Err(FleetError::Rejected(d, why)) => {
                    tracing::warn!(device = %d, "simulated device refused the command: {why}");
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// A fleet of simulated devices for the demo PKI's meters: each holds the
/// losing supplier's certificates and the CoS credential the inventory says.
pub fn demo_fleet(pki: &Arc<TestPki>, losing_supplier: Eui64) -> anyhow::Result<Arc<Fleet>> {
    let mut context = DeviceContext::new(pki.trust_store(), PathPolicy::default());
    context.response_time = ecos_sim::ResponseTime::Clock;
    let fleet = Fleet::new(Arc::new(context), KeySource::TestPki(pki.clone()));
    let templates = Templates::from_test_pki(pki, losing_supplier)?;
    use ecos_party::demo::{ESME_ECOS, ESME_SUSPENDED, ESME_TCOS, GSME_TCOS};
    for (eui, kind, cos) in [
        (ESME_TCOS, DeviceKind::Esme, CosCredential::Transitional),
        (ESME_ECOS, DeviceKind::Esme, CosCredential::Enduring),
        (GSME_TCOS, DeviceKind::Gsme, CosCredential::Transitional),
        (
            ESME_SUSPENDED,
            DeviceKind::Esme,
            CosCredential::Transitional,
        ),
    ] {
        fleet.insert(templates.make(eui, kind, cos));
    }
    Ok(Arc::new(fleet))
}

/// Feed device responses back into the party until the channel closes.
///
/// [`ANSWER_WORKERS`] workers take them at once, so that their durable
/// writes share the store's group commit (one at a time, the answers fell
/// behind the acceptances under load: on a quiet host 661 of 8,032
/// answered when an `ecos bench serve` load ended, the rest 18 s later).
/// Each device's answers go to one worker, chosen by its EUI, and are
/// taken in the order the device sent them. Aborting the returned task
/// aborts the workers.
pub fn spawn_device_receiver(
    party: Arc<Party>,
    mut rx: mpsc::Receiver<(Eui64, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut workers = tokio::task::JoinSet::new();
        let mut lanes = Vec::with_capacity(ANSWER_WORKERS);
        for _ in 0..ANSWER_WORKERS {
            let (tx, mut lane) = mpsc::channel::<(Eui64, Vec<u8>)>(ANSWER_QUEUE / ANSWER_WORKERS);
            let party = party.clone();
            workers.spawn(async move {
                while let Some((device, bytes)) = lane.recv().await {
                    take_device_answer(&party, device, &bytes).await;
                }
            });
            lanes.push(tx);
        }
        while let Some((device, bytes)) = rx.recv().await {
            let lane = &lanes[answer_lane(device)];
            if lane.send((device, bytes)).await.is_err() {
                break;
            }
        }
        // The link is gone: let the workers finish what they hold.
        drop(lanes);
        while workers.join_next().await.is_some() {}
    })
}

/// Keep the devices' answers to the migration's commands in the store's
/// migration inbox (the runner takes them from there) until the channel
/// closes.
pub fn spawn_migration_inbox(
    store: ecos_store::Store,
    mut rx: mpsc::Receiver<(Eui64, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((device, bytes)) = rx.recv().await {
            if let Err(e) = store
                .migration_inbox_push(device, &bytes, Timestamp::now())
                .await
            {
                tracing::warn!(%device, error = %e, "migration answer not kept");
            }
        }
    })
}

/// The worker of [`spawn_device_receiver`] that takes `device`'s answers.
fn answer_lane(device: Eui64) -> usize {
    // The low bits of an EUI-64 are the maker's serial: spread enough.
    (device.to_u64() % ANSWER_WORKERS as u64) as usize
}

async fn take_device_answer(party: &Party, device: Eui64, bytes: &[u8]) {
    match party.on_device_message(bytes, Timestamp::now()).await {
        Ok(report) => tracing::info!(
            %device,
            success = report.success,
            accepted_only = report.accepted_only,
            "device response matched and answered"
        ),
        Err(e) => tracing::warn!(%device, "device response not taken: {e}"),
    }
}

pub use crate::serve::data::REVALIDATION_POLL;

/// Re-validate the pending future-dated 6.23s whenever registration data or
/// the inventory is imported into the party's store (by `ecos regdata import`
/// or `ecos inventory import` against the same database, or any other
/// importer), and once at start (imports made while the service was down).
/// The store's import marker is polled every `every`.
pub fn spawn_revalidation_on_import(
    party: Arc<Party>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = None;
        loop {
            match party.store().data_import_marker().await {
                Ok(m) if Some(m) != seen => {
                    match party
                        .revalidate_pending_future_dated(Timestamp::now())
                        .await
                    {
                        Ok(r) => {
                            seen = Some(m);
                            if !r.cancelled.is_empty() || !r.unchecked.is_empty() {
                                tracing::warn!(
                                    checked = r.checked,
                                    cancelled = r.cancelled.len(),
                                    unchecked = r.unchecked.len(),
                                    "new registration or inventory data: pending future-dated 6.23s cancelled"
                                );
                            }
                        }
                        Err(e) => tracing::warn!("re-validating pending future-dated 6.23s: {e}"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading the import marker: {e}"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// How often the service looks for commands their devices did not answer.
pub const DEVICE_TIMEOUT_POLL: Duration = Duration::from_secs(30);

/// Every `every`, fail the requests whose device answer is overdue
/// (`device_timeouts` in the party configuration) and queue their
/// requesters' E21/E30 responses; send the future-dated requests held until
/// their dispatch lead (`party.fd_dispatch_lead_secs`); and send the
/// re-validation cancellations that could not be sent when they were made.
pub fn spawn_device_timeouts(party: Arc<Party>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match party.expire_unanswered(Timestamp::now()).await {
                Ok(t) if !t.is_empty() => tracing::warn!(
                    requests = t.len(),
                    "commands without a device answer in time: requesters told"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("looking for unanswered commands: {e}"),
            }
            match party.dispatch_held_future_dated(Timestamp::now()).await {
                Ok(d) if !d.sent.is_empty() || !d.cancelled.is_empty() || !d.missed.is_empty() => {
                    tracing::info!(
                        sent = d.sent.len(),
                        cancelled = d.cancelled.len(),
                        missed = d.missed.len(),
                        still_held = d.not_sent.len() + d.unchecked.len(),
                        "held future-dated 6.23s due: dispatched"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("dispatching held future-dated 6.23s: {e}"),
            }
            match party.resend_unsent_cancellations(Timestamp::now()).await {
                Ok(s) if !s.is_empty() => tracing::info!(
                    cancellations = s.len(),
                    "re-validation cancellations sent that could not be sent before"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("re-sending re-validation cancellations: {e}"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Move DUIS responses the party queued in the store to the service's
/// delivery queue (POST to endpoints and polling), oldest first.
pub fn spawn_outbound_bridge(
    store: ecos_store::Store,
    queue: Arc<dyn OutboundQueue>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor = 0u64;
        loop {
            match store.fetch_outbound_since(cursor, 100, true).await {
                Ok(batch) => {
                    for m in &batch {
                        cursor = cursor.max(m.id);
                        let msg = OutboundMessage {
                            service_user: m.recipient.clone(),
                            body: m.body.clone(),
                        };
                        match queue.push(msg).await {
                            Ok(_) => {
                                let _ = store.mark_outbound_delivered(m.id, Timestamp::now()).await;
                            }
                            Err(e) => {
                                tracing::warn!(id = m.id, "outbound queue refused a message: {e}");
                                cursor = m.id.saturating_sub(1);
                                break;
                            }
                        }
                    }
                    if batch.is_empty() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Err(e) => {
                    tracing::warn!("reading the outbound table: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

/// The party's keys and certificates from a directory written by
/// `ecos pki init` (its `index.json` says which file is what).
pub struct PkiDir {
    /// The trust store: the root as anchor, the issuing and device CAs.
    pub registry: ecos_party::SmkiRegistry,
    /// The CoS, ACB and DSP keys.
    pub keys: ecos_party::PartyKeys,
    /// The ACB key-agreement certificate (the configured ACB key must match it).
    pub acb_certificate: ecos_smki::Certificate,
}

impl std::fmt::Debug for PkiDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiDir").finish_non_exhaustive()
    }
}

/// Load a PKI directory.
pub fn load_pki_dir(dir: &std::path::Path) -> anyhow::Result<PkiDir> {
    use anyhow::Context as _;
    use ecos_smki::{Certificate, SoftwareKeyAgreement, SoftwareSigner, TrustStore};
    let index_path = dir.join("index.json");
    let index: ecos_smki::testpki::Index = serde_json::from_slice(
        &std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not an ecos PKI index", index_path.display()))?;
    let one = |what: &str| -> anyhow::Result<&ecos_smki::testpki::IndexEntry> {
        index
            .entries
            .iter()
            .find(|e| e.credential == what)
            .with_context(|| format!("{}: no {what} credential", index_path.display()))
    };
    let cert = |e: &ecos_smki::testpki::IndexEntry| -> anyhow::Result<Certificate> {
        Certificate::load(dir.join(&e.certificate))
            .with_context(|| format!("certificate {}", e.certificate))
    };
    let key = |e: &ecos_smki::testpki::IndexEntry| -> anyhow::Result<Vec<u8>> {
        let p = dir.join(&e.key);
        std::fs::read(&p).with_context(|| format!("reading key {}", p.display()))
    };
    let mut trust = TrustStore::with_anchors([cert(one("root")?)?]);
    trust.add_intermediate(cert(one("issuing-ca")?)?);
    trust.add_intermediate(cert(one("device-ca")?)?);
    let mut registry = ecos_party::SmkiRegistry::new(trust, ecos_smki::PathPolicy::default());
    for e in index.entries.iter().filter(|e| e.credential == "xml-sign") {
        registry.add(cert(e)?);
    }
    let signer = |what: &str| -> anyhow::Result<(Arc<SoftwareSigner>, Certificate)> {
        let e = one(what)?;
        Ok((
            Arc::new(SoftwareSigner::from_bytes(&key(e)?).with_context(|| format!("{what} key"))?),
            cert(e)?,
        ))
    };
    let (tcos, tcos_cert) = signer("tcos-ds")?;
    let (ecos, ecos_cert) = signer("ecos-ds")?;
    let (dsp, dsp_cert) = signer("dsp-xml-sign")?;
    let acb =
        Arc::new(SoftwareKeyAgreement::from_bytes(&key(one("acb-ka")?)?).context("acb-ka key")?);
    let acb_certificate = cert(one("acb-ka")?)?;
    Ok(PkiDir {
        registry,
        acb_certificate,
        keys: ecos_party::PartyKeys {
            tcos: ecos_party::CosKey {
                signer: tcos,
                certificate: tcos_cert,
            },
            ecos: ecos_party::CosKey {
                signer: ecos,
                certificate: ecos_cert,
            },
            acb,
            dsp,
            dsp_certificate: dsp_cert,
        },
    })
}

/// Where each signing key of the party comes from, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeySources {
    /// `(setting, source)` of every key replaced by the configuration.
    pub replaced: Vec<(&'static str, String)>,
}

/// Replace the PKI directory's keys by those the configuration names: PKCS#8
/// files (permissions checked: owner only) and keys in a PKCS#11 token. Each
/// configured key must match its certificate in the PKI directory (the
/// certificates stay there; only the private keys move). Returns the token,
/// which must live as long as its signers, and what was replaced.
pub fn apply_configured_keys(
    config: &crate::config::Config,
    pki: &mut PkiDir,
) -> anyhow::Result<(Option<ecos_pkcs11::Token>, KeySources)> {
    use anyhow::{Context as _, bail};
    use ecos_smki::Signer as _;
    let loaded = config.load_keys()?;
    let mut sources = KeySources::default();
    let mismatch = |setting: &str, source: &str, cert: &str| {
        anyhow::anyhow!(
            "{setting} ({source}) does not match the {cert} certificate of the PKI directory: \
             its public key differs"
        )
    };
    let file = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| format!("file {}", p.display()))
            .unwrap_or_default()
    };
    let k = &config.keys;
    let keys = &mut pki.keys;
    for (setting, signer, path) in [
        ("keys.tcos_signing", loaded.tcos_signing, &k.tcos_signing),
        ("keys.ecos_signing", loaded.ecos_signing, &k.ecos_signing),
        ("keys.dsp_xml_sign", loaded.dsp_xml_sign, &k.dsp_xml_sign),
    ] {
        let Some(signer) = signer else { continue };
        let (slot, cert, name): (&mut Arc<dyn ecos_smki::Signer>, _, _) = match setting {
            "keys.tcos_signing" => (&mut keys.tcos.signer, &keys.tcos.certificate, "TCoS"),
            "keys.ecos_signing" => (&mut keys.ecos.signer, &keys.ecos.certificate, "ECoS"),
            _ => (&mut keys.dsp, &keys.dsp_certificate, "DSP XML Sign"),
        };
        if signer.public_key() != cert.public_key() {
            return Err(mismatch(setting, &file(path), name));
        }
        *slot = Arc::new(signer);
        sources.replaced.push((setting, file(path)));
    }
    if let Some(acb) = loaded.acb_key_agreement {
        use ecos_smki::KeyAgreement as _;
        let source = file(&k.acb_key_agreement);
        if acb.public_key() != pki.acb_certificate.public_key() {
            return Err(mismatch("keys.acb_key_agreement", &source, "ACB"));
        }
        keys.acb = Arc::new(acb);
        sources.replaced.push(("keys.acb_key_agreement", source));
    }
    let Some(p) = &k.pkcs11 else {
        return Ok((None, sources));
    };
    let wanted = [
        ("keys.pkcs11.tcos_signing", &p.tcos_signing),
        ("keys.pkcs11.ecos_signing", &p.ecos_signing),
        ("keys.pkcs11.dsp_xml_sign", &p.dsp_xml_sign),
    ];
    if wanted.iter().all(|(_, l)| l.is_none()) {
        bail!(
            "keys.pkcs11 names no key: set tcos_signing, ecos_signing or dsp_xml_sign to a key label"
        );
    }
    let pin = p.read_pin(k.allow_insecure_permissions)?;
    let token = ecos_pkcs11::Token::open(&p.module, &p.token, &pin)
        .with_context(|| format!("keys.pkcs11: token {:?}", p.token))?;
    for (setting, label) in wanted {
        let Some(label) = label else { continue };
        let signer = token
            .signer(label)
            .with_context(|| format!("{setting}: key {label:?}"))?;
        let (slot, cert, name): (&mut Arc<dyn ecos_smki::Signer>, _, _) = match setting {
            "keys.pkcs11.tcos_signing" => (&mut keys.tcos.signer, &keys.tcos.certificate, "TCoS"),
            "keys.pkcs11.ecos_signing" => (&mut keys.ecos.signer, &keys.ecos.certificate, "ECoS"),
            _ => (&mut keys.dsp, &keys.dsp_certificate, "DSP XML Sign"),
        };
        let source = format!("PKCS#11 token {:?} key {label:?}", p.token);
        if signer.public_key() != cert.public_key() {
            return Err(mismatch(setting, &source, name));
        }
        *slot = Arc::new(signer);
        sources.replaced.push((setting, source));
    }
    Ok((Some(token), sources))
}

/// Open the configured store: PostgreSQL when a URL is configured, else
/// SQLite in the data directory.
pub async fn open_store(config: &crate::config::Config) -> anyhow::Result<ecos_store::Store> {
    use anyhow::Context as _;
    let location = match &config.database_url {
        Some(url) => ecos_store::StoreLocation::from_url(url)?,
        None => ecos_store::StoreLocation::sqlite_in_dir(&config.data_dir),
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    Ok(ecos_store::Store::open(
        &location,
        ecos_store::StoreConfig {
            gbcs_counter_floor: config.party.counter_floor,
            ..ecos_store::StoreConfig::default()
        },
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::Config;

    fn key_file(pki_dir: &Path, credential: &str) -> PathBuf {
        let index: ecos_smki::testpki::Index =
            serde_json::from_slice(&std::fs::read(pki_dir.join("index.json")).expect("index"))
                .expect("index JSON");
        let e = index
            .entries
            .iter()
            .find(|e| e.credential == credential)
            .expect("credential");
        pki_dir.join(&e.key)
    }

    /// A copy of a PKI key file with the given mode.
    fn copy_with_mode(from: &Path, to: &Path, mode: u32) {
        std::fs::copy(from, to).expect("copy");
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn configured_key_files_replace_the_pki_keys_only_when_protected_and_matching() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki_dir = dir.path().join("pki");
        ecos_party::demo::pki(3)
            .expect("PKI")
            .write_to(&pki_dir)
            .expect("write PKI");
        let tcos = dir.path().join("tcos.pem");
        let ecos = dir.path().join("ecos.pem");
        let acb = dir.path().join("acb.pem");
        copy_with_mode(&key_file(&pki_dir, "tcos-ds"), &tcos, 0o640);
        copy_with_mode(&key_file(&pki_dir, "ecos-ds"), &ecos, 0o600);
        copy_with_mode(&key_file(&pki_dir, "acb-ka"), &acb, 0o600);
        let mut config = Config::default();

        // Readable by the group: refused, naming the file and its mode.
        config.keys.tcos_signing = Some(tcos.clone());
        let mut pki = load_pki_dir(&pki_dir).expect("PKI dir");
        let e = format!(
            "{:#}",
            apply_configured_keys(&config, &mut pki).unwrap_err()
        );
        assert!(
            e.contains(&tcos.display().to_string()) && e.contains("mode 640"),
            "{e}"
        );

        // The ECoS key where the TCoS key belongs: refused, naming the setting.
        config.keys.tcos_signing = Some(ecos.clone());
        let e = format!(
            "{:#}",
            apply_configured_keys(&config, &mut pki).unwrap_err()
        );
        assert!(
            e.contains("keys.tcos_signing") && e.contains("TCoS certificate"),
            "{e}"
        );

        // Owner-only and matching: used, and what it signs verifies with the certificate.
        std::fs::set_permissions(&tcos, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        config.keys.tcos_signing = Some(tcos.clone());
        config.keys.ecos_signing = Some(ecos.clone());
        config.keys.acb_key_agreement = Some(acb.clone());
        let before = Arc::as_ptr(&pki.keys.tcos.signer) as *const () as usize;
        let (token, sources) = apply_configured_keys(&config, &mut pki).expect("keys");
        assert!(token.is_none());
        let settings: Vec<&str> = sources.replaced.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            settings,
            [
                "keys.tcos_signing",
                "keys.ecos_signing",
                "keys.acb_key_agreement"
            ]
        );
        assert!(sources.replaced[0].1.contains("tcos.pem"));
        assert_ne!(
            Arc::as_ptr(&pki.keys.tcos.signer) as *const () as usize,
            before,
            "the configured key replaced the PKI directory's"
        );
        let sig = pki.keys.tcos.signer.sign(b"a CS02b").expect("sign");
        pki.keys
            .tcos
            .certificate
            .public_key()
            .verify(b"a CS02b", &sig)
            .expect("verifies with the TCoS certificate");
    }
}

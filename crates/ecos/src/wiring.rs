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

/// A simulated fleet as the party's device transport: a command is run
/// through the device at once and its response handed back on a channel
/// (a device that refuses a command answers nothing, as on the WAN).
#[derive(Debug)]
pub struct SimLink {
    fleet: Arc<Fleet>,
    responses: mpsc::UnboundedSender<(Eui64, Vec<u8>)>,
}

impl SimLink {
    /// A link to `fleet`; responses go to the returned receiver.
    pub fn new(fleet: Arc<Fleet>) -> (Self, mpsc::UnboundedReceiver<(Eui64, Vec<u8>)>) {
        let (tx, rx) = mpsc::unbounded_channel();
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
                    let _ = self.responses.send((device, h.response));
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
pub fn spawn_device_receiver(
    party: Arc<Party>,
    mut rx: mpsc::UnboundedReceiver<(Eui64, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((device, bytes)) = rx.recv().await {
            match party.on_device_message(&bytes, Timestamp::now()).await {
                Ok(report) => tracing::info!(
                    %device,
                    success = report.success,
                    accepted_only = report.accepted_only,
                    "device response matched and answered"
                ),
                Err(e) => tracing::warn!(%device, "device response not taken: {e}"),
            }
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

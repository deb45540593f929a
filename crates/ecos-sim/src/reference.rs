//! The RTDS reference ESME `00DB1234567890A0`, loaded from the shared
//! fixtures: its cells as the reference responses show them, the ACB KA
//! key for MAC checks (mirrored, see [`MirroredKeyAgreement`]) and a
//! generated DS key for its own responses (its real key is not public).

use std::path::Path;
use std::sync::Arc;

use ecos_smki::{Certificate, Eui64, PathPolicy, Signer, SoftwareKeyAgreement, TrustStore};

use crate::anchor::{Anchor, CellId};
use crate::device::{Device, DeviceContext, DeviceKind};
use crate::error::SimError;
use crate::keys::{MirroredKeyAgreement, SeededKeys};

/// The reference ESME's EUI.
pub const REFERENCE_ESME: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);

/// The reference device, its keys and context.
#[derive(Debug)]
pub struct ReferenceDevice {
    /// The device with the reference cells.
    pub device: Device,
    /// Generated DS key (responses verify with its public key).
    pub ds: Arc<dyn Signer>,
    /// Mirrored ACB/device key agreement for the MAC.
    pub ka: Arc<MirroredKeyAgreement>,
    /// Z1 issuing CA as the CPV anchor, validation pinned to 2025-10-01.
    pub context: DeviceContext,
}

fn load(path: &Path) -> Result<Certificate, SimError> {
    Certificate::load(path).map_err(|e| SimError::Anchor(format!("{}: {e}", path.display())))
}

fn anchor(path: &Path) -> Result<Arc<Anchor>, SimError> {
    Ok(Arc::new(Anchor::from_certificate(load(path)?)?))
}

fn ski(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap_or_default()
}

/// Load the reference ESME from the fixtures directory (`rtds/`,
/// `keystore/`, `zaz1/`). `seed` derives the generated DS key.
pub fn reference_esme(fixtures: &Path, seed: u64) -> Result<ReferenceDevice, SimError> {
    let ks = fixtures.join("keystore");
    let mut device = Device::new(REFERENCE_ESME, DeviceKind::Esme, 2001);
    device
        .set_cell(
            CellId::Root,
            Arc::new(Anchor::known(Eui64([0; 8]), ski("48CF1B32697C4669"), None)),
        )
        .set_cell(
            CellId::Recovery,
            anchor(&ks.join("90b3d51f30000001-ds.pem"))?,
        )
        .set_cell(
            CellId::SupplierDs,
            anchor(&ks.join("90b3d51f30010000-ds.pem"))?,
        )
        .set_cell(
            CellId::SupplierKa,
            anchor(&ks.join("90b3d51f30010000-ka.pem"))?,
        )
        .set_cell(
            CellId::SupplierPpKa,
            anchor(&ks.join("90b3d51f30010000-pp-ka.pem"))?,
        )
        .set_cell(
            CellId::NetworkOperatorDs,
            anchor(&ks.join("90b3d51f30020000-ds.pem"))?,
        )
        .set_cell(
            CellId::NetworkOperatorKa,
            anchor(&ks.join("90b3d51f30020000-ka.pem"))?,
        )
        .set_cell(CellId::AcbKa, anchor(&ks.join("90b3d51f30000002-ka.pem"))?)
        .set_cell(
            CellId::TransCosDs,
            anchor(&ks.join("90b3d51f30000004-ds.pem"))?,
        );
    let acb = SoftwareKeyAgreement::from_file(ks.join("90b3d51f30000002-ka.key"))
        .map_err(|e| SimError::Key(format!("ACB KA key: {e}")))?;
    let device_ka = load(&ks.join("00db1234567890a0-ka.pem"))?;
    let ka = Arc::new(MirroredKeyAgreement::new(
        acb,
        device_ka.public_key().clone(),
    ));
    let ds = SeededKeys { seed }.keys(REFERENCE_ESME)?.ds;
    let z1 = load(&fixtures.join("zaz1/Z1-issuing-ca.pem"))?;
    let mut context = DeviceContext::new(
        TrustStore::with_anchors([z1]),
        PathPolicy::test_organisation(),
    );
    context.cpv_time = Some(
        "2025-10-01T00:00:00Z"
            .parse()
            .map_err(|e| SimError::Config(format!("CPV time: {e}")))?,
    );
    Ok(ReferenceDevice {
        device,
        ds,
        ka,
        context,
    })
}

//! The keys the party signs and MACs with, behind the `ecos-smki` traits.

use std::sync::Arc;

use ecos_smki::{Certificate, Eui64, KeyAgreement, Signer};

/// A CoS signing credential: the key and the certificate the device's
/// role-5 cell holds for it.
#[derive(Debug, Clone)]
pub struct CosKey {
    /// The signing key.
    pub signer: Arc<dyn Signer>,
    /// Its certificate (OU 05).
    pub certificate: Certificate,
}

impl CosKey {
    /// The EUI the grouping header names as originator.
    pub fn eui(&self) -> Option<Eui64> {
        self.certificate.eui()
    }
}

/// Every key the party uses.
#[derive(Debug, Clone)]
pub struct PartyKeys {
    /// The transitional CoS credential (before a device is migrated).
    pub tcos: CosKey,
    /// The enduring CoS credential (after).
    pub ecos: CosKey,
    /// The ACB key-agreement key that MACs commands for devices.
    pub acb: Arc<dyn KeyAgreement>,
    /// The DSP XML-sign key (OU 89) that signs DUIS responses and alerts.
    pub dsp: Arc<dyn Signer>,
    /// Its certificate.
    pub dsp_certificate: Certificate,
}

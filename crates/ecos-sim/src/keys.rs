//! Device keys: given explicitly, or derived from a seed and the EUI so a
//! fleet of a million devices keeps no key material per device.

use std::sync::Arc;

use aws_lc_rs::digest;
use ecos_smki::{
    Eui64, KeyAgreement, KeyError, P256PublicKey, Signer, SoftwareKeyAgreement, SoftwareSigner,
};

use crate::error::SimError;

/// A device's digital-signing and key-agreement keys.
#[derive(Debug, Clone)]
pub struct DeviceKeys {
    /// Signs responses and alerts.
    pub ds: Arc<dyn Signer>,
    /// Checks the ACB MAC.
    pub ka: Arc<dyn KeyAgreement>,
}

/// The order of the P-256 group (big-endian), for the scalar range check.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// An RFC 5915 ECPrivateKey (P-256, no public key) for a raw scalar.
fn ec_private_key_der(scalar: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(51);
    v.extend_from_slice(&[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
    v.extend_from_slice(scalar);
    v.extend_from_slice(&[
        0xA0, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
    ]);
    v
}

/// Derive a valid P-256 scalar from `seed`, `eui` and `label`
/// (SHA-256, re-hashed in the negligible case it is 0 or ≥ n).
fn scalar(seed: u64, eui: Eui64, label: &str) -> [u8; 32] {
    let mut ctr = 0u32;
    loop {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"ecos-sim device key\0");
        ctx.update(label.as_bytes());
        ctx.update(&seed.to_be_bytes());
        ctx.update(eui.as_bytes());
        ctx.update(&ctr.to_be_bytes());
        let d = ctx.finish();
        let mut s = [0u8; 32];
        s.copy_from_slice(d.as_ref());
        if s != [0u8; 32] && s < P256_ORDER {
            return s;
        }
        ctr += 1;
    }
}

/// Keys derived from a seed and the device EUI: the same seed gives the
/// same keys in the simulator and in whatever plays the ACB, so no key is
/// stored per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeededKeys {
    /// The seed.
    pub seed: u64,
}

impl SeededKeys {
    /// The device's keys.
    pub fn keys(&self, eui: Eui64) -> Result<DeviceKeys, SimError> {
        let ds = SoftwareSigner::from_bytes(&ec_private_key_der(&scalar(self.seed, eui, "ds")))
            .map_err(|e| key_err(eui, "DS", e))?;
        let ka =
            SoftwareKeyAgreement::from_bytes(&ec_private_key_der(&scalar(self.seed, eui, "ka")))
                .map_err(|e| key_err(eui, "KA", e))?;
        Ok(DeviceKeys {
            ds: Arc::new(ds),
            ka: Arc::new(ka),
        })
    }

    /// The device's KA public key (what the ACB needs to MAC a command).
    pub fn ka_public(&self, eui: Eui64) -> Result<P256PublicKey, SimError> {
        let ka =
            SoftwareKeyAgreement::from_bytes(&ec_private_key_der(&scalar(self.seed, eui, "ka")))
                .map_err(|e| key_err(eui, "KA", e))?;
        Ok(ka.public_key().clone())
    }

    /// The device's DS public key (what verifies its responses).
    pub fn ds_public(&self, eui: Eui64) -> Result<P256PublicKey, SimError> {
        let ds = SoftwareSigner::from_bytes(&ec_private_key_der(&scalar(self.seed, eui, "ds")))
            .map_err(|e| key_err(eui, "DS", e))?;
        Ok(ds.public_key().clone())
    }
}

fn key_err(eui: Eui64, what: &str, e: KeyError) -> SimError {
    SimError::Key(format!("{what} key of {eui}: {e}"))
}

/// The ACB side of an ECDH, presented as the device's key agreement: it
/// holds the ACB KA *private* key and the device KA *public* key, and
/// computes the same shared secret the device would (ECDH is symmetric).
///
/// This lets the model check the MAC of the reference vectors, whose
/// device private key is not public. `agree` refuses any peer other than
/// the ACB key it stands in for.
#[derive(Debug)]
pub struct MirroredKeyAgreement {
    acb: SoftwareKeyAgreement,
    device_public: P256PublicKey,
}

impl MirroredKeyAgreement {
    /// From the ACB KA private key and the device's KA public key.
    pub fn new(acb: SoftwareKeyAgreement, device_public: P256PublicKey) -> Self {
        MirroredKeyAgreement { acb, device_public }
    }
}

impl KeyAgreement for MirroredKeyAgreement {
    fn agree(&self, peer: &P256PublicKey) -> Result<[u8; 32], KeyError> {
        if peer != self.acb.public_key() {
            return Err(KeyError::Crypto(
                "mirrored key agreement only works with its ACB key",
            ));
        }
        self.acb.agree(&self.device_public)
    }

    fn public_key(&self) -> &P256PublicKey {
        &self.device_public
    }
}

//! The system side of the link, for tests, benchmarks and manual runs: a
//! CoS party signing CS02b commands and the ACB MAC-wrapping them, with
//! the device KA keys taken from the fleet's [`KeySource`].

use std::sync::Arc;

use ecos_gbcs::{
    CertificateDer, Cs02bCommand, ExecutionDateTime, SupplierByTransCos, SupplierFloors,
    TransCosByTransCos,
};
use ecos_smki::{Certificate, Eui64, KeyAgreement, Signer};

use crate::error::SimError;
use crate::fleet::KeySource;

/// A CoS party and an ACB.
#[derive(Debug, Clone)]
pub struct HeadEnd {
    /// The CoS signing key (TCoS or ECoS).
    pub cos: Arc<dyn Signer>,
    /// The grouping-header originator (the CoS certificate's EUI).
    pub cos_eui: Eui64,
    /// The ACB key-agreement key.
    pub acb: Arc<dyn KeyAgreement>,
    /// Where the device KA public keys come from.
    pub keys: KeySource,
}

/// The supplier credentials a 6.23 puts on the device.
#[derive(Debug, Clone)]
pub struct SupplierCredentials {
    /// DS certificate.
    pub ds: Certificate,
    /// KA certificate.
    pub ka: Certificate,
    /// Prepayment top-up KA certificate.
    pub pp_ka: Option<Certificate>,
    /// Path certificates (the issuing CA).
    pub path: Vec<Certificate>,
}

fn der(c: &Certificate) -> Result<CertificateDer, SimError> {
    CertificateDer::new(c.der().to_vec()).map_err(|e| SimError::Encode(e.to_string()))
}

impl HeadEnd {
    /// A signed, MAC-wrapped mode 7 (6.23) command: immediate (`None`),
    /// future-dated or cancellation. Supplier floors 0/0 unless cancelling.
    pub fn supplier_by_trans_cos(
        &self,
        device: Eui64,
        counter: u64,
        creds: &SupplierCredentials,
        execution: Option<ExecutionDateTime>,
    ) -> Result<Vec<u8>, SimError> {
        let cmd = Cs02bCommand::supplier_by_trans_cos(SupplierByTransCos {
            counter,
            originator: self.cos_eui,
            recipient: device,
            supplier_ds: der(&creds.ds)?,
            supplier_ka: der(&creds.ka)?,
            supplier_pp_ka: creds.pp_ka.as_ref().map(der).transpose()?,
            certification_path: creds.path.iter().map(der).collect::<Result<_, _>>()?,
            apply_time_based_cpv_checks: true,
            supplier_floors: (execution != Some(ExecutionDateTime::Cancel)).then_some(
                SupplierFloors {
                    floor: 0,
                    prepayment_top_up_floor: creds.pp_ka.as_ref().map(|_| 0),
                },
            ),
            execution,
        })
        .map_err(|e| SimError::Encode(e.to_string()))?;
        self.seal(&cmd, device)
    }

    /// A signed, MAC-wrapped mode 6 command putting `new_cos` into the
    /// device's role-5 cell (`[1]` disapply, as in the RTDS).
    pub fn trans_cos_by_trans_cos(
        &self,
        device: Eui64,
        counter: u64,
        new_cos: &Certificate,
        path: &[Certificate],
        new_floor: Option<u64>,
    ) -> Result<Vec<u8>, SimError> {
        let cmd = Cs02bCommand::trans_cos_by_trans_cos(TransCosByTransCos {
            counter,
            originator: self.cos_eui,
            recipient: device,
            new_cos_ds: der(new_cos)?,
            certification_path: path.iter().map(der).collect::<Result<_, _>>()?,
            apply_time_based_cpv_checks: false,
            new_floor_seq_number: new_floor,
            execution: None,
        })
        .map_err(|e| SimError::Encode(e.to_string()))?;
        self.seal(&cmd, device)
    }

    /// Sign with the CoS key and MAC with the ACB key for `device`.
    pub fn seal(&self, cmd: &Cs02bCommand, device: Eui64) -> Result<Vec<u8>, SimError> {
        let ka = self.keys.ka_public(device)?;
        cmd.sign_and_mac(self.cos.as_ref(), self.acb.as_ref(), &ka)
            .map_err(|e| SimError::Encode(e.to_string()))
    }
}

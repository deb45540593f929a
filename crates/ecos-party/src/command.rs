//! Step 5: build the CS02b mode-7 command for an accepted request, sign it
//! with the CoS key the device trusts now, check the signature just made,
//! and MAC it for the device.

use ecos_duis::Execution;
use ecos_gbcs::{
    CertificateDer, Cs02bCommand, ExecutionDateTime, SupplierByTransCos, SupplierFloors,
};
use ecos_smki::{Certificate, P256PublicKey};

use crate::check::{Accepted, CosChoice};
use crate::keys::{CosKey, PartyKeys};

/// Why a command could not be built (an internal failure, never the requester's).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Encoding, signing or MACing failed.
    #[error("building the CS02b command: {0}")]
    Gbcs(#[from] ecos_gbcs::GbcsError),
    /// The builder refused the inputs.
    #[error("building the CS02b command: {0}")]
    Encode(#[from] ecos_gbcs::EncodeError),
    /// A certificate could not be carried.
    #[error("certificate for the command: {0}")]
    Certificate(#[from] ecos_gbcs::DecodeError),
    /// The self-check of the signed command failed.
    #[error("self-check of the signed command failed: {0}")]
    SelfCheck(String),
    /// The CoS certificate has no EUI.
    #[error("the CoS certificate carries no EUI")]
    NoCosEui,
    /// The device's KA certificate is missing or unusable.
    #[error("device key-agreement certificate: {0}")]
    DeviceKa(String),
}

/// A command ready to send.
#[derive(Debug, Clone)]
pub struct BuiltCommand {
    /// The complete message (MAC header, signed APDU, MAC).
    pub bytes: Vec<u8>,
    /// The originator counter used.
    pub counter: u64,
    /// Which credential signed.
    pub cos: CosChoice,
}

/// The CoS key for a choice.
pub fn cos_key(keys: &PartyKeys, choice: CosChoice) -> &CosKey {
    match choice {
        CosChoice::Transitional => &keys.tcos,
        CosChoice::Enduring => &keys.ecos,
    }
}

fn der(c: &Certificate) -> Result<CertificateDer, CommandError> {
    Ok(CertificateDer::new(c.der().to_vec())?)
}

/// The device's KA public key from the DER certificate the inventory holds.
pub fn device_ka_key(ka_cert: Option<&[u8]>) -> Result<P256PublicKey, CommandError> {
    let der = ka_cert.ok_or_else(|| CommandError::DeviceKa("not in the inventory".into()))?;
    let cert =
        Certificate::from_pem_or_der(der).map_err(|e| CommandError::DeviceKa(e.to_string()))?;
    Ok(cert.public_key().clone())
}

/// GBCS carries whole seconds; DUIS may carry fractions. Round a fraction
/// up, so that the device never executes before the requested instant.
pub fn whole_second_not_before(t: jiff::Timestamp) -> jiff::Timestamp {
    if t.subsec_nanosecond() == 0 {
        return t;
    }
    jiff::Timestamp::from_second(t.as_second().saturating_add(1)).unwrap_or(t)
}

/// Build, sign, self-check and MAC the mode-7 command for `acc` with `counter`.
pub fn build_supplier_by_trans_cos(
    acc: &Accepted,
    keys: &PartyKeys,
    counter: u64,
) -> Result<BuiltCommand, CommandError> {
    build_for(&acc.request, &acc.device, acc.cos, keys, counter)
}

/// Build, sign, self-check and MAC the mode-7 command that `request` asks
/// for on `device`, signed with the `cos` credential (the re-validation's
/// cancellations are built from a stored request this way).
pub fn build_for(
    request: &ecos_duis::CosRequest,
    device: &ecos_store::Device,
    cos: CosChoice,
    keys: &PartyKeys,
    counter: u64,
) -> Result<BuiltCommand, CommandError> {
    let key = cos_key(keys, cos);
    let originator = key.eui().ok_or(CommandError::NoCosEui)?;
    let body = &request.body;
    let certs = &body.replacement_certificates;
    let ka = certs
        .key_agreement
        .as_ref()
        .ok_or_else(|| CommandError::SelfCheck("no KA replacement certificate".into()))?;
    let execution = match body.execution {
        Execution::Immediate => None,
        Execution::FutureDated(t) => Some(ExecutionDateTime::At(
            jiff::tz::TimeZone::UTC.to_datetime(whole_second_not_before(t)),
        )),
        Execution::Cancellation => Some(ExecutionDateTime::Cancel),
    };
    let floors = match body.execution {
        Execution::Cancellation => None,
        _ => Some(SupplierFloors {
            floor: body.supplier_floor_seq_number,
            prepayment_top_up_floor: body.supplier_prepayment_top_up_floor_seq_number,
        }),
    };
    let cmd = Cs02bCommand::supplier_by_trans_cos(SupplierByTransCos {
        counter,
        originator,
        recipient: device.eui,
        supplier_ds: der(&certs.digital_signing)?,
        supplier_ka: der(ka)?,
        supplier_pp_ka: certs.key_agreement_top_up.as_ref().map(der).transpose()?,
        certification_path: body
            .certification_path
            .iter()
            .map(der)
            .collect::<Result<_, _>>()?,
        apply_time_based_cpv_checks: body.apply_time_based_cpv_checks,
        supplier_floors: floors,
        execution,
    })?;
    let device_ka = device_ka_key(device.ka_cert.as_deref())?;
    let bytes = cmd.sign_and_mac(key.signer.as_ref(), keys.acb.as_ref(), &device_ka)?;
    // Before it leaves: re-parse, compare with what was built, verify with
    // the certificate of the key used (`gbcs-cs02b.md` §13.5).
    cmd.check_signed(&bytes, key.certificate.public_key())
        .map_err(|e| CommandError::SelfCheck(e.to_string()))?;
    Ok(BuiltCommand {
        bytes,
        counter,
        cos,
    })
}

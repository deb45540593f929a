//! Step 5: build the CS02b mode-7 command for an accepted request, sign it
//! with the CoS key the device trusts now, check the signature just made,
//! and MAC it for the device.

use ecos_duis::Execution;
use ecos_gbcs::{
    CertificateDer, Cs02bCommand, ExecutionDateTime, SupplierByTransCos, SupplierFloors,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ecos_gbcs::mac::PairwiseSecret;
use ecos_smki::{Certificate, KeyAgreement, P256PublicKey};

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
    // Only its key enters the MAC: read it (and check it is a P-256 point)
    // without decoding the rest of the certificate. A corrupt entry still
    // fails here with the reason; whether the device trusts the key is the
    // device's check (its own KA certificate).
    Certificate::public_key_of(der).map_err(|e| CommandError::DeviceKa(e.to_string()))
}

/// GBCS carries whole seconds; DUIS may carry fractions. Round a fraction
/// up, so that the device never executes before the requested instant.
pub fn whole_second_not_before(t: jiff::Timestamp) -> jiff::Timestamp {
    if t.subsec_nanosecond() == 0 {
        return t;
    }
    jiff::Timestamp::from_second(t.as_second().saturating_add(1)).unwrap_or(t)
}

/// The static ECDH secrets between the party's ACB key and devices'
/// key-agreement certificates, so that a command is MACed without an ECDH
/// (static-static ECDH gives the same secret for every message). Keyed by
/// the device KA certificate's DER as the inventory holds it: a replaced
/// certificate is a different key, so a stale secret is never used. One
/// cache belongs to one ACB key (a [`Party`](crate::Party) holds its own).
/// Bounded ([`ecos_smki::Bounded`]).
#[derive(Debug)]
pub struct MacSecrets(ecos_smki::Bounded<Box<[u8]>, Arc<PairwiseSecret>>);

impl MacSecrets {
    /// A cache of at most `capacity` device secrets.
    pub fn new(capacity: usize) -> Self {
        MacSecrets(ecos_smki::Bounded::new(capacity))
    }

    /// The secret between `acb` and the device whose KA certificate (DER or
    /// PEM) is `ka_cert`, agreed on a miss.
    pub fn secret(
        &self,
        acb: &dyn KeyAgreement,
        ka_cert: Option<&[u8]>,
    ) -> Result<Arc<PairwiseSecret>, CommandError> {
        let der = ka_cert.ok_or_else(|| CommandError::DeviceKa("not in the inventory".into()))?;
        if let Some(s) = self.0.get(der) {
            return Ok(s);
        }
        let secret = Arc::new(PairwiseSecret::agree(acb, &device_ka_key(Some(der))?)?);
        self.0.insert(der.into(), secret.clone());
        Ok(secret)
    }

    /// Hits, misses and size.
    pub fn stats(&self) -> ecos_smki::CacheStats {
        self.0.stats()
    }
}

impl Default for MacSecrets {
    fn default() -> Self {
        MacSecrets::new(MAC_SECRETS_CAPACITY)
    }
}

/// Which signed commands the self-check verifies the signature of: the
/// first each CoS key signs, then one in every `every` (1: all). The
/// re-parse and comparison with what was built run on every command. A key
/// that does not match its certificate is caught on its first command.
#[derive(Debug)]
pub struct SignatureChecks {
    every: u64,
    /// Commands signed so far, by key (transitional, enduring).
    signed: [AtomicU64; 2],
    verified: AtomicU64,
}

impl SignatureChecks {
    /// Verify the first command of each key and one in `every` (0 is taken as 1).
    pub fn new(every: u64) -> Self {
        SignatureChecks {
            every: every.max(1),
            signed: [AtomicU64::new(0), AtomicU64::new(0)],
            verified: AtomicU64::new(0),
        }
    }

    /// Verify every command.
    pub fn every_command() -> Self {
        SignatureChecks::new(1)
    }

    /// Whether the next command signed with `cos` is verified.
    fn due(&self, cos: CosChoice) -> bool {
        let i = match cos {
            CosChoice::Transitional => 0,
            CosChoice::Enduring => 1,
        };
        let due = self.signed[i].fetch_add(1, Ordering::Relaxed) % self.every == 0;
        if due {
            self.verified.fetch_add(1, Ordering::Relaxed);
        }
        due
    }

    /// Commands signed, and of them the ones whose signature was verified.
    pub fn stats(&self) -> (u64, u64) {
        let signed = self.signed.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        (signed, self.verified.load(Ordering::Relaxed))
    }
}

/// How many device secrets a [`Party`](crate::Party) keeps.
pub const MAC_SECRETS_CAPACITY: usize = 65_536;

/// Build, sign, self-check and MAC the mode-7 command for `acc` with `counter`.
pub fn build_supplier_by_trans_cos(
    acc: &Accepted,
    keys: &PartyKeys,
    counter: u64,
) -> Result<BuiltCommand, CommandError> {
    build_for(&acc.request, &acc.device, acc.cos, keys, counter)
}

/// [`build_supplier_by_trans_cos`] with the device's MAC secret from
/// `secrets`, the signature verified when `checks` says so.
pub fn build_supplier_by_trans_cos_cached(
    acc: &Accepted,
    keys: &PartyKeys,
    secrets: &MacSecrets,
    checks: &SignatureChecks,
    counter: u64,
) -> Result<BuiltCommand, CommandError> {
    build_for_cached(
        &acc.request,
        &acc.device,
        acc.cos,
        keys,
        secrets,
        checks,
        counter,
    )
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
    let secret = PairwiseSecret::agree(
        keys.acb.as_ref(),
        &device_ka_key(device.ka_cert.as_deref())?,
    )?;
    build_with_secret(request, device, cos, keys, &secret, true, counter)
}

/// [`build_for`] with the device's MAC secret from `secrets`, the signature
/// verified when `checks` says so.
pub fn build_for_cached(
    request: &ecos_duis::CosRequest,
    device: &ecos_store::Device,
    cos: CosChoice,
    keys: &PartyKeys,
    secrets: &MacSecrets,
    checks: &SignatureChecks,
    counter: u64,
) -> Result<BuiltCommand, CommandError> {
    let secret = secrets.secret(keys.acb.as_ref(), device.ka_cert.as_deref())?;
    let verify = checks.due(cos);
    build_with_secret(request, device, cos, keys, &secret, verify, counter)
}

fn build_with_secret(
    request: &ecos_duis::CosRequest,
    device: &ecos_store::Device,
    cos: CosChoice,
    keys: &PartyKeys,
    secret: &PairwiseSecret,
    verify_signature: bool,
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
    let apdu = cmd.sign(key.signer.as_ref())?;
    let bytes = ecos_gbcs::mac::wrap_with_secret(&apdu, secret, ecos_gbcs::MacHeader::RTDS)?;
    // Before it leaves: re-parse, compare with what was built, verify with
    // the certificate of the key used (`gbcs-cs02b.md` §13.5; the signature
    // as [`SignatureChecks`] samples it).
    let self_check = |e: ecos_gbcs::GbcsError| CommandError::SelfCheck(e.to_string());
    let msg = cmd.check_encoded(&bytes).map_err(self_check)?;
    if verify_signature {
        msg.frame
            .verify_signature(key.certificate.public_key())
            .map_err(self_check)?;
    }
    Ok(BuiltCommand {
        bytes,
        counter,
        cos,
    })
}

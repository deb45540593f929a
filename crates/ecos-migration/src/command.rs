//! The migration command: CS02b transCoSByTransCoS (0x0106), signed with the TCoS key,
//! installing the ECoS certificate in the {5, DS} cell, MACed for the device; and the
//! reading of the device's answer; the CS02a read of the {5, DS} cell that settles an
//! unanswered command.

use ecos_gbcs::{CertificateDer, Cs02bCommand, ReadCells, TransCosByTransCos, TrustAnchorCell};
use ecos_party::PartyKeys;
use ecos_party::command::device_ka_key;
use ecos_party::device::{DeviceReport, verify_device_message};
use ecos_smki::{Certificate, Eui64};

use crate::MigrationError;

/// Build, sign with the TCoS key, self-check and MAC the 0x0106 command for `device`.
///
/// `ka_cert` is the device's key-agreement certificate (DER) from the inventory;
/// `path` the certification path of the ECoS certificate (its issuing CA).
pub fn build(
    keys: &PartyKeys,
    path: &[Certificate],
    device: Eui64,
    ka_cert: Option<&[u8]>,
    counter: u64,
    apply_time_based_cpv_checks: bool,
    set_floor: bool,
) -> Result<Vec<u8>, MigrationError> {
    let cmd_err = |e: String| MigrationError::Command { device, detail: e };
    let originator = keys
        .tcos
        .eui()
        .ok_or_else(|| cmd_err("the TCoS certificate carries no EUI".into()))?;
    let der =
        |c: &Certificate| CertificateDer::new(c.der().to_vec()).map_err(|e| cmd_err(e.to_string()));
    let cmd = Cs02bCommand::trans_cos_by_trans_cos(TransCosByTransCos {
        counter,
        originator,
        recipient: device,
        new_cos_ds: der(&keys.ecos.certificate)?,
        certification_path: path.iter().map(der).collect::<Result<_, _>>()?,
        apply_time_based_cpv_checks,
        new_floor_seq_number: set_floor.then_some(counter),
        execution: None,
    })
    .map_err(|e| cmd_err(e.to_string()))?;
    let ka = device_ka_key(ka_cert).map_err(|e| cmd_err(e.to_string()))?;
    let bytes = cmd
        .sign_and_mac(keys.tcos.signer.as_ref(), keys.acb.as_ref(), &ka)
        .map_err(|e| cmd_err(e.to_string()))?;
    cmd.check_signed(&bytes, keys.tcos.certificate.public_key())
        .map_err(|e| cmd_err(e.to_string()))?;
    Ok(bytes)
}

/// What a verified device answer means for the migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// {5, DS} now holds the ECoS certificate (success, its SKI and EUI).
    Migrated,
    /// The {5, DS} replacement failed with this GBCS status.
    Failed(u32),
    /// Success, but not with the ECoS certificate (or no {5, DS} outcome at all).
    Unexpected(String),
}

/// Verify a decoded device message with the device's DS certificate and read it.
pub fn read_answer(
    keys: &PartyKeys,
    msg: &ecos_gbcs::Message<'_>,
    device_ds: Option<&[u8]>,
) -> Result<(DeviceReport, Answer), MigrationError> {
    let report = verify_device_message(msg, device_ds)
        .map_err(|e| MigrationError::DeviceMessage(e.to_string()))?;
    let ecos_ski = keys
        .ecos
        .certificate
        .ski()
        .map(hex::encode_upper)
        .unwrap_or_default();
    let ecos_eui = keys.ecos.eui();
    let answer = match report.cells.iter().find(|c| c.role == 5) {
        None => Answer::Unexpected("no outcome for the {5, DS} cell".into()),
        Some(c) if c.status != 0 => Answer::Failed(c.status),
        Some(c) if c.new_ski == ecos_ski && Some(c.new_sui) == ecos_eui => Answer::Migrated,
        Some(c) => Answer::Unexpected(format!(
            "success but the cell holds SUI {} SKI {}, not the ECoS certificate",
            c.new_sui, c.new_ski
        )),
    };
    Ok((report, answer))
}

/// Build the CS02a (0x0008) read of the device's {5, DS} cell, signed with the TCoS key
/// (as the public RTDS `NA_CS02aSignature` vector is), without a MAC.
pub fn build_read(
    keys: &PartyKeys,
    device: Eui64,
    counter: u64,
) -> Result<Vec<u8>, MigrationError> {
    let cmd_err = |e: String| MigrationError::Command { device, detail: e };
    let originator = keys
        .tcos
        .eui()
        .ok_or_else(|| cmd_err("the TCoS certificate carries no EUI".into()))?;
    ReadCells {
        cells: vec![TrustAnchorCell::TRANS_COS_DS],
    }
    .sign(counter, originator, device, keys.tcos.signer.as_ref())
    .map_err(|e| cmd_err(format!("CS02a read: {e}")))
}

/// What the device's {5, DS} cell holds, per its answer to a CS02a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosCell {
    /// The ECoS certificate (its SKI and EUI): the device is migrated.
    Ecos,
    /// Still the TCoS certificate.
    Tcos,
    /// Something else (described), or nothing.
    Other(String),
}

/// Decode a device message (the runner decodes each answer once, then reads it with
/// [`read_cells_answer`] or [`read_answer`]).
pub fn decode_answer(bytes: &[u8]) -> Result<ecos_gbcs::Message<'_>, MigrationError> {
    ecos_gbcs::Message::decode(bytes).map_err(|e| MigrationError::DeviceMessage(e.to_string()))
}

/// If `msg` is a device's answer to a CS02a read, verify it with the device's DS
/// certificate and say what the {5, DS} cell holds: `Ok(Some((counter, cell)))`.
/// `Ok(None)` when it is another message ([`read_answer`] reads those).
pub fn read_cells_answer(
    keys: &PartyKeys,
    device: Eui64,
    msg: &ecos_gbcs::Message<'_>,
    device_ds: Option<&[u8]>,
) -> Result<Option<(u64, CosCell)>, MigrationError> {
    let ecos_gbcs::Body::ReadCellsResponse(resp) = &msg.body else {
        return Ok(None);
    };
    let bad = |d: String| MigrationError::DeviceMessage(format!("CS02a answer from {device}: {d}"));
    if msg.frame.header.originator != device {
        return Err(bad(format!(
            "originator {} is not the sending device",
            msg.frame.header.originator
        )));
    }
    let der = device_ds.ok_or_else(|| bad("no DS certificate in the inventory".into()))?;
    let cert = Certificate::from_pem_or_der(der).map_err(|e| bad(e.to_string()))?;
    msg.frame
        .verify_signature(cert.public_key())
        .map_err(|e| bad(e.to_string()))?;
    let ski_of = |c: &Certificate| c.ski().map(<[u8]>::to_vec);
    let cell = match resp.cell(TrustAnchorCell::TRANS_COS_DS) {
        None => CosCell::Other("no {5, DS} entry in the answer".into()),
        Some(d) if d.status.0 != 0 => CosCell::Other(format!("{{5, DS}} status {}", d.status.0)),
        Some(d) if d.ski == ski_of(&keys.ecos.certificate) && d.sui == keys.ecos.eui() => {
            CosCell::Ecos
        }
        Some(d) if d.ski == ski_of(&keys.tcos.certificate) && d.sui == keys.tcos.eui() => {
            CosCell::Tcos
        }
        Some(d) => CosCell::Other(format!(
            "{{5, DS}} holds SUI {} SKI {}",
            d.sui.map(|s| s.to_string()).unwrap_or_default(),
            d.ski.as_deref().map(hex::encode_upper).unwrap_or_default()
        )),
    };
    Ok(Some((msg.frame.header.counter, cell)))
}

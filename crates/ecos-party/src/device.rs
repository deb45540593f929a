//! Back from the device: verify a response or 0x00CB alert with the
//! device's DS certificate and map its outcome to the DUIS view.

use ecos_gbcs::{Body, Message, StatusCode};
use ecos_smki::{Certificate, Eui64};

/// What a device message says, verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReport {
    /// The device.
    pub device: Eui64,
    /// The party it is addressed to (the CoS EUI).
    pub recipient: Eui64,
    /// For a response, the command's counter it answers; for an alert, the
    /// counter of the future-dated command whose outcome it carries.
    pub command_counter: u64,
    /// `response` or `alert`.
    pub kind: DeviceMessageKind,
    /// Every replacement succeeded (for an alert: 0x8F66 and every cell).
    pub success: bool,
    /// `commandAccepted` only (future-dated or cancellation accepted, no outcome yet).
    pub accepted_only: bool,
    /// Per-cell results: (role, key usage, status, new SUI, new SKI hex).
    pub cells: Vec<CellResult>,
}

/// One cell's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CellResult {
    /// Remote party role of the cell.
    pub role: u32,
    /// GBCS status code (0 success).
    pub status: u32,
    /// The identifier of the party now in the cell.
    pub new_sui: Eui64,
    /// The new certificate's SKI, hex.
    pub new_ski: String,
}

/// A response or alert from a device, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceMessageKind {
    /// A response to a command.
    Response,
    /// A 0x00CB future-dated outcome alert.
    Alert,
}

/// Why a device message is not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceMessageError {
    /// Not a decodable CS02b response or alert.
    #[error("device message does not decode: {0}")]
    Decode(#[from] ecos_gbcs::DecodeError),
    /// A command, not a response or alert.
    #[error("expected a device response or alert, got a command")]
    NotFromDevice,
    /// The device's DS certificate is missing or unusable.
    #[error("device {0}: no usable digital-signing certificate in the inventory")]
    NoDeviceCertificate(Eui64),
    /// The signature does not verify with the device's certificate.
    #[error("device {device}: signature does not verify: {detail}")]
    BadSignature {
        /// The device.
        device: Eui64,
        /// Why.
        detail: String,
    },
}

/// Verify a decoded device message with `device_ds` (the DER certificate
/// the inventory holds for its originator) and say what it reports.
pub fn verify_device_message(
    msg: &Message<'_>,
    device_ds: Option<&[u8]>,
) -> Result<DeviceReport, DeviceMessageError> {
    let device = msg.frame.header.originator;
    let der = device_ds.ok_or(DeviceMessageError::NoDeviceCertificate(device))?;
    let cert = Certificate::from_pem_or_der(der)
        .map_err(|_| DeviceMessageError::NoDeviceCertificate(device))?;
    msg.frame.verify_signature(cert.public_key()).map_err(|e| {
        DeviceMessageError::BadSignature {
            device,
            detail: e.to_string(),
        }
    })?;
    let cells_of = |o: &ecos_gbcs::ExecutionOutcome| {
        o.replacement_outcomes
            .iter()
            .map(|r| CellResult {
                role: r.cell.role.0,
                status: r.status.0,
                new_sui: r.replacing_sui,
                new_ski: hex::encode_upper(&r.replacing_ski),
            })
            .collect::<Vec<_>>()
    };
    let recipient = msg.frame.header.recipient;
    match &msg.body {
        Body::Response(r) => {
            let (success, accepted_only, cells) = match &r.execution_outcome {
                Some(o) => (o.all_succeeded(), false, cells_of(o)),
                None => (true, true, Vec::new()),
            };
            Ok(DeviceReport {
                device,
                recipient,
                command_counter: msg.frame.header.counter,
                kind: DeviceMessageKind::Response,
                success,
                accepted_only,
                cells,
            })
        }
        Body::Alert(a) => Ok(DeviceReport {
            device,
            recipient,
            command_counter: a.outcome.seq_number,
            kind: DeviceMessageKind::Alert,
            success: a.actioned()
                && a.outcome
                    .replacement_outcomes
                    .iter()
                    .all(|r| r.status == StatusCode::SUCCESS),
            accepted_only: false,
            cells: cells_of(&a.outcome),
        }),
        _ => Err(DeviceMessageError::NotFromDevice),
    }
}

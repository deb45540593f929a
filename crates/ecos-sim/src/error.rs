//! Errors of the simulator.

use ecos_gbcs::StatusCode;
use ecos_smki::Eui64;

/// Why a device refused a command without answering it.
///
/// A real device discards a command that fails its authentication checks
/// (GBCS §11 steps 1–3) and sends nothing back; the sender sees a time-out.
/// The simulator reports the reason so tests can assert it. (\[P\])
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The bytes are not a decodable CS02b message.
    #[error("undecodable command: {0}")]
    Decode(String),
    /// A response or alert was sent to the device.
    #[error("not a command (CRA {0})")]
    NotACommand(u8),
    /// The command is addressed to another device.
    #[error("command addressed to {recipient}, this device is {device}")]
    WrongRecipient {
        /// The business target id of the command.
        recipient: Eui64,
        /// This device.
        device: Eui64,
    },
    /// The replacement mode is one the simulated device does not implement.
    #[error("credentialsReplacementMode {0} is not supported by the simulated device")]
    UnsupportedMode(u32),
    /// The command has no ACB MAC although its mode requires one.
    #[error("command carries no ACB MAC")]
    NoMac,
    /// The device has no ACB key-agreement anchor to check the MAC with.
    #[error("the ACB key-agreement cell is empty")]
    NoAcbKey,
    /// The ACB MAC does not verify.
    #[error("ACB MAC does not verify")]
    BadMac,
    /// The command is not signed although its mode requires a signature.
    #[error("command is not signed")]
    Unsigned,
    /// `[2]` is absent or names a cell the mode does not authorise.
    #[error("authorising cell {0} is not the one mode {1} requires")]
    WrongAuthorisingCell(String, u32),
    /// The authorising cell is empty or holds no public key.
    #[error("authorising cell {0:?} holds no public key")]
    EmptyAuthorisingCell(crate::CellId),
    /// The originator is not the holder of the authorising cell.
    #[error("originator {originator} is not the authorising cell's holder {holder}")]
    OriginatorMismatch {
        /// The grouping-header originator.
        originator: Eui64,
        /// The cell's SUI.
        holder: Eui64,
    },
    /// The KRP signature does not verify with the authorising cell's key.
    #[error("signature does not verify with the authorising cell's key")]
    BadSignature,
    /// `[3] authorisingRemotePartySeqNumber` differs from the header counter.
    #[error("authorisingRemotePartySeqNumber {content} differs from the header counter {header}")]
    CounterMismatch {
        /// In the content.
        content: u64,
        /// In the grouping header.
        header: u64,
    },
    /// The counter is not above the stored one for the role (replay).
    #[error("counter {counter} is not above the stored counter {stored} of role {role}")]
    Replay {
        /// The command counter.
        counter: u64,
        /// The stored counter.
        stored: u64,
        /// The remote party role.
        role: u32,
    },
    /// A cancellation with no held command, on a device configured to
    /// refuse it ([`crate::DeviceContext::accept_cancel_without_pending`]).
    #[error("cancellation with no future-dated command held")]
    NothingToCancel,
    /// The device could not sign its response (a key problem of the simulator).
    #[error("device signing failed: {0}")]
    Signing(String),
}

/// Errors of the simulator outside command processing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A trust anchor could not be built.
    #[error("trust anchor: {0}")]
    Anchor(String),
    /// A key could not be derived or loaded.
    #[error("device key: {0}")]
    Key(String),
    /// An inventory file line is malformed.
    #[error("inventory line {line}: {detail}")]
    Inventory {
        /// 1-based line number (the header is line 1).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// No such device in the fleet.
    #[error("no device {0} in the fleet")]
    UnknownDevice(Eui64),
    /// Encoding a device message failed.
    #[error("encoding: {0}")]
    Encode(String),
    /// A configuration value is out of range.
    #[error("configuration: {0}")]
    Config(String),
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Status names for reports.
pub fn status_name(s: StatusCode) -> String {
    match s.name() {
        Some(n) => format!("{n} ({})", s.0),
        None => format!("status {}", s.0),
    }
}

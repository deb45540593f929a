//! Why a 6.23 is refused: one named reason per failed check, with its
//! evidence, and the (configurable) DUIS response code it produces.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The checks, in the fixed order the pipeline runs them (first failure wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// 1. The request reads and its XML signature verifies under the pinned profile.
    ReadAndSignature,
    /// 2. The signer's certificate: XML Sign role, EUI, key usage, path, revocation.
    Signer,
    /// 3. The requester is a known supplier service user; the command variant is allowed.
    Requester,
    /// 4. The RequestID counter is above the last one accepted from the originator.
    Replay,
    /// 5. The target device exists, is an ESME or GSME, and its status allows CoS.
    Device,
    /// 6. ImportMPxN is the device's MPxN and the registration data knows it.
    Mpxn,
    /// 7. The CN's MPID for the device's fuel is the registered supplier at the switch date.
    Mpid,
    /// 8. The replacement certificates and their certification path.
    Replacement,
    /// Timing rules for future-dated requests and cancellations.
    Timing,
    /// The device's CoS credential can be used to sign the command.
    Credential,
}

impl Check {
    /// Every check, in pipeline order.
    pub const ORDER: [Check; 10] = [
        Check::ReadAndSignature,
        Check::Signer,
        Check::Requester,
        Check::Replay,
        Check::Device,
        Check::Mpxn,
        Check::Mpid,
        Check::Replacement,
        Check::Timing,
        Check::Credential,
    ];
}

/// A named reason for refusing a request. The name (`code()`) is stable and
/// is what the response-code table in configuration is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The document could not be read (size, DOCTYPE, structure, schema rules).
    Malformed {
        /// What and where.
        detail: String,
    },
    /// A service reference other than 6.23.
    WrongServiceReference {
        /// The service reference found.
        found: String,
    },
    /// The XML signature is missing, off-profile or does not verify.
    BadSignature {
        /// The verifier's error.
        detail: String,
    },
    /// No SMKI certificate held with the issuer and serial in KeyInfo.
    SignerUnknown {
        /// X509IssuerName.
        issuer: String,
        /// X509SerialNumber (decimal).
        serial: String,
    },
    /// The signer's certificate is not an XML Sign (OU 87) certificate.
    SignerWrongRole {
        /// The role found (`None` when the certificate has no OU role).
        found: Option<String>,
    },
    /// The signer's certificate EUI is not the RequestID originator.
    SignerEuiMismatch {
        /// EUI in the certificate.
        certificate: String,
        /// Originator in the RequestID.
        originator: String,
    },
    /// The signer's certificate is not for digitalSignature only.
    SignerKeyUsage {
        /// The key usage found.
        found: String,
    },
    /// The signer's certification path does not validate at receipt.
    SignerPath {
        /// The path validator's error.
        detail: String,
    },
    /// The requester is not a known service user.
    UnknownServiceUser {
        /// The RequestID originator.
        originator: String,
    },
    /// The requester is not an import or gas supplier.
    NotASupplier {
        /// The originator.
        originator: String,
        /// The roles it holds.
        roles: Vec<String>,
    },
    /// The command variant is not one 6.23 allows.
    CommandVariant {
        /// The variant found.
        found: u8,
        /// The variants allowed.
        allowed: Vec<u8>,
    },
    /// The RequestID counter is not above the last accepted one.
    Replay {
        /// The counter in the request.
        counter: u64,
        /// The last counter accepted from this originator.
        last_accepted: u64,
    },
    /// The RequestID was used before (by a request that passed the
    /// signature and signer checks), whatever became of that request.
    RequestIdReused {
        /// The RequestID.
        request_id: String,
        /// The state of the earlier request.
        earlier_state: String,
    },
    /// No device with the target EUI in the inventory.
    DeviceUnknown {
        /// The target EUI.
        device: String,
    },
    /// The target is not an ESME or GSME.
    DeviceType {
        /// The target EUI.
        device: String,
        /// Its type in the inventory.
        found: String,
    },
    /// The device's status does not allow a change of supplier.
    DeviceStatus {
        /// The target EUI.
        device: String,
        /// Its status in the inventory.
        found: String,
    },
    /// ImportMPxN is not the MPxN the inventory holds for the device.
    MpxnMismatch {
        /// ImportMPxN in the request.
        requested: String,
        /// The MPxN in the inventory (`None`: the device has none).
        inventory: Option<String>,
        /// The device.
        device: String,
    },
    /// ImportMPxN has a shape or check digit the policy refuses.
    MpxnInvalid {
        /// ImportMPxN in the request.
        requested: String,
        /// What is wrong.
        detail: String,
    },
    /// The registration data does not know the MPxN.
    MpxnNotRegistered {
        /// The MPxN.
        mpxn: String,
    },
    /// The signer's CN is missing or is not a valid MPID list.
    CnInvalid {
        /// The CN (`None` when absent).
        cn: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// The CN holds no MPID for the device's fuel.
    MpidMissingForFuel {
        /// `electricity` or `gas`.
        fuel: String,
        /// The CN.
        cn: String,
    },
    /// The MPID is not the registered supplier of the MPxN at the switch date.
    MpidNotRegisteredSupplier {
        /// The requester's MPID for the fuel.
        mpid: String,
        /// The MPxN.
        mpxn: String,
        /// The as-of date checked (Europe/London calendar date).
        as_of: String,
        /// The registered supplier then, with its period (`None`: nobody).
        registered: Option<String>,
        /// When the requester's own registration starts, if it has a later one.
        requester_effective_from: Option<String>,
    },
    /// A replacement certificate is not acceptable.
    ReplacementCertificate {
        /// `DigitalSigning`, `KeyAgreement` or `KeyAgreementTopUp`.
        slot: String,
        /// What is wrong.
        detail: String,
    },
    /// A future-dated execution time is too soon or too far ahead, or lacks `Z`.
    ExecutionTime {
        /// What is wrong.
        detail: String,
    },
    /// A cancellation with no pending future-dated request to cancel.
    NothingToCancel {
        /// The device.
        device: String,
    },
    /// A future-dated request is already pending for the device.
    PendingFutureDated {
        /// The device.
        device: String,
        /// The pending request's RequestID.
        pending: String,
    },
    /// The device's CoS credential cannot sign (TCoS switched off, unknown anchor).
    CosCredential {
        /// The device.
        device: String,
        /// What is wrong.
        detail: String,
    },
    /// The device's TCoS→ECoS migration command is in flight: the CoS key it
    /// trusts is about to change (policy `on_migration_in_flight`).
    MigrationInFlight {
        /// The device.
        device: String,
        /// Its migration state (`selected` or `sent`).
        state: String,
    },
}

impl Reason {
    /// The stable short name, used as the configuration key and the ECoS error code.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Malformed { .. } => "malformed",
            Reason::WrongServiceReference { .. } => "wrong_service_reference",
            Reason::BadSignature { .. } => "bad_signature",
            Reason::SignerUnknown { .. } => "signer_unknown",
            Reason::SignerWrongRole { .. } => "signer_wrong_role",
            Reason::SignerEuiMismatch { .. } => "signer_eui_mismatch",
            Reason::SignerKeyUsage { .. } => "signer_key_usage",
            Reason::SignerPath { .. } => "signer_path",
            Reason::UnknownServiceUser { .. } => "unknown_service_user",
            Reason::NotASupplier { .. } => "not_a_supplier",
            Reason::CommandVariant { .. } => "command_variant",
            Reason::Replay { .. } => "replay",
            Reason::RequestIdReused { .. } => "request_id_reused",
            Reason::DeviceUnknown { .. } => "device_unknown",
            Reason::DeviceType { .. } => "device_type",
            Reason::DeviceStatus { .. } => "device_status",
            Reason::MpxnMismatch { .. } => "mpxn_mismatch",
            Reason::MpxnInvalid { .. } => "mpxn_invalid",
            Reason::MpxnNotRegistered { .. } => "mpxn_not_registered",
            Reason::CnInvalid { .. } => "cn_invalid",
            Reason::MpidMissingForFuel { .. } => "mpid_missing_for_fuel",
            Reason::MpidNotRegisteredSupplier { .. } => "mpid_not_registered_supplier",
            Reason::ReplacementCertificate { .. } => "replacement_certificate",
            Reason::ExecutionTime { .. } => "execution_time",
            Reason::NothingToCancel { .. } => "nothing_to_cancel",
            Reason::PendingFutureDated { .. } => "pending_future_dated",
            Reason::CosCredential { .. } => "cos_credential",
            Reason::MigrationInFlight { .. } => "migration_in_flight",
        }
    }

    /// The check this reason belongs to.
    pub fn check(&self) -> Check {
        match self {
            Reason::Malformed { .. }
            | Reason::WrongServiceReference { .. }
            | Reason::BadSignature { .. } => Check::ReadAndSignature,
            Reason::SignerUnknown { .. }
            | Reason::SignerWrongRole { .. }
            | Reason::SignerEuiMismatch { .. }
            | Reason::SignerKeyUsage { .. }
            | Reason::SignerPath { .. } => Check::Signer,
            Reason::UnknownServiceUser { .. }
            | Reason::NotASupplier { .. }
            | Reason::CommandVariant { .. } => Check::Requester,
            Reason::Replay { .. } | Reason::RequestIdReused { .. } => Check::Replay,
            Reason::DeviceUnknown { .. }
            | Reason::DeviceType { .. }
            | Reason::DeviceStatus { .. } => Check::Device,
            Reason::MpxnMismatch { .. }
            | Reason::MpxnInvalid { .. }
            | Reason::MpxnNotRegistered { .. } => Check::Mpxn,
            Reason::CnInvalid { .. }
            | Reason::MpidMissingForFuel { .. }
            | Reason::MpidNotRegisteredSupplier { .. } => Check::Mpid,
            Reason::ReplacementCertificate { .. } => Check::Replacement,
            Reason::ExecutionTime { .. }
            | Reason::NothingToCancel { .. }
            | Reason::PendingFutureDated { .. } => Check::Timing,
            Reason::CosCredential { .. } | Reason::MigrationInFlight { .. } => Check::Credential,
        }
    }

    /// The default DUIS response code ([P]: `duis-6.23.md` §4; the public text
    /// for E062301–E062306 is not available, so every entry is configuration).
    pub fn default_response_code(code: &str) -> &'static str {
        match code {
            "malformed" => "E1",
            "wrong_service_reference" => "E13",
            "bad_signature"
            | "signer_unknown"
            | "signer_wrong_role"
            | "signer_eui_mismatch"
            | "signer_key_usage"
            | "signer_path"
            | "unknown_service_user" => "E1",
            "not_a_supplier" => "E2",
            "command_variant" => "E12",
            "replay" | "request_id_reused" => "E062301",
            "device_unknown" => "E19",
            "device_type" => "E11",
            "device_status" => "E5",
            "mpxn_mismatch" | "mpxn_invalid" | "mpxn_not_registered" => "E062305",
            "cn_invalid" | "mpid_missing_for_fuel" | "mpid_not_registered_supplier" => "E4",
            "replacement_certificate" => "E062302",
            "execution_time" => "E062303",
            "nothing_to_cancel" | "pending_future_dated" => "E062304",
            "cos_credential" | "migration_in_flight" => "E062306",
            _ => "E1",
        }
    }

    /// Every reason code, in check order.
    pub const ALL_CODES: [&'static str; 28] = [
        "malformed",
        "wrong_service_reference",
        "bad_signature",
        "signer_unknown",
        "signer_wrong_role",
        "signer_eui_mismatch",
        "signer_key_usage",
        "signer_path",
        "unknown_service_user",
        "not_a_supplier",
        "command_variant",
        "replay",
        "request_id_reused",
        "device_unknown",
        "device_type",
        "device_status",
        "mpxn_mismatch",
        "mpxn_invalid",
        "mpxn_not_registered",
        "cn_invalid",
        "mpid_missing_for_fuel",
        "mpid_not_registered_supplier",
        "replacement_certificate",
        "execution_time",
        "nothing_to_cancel",
        "pending_future_dated",
        "cos_credential",
        "migration_in_flight",
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Malformed { detail } => write!(f, "the request could not be read: {detail}"),
            Reason::WrongServiceReference { found } => {
                write!(
                    f,
                    "service reference {found} is not handled here; this service takes 6.23"
                )
            }
            Reason::BadSignature { detail } => {
                write!(f, "the XML signature is not valid: {detail}")
            }
            Reason::SignerUnknown { issuer, serial } => write!(
                f,
                "no SMKI certificate is held with issuer {issuer} and serial {serial} (the KeyInfo of the signature)"
            ),
            Reason::SignerWrongRole { found } => write!(
                f,
                "the request must be signed with an XML Sign certificate (OU 87); it was signed with a {} certificate",
                found.as_deref().unwrap_or("role-less")
            ),
            Reason::SignerEuiMismatch {
                certificate,
                originator,
            } => write!(
                f,
                "the signing certificate belongs to {certificate} but the RequestID originator is {originator}"
            ),
            Reason::SignerKeyUsage { found } => write!(
                f,
                "the signing certificate's key usage is {found}; an XML Sign certificate must be digitalSignature only"
            ),
            Reason::SignerPath { detail } => {
                write!(f, "the signing certificate does not validate: {detail}")
            }
            Reason::UnknownServiceUser { originator } => {
                write!(f, "{originator} is not a known service user")
            }
            Reason::NotASupplier { originator, roles } => write!(
                f,
                "{originator} is not an import or gas supplier (its roles: {})",
                if roles.is_empty() {
                    "none".to_string()
                } else {
                    roles.join(", ")
                }
            ),
            Reason::CommandVariant { found, allowed } => write!(
                f,
                "command variant {found} is not allowed for 6.23 (allowed: {allowed:?})"
            ),
            Reason::Replay {
                counter,
                last_accepted,
            } => write!(
                f,
                "RequestID counter {counter} is not above {last_accepted}, the last one accepted from this originator (a replay or a reused counter)"
            ),
            Reason::RequestIdReused {
                request_id,
                earlier_state,
            } => write!(
                f,
                "RequestID {request_id} was used before (that request is {earlier_state}); every request needs a new RequestID"
            ),
            Reason::DeviceUnknown { device } => {
                write!(f, "device {device} is not in the smart metering inventory")
            }
            Reason::DeviceType { device, found } => write!(
                f,
                "device {device} is a {found}; 6.23 applies to an ESME or a GSME"
            ),
            Reason::DeviceStatus { device, found } => write!(
                f,
                "device {device} has status {found}, which does not allow a change of supplier"
            ),
            Reason::MpxnMismatch {
                requested,
                inventory,
                device,
            } => match inventory {
                Some(inv) => write!(
                    f,
                    "ImportMPxN {requested} is not the MPxN of device {device}: the inventory holds {inv}"
                ),
                None => write!(
                    f,
                    "ImportMPxN {requested} cannot be checked: the inventory holds no MPxN for device {device}"
                ),
            },
            Reason::MpxnInvalid { requested, detail } => {
                write!(f, "ImportMPxN {requested} is not valid: {detail}")
            }
            Reason::MpxnNotRegistered { mpxn } => {
                write!(
                    f,
                    "the registration data holds no supplier history for {mpxn}"
                )
            }
            Reason::CnInvalid { cn, detail } => match cn {
                Some(cn) => write!(
                    f,
                    "the signing certificate's CN {cn:?} is not a valid MPID list: {detail}"
                ),
                None => write!(
                    f,
                    "the signing certificate has no CN, so it carries no MPID: {detail}"
                ),
            },
            Reason::MpidMissingForFuel { fuel, cn } => write!(
                f,
                "the signing certificate's CN {cn:?} carries no {fuel} MPID, which this device's fuel needs"
            ),
            Reason::MpidNotRegisteredSupplier {
                mpid,
                mpxn,
                as_of,
                registered,
                requester_effective_from,
            } => {
                write!(
                    f,
                    "{mpid} is not the registered supplier of {mpxn} on {as_of}"
                )?;
                match registered {
                    Some(r) => write!(f, ": the registration data says {r}")?,
                    None => write!(f, ": the registration data has no supplier for that date")?,
                }
                if let Some(from) = requester_effective_from {
                    write!(
                        f,
                        "; {mpid}'s registration starts {from}, so the switch date is before it"
                    )?;
                }
                Ok(())
            }
            Reason::ReplacementCertificate { slot, detail } => {
                write!(f, "replacement {slot} certificate: {detail}")
            }
            Reason::ExecutionTime { detail } => write!(f, "ExecutionDateTime: {detail}"),
            Reason::NothingToCancel { device } => write!(
                f,
                "nothing to cancel: no future-dated 6.23 from this requester is pending for device {device}"
            ),
            Reason::PendingFutureDated { device, pending } => write!(
                f,
                "a future-dated 6.23 ({pending}) is already pending for device {device}; cancel it first"
            ),
            Reason::CosCredential { device, detail } => {
                write!(f, "cannot sign for device {device}: {detail}")
            }
            Reason::MigrationInFlight { device, state } => write!(
                f,
                "device {device} is being migrated from the transitional to the enduring CoS credential (migration state {state}); send the request again once the migration has finished"
            ),
        }
    }
}

/// Reason code → DUIS response code, with defaults for every reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResponseCodes(pub BTreeMap<String, String>);

impl ResponseCodes {
    /// The DUIS response code for a reason: the configured one, else the default.
    pub fn for_reason(&self, reason: &Reason) -> String {
        self.0
            .get(reason.code())
            .cloned()
            .unwrap_or_else(|| Reason::default_response_code(reason.code()).to_string())
    }

    /// Refuse configuration keys that name no reason.
    pub fn validate(&self) -> Result<(), String> {
        for k in self.0.keys() {
            if !Reason::ALL_CODES.contains(&k.as_str()) {
                return Err(format!(
                    "response_codes: unknown reason {k:?} (known: {})",
                    Reason::ALL_CODES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

//! The records the store keeps.

use std::fmt;
use std::str::FromStr;

use ecos_smki::Eui64;
use jiff::Timestamp;
use jiff::civil::Date;

use crate::mpxn::{Fuel, Mpxn};

/// One period of an MPxN's supplier history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The meter point.
    pub mpxn: Mpxn,
    /// The registered supplier's MPID (electricity) or short code (gas).
    pub mpid: String,
    /// First day of the registration (the switch date).
    pub effective_from: Date,
    /// Last day of the registration, inclusive; `None` while open.
    pub effective_to: Option<Date>,
    /// Provenance: the import file id.
    pub source_file: String,
    /// Provenance: the line in that file.
    pub source_line: u64,
}

impl Registration {
    /// Whether the period contains `date`.
    pub fn contains(&self, date: Date) -> bool {
        self.effective_from <= date && self.effective_to.is_none_or(|to| date <= to)
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $s:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }

        impl $name {
            /// All values.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The canonical text form, as stored and as written in files.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let n = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
                match n.as_str() {
                    $($s $(| $alias)* => Ok($name::$v),)+
                    _ => Err(format!("is not a {}; expected one of {}", $what,
                        [$($s),+].join(", "))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// The kind of smart metering device.
    DeviceType, "device type" {
        /// Electricity smart metering equipment.
        Esme = "esme",
        /// Gas smart metering equipment.
        Gsme = "gsme",
        /// Communications hub function.
        Chf = "chf" | "comms-hub" | "communications-hub",
        /// Gas proxy function.
        Gpf = "gpf",
        /// Pre-payment interface device.
        Ppmid = "ppmid",
        /// HAN-connected auxiliary load control switch.
        Hcalcs = "hcalcs",
        /// In-home display.
        Ihd = "ihd",
        /// Standalone auxiliary proportional controller.
        Sapc = "sapc",
    }
);

impl DeviceType {
    /// The fuel a meter of this type measures (ESME electricity, GSME gas).
    pub fn fuel(self) -> Option<Fuel> {
        match self {
            DeviceType::Esme => Some(Fuel::Electricity),
            DeviceType::Gsme => Some(Fuel::Gas),
            _ => None,
        }
    }
}

text_enum!(
    /// The device's status in the smart metering inventory.
    DeviceStatus, "device status" {
        /// Announced by a supplier, not yet installed.
        PreNotified = "pre-notified" | "whitelisted",
        /// Installed, not yet commissioned.
        InstalledNotCommissioned = "installed-not-commissioned" | "installed",
        /// Commissioned: in service.
        Commissioned = "commissioned",
        /// Suspended.
        Suspended = "suspended",
        /// Decommissioned.
        Decommissioned = "decommissioned",
        /// Withdrawn.
        Withdrawn = "withdrawn",
    }
);

text_enum!(
    /// Which Change of Supplier credential occupies the device's role-5 trust anchor cell.
    CosCredential, "CoS credential" {
        /// The transitional (TCoS) credential.
        Transitional = "transitional" | "tcos",
        /// The enduring (ECoS) credential.
        Enduring = "enduring" | "ecos",
    }
);

/// One device of the smart metering inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device's EUI-64.
    pub eui: Eui64,
    /// Its type.
    pub device_type: DeviceType,
    /// Its status.
    pub status: DeviceStatus,
    /// The associated meter point.
    pub mpxn: Option<Mpxn>,
    /// The CoS credential on the device.
    pub cos_credential: Option<CosCredential>,
    /// Key-agreement certificate (DER).
    pub ka_cert: Option<Vec<u8>>,
    /// Digital-signing certificate (DER).
    pub ds_cert: Option<Vec<u8>>,
    /// The communications hub the device is joined to.
    pub comms_hub: Option<Eui64>,
    /// The CSP region (`north`, `central`, `south`, ...).
    pub csp_region: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
    /// Last successful communication.
    pub last_contact: Option<Timestamp>,
}

impl Device {
    /// A device with only its identity, type and status.
    pub fn new(eui: Eui64, device_type: DeviceType, status: DeviceStatus) -> Self {
        Device {
            eui,
            device_type,
            status,
            mpxn: None,
            cos_credential: None,
            ka_cert: None,
            ds_cert: None,
            comms_hub: None,
            csp_region: None,
            firmware_version: None,
            last_contact: None,
        }
    }
}

/// A DCC service user (an organisation sending service requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    /// The organisation's EUI-64.
    pub org_eui: Eui64,
    /// Display name.
    pub name: String,
    /// User roles (e.g. `IS`, `GS`, `ED`, `GT`, `OU`).
    pub roles: Vec<String>,
    /// MPIDs / gas short codes the organisation trades under.
    pub mpids: Vec<String>,
    /// Where responses for it are delivered.
    pub response_endpoint: String,
}

/// How many records the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    /// Registration history rows.
    pub registrations: u64,
    /// Distinct MPxNs with registration data.
    pub mpxns: u64,
    /// Inventory devices.
    pub devices: u64,
    /// Service users.
    pub service_users: u64,
}

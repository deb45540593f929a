//! Trust anchor cells and what they hold.

use ecos_gbcs::TrustAnchorCell;
use ecos_gbcs::cs02b::{CellUsage, KeyUsage as CellKeyUsage, RemotePartyRole};
use ecos_smki::{Certificate, Eui64, KeyUsage, P256PublicKey};

use crate::error::SimError;

/// What a trust anchor cell holds: the remote party's SUI (EUI-64), the
/// subject key identifier and, when known, its public key and certificate.
///
/// Anchors are shared between devices (`Arc<Anchor>`): a fleet of a million
/// devices holding the same supplier certificate holds one copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Subject unique identifier (the holder's EUI-64; zeros for a root).
    pub sui: Eui64,
    /// Subject key identifier (8 bytes in SMKI).
    pub ski: Vec<u8>,
    /// The public key, if known (needed for cells that verify something).
    pub public_key: Option<P256PublicKey>,
    /// The certificate, if known.
    pub certificate: Option<Certificate>,
}

impl Anchor {
    /// From a certificate: its EUI (zeros if it has none, as for a root),
    /// SKI and key.
    pub fn from_certificate(cert: Certificate) -> Result<Anchor, SimError> {
        let ski = cert
            .ski()
            .ok_or_else(|| SimError::Anchor(format!("{} has no SKI", cert.subject_rfc2253())))?
            .to_vec();
        Ok(Anchor {
            sui: cert.eui().unwrap_or(Eui64([0; 8])),
            ski,
            public_key: Some(cert.public_key().clone()),
            certificate: Some(cert),
        })
    }

    /// A cell known only by identifiers (e.g. the ZA root, whose certificate
    /// is not public).
    pub fn known(sui: Eui64, ski: Vec<u8>, public_key: Option<P256PublicKey>) -> Anchor {
        Anchor {
            sui,
            ski,
            public_key,
            certificate: None,
        }
    }
}

/// The trust anchor cells a simulated ESME or GSME has (GBCS §10 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[repr(u8)]
pub enum CellId {
    /// {root(0), keyCertSign}.
    Root = 0,
    /// {recovery(1), digitalSignature}.
    Recovery,
    /// {supplier(2), digitalSignature}.
    SupplierDs,
    /// {supplier(2), keyAgreement}.
    SupplierKa,
    /// {supplier(2), keyAgreement, prepaymentTopUp}.
    SupplierPpKa,
    /// {networkOperator(3), digitalSignature}.
    NetworkOperatorDs,
    /// {networkOperator(3), keyAgreement}.
    NetworkOperatorKa,
    /// {accessControlBroker(4), keyAgreement}: the ACB MAC key.
    AcbKa,
    /// {transitionalCoS(5), digitalSignature}: the CoS (TCoS or ECoS) key.
    TransCosDs,
}

/// Number of cells.
pub const CELL_COUNT: usize = 9;

impl CellId {
    /// Every cell, in index order.
    pub const ALL: [CellId; CELL_COUNT] = [
        CellId::Root,
        CellId::Recovery,
        CellId::SupplierDs,
        CellId::SupplierKa,
        CellId::SupplierPpKa,
        CellId::NetworkOperatorDs,
        CellId::NetworkOperatorKa,
        CellId::AcbKa,
        CellId::TransCosDs,
    ];

    /// Index into a cell array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The GBCS cell identifier.
    pub fn cell(self) -> TrustAnchorCell {
        let (role, ku, usage) = match self {
            CellId::Root => (0, CellKeyUsage::KEY_CERT_SIGN, CellUsage::MANAGEMENT),
            CellId::Recovery => (1, CellKeyUsage::DIGITAL_SIGNATURE, CellUsage::MANAGEMENT),
            CellId::SupplierDs => (2, CellKeyUsage::DIGITAL_SIGNATURE, CellUsage::MANAGEMENT),
            CellId::SupplierKa => (2, CellKeyUsage::KEY_AGREEMENT, CellUsage::MANAGEMENT),
            CellId::SupplierPpKa => (2, CellKeyUsage::KEY_AGREEMENT, CellUsage::PREPAYMENT_TOP_UP),
            CellId::NetworkOperatorDs => {
                (3, CellKeyUsage::DIGITAL_SIGNATURE, CellUsage::MANAGEMENT)
            }
            CellId::NetworkOperatorKa => (3, CellKeyUsage::KEY_AGREEMENT, CellUsage::MANAGEMENT),
            CellId::AcbKa => (4, CellKeyUsage::KEY_AGREEMENT, CellUsage::MANAGEMENT),
            CellId::TransCosDs => (5, CellKeyUsage::DIGITAL_SIGNATURE, CellUsage::MANAGEMENT),
        };
        TrustAnchorCell {
            role: RemotePartyRole(role),
            key_usage: ku,
            cell_usage: usage,
        }
    }

    /// The cell a GBCS identifier names, if the device has it.
    pub fn from_cell(cell: &TrustAnchorCell) -> Option<CellId> {
        CellId::ALL.into_iter().find(|c| c.cell() == *cell)
    }

    /// The remote party role code of the cell.
    pub fn role_code(self) -> u32 {
        self.cell().role.0
    }

    /// The certificate key usage a certificate placed in this cell must have.
    pub fn certificate_key_usage(self) -> KeyUsage {
        match self {
            CellId::Root => KeyUsage::CertSign,
            CellId::SupplierKa
            | CellId::SupplierPpKa
            | CellId::NetworkOperatorKa
            | CellId::AcbKa => KeyUsage::KeyAgreement,
            _ => KeyUsage::DigitalSignature,
        }
    }
}

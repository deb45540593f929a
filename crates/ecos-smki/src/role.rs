//! SMKI role codes, carried in the subject OU as two hex digits.

use std::fmt;

/// A role code from the OU of an organisation certificate (`smki.md` §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// 0: SMKI root.
    Root,
    /// 1: recovery.
    Recovery,
    /// 2: supplier.
    Supplier,
    /// 3: network operator.
    NetworkOperator,
    /// 4: DCC access control broker.
    AccessControlBroker,
    /// 5: transitional CoS; the enduring CoS credential occupies the same role.
    TransitionalCos,
    /// 6: WAN provider.
    WanProvider,
    /// 7: issuing authority (issuing CA).
    IssuingAuthority,
    /// 8: load controller.
    LoadController,
    /// 127 (0x7F): other user.
    OtherUser,
    /// 135 (0x87): XML Sign: signs DUIS requests; its CN carries MPIDs.
    XmlSign,
    /// 137 (0x89): DSP XML Sign: signs DUIS responses and alerts.
    DspXmlSign,
}

/// The OU is not a recognised role code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// Not exactly two hex digits (for example the legacy decimal text `137`).
    #[error("OU {0:?} is not a role code: expected exactly two hex digits")]
    Syntax(String),
    /// Two hex digits, but no role has that code.
    #[error("OU {ou:?} (role code {code}) is not a known SMKI role")]
    Unknown {
        /// The OU text.
        ou: String,
        /// Its value.
        code: u8,
    },
}

impl Role {
    /// Every role, in code order.
    pub const ALL: [Role; 12] = [
        Role::Root,
        Role::Recovery,
        Role::Supplier,
        Role::NetworkOperator,
        Role::AccessControlBroker,
        Role::TransitionalCos,
        Role::WanProvider,
        Role::IssuingAuthority,
        Role::LoadController,
        Role::OtherUser,
        Role::XmlSign,
        Role::DspXmlSign,
    ];

    /// The numeric role code.
    pub fn code(self) -> u8 {
        match self {
            Role::Root => 0,
            Role::Recovery => 1,
            Role::Supplier => 2,
            Role::NetworkOperator => 3,
            Role::AccessControlBroker => 4,
            Role::TransitionalCos => 5,
            Role::WanProvider => 6,
            Role::IssuingAuthority => 7,
            Role::LoadController => 8,
            Role::OtherUser => 127,
            Role::XmlSign => 135,
            Role::DspXmlSign => 137,
        }
    }

    /// The role with this code, if any.
    pub fn from_code(code: u8) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Read from the OU text: exactly two hex digits, any case.
    pub fn from_ou(ou: &str) -> Result<Role, RoleError> {
        let b = ou.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_hexdigit) {
            return Err(RoleError::Syntax(ou.to_string()));
        }
        let code = u8::from_str_radix(ou, 16).map_err(|_| RoleError::Syntax(ou.to_string()))?;
        Role::from_code(code).ok_or(RoleError::Unknown {
            ou: ou.to_string(),
            code,
        })
    }

    /// The OU text: two upper-case hex digits.
    pub fn ou(self) -> String {
        format!("{:02X}", self.code())
    }

    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Recovery => "recovery",
            Role::Supplier => "supplier",
            Role::NetworkOperator => "network operator",
            Role::AccessControlBroker => "access control broker",
            Role::TransitionalCos => "transitional CoS",
            Role::WanProvider => "WAN provider",
            Role::IssuingAuthority => "issuing authority",
            Role::LoadController => "load controller",
            Role::OtherUser => "other user",
            Role::XmlSign => "XML sign",
            Role::DspXmlSign => "DSP XML sign",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_ou() {
        for r in Role::ALL {
            assert_eq!(Role::from_ou(&r.ou()).unwrap(), r);
            assert_eq!(Role::from_ou(&r.ou().to_lowercase()).unwrap(), r);
        }
        assert_eq!(Role::from_ou("87").unwrap(), Role::XmlSign);
        assert_eq!(Role::from_ou("89").unwrap(), Role::DspXmlSign);
        assert_eq!(Role::from_ou("7F").unwrap(), Role::OtherUser);
    }

    #[test]
    fn rejects_legacy_and_unknown() {
        assert_eq!(Role::from_ou("137"), Err(RoleError::Syntax("137".into())));
        assert!(Role::from_ou("1").is_err());
        assert!(Role::from_ou("g1").is_err());
        assert!(matches!(
            Role::from_ou("09"),
            Err(RoleError::Unknown { code: 9, .. })
        ));
        assert!(
            Role::from_ou("137")
                .unwrap_err()
                .to_string()
                .contains("\"137\"")
        );
    }
}

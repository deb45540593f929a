//! Signing keys held in a PKCS#11 token (a hardware security module, or
//! SoftHSM2 in tests) behind the `ecos-smki` [`Signer`] trait, so that the
//! CoS keys that sign CS02b commands and the DSP key that signs DUIS
//! responses need never exist outside the token.
//!
//! A [`Token`] is one module, one token (found by its label) and one
//! logged-in session; [`Token::signer`] finds a P-256 private key by its
//! label (`CKA_LABEL`), reads the public key from the public-key object of
//! the same label, and proves that the two belong together with one
//! signature before it is handed out. Signing hashes with SHA-256 in
//! process and asks the token for `CKM_ECDSA` over the digest, which
//! returns raw `r || s` as GBCS and XML-DSig want it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ecos_smki::{KeyError, P256PublicKey, Signer};
use sha2::{Digest, Sha256};

/// DER of the named curve P-256 (`CKA_EC_PARAMS`): OID 1.2.840.10045.3.1.7.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Why a token or a key in it cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {path}: {message}")]
    Module {
        /// The shared library.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No slot holds a token with this label.
    #[error("no PKCS#11 token labelled {label:?} (tokens present: {present})")]
    TokenNotFound {
        /// The label asked for.
        label: String,
        /// The labels found, comma-separated.
        present: String,
    },
    /// Logging in with the user PIN failed.
    #[error("PKCS#11 token {token:?}: login failed: {message}")]
    Login {
        /// The token.
        token: String,
        /// What the module said.
        message: String,
    },
    /// No key (or more than one) with this label and class.
    #[error("PKCS#11 token {token:?}: {found} {class} objects labelled {label:?}, expected one")]
    Key {
        /// The token.
        token: String,
        /// The label.
        label: String,
        /// `private key` or `public key`.
        class: &'static str,
        /// How many were found.
        found: usize,
    },
    /// The key is not an EC key on P-256.
    #[error("PKCS#11 key {label:?} is not a P-256 EC key: {message}")]
    NotP256 {
        /// The label.
        label: String,
        /// Why.
        message: String,
    },
    /// The private key's signature does not verify with the public key of
    /// the same label.
    #[error(
        "PKCS#11 key {label:?}: the private key's signature does not verify with the public key of the same label"
    )]
    Mismatch {
        /// The label.
        label: String,
    },
    /// Another module error.
    #[error("PKCS#11 token {token:?}: {op}: {message}")]
    Call {
        /// The token.
        token: String,
        /// The operation.
        op: &'static str,
        /// What the module said.
        message: String,
    },
}

/// A logged-in session on one token of one PKCS#11 module, shared by the
/// signers made from it.
pub struct Token {
    label: String,
    // Keeps the module loaded and initialised as long as a session lives.
    _ctx: Pkcs11,
    session: Arc<Mutex<Session>>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Load `module`, find the token labelled `label`, open a session and
    /// log in as the user with `pin`.
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Token, Pkcs11Error> {
        let module_err = |e: CkError| Pkcs11Error::Module {
            path: module.to_path_buf(),
            message: e.to_string(),
        };
        let ctx = Pkcs11::new(module).map_err(module_err)?;
        match ctx.initialize(CInitializeArgs::OsThreads) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(module_err(e)),
        }
        let call = |op: &'static str| {
            let token = label.to_string();
            move |e: CkError| Pkcs11Error::Call {
                token: token.clone(),
                op,
                message: e.to_string(),
            }
        };
        let mut present = Vec::new();
        let mut found = None;
        for slot in ctx.get_slots_with_token().map_err(call("listing slots"))? {
            let info = ctx
                .get_token_info(slot)
                .map_err(call("reading token info"))?;
            let l = info.label().trim_end().to_string();
            if l == label && found.is_none() {
                found = Some(slot);
            }
            present.push(l);
        }
        let slot = found.ok_or_else(|| Pkcs11Error::TokenNotFound {
            label: label.into(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        })?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(call("opening a session"))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.to_string()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => {
                return Err(Pkcs11Error::Login {
                    token: label.into(),
                    message: e.to_string(),
                });
            }
        }
        Ok(Token {
            label: label.into(),
            _ctx: ctx,
            session: Arc::new(Mutex::new(session)),
        })
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The P-256 signing key labelled `key_label`, checked against its
    /// public key with one signature.
    pub fn signer(&self, key_label: &str) -> Result<Pkcs11Signer, Pkcs11Error> {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let call = |op: &'static str| {
            let token = self.label.clone();
            move |e: CkError| Pkcs11Error::Call {
                token: token.clone(),
                op,
                message: e.to_string(),
            }
        };
        let one = |class: ObjectClass, name: &'static str| -> Result<ObjectHandle, Pkcs11Error> {
            let found = session
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::Label(key_label.as_bytes().to_vec()),
                ])
                .map_err(call("finding objects"))?;
            match found.as_slice() {
                [h] => Ok(*h),
                _ => Err(Pkcs11Error::Key {
                    token: self.label.clone(),
                    label: key_label.into(),
                    class: name,
                    found: found.len(),
                }),
            }
        };
        let private = one(ObjectClass::PRIVATE_KEY, "private key")?;
        let public = one(ObjectClass::PUBLIC_KEY, "public key")?;
        let not_p256 = |message: String| Pkcs11Error::NotP256 {
            label: key_label.into(),
            message,
        };
        let mut key_type = None;
        let mut params = None;
        let mut point = None;
        for a in session
            .get_attributes(
                public,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::EcPoint,
                ],
            )
            .map_err(call("reading the public key"))?
        {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        if key_type != Some(KeyType::EC) {
            return Err(not_p256(format!("key type {key_type:?}")));
        }
        if params.as_deref() != Some(&P256_PARAMS[..]) {
            return Err(not_p256(format!(
                "curve parameters {}",
                params.map(hex_of).unwrap_or_else(|| "absent".into())
            )));
        }
        let point = point.ok_or_else(|| not_p256("no CKA_EC_POINT".into()))?;
        let public_key =
            P256PublicKey::from_sec1(ec_point_sec1(&point)).map_err(|e| not_p256(e.to_string()))?;
        drop(session);
        let signer = Pkcs11Signer {
            token: self.label.clone(),
            label: key_label.into(),
            session: self.session.clone(),
            key: private,
            public: public_key,
        };
        let probe = b"ecos-pkcs11 key check";
        let sig = signer.sign(probe).map_err(|e| Pkcs11Error::Call {
            token: self.label.clone(),
            op: "signing",
            message: e.to_string(),
        })?;
        signer
            .public
            .verify(probe, &sig)
            .map_err(|_| Pkcs11Error::Mismatch {
                label: key_label.into(),
            })?;
        Ok(signer)
    }
}

/// `CKA_EC_POINT` is the DER OCTET STRING holding the SEC1 point (PKCS#11
/// 2.40); some modules return the bare point.
fn ec_point_sec1(v: &[u8]) -> &[u8] {
    match v {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        _ => v,
    }
}

fn hex_of(v: Vec<u8>) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// A P-256 key in a PKCS#11 token, signing through the token's session.
pub struct Pkcs11Signer {
    token: String,
    label: String,
    session: Arc<Mutex<Session>>,
    key: ObjectHandle,
    public: P256PublicKey,
}

impl Pkcs11Signer {
    /// The key's label in the token.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("token", &self.token)
            .field("label", &self.label)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Signer for Pkcs11Signer {
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        let digest = Sha256::digest(message);
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let sig = session
            .sign(&Mechanism::Ecdsa, self.key, &digest)
            .map_err(|e| {
                KeyError::Token(format!("{}/{}: ECDSA sign: {e}", self.token, self.label))
            })?;
        sig.as_slice().try_into().map_err(|_| {
            KeyError::Token(format!(
                "{}/{}: the token returned a {}-byte ECDSA signature, expected 64",
                self.token,
                self.label,
                sig.len()
            ))
        })
    }

    fn public_key(&self) -> &P256PublicKey {
        &self.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_is_unwrapped_from_its_octet_string() {
        let mut point = vec![0x04u8];
        point.extend([7u8; 64]);
        let mut der = vec![0x04, 0x41];
        der.extend(&point);
        assert_eq!(ec_point_sec1(&der), &point[..]);
        assert_eq!(ec_point_sec1(&point), &point[..]);
    }

    #[test]
    fn a_missing_module_is_a_typed_error() {
        let e = Token::open(Path::new("/nonexistent/libpkcs11.so"), "t", "1234").unwrap_err();
        assert!(matches!(e, Pkcs11Error::Module { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/libpkcs11.so"), "{e}");
    }
}

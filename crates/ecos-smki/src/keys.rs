//! Signing and key-agreement behind traits, so that a hardware security
//! module can stand behind them; a software implementation on aws-lc-rs.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{
    self as sig, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};

/// Key loading, signing and verification failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("reading key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a PEM or DER PKCS#8 (or SEC1) P-256 private key.
    #[error("not a P-256 private key in PKCS#8 or SEC1 form (PEM or DER): {0}")]
    PrivateKey(String),
    /// Not an uncompressed SEC1 P-256 point.
    #[error("not a P-256 public key: {0}")]
    PublicKey(String),
    /// The signature does not verify.
    #[error("ECDSA P-256/SHA-256 signature does not verify")]
    BadSignature,
    /// A signature of the wrong length (raw r‖s is 64 bytes).
    #[error("signature is {0} bytes; raw r||s is 64")]
    SignatureLength(usize),
    /// The signing or agreement operation failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// A key held in a hardware token (PKCS#11) could not be used.
    #[error("key token: {0}")]
    Token(String),
}

/// An uncompressed SEC1 P-256 public key (65 bytes, `04 || x || y`).
///
/// The key is parsed for aws-lc-rs once, on its first verification, and the
/// parsed form is shared by every clone (a certificate's key verifies every
/// request its holder signs).
#[derive(Clone)]
pub struct P256PublicKey([u8; 65], Arc<OnceLock<Option<sig::ParsedPublicKey>>>);

impl PartialEq for P256PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for P256PublicKey {}
impl std::hash::Hash for P256PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl P256PublicKey {
    /// From the SEC1 uncompressed encoding; checks the point is on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 65] = bytes
            .try_into()
            .map_err(|_| KeyError::PublicKey(format!("{} bytes, expected 65", bytes.len())))?;
        if arr[0] != 0x04 {
            return Err(KeyError::PublicKey("not an uncompressed point".into()));
        }
        p256::PublicKey::from_sec1_bytes(&arr)
            .map_err(|_| KeyError::PublicKey("point is not on the curve".into()))?;
        Ok(P256PublicKey(arr, Arc::default()))
    }

    /// The 65 SEC1 bytes.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// Verify a raw r‖s ECDSA P-256/SHA-256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        if signature.len() != 64 {
            return Err(KeyError::SignatureLength(signature.len()));
        }
        let parsed = self
            .1
            .get_or_init(|| sig::ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.0).ok());
        match parsed {
            Some(key) => key.verify_sig(message, signature),
            None => sig::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0[..])
                .verify(message, signature),
        }
        .map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P256PublicKey({})", hex::encode(&self.0[1..9]))
    }
}

/// Something that signs with ECDSA P-256/SHA-256: a software key or an HSM.
pub trait Signer: Send + Sync + fmt::Debug {
    /// Sign `message` (hashing it with SHA-256) and return raw r‖s.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError>;
    /// The public key that verifies the signatures.
    fn public_key(&self) -> &P256PublicKey;
}

/// Something that does static ECDH on P-256 with a private key it holds.
pub trait KeyAgreement: Send + Sync + fmt::Debug {
    /// The shared secret Z (the x coordinate, 32 bytes) with `peer`.
    fn agree(&self, peer: &P256PublicKey) -> Result<[u8; 32], KeyError>;
    /// The public key of the held private key.
    fn public_key(&self) -> &P256PublicKey;
}

/// Decode a private key file's bytes: PEM (`PRIVATE KEY` / `EC PRIVATE KEY`) or DER.
pub fn private_key_der(bytes: &[u8]) -> Result<Vec<u8>, KeyError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(trimmed)
            .map_err(|_| KeyError::PrivateKey("PEM is not UTF-8".into()))?;
        let (label, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| KeyError::PrivateKey(format!("PEM: {e}")))?;
        match label {
            "PRIVATE KEY" | "EC PRIVATE KEY" => Ok(der),
            other => Err(KeyError::PrivateKey(format!(
                "unexpected PEM label {other:?}"
            ))),
        }
    } else {
        Ok(bytes.to_vec())
    }
}

/// A P-256 signing key held in memory.
pub struct SoftwareSigner {
    key: EcdsaKeyPair,
    public: P256PublicKey,
}

impl SoftwareSigner {
    /// From PKCS#8 or SEC1, PEM or DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let der = private_key_der(bytes)?;
        let key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|e| KeyError::PrivateKey(e.to_string()))?;
        let public = P256PublicKey::from_sec1(key.public_key().as_ref())?;
        Ok(SoftwareSigner { key, public })
    }

    /// Read a key file (PEM or DER).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Signer for SoftwareSigner {
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let s = self
            .key
            .sign(&rng, message)
            .map_err(|_| KeyError::Crypto("ECDSA sign"))?;
        s.as_ref()
            .try_into()
            .map_err(|_| KeyError::Crypto("ECDSA signature length"))
    }

    fn public_key(&self) -> &P256PublicKey {
        &self.public
    }
}

/// A P-256 key-agreement key held in memory.
pub struct SoftwareKeyAgreement {
    key: agreement::PrivateKey,
    public: P256PublicKey,
}

impl SoftwareKeyAgreement {
    /// From PKCS#8 or SEC1, PEM or DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let der = private_key_der(bytes)?;
        let key = agreement::PrivateKey::from_private_key_der(&agreement::ECDH_P256, &der)
            .map_err(|e| KeyError::PrivateKey(e.to_string()))?;
        let pk = key
            .compute_public_key()
            .map_err(|_| KeyError::Crypto("ECDH public key"))?;
        let public = P256PublicKey::from_sec1(pk.as_ref())?;
        Ok(SoftwareKeyAgreement { key, public })
    }

    /// Read a key file (PEM or DER).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for SoftwareKeyAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKeyAgreement")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeyAgreement for SoftwareKeyAgreement {
    fn agree(&self, peer: &P256PublicKey) -> Result<[u8; 32], KeyError> {
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &peer.0[..]);
        agreement::agree(&self.key, peer, KeyError::Crypto("ECDH"), |z| {
            z.try_into()
                .map_err(|_| KeyError::Crypto("ECDH secret length"))
        })
    }

    fn public_key(&self) -> &P256PublicKey {
        &self.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_pkcs8() -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn the_parsed_key_is_shared_by_clones_and_verifies_alike() {
        let signer = SoftwareSigner::from_bytes(&fresh_pkcs8()).unwrap();
        let msg = b"6.23";
        let sig = signer.sign(msg).unwrap();
        let key = signer.public_key().clone();
        let copy = key.clone();
        key.verify(msg, &sig).unwrap();
        assert!(
            matches!(copy.1.get(), Some(Some(_))),
            "parsed once, for every clone"
        );
        copy.verify(msg, &sig).unwrap();
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(matches!(
            copy.verify(msg, &bad),
            Err(KeyError::BadSignature)
        ));
        assert!(matches!(
            copy.verify(b"6.24", &sig),
            Err(KeyError::BadSignature)
        ));
        assert_eq!(key, P256PublicKey::from_sec1(key.as_bytes()).unwrap());
    }

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let s = SoftwareSigner::from_bytes(&fresh_pkcs8()).unwrap();
        let sig = s.sign(b"hello").unwrap();
        s.public_key().verify(b"hello", &sig).unwrap();
        assert!(matches!(
            s.public_key().verify(b"hellO", &sig),
            Err(KeyError::BadSignature)
        ));
        assert!(matches!(
            s.public_key().verify(b"hello", &sig[..63]),
            Err(KeyError::SignatureLength(63))
        ));
    }

    #[test]
    fn ecdh_is_symmetric() {
        let a = SoftwareKeyAgreement::from_bytes(&fresh_pkcs8()).unwrap();
        let b = SoftwareKeyAgreement::from_bytes(&fresh_pkcs8()).unwrap();
        assert_eq!(
            a.agree(b.public_key()).unwrap(),
            b.agree(a.public_key()).unwrap()
        );
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert!(matches!(
            SoftwareSigner::from_bytes(b"junk"),
            Err(KeyError::PrivateKey(_))
        ));
        assert!(matches!(
            SoftwareSigner::from_bytes(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            Err(KeyError::PrivateKey(_))
        ));
        assert!(P256PublicKey::from_sec1(&[4u8; 65]).is_err());
        assert!(P256PublicKey::from_sec1(&[4u8; 10]).is_err());
    }
}

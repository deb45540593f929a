//! The ACB MAC (`gbcs-cs02b.md` §6): static ECDH between the ACB
//! key-agreement key and the device key-agreement key, a single-step SHA-256
//! concatenation KDF, and AES-128-GMAC truncated to 12 bytes.
//!
//! ECDH is symmetric: the ACB side calls this with the ACB private key and the
//! device public key; a device (simulator) with the device private key and
//! the ACB public key.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;
use ecos_smki::{Eui64, KeyAgreement, P256PublicKey};

use crate::error::GbcsError;
use crate::frame::{Frame, GroupingHeader, MAC_LEN, MacHeader, mac_header_with};

/// The KDF's AlgorithmID prefix of OtherInfo (7 bytes).
pub const KDF_ALGORITHM_ID: [u8; 7] = [0x60, 0x85, 0x74, 0x06, 0x08, 0x03, 0x00];

/// An AES-128 MAC key derived for one message.
#[derive(Clone)]
pub struct MacKey([u8; 16]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// The raw key (for test vectors and diagnostics).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// OtherInfo (33 bytes): AlgorithmID ‖ originator EUI ‖ `09` ‖ transaction id ‖ recipient EUI.
pub fn other_info(header: &GroupingHeader) -> [u8; 33] {
    let mut o = [0u8; 33];
    o[..7].copy_from_slice(&KDF_ALGORITHM_ID);
    o[7..15].copy_from_slice(header.originator.as_bytes());
    o[15] = 9;
    o[16..25].copy_from_slice(&header.transaction_id());
    o[25..33].copy_from_slice(header.recipient.as_bytes());
    o
}

/// `SHA-256(00000001 ‖ Z ‖ OtherInfo)[0..16]`.
pub fn kdf(z: &[u8; 32], other_info: &[u8]) -> MacKey {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&1u32.to_be_bytes());
    ctx.update(z);
    ctx.update(other_info);
    let d = ctx.finish();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d.as_ref()[..16]);
    MacKey(k)
}

/// Derive the MAC key for a message with this grouping header.
pub fn derive_key(
    own: &dyn KeyAgreement,
    peer: &P256PublicKey,
    header: &GroupingHeader,
) -> Result<MacKey, GbcsError> {
    let z = own.agree(peer).map_err(GbcsError::Key)?;
    Ok(kdf(&z, &other_info(header)))
}

/// The static ECDH secret Z between the ACB and one device. It does not
/// change between messages (static-static ECDH), so a caller that MACs many
/// messages for the same device may hold it instead of redoing ECDH; it is
/// key material and is zeroed on drop.
pub struct PairwiseSecret([u8; 32]);

impl PairwiseSecret {
    /// ECDH between `own` and `peer`.
    pub fn agree(own: &dyn KeyAgreement, peer: &P256PublicKey) -> Result<Self, GbcsError> {
        own.agree(peer).map(PairwiseSecret).map_err(GbcsError::Key)
    }

    /// The MAC key for a message with this grouping header.
    pub fn key_for(&self, header: &GroupingHeader) -> MacKey {
        kdf(&self.0, &other_info(header))
    }
}

impl Drop for PairwiseSecret {
    fn drop(&mut self) {
        // Best effort; volatile zeroing needs unsafe, which this crate forbids.
        self.0 = [0; 32];
    }
}

impl std::fmt::Debug for PairwiseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseSecret(..)")
    }
}

/// The 12-byte GMAC over `SC ‖ 00 00 00 00 00 ‖ apdu`, IV = originator ‖ invocation counter.
pub fn gmac(
    key: &MacKey,
    originator: Eui64,
    mac_header: &MacHeader,
    apdu: &[u8],
) -> Result<[u8; MAC_LEN], GbcsError> {
    let unbound =
        UnboundKey::new(&AES_128_GCM, &key.0).map_err(|_| GbcsError::Crypto("AES-128 key"))?;
    let key = LessSafeKey::new(unbound);
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(originator.as_bytes());
    iv[8..].copy_from_slice(&mac_header.invocation_counter.to_be_bytes());
    let mut aad = Vec::with_capacity(6 + apdu.len());
    aad.push(mac_header.security_control);
    aad.extend_from_slice(&[0; 5]);
    aad.extend_from_slice(apdu);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(&aad[..]),
            &mut [],
        )
        .map_err(|_| GbcsError::Crypto("AES-GCM"))?;
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
    Ok(out)
}

/// Wrap a General-Signing APDU (`DF … 40 r‖s`, or `… 00` for MAC-only) in
/// the MAC header and append the ACB MAC, with the header every RTDS vector
/// carries ([`MacHeader::RTDS`]: security control 0x11, invocation counter 0).
pub fn wrap(
    apdu: &[u8],
    own: &dyn KeyAgreement,
    peer: &P256PublicKey,
) -> Result<Vec<u8>, GbcsError> {
    wrap_with(apdu, own, peer, MacHeader::RTDS)
}

/// [`wrap`] with an explicit security control and invocation counter (their
/// bit meanings are an interpretation, so they are configurable).
pub fn wrap_with(
    apdu: &[u8],
    own: &dyn KeyAgreement,
    peer: &P256PublicKey,
    mh: MacHeader,
) -> Result<Vec<u8>, GbcsError> {
    wrap_with_secret(apdu, &PairwiseSecret::agree(own, peer)?, mh)
}

/// [`wrap_with`] with a cached [`PairwiseSecret`] (no ECDH per message).
pub fn wrap_with_secret(
    apdu: &[u8],
    secret: &PairwiseSecret,
    mh: MacHeader,
) -> Result<Vec<u8>, GbcsError> {
    let frame = Frame::decode(apdu)?;
    if frame.mac_header.is_some() {
        return Err(GbcsError::Crypto("APDU is already MAC-wrapped"));
    }
    let key = secret.key_for(&frame.header);
    let mac = gmac(&key, frame.header.originator, &mh, apdu)?;
    let mut out = mac_header_with(apdu.len(), mh);
    out.reserve(apdu.len() + MAC_LEN);
    out.extend_from_slice(apdu);
    out.extend_from_slice(&mac);
    Ok(out)
}

/// Recompute and compare the MAC of a decoded frame.
pub fn verify(
    frame: &Frame<'_>,
    own: &dyn KeyAgreement,
    peer: &P256PublicKey,
) -> Result<(), GbcsError> {
    if frame.mac.is_none() {
        return Err(GbcsError::NoMac);
    }
    verify_with_secret(frame, &PairwiseSecret::agree(own, peer)?)
}

/// [`verify`] with a cached [`PairwiseSecret`].
pub fn verify_with_secret(frame: &Frame<'_>, secret: &PairwiseSecret) -> Result<(), GbcsError> {
    let (Some(mh), Some(mac)) = (frame.mac_header, frame.mac) else {
        return Err(GbcsError::NoMac);
    };
    let key = secret.key_for(&frame.header);
    let want = gmac(&key, frame.header.originator, &mh, frame.apdu())?;
    let diff = want
        .iter()
        .zip(mac.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(GbcsError::BadMac)
    }
}

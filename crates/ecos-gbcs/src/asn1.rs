//! A small, bounds-checked DER reader and writer for the CS02b structures.
//!
//! The reader is strict DER by default (minimal definite lengths, minimal
//! INTEGERs). [`Lengths::Lenient`] additionally accepts non-minimal long-form
//! lengths (`30 82 00 CA`), which devices send.

use crate::error::DecodeError;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const ENUMERATED: u8 = 0x0A;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;

/// How strictly length fields are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lengths {
    /// DER: the shortest form only.
    Strict,
    /// Also long forms with leading zeros or for values below 0x80.
    Lenient,
}

/// Read a length field (short form, or `81`..`84` long form) at `buf[pos..]`.
/// Returns the length and the number of bytes the field took.
pub(crate) fn read_length(
    buf: &[u8],
    pos: usize,
    base: usize,
    what: &'static str,
    mode: Lengths,
) -> Result<(usize, usize), DecodeError> {
    let first = *buf.get(pos).ok_or(DecodeError::Truncated {
        what,
        offset: base + pos,
        needed: 1,
        available: 0,
    })?;
    if first < 0x80 {
        return Ok((first as usize, 1));
    }
    let n = (first & 0x7F) as usize;
    let bad = |detail| DecodeError::BadLength {
        what,
        offset: base + pos,
        detail,
    };
    if n == 0 {
        return Err(bad("indefinite length (0x80) is not allowed"));
    }
    if n > 4 {
        return Err(bad("long form with more than 4 length bytes"));
    }
    let bytes = buf
        .get(pos + 1..pos + 1 + n)
        .ok_or(DecodeError::Truncated {
            what,
            offset: base + pos,
            needed: 1 + n,
            available: buf.len().saturating_sub(pos),
        })?;
    let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if mode == Lengths::Strict {
        if bytes[0] == 0 {
            return Err(bad("non-minimal long form (leading zero byte)"));
        }
        if len < 0x80 {
            return Err(bad("non-minimal long form for a length below 128"));
        }
    }
    Ok((len, 1 + n))
}

/// Append a minimal length field.
pub(crate) fn write_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Append a length in the device style: `82 hh ll` whenever the long form is
/// needed (what RTDS device responses and alerts carry).
pub(crate) fn write_length_device(out: &mut Vec<u8>, len: usize) {
    if !(0x80..=0xFFFF).contains(&len) {
        write_length(out, len);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
}

/// One TLV element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// Offset of the tag in the whole message.
    pub offset: usize,
    /// Offset of the first value byte in the whole message.
    pub value_offset: usize,
    pub value: &'a [u8],
    /// Tag, length and value.
    pub raw: &'a [u8],
}

/// A cursor over a run of TLV elements.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    mode: Lengths,
}

impl<'a> Reader<'a> {
    /// Over `buf`, which starts at offset `base` of the whole message.
    pub fn new(buf: &'a [u8], base: usize, mode: Lengths) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            mode,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset of the next byte in the whole message.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Read any element.
    pub fn tlv(&mut self, what: &'static str) -> Result<Tlv<'a>, DecodeError> {
        let start = self.pos;
        let tag = *self.buf.get(start).ok_or(DecodeError::Truncated {
            what,
            offset: self.base + start,
            needed: 2,
            available: 0,
        })?;
        if tag & 0x1F == 0x1F {
            return Err(DecodeError::BadValue {
                what,
                offset: self.base + start,
                detail: format!("high-tag-number form 0x{tag:02X} is not used in CS02b"),
            });
        }
        let (len, ll) = read_length(self.buf, start + 1, self.base, what, self.mode)?;
        let vstart = start + 1 + ll;
        let available = self.buf.len() - vstart;
        if len > available {
            return Err(DecodeError::Truncated {
                what,
                offset: self.base + start,
                needed: len,
                available,
            });
        }
        self.pos = vstart + len;
        Ok(Tlv {
            offset: self.base + start,
            value_offset: self.base + vstart,
            value: &self.buf[vstart..vstart + len],
            raw: &self.buf[start..vstart + len],
        })
    }

    /// Read an element that must have `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, DecodeError> {
        if let Some(found) = self.peek_tag()
            && found != tag
        {
            return Err(DecodeError::UnexpectedTag {
                what,
                offset: self.offset(),
                expected: tag,
                found,
            });
        }
        self.tlv(what)
    }

    /// Read a constructed element with `tag` and return a reader over its contents.
    pub fn nested(&mut self, tag: u8, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let t = self.expect(tag, what)?;
        Ok(Reader::new(t.value, t.value_offset, self.mode))
    }

    /// Read `tag` only if it is next.
    pub fn optional(
        &mut self,
        tag: u8,
        what: &'static str,
    ) -> Result<Option<Tlv<'a>>, DecodeError> {
        if self.peek_tag() == Some(tag) {
            self.tlv(what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Require that nothing is left.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.pos < self.buf.len() {
            Err(DecodeError::TrailingBytes {
                what,
                offset: self.base + self.pos,
                count: self.buf.len() - self.pos,
            })
        } else {
            Ok(())
        }
    }

    pub fn mode(&self) -> Lengths {
        self.mode
    }
}

/// A non-negative INTEGER that fits a u64, minimally encoded.
pub(crate) fn parse_u64(t: &Tlv<'_>, what: &'static str) -> Result<u64, DecodeError> {
    let bad = |detail: &str| DecodeError::BadValue {
        what,
        offset: t.offset,
        detail: detail.to_string(),
    };
    let v = t.value;
    match v {
        [] => return Err(bad("empty INTEGER")),
        [first, ..] if first & 0x80 != 0 => return Err(bad("negative INTEGER")),
        [0, second, ..] if second & 0x80 == 0 => {
            return Err(bad("non-minimal INTEGER (redundant leading zero)"));
        }
        _ => {}
    }
    let digits = if v[0] == 0 && v.len() > 1 { &v[1..] } else { v };
    if digits.len() > 8 {
        return Err(bad("INTEGER does not fit in 64 bits"));
    }
    Ok(digits.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
}

/// A small non-negative INTEGER (role, mode, usage codes).
pub(crate) fn parse_u32(t: &Tlv<'_>, what: &'static str) -> Result<u32, DecodeError> {
    let v = parse_u64(t, what)?;
    u32::try_from(v).map_err(|_| DecodeError::BadValue {
        what,
        offset: t.offset,
        detail: format!("{v} is out of range"),
    })
}

/// Minimal two's-complement content octets of a non-negative integer.
pub(crate) fn u64_content(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut out = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// Append tag, minimal length, value.
pub(crate) fn write_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    write_length(out, value.len());
    out.extend_from_slice(value);
}

/// Append tag, length in the given style, value.
pub(crate) fn write_tlv_style(out: &mut Vec<u8>, tag: u8, value: &[u8], style: LengthStyle) {
    out.push(tag);
    match style {
        LengthStyle::Der => write_length(out, value.len()),
        LengthStyle::Device => write_length_device(out, value.len()),
    }
    out.extend_from_slice(value);
}

/// How an encoder writes length fields of constructed elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub enum LengthStyle {
    /// Minimal DER (what ecos emits).
    #[default]
    Der,
    /// `82 hh ll` whenever a long form is needed, as the RTDS devices do
    /// (`30 82 00 CA`). For simulators that must match device bytes.
    Device,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_round_trip() {
        for (v, want) in [
            (0u64, "00"),
            (0x7F, "7f"),
            (0x80, "0080"),
            (6001, "1771"),
            (0x8F66, "008f66"),
            (u64::MAX, "00ffffffffffffffff"),
        ] {
            let c = u64_content(v);
            assert_eq!(hex::encode(&c), want);
            let mut der = Vec::new();
            write_tlv(&mut der, INTEGER, &c);
            let mut r = Reader::new(&der, 0, Lengths::Strict);
            let t = r.expect(INTEGER, "i").unwrap();
            assert_eq!(parse_u64(&t, "i").unwrap(), v);
        }
    }

    #[test]
    fn strict_rejects_non_minimal_lengths_lenient_accepts() {
        let bytes = [0x30, 0x82, 0x00, 0x02, 0x05, 0x00];
        let e = Reader::new(&bytes, 10, Lengths::Strict)
            .tlv("x")
            .unwrap_err();
        assert!(
            matches!(e, DecodeError::BadLength { offset: 11, .. }),
            "{e}"
        );
        let t = Reader::new(&bytes, 10, Lengths::Lenient).tlv("x").unwrap();
        assert_eq!(t.value, &[0x05, 0x00]);
        let e = Reader::new(&[0x30, 0x80, 0, 0], 0, Lengths::Lenient)
            .tlv("x")
            .unwrap_err();
        assert!(e.to_string().contains("indefinite"));
    }

    #[test]
    fn lengths_and_device_style() {
        let mut o = Vec::new();
        write_length(&mut o, 0x7F);
        write_length(&mut o, 0xCE);
        write_length(&mut o, 1757);
        assert_eq!(hex::encode(&o), "7f81ce8206dd");
        let mut o = Vec::new();
        write_length_device(&mut o, 0x45);
        write_length_device(&mut o, 0xCA);
        assert_eq!(hex::encode(&o), "45820 0ca".replace(' ', ""));
    }
}

//! Byte-level helpers shared by the on-disk and context formats: LEB128
//! varints and a bounds-checked reader that never panics on bad input.

use thiserror::Error;

/// Input ended early or held an impossible value.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{what} is truncated or malformed at byte {offset}")]
pub struct DecodeError {
    /// What was being read.
    pub what: &'static str,
    /// Byte offset where reading failed.
    pub offset: usize,
}

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A cursor over untrusted bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// Takes the next `len` bytes.
    pub fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError {
                what,
                offset: self.offset,
            })?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let bytes = self.take(8, what)?;
        let array: [u8; 8] = bytes.try_into().expect("take returned 8 bytes");
        Ok(u64::from_le_bytes(array))
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError {
            what,
            offset: start,
        })
    }

    /// Reads a varint length and checks it against what is left and `max`.
    pub fn len(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let len = self.varint(what)?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= max)
            .ok_or(DecodeError { what, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(value in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varint("value"), Ok(value));
            prop_assert_eq!(reader.remaining(), 0);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut reader = Reader::new(&bytes);
            while reader.varint("value").is_ok() {}
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0xff; 11];
        assert!(Reader::new(&bytes).varint("value").is_err());
    }
}

//! Reading the protobuf wire format: fields of one message, every length checked.

use crate::error::{InferError, Result};

/// Protobuf wire types.
pub(super) const WIRE_VARINT: u8 = 0;
pub(super) const WIRE_FIXED64: u8 = 1;
pub(super) const WIRE_LEN: u8 = 2;
pub(super) const WIRE_FIXED32: u8 = 5;

/// The value of one field as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

/// One field of a message: its number, its value and its complete encoding (key + value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub value: Wire<'a>,
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    pub(super) fn bytes(&self, what: &str) -> Result<&'a [u8]> {
        match self.value {
            Wire::Len(b) => Ok(b),
            _ => Err(bad(format!("{what}: expected a length-delimited field"))),
        }
    }

    pub(super) fn string(&self, what: &str) -> Result<String> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| bad(format!("{what}: not valid UTF-8")))
    }

    pub(super) fn varint(&self, what: &str) -> Result<u64> {
        match self.value {
            Wire::Varint(v) => Ok(v),
            _ => Err(bad(format!("{what}: expected a varint field"))),
        }
    }
}

pub(super) fn bad(msg: impl Into<String>) -> InferError {
    InferError::Model(msg.into())
}

/// Iterates over the fields of one message. Every length is checked against the buffer.
pub(crate) struct FieldReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> FieldReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn varint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(bad(format!("truncated varint at offset {}", self.pos)));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(bad("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(format!(
                    "field of {n} bytes at offset {} runs past the end of its message ({} bytes)",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| {
                bad(format!(
                    "invalid field number in key {key} at offset {start}"
                ))
            })?;
        let value = match (key & 7) as u8 {
            WIRE_VARINT => Wire::Varint(self.varint()?),
            WIRE_FIXED64 => {
                let b = self.take(8)?;
                Wire::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            WIRE_LEN => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| bad("length overflows usize"))?;
                Wire::Len(self.take(len)?)
            }
            WIRE_FIXED32 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            w => {
                return Err(bad(format!(
                    "unsupported protobuf wire type {w} (field {number}) at offset {start}"
                )));
            }
        };
        Ok(Some(Field {
            number,
            value,
            raw: &self.buf[start..self.pos],
        }))
    }
}

pub(super) struct PackedVarints<'a>(pub(super) FieldReader<'a>);

impl PackedVarints<'_> {
    pub(super) fn next(&mut self) -> Result<Option<u64>> {
        if self.0.pos >= self.0.buf.len() {
            Ok(None)
        } else {
            self.0.varint().map(Some)
        }
    }
}

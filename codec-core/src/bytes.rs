//! Little-endian reading of untrusted bytes, shared by the raw feature-frame format
//! (`frame.rs`) and the coded units (`codec/bitstream.rs`): every read is checked against what is
//! present, and a short read becomes the caller's own error.

/// A cursor over untrusted bytes. `short(offset, needed)` makes the error of a read that needs
/// `needed` more bytes than remain at `offset`.
pub(crate) struct LeReader<'a, E> {
    bytes: &'a [u8],
    pos: usize,
    short: fn(usize, usize) -> E,
}

impl<'a, E> LeReader<'a, E> {
    pub fn with_error(bytes: &'a [u8], short: fn(usize, usize) -> E) -> Self {
        LeReader {
            bytes,
            pos: 0,
            short,
        }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], E> {
        let available = self.remaining();
        if n > available {
            return Err((self.short)(self.pos, n - available));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], E> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, E> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, E> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, E> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, E> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, E> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub fn f32(&mut self) -> Result<f32, E> {
        Ok(f32::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_reports_short_reads() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7];
        let mut r = LeReader::with_error(&bytes, |offset, needed| (offset, needed));
        assert_eq!(r.u16(), Ok(0x0201));
        assert_eq!(r.u32(), Ok(0x0605_0403));
        assert_eq!(r.position(), 6);
        assert_eq!(r.u32(), Err((6, 3)));
        assert_eq!(r.remaining(), 1, "a short read consumes nothing");
        assert_eq!(r.u8(), Ok(7));
    }
}

//! A bounds-checked little cursor over untrusted bytes.
//!
//! Every read either returns a borrowed slice of the input or a [`Short`] naming where it ran out, so
//! the parsers never index out of range and never allocate on the say-so of a length field.

/// A read ran past the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    /// Byte offset (in the whole input) where the read started.
    pub offset: usize,
    /// Bytes the read needed.
    pub need: u64,
    /// Bytes that were left.
    pub have: usize,
}

/// Cursor over `data`, with absolute offsets relative to `base`.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            base: 0,
        }
    }

    /// A reader over a sub-slice that still reports offsets in the enclosing input.
    pub(crate) fn with_base(data: &'a [u8], base: usize) -> Self {
        Self { data, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// Take `n` bytes; `n` is a u64 so that a huge length field from a file is compared, never
    /// truncated, before it becomes a slice bound.
    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], Short> {
        let short = Short {
            offset: self.offset(),
            need: n,
            have: self.remaining(),
        };
        let n = usize::try_from(n).map_err(|_| short)?;
        let end = self.pos.checked_add(n).ok_or(short)?;
        let s = self.data.get(self.pos..end).ok_or(short)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let s = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16_le(&mut self) -> Result<u16, Short> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32_be(&mut self) -> Result<u32, Short> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_report_offset() {
        let mut r = Reader::with_base(&[1, 2, 3], 100);
        assert_eq!(r.u16_le().unwrap(), 0x0201);
        let e = r.u32_le().unwrap_err();
        assert_eq!(
            e,
            Short {
                offset: 102,
                need: 4,
                have: 1
            }
        );
        assert!(r.take(u64::MAX).is_err());
        assert_eq!(r.u8().unwrap(), 3);
        assert!(r.is_empty());
    }
}

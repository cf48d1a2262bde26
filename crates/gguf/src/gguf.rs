//! The parsed GGUF header and the blocking (file / reader) API.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::header::HeaderMachine;
use crate::{GgmlType, GgufError, Limits, Value};

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml `ne`: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Start of the tensor relative to the start of the data section.
    pub offset: u64,
    /// `tensor_bytes(ty, n_elements())`.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Product of the dimensions (1 for a tensor with no dimensions).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension but the first.
    pub fn n_rows(&self) -> u64 {
        self.dims
            .iter()
            .skip(1)
            .fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// A parsed GGUF header: metadata and tensor table, validated.
///
/// Validation guarantees: every tensor has a known type, a row length that is a whole
/// number of blocks, an element count that fits in an `i64`, an aligned offset, a range
/// that does not overlap any other tensor, and a unique name; metadata keys are unique.
#[derive(Clone, Debug)]
pub struct Gguf {
    /// 2 or 3.
    pub version: u32,
    /// In file order.
    pub metadata: Vec<(String, Value)>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment`, default 32.
    pub alignment: u64,
    /// Absolute byte offset of the data section in the file.
    pub data_offset: u64,
}

impl Gguf {
    /// The metadata value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The position of the tensor called `name` in [`Gguf::tensors`].
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// Bytes of the data section up to the end of the last tensor. Tensors of zero bytes
    /// occupy nothing, so their offsets do not count (here, in [`Gguf::check_fits`] and in
    /// the stream parser alike).
    pub fn data_size(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|t| t.n_bytes > 0)
            .map(|t| t.offset.saturating_add(t.n_bytes))
            .max()
            .unwrap_or(0)
    }

    /// Which tensor byte sits at `data_pos` (relative to the data section): `(tensor index,
    /// byte within the tensor)`, or `None` for padding and positions past the end.
    pub fn locate(&self, data_pos: u64) -> Option<(usize, u64)> {
        self.tensors
            .iter()
            .position(|t| data_pos >= t.offset && data_pos - t.offset < t.n_bytes)
            .map(|i| (i, data_pos - self.tensors[i].offset))
    }

    /// Reads the header, metadata and tensor table from a reader positioned at the start
    /// of the file, with the default [`Limits`]. Reads exactly `data_offset` bytes, so the
    /// reader is left at the start of the data section.
    pub fn read_header<R: Read>(r: &mut R) -> Result<Gguf, GgufError> {
        Self::read_header_with_limits(r, Limits::default())
    }

    /// [`Gguf::read_header`] with explicit limits.
    pub fn read_header_with_limits<R: Read>(r: &mut R, limits: Limits) -> Result<Gguf, GgufError> {
        read_with_machine(r, HeaderMachine::new(limits, None))
    }

    /// Parses a header from an in-memory buffer holding (at least) the whole header.
    /// Lengths are checked against `bytes.len()` before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Gguf, GgufError> {
        let mut r = bytes;
        read_with_machine(
            &mut r,
            HeaderMachine::new(Limits::default(), Some(bytes.len() as u64)),
        )
    }

    /// Opens a file, parses its header and checks that the file is long enough to hold
    /// every tensor. Returns the header and the open file for [`Gguf::read_tensor_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<(Gguf, std::fs::File), GgufError> {
        Self::open_with_limits(path, Limits::default())
    }

    /// [`Gguf::open`] with explicit limits.
    pub fn open_with_limits(
        path: impl AsRef<Path>,
        limits: Limits,
    ) -> Result<(Gguf, std::fs::File), GgufError> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let g = {
            let mut r = std::io::BufReader::new(&file);
            read_with_machine(&mut r, HeaderMachine::new(limits, Some(len)))?
        };
        g.check_fits(len)?;
        Ok((g, file))
    }

    /// Checks that every tensor (of at least one byte) ends within an input of `len` bytes.
    pub fn check_fits(&self, len: u64) -> Result<(), GgufError> {
        for t in self.tensors.iter().filter(|t| t.n_bytes > 0) {
            let end = self
                .data_offset
                .saturating_add(t.offset)
                .saturating_add(t.n_bytes);
            if end > len {
                return Err(GgufError::TensorOutOfRange {
                    tensor: t.name.clone(),
                    end,
                    len,
                });
            }
        }
        Ok(())
    }

    /// Reads the raw bytes of tensor `index` from a file (or any seekable reader over the
    /// whole file). Memory grows only as bytes actually arrive, so a lying reader cannot
    /// make this allocate more than it delivers.
    pub fn read_tensor_bytes<R: Read + Seek>(
        &self,
        r: &mut R,
        index: usize,
    ) -> Result<Vec<u8>, GgufError> {
        let t = self.tensors.get(index).ok_or(GgufError::TensorIndex {
            index,
            count: self.tensors.len(),
        })?;
        let n = usize::try_from(t.n_bytes).map_err(|_| GgufError::TensorTooLarge {
            tensor: t.name.clone(),
            n_bytes: t.n_bytes,
        })?;
        let start = self
            .data_offset
            .checked_add(t.offset)
            .ok_or(GgufError::TensorOutOfRange {
                tensor: t.name.clone(),
                end: u64::MAX,
                len: u64::MAX,
            })?;
        r.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(n.min(64 << 20))
            .map_err(|_| GgufError::TensorTooLarge {
                tensor: t.name.clone(),
                n_bytes: t.n_bytes,
            })?;
        r.take(t.n_bytes).read_to_end(&mut buf)?;
        if buf.len() != n {
            return Err(GgufError::Truncated {
                what: "tensor data",
                offset: start.saturating_add(buf.len() as u64),
                needed: (n - buf.len()) as u64,
            });
        }
        Ok(buf)
    }
}

/// Drives the header machine from a blocking reader, reading exactly what it asks for.
fn read_with_machine<R: Read>(r: &mut R, mut m: HeaderMachine) -> Result<Gguf, GgufError> {
    let mut buf = Vec::new();
    while !m.is_done() {
        let need = m.need();
        buf.clear();
        // `take` + `read_to_end` grows the buffer only as bytes arrive.
        r.take(need as u64).read_to_end(&mut buf)?;
        if buf.len() < need {
            return Err(m.truncated(buf.len()));
        }
        m.step(&buf)?;
    }
    let pad = m.padding();
    let skipped = std::io::copy(&mut r.take(pad), &mut std::io::sink())?;
    if skipped < pad {
        return Err(GgufError::Truncated {
            what: "padding before the data section",
            offset: m.pos() + skipped,
            needed: pad - skipped,
        });
    }
    Ok(m.into_gguf())
}

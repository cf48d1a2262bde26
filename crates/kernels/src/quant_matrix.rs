//! [`QuantMatrix`]: a GGUF weight matrix on the GPU as its raw block bytes.
//!
//! The bytes are never dequantized or repacked on the CPU: the kernels read the blocks through
//! byte-offset loaders (`shaders/quant.wgsl`). A matrix larger than the device's storage-binding
//! limit (the 218 MB Q8_0 output matrix of Ahma-3B against 128 MiB on lavapipe and phones) is
//! split by whole rows across several buffers ("parts"); ops dispatch once per part. The matrix
//! is created empty and filled with [`QuantMatrix::write`] in chunks of any size and alignment,
//! so a loader can stream a file without holding a tensor in memory.

use std::collections::BTreeMap;

use ahma_gguf::GgmlType;

use crate::context::GpuContext;
use crate::error::KernelError;

/// One buffer holding rows `first_row .. first_row + n_rows`.
#[derive(Debug)]
pub struct MatrixPart {
    pub buffer: wgpu::Buffer,
    pub first_row: u64,
    pub n_rows: u64,
}

/// A weight matrix of `n_out` rows of `n_in` elements of type `ty` (GGUF dims `[n_in, n_out]`).
#[derive(Debug)]
pub struct QuantMatrix {
    label: String,
    ty: GgmlType,
    n_in: u64,
    n_out: u64,
    row_bytes: u64,
    parts: Vec<MatrixPart>,
    /// Words of a part buffer that a write covered only partly: (part, word) → (bytes, mask).
    /// `queue.write_buffer` works in whole words, so a word is written once all of its bytes are
    /// known.
    pending: BTreeMap<(usize, u64), ([u8; 4], u8)>,
    written: u64,
}

impl QuantMatrix {
    /// An empty matrix split at the device's binding limit.
    pub fn new(
        ctx: &GpuContext,
        label: &str,
        ty: GgmlType,
        n_in: u64,
        n_out: u64,
    ) -> Result<QuantMatrix, KernelError> {
        let caps = ctx.caps();
        let limit = caps
            .max_storage_buffer_binding_size
            .min(caps.max_buffer_size);
        QuantMatrix::with_part_limit(ctx, label, ty, n_in, n_out, limit)
    }

    /// An empty matrix whose parts hold at most `max_part_bytes` each (tests use a small limit to
    /// exercise the split path). Each part is also capped at 4 GiB because kernels address bytes
    /// with u32.
    pub fn with_part_limit(
        ctx: &GpuContext,
        label: &str,
        ty: GgmlType,
        n_in: u64,
        n_out: u64,
        max_part_bytes: u64,
    ) -> Result<QuantMatrix, KernelError> {
        let be = ty.block_elems() as u64;
        if n_in == 0 || n_out == 0 || !n_in.is_multiple_of(be) {
            return Err(KernelError::InvalidArgument(format!(
                "matrix `{label}`: {n_out} rows of {n_in} {ty} elements (rows must be whole {be}-element blocks)"
            )));
        }
        let row_bytes = n_in / be * ty.block_bytes() as u64;
        let limit = max_part_bytes.min(u32::MAX as u64) & !3;
        // Whole groups of four rows per part where possible, so that parts start at even rows
        // (the fused RoPE product keeps each rotated pair in one workgroup).
        let fit = limit / row_bytes;
        let rows_per_part = if fit >= 4 { fit & !3 } else { fit };
        if rows_per_part == 0 {
            return Err(KernelError::BufferTooLarge {
                label: label.to_string(),
                requested: row_bytes,
                limit,
            });
        }
        let mut parts = Vec::new();
        let mut first_row = 0;
        while first_row < n_out {
            let n_rows = rows_per_part.min(n_out - first_row);
            let name = format!("{label}[{}]", parts.len());
            let buffer = ctx.create_buffer(
                &name,
                n_rows * row_bytes,
                // COPY_SRC lets tests and tools read the raw bytes back.
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            )?;
            parts.push(MatrixPart {
                buffer,
                first_row,
                n_rows,
            });
            first_row += n_rows;
        }
        Ok(QuantMatrix {
            label: label.to_string(),
            ty,
            n_in,
            n_out,
            row_bytes,
            parts,
            pending: BTreeMap::new(),
            written: 0,
        })
    }

    /// Creates the matrix and uploads all of `bytes` (whole tensor) at once.
    pub fn from_bytes(
        ctx: &GpuContext,
        label: &str,
        ty: GgmlType,
        n_in: u64,
        n_out: u64,
        bytes: &[u8],
    ) -> Result<QuantMatrix, KernelError> {
        let mut m = QuantMatrix::new(ctx, label, ty, n_in, n_out)?;
        m.write(ctx, 0, bytes)?;
        m.finish(ctx)?;
        Ok(m)
    }

    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    /// Elements per row (GGUF `dims[0]`).
    pub fn n_in(&self) -> u64 {
        self.n_in
    }
    /// Number of rows (GGUF `dims[1]`).
    pub fn n_out(&self) -> u64 {
        self.n_out
    }
    pub fn row_bytes(&self) -> u64 {
        self.row_bytes
    }
    /// Bytes of the whole tensor.
    pub fn byte_len(&self) -> u64 {
        self.row_bytes * self.n_out
    }
    pub fn parts(&self) -> &[MatrixPart] {
        &self.parts
    }

    /// Writes `bytes` at byte `offset` of the tensor. Chunks may have any size and alignment and
    /// may cross part boundaries. Bytes of a word left incomplete by this chunk are held until a
    /// later chunk completes the word (or [`QuantMatrix::finish`]).
    pub fn write(
        &mut self,
        ctx: &GpuContext,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), KernelError> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= self.byte_len())
            .ok_or_else(|| {
                KernelError::InvalidArgument(format!(
                    "write of {} bytes at {offset} past the end of `{}` ({} bytes)",
                    bytes.len(),
                    self.label,
                    self.byte_len()
                ))
            })?;
        self.written += bytes.len() as u64;
        for pi in 0..self.parts.len() {
            let part_start = self.parts[pi].first_row * self.row_bytes;
            let part_len = self.parts[pi].n_rows * self.row_bytes;
            let lo = offset.max(part_start);
            let hi = end.min(part_start + part_len);
            if lo >= hi {
                continue;
            }
            let src = &bytes[(lo - offset) as usize..(hi - offset) as usize];
            let (la, lb) = (lo - part_start, hi - part_start);
            let aligned_start = la.div_ceil(4) * 4;
            let aligned_end = lb / 4 * 4;
            if aligned_start < aligned_end {
                let s = (aligned_start - la) as usize;
                let e = (aligned_end - la) as usize;
                ctx.queue()
                    .write_buffer(&self.parts[pi].buffer, aligned_start, &src[s..e]);
                self.merge(ctx, pi, part_len, la, &src[..s]);
                self.merge(ctx, pi, part_len, aligned_end, &src[e..]);
            } else {
                self.merge(ctx, pi, part_len, la, src);
            }
        }
        Ok(())
    }

    /// Adds bytes starting at part byte `at` to their pending words; writes every word whose bytes
    /// inside the part are now all known (bytes past the part's data are padding).
    fn merge(&mut self, ctx: &GpuContext, part: usize, part_len: u64, at: u64, src: &[u8]) {
        for (i, &b) in src.iter().enumerate() {
            let pos = at + i as u64;
            let word = pos / 4;
            let entry = self.pending.entry((part, word)).or_insert(([0; 4], 0));
            entry.0[(pos % 4) as usize] = b;
            entry.1 |= 1 << (pos % 4);
            let valid = (part_len - word * 4).min(4);
            let full = (1u8 << valid) - 1;
            if entry.1 & full == full {
                let data = entry.0;
                self.pending.remove(&(part, word));
                ctx.queue()
                    .write_buffer(&self.parts[part].buffer, word * 4, &data);
            }
        }
    }

    /// Checks that every byte was written. Call after the last [`QuantMatrix::write`].
    pub fn finish(&mut self, _ctx: &GpuContext) -> Result<(), KernelError> {
        if let Some((&(part, word), _)) = self.pending.iter().next() {
            let at = self.parts[part].first_row * self.row_bytes + word * 4;
            return Err(KernelError::InvalidArgument(format!(
                "`{}`: bytes near offset {at} were never written",
                self.label
            )));
        }
        if self.written < self.byte_len() {
            return Err(KernelError::InvalidArgument(format!(
                "`{}`: {} of {} bytes written",
                self.label,
                self.written,
                self.byte_len()
            )));
        }
        Ok(())
    }
}

/// The preprocessor flag selecting `ty`'s dequantizer in `shaders/quant.wgsl`, e.g. `TYPE_Q4_K`.
pub fn type_define(ty: GgmlType) -> String {
    format!("TYPE_{}", ty.name())
}

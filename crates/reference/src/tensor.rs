//! A weight matrix kept in its GGUF encoding, dequantized a row at a time.

use ahma_gguf::{dequantize, tensor_bytes, GgmlType};

use crate::ReferenceError;

/// A 2-D (or 1-D, `rows == 1`) tensor holding the raw GGUF bytes of `rows` rows of
/// `cols` elements of type `ty`.
///
/// The weight of `y = W x` with `W` of ggml dims `[n_in, n_out]` is `n_out` rows of
/// `n_in` elements: `y[r] = dot(row r, x)`.
#[derive(Clone, Debug)]
pub struct QTensor {
    /// Name in the GGUF file, for error messages.
    pub name: String,
    /// Block format of `data`.
    pub ty: GgmlType,
    /// Number of rows (ggml `ne[1]`).
    pub rows: usize,
    /// Elements per row (ggml `ne[0]`).
    pub cols: usize,
    /// Raw bytes: `rows * row_bytes`.
    data: Vec<u8>,
    /// Bytes of one row.
    row_bytes: usize,
}

impl QTensor {
    /// Wraps raw tensor bytes, checking that they hold exactly `rows` rows of `cols` elements.
    pub fn new(
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<Self, ReferenceError> {
        let too_large = || ReferenceError::TooLarge { name: name.into() };
        let row_bytes = tensor_bytes(ty, cols as u64)?;
        let expected = row_bytes.checked_mul(rows as u64).ok_or_else(too_large)?;
        if expected != data.len() as u64 {
            return Err(ReferenceError::TensorBytes {
                name: name.into(),
                ty,
                expected,
                found: data.len() as u64,
            });
        }
        let row_bytes = usize::try_from(row_bytes).map_err(|_| too_large())?;
        Ok(QTensor {
            name: name.into(),
            ty,
            rows,
            cols,
            data,
            row_bytes,
        })
    }

    /// Bytes this tensor occupies in memory.
    pub fn n_bytes(&self) -> usize {
        self.data.len()
    }

    /// Dequantizes row `r` into `out` (`out.len() == cols`).
    pub fn row(&self, r: usize, out: &mut [f32]) -> Result<(), ReferenceError> {
        if r >= self.rows {
            return Err(ReferenceError::RowOutOfRange {
                name: self.name.clone(),
                row: r,
                rows: self.rows,
            });
        }
        let bytes = &self.data[r * self.row_bytes..(r + 1) * self.row_bytes];
        dequantize(self.ty, bytes, out)?;
        Ok(())
    }

    /// The whole tensor as f32 (only used for the small 1-D norm weights).
    pub fn to_f32(&self) -> Result<Vec<f32>, ReferenceError> {
        let mut out = vec![0.0; self.rows * self.cols];
        dequantize(self.ty, &self.data, &mut out)?;
        Ok(out)
    }

    /// `out = W x`: one dot product per row, each row dequantized into `row_buf`
    /// (`cols` floats) just before use. By far the most time of the forward is spent here.
    pub fn matvec(
        &self,
        out: &mut [f32],
        x: &[f32],
        row_buf: &mut [f32],
    ) -> Result<(), ReferenceError> {
        check_len("matvec output length", self.rows, out.len())?;
        check_len("matvec input length", self.cols, x.len())?;
        if row_buf.len() < self.cols {
            return Err(ReferenceError::Length {
                what: "matvec row buffer",
                expected: self.cols,
                found: row_buf.len(),
            });
        }
        let row = &mut row_buf[..self.cols];
        for (r, y) in out.iter_mut().enumerate() {
            self.row(r, row)?;
            *y = crate::ops::dot(row, x);
        }
        Ok(())
    }
}

/// `Ok` when a buffer handed to [`QTensor::matvec`] has the length the tensor needs.
fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), ReferenceError> {
    if found == expected {
        Ok(())
    } else {
        Err(ReferenceError::Length {
            what,
            expected,
            found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn f32_matvec_by_hand() {
        // W = [[1, 2], [3, 4], [-1, 0]], x = [10, 1] -> [12, 34, -10]
        let w = QTensor::new(
            "w",
            GgmlType::F32,
            3,
            2,
            f32_bytes(&[1.0, 2.0, 3.0, 4.0, -1.0, 0.0]),
        )
        .unwrap();
        let mut out = [0.0; 3];
        let mut row = [0.0; 2];
        w.matvec(&mut out, &[10.0, 1.0], &mut row).unwrap();
        assert_eq!(out, [12.0, 34.0, -10.0]);
    }

    #[test]
    fn q8_0_rows_dequantize_by_hand() {
        // Two Q8_0 rows of one block: d = 0.5 (f16 0x3800), qs = 0..31 and d = -1 (0xBC00), qs = 1.
        let mut data = vec![0x00, 0x38];
        data.extend((0..32).map(|q: i8| q as u8));
        data.extend([0x00, 0xBC]);
        data.extend([1u8; 32]);
        let w = QTensor::new("w", GgmlType::Q8_0, 2, 32, data).unwrap();
        let mut out = [0.0; 2];
        let mut row = [0.0; 32];
        w.matvec(&mut out, &[1.0; 32], &mut row).unwrap();
        // 0.5 * (0 + 1 + ... + 31) = 248; -1 * 32 = -32.
        assert_eq!(out, [248.0, -32.0]);
        w.row(1, &mut row).unwrap();
        assert_eq!(row, [-1.0; 32]);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let bad = QTensor::new("w", GgmlType::Q8_0, 2, 32, vec![0; 33]);
        assert!(matches!(
            bad,
            Err(ReferenceError::TensorBytes {
                expected: 68,
                found: 33,
                ..
            })
        ));
        let not_blocks = QTensor::new("w", GgmlType::Q4_0, 1, 20, vec![0; 18]);
        assert!(matches!(not_blocks, Err(ReferenceError::Gguf(_))));
        let w = QTensor::new("w", GgmlType::F32, 1, 2, f32_bytes(&[1.0, 2.0])).unwrap();
        let mut row = [0.0; 2];
        assert!(matches!(
            w.row(1, &mut row),
            Err(ReferenceError::RowOutOfRange {
                row: 1,
                rows: 1,
                ..
            })
        ));
        let mut out = [0.0; 2];
        assert!(matches!(
            w.matvec(&mut out, &[1.0, 1.0], &mut row),
            Err(ReferenceError::Length { .. })
        ));
    }
}

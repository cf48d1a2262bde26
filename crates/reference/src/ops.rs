//! The primitives of the Llama forward pass, each a few lines of plain f32 arithmetic.
//!
//! They work on slices and never allocate, so [`crate::Model::forward`] can chain them
//! over the buffers of a [`crate::RunState`].

/// `sum_i a[i] * b[i]`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// RMSNorm: `out = x / sqrt(mean(x^2) + eps) * weight`.
///
/// Llama normalizes by the root mean square only (no mean subtraction, no bias).
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean_sq + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// In-place softmax. Subtracting the maximum first keeps `exp` from overflowing.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Rotary position embedding of one head, llama.cpp's NORMAL mode (`LLM_ARCH_LLAMA`).
///
/// Rotates adjacent pairs `(x[2i], x[2i+1])` of the first `rope_dim` dimensions by the
/// angle `pos * base^(-2i / rope_dim)`; the dimensions past `rope_dim` pass unchanged.
/// The angle is computed in f64 so that the oracle is not limited by f32 `powf`.
pub fn rope(head: &mut [f32], pos: usize, rope_dim: usize, base: f32) {
    for i in 0..rope_dim / 2 {
        let theta = pos as f64 * (base as f64).powf(-2.0 * i as f64 / rope_dim as f64);
        let (sin, cos) = (theta.sin() as f32, theta.cos() as f32);
        let (x0, x1) = (head[2 * i], head[2 * i + 1]);
        head[2 * i] = x0 * cos - x1 * sin;
        head[2 * i + 1] = x0 * sin + x1 * cos;
    }
}

/// SiLU (swish): `x * sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SwiGLU gating in place: `gate[i] = silu(gate[i]) * up[i]`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// `x += y`, the residual connection.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Causal attention of one query head over `n_pos` cached positions.
///
/// `keys` and `values` are the cache of one layer, `kv_stride` floats per position;
/// `kv_offset` selects this head's key/value head inside a position (with grouped-query
/// attention several query heads read the same one). `scores` is scratch of `n_pos`
/// floats; the weighted sum of values is written to `out` (`head_dim` floats).
#[allow(clippy::too_many_arguments)]
pub fn attention_head(
    out: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_stride: usize,
    kv_offset: usize,
    n_pos: usize,
    scores: &mut [f32],
) {
    let head_dim = q.len();
    let scale = 1.0 / (head_dim as f32).sqrt();
    for (t, s) in scores[..n_pos].iter_mut().enumerate() {
        let k = &keys[t * kv_stride + kv_offset..][..head_dim];
        *s = dot(q, k) * scale;
    }
    softmax(&mut scores[..n_pos]);
    out.fill(0.0);
    for (t, &a) in scores[..n_pos].iter().enumerate() {
        let v = &values[t * kv_stride + kv_offset..][..head_dim];
        for (o, &vi) in out.iter_mut().zip(v) {
            *o += a * vi;
        }
    }
}

/// Index of the largest value (the first one on ties), `None` for an empty slice.
pub fn argmax(x: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in x.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn dot_by_hand() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, -5.0, 6.0]), 4.0 - 10.0 + 18.0);
    }

    #[test]
    fn rmsnorm_by_hand() {
        // mean(x^2) = (9 + 16) / 2 = 12.5; 1/sqrt(12.5) = 0.28284271
        let mut out = [0.0; 2];
        rmsnorm(&mut out, &[3.0, -4.0], &[1.0, 2.0], 0.0);
        close(&out, &[0.848_528_1, -2.262_741_7], 1e-6);
        // eps participates inside the square root: x = [1, 1], eps = 3 -> 1/2.
        rmsnorm(&mut out, &[1.0, 1.0], &[1.0, 1.0], 3.0);
        close(&out, &[0.5, 0.5], 1e-7);
    }

    #[test]
    fn softmax_by_hand_and_stable() {
        let mut x = [0.0, 2.0_f32.ln()];
        softmax(&mut x);
        close(&x, &[1.0 / 3.0, 2.0 / 3.0], 1e-7);
        let mut big = [1000.0, 1000.0];
        softmax(&mut big);
        close(&big, &[0.5, 0.5], 1e-7);
    }

    #[test]
    fn rope_rotates_adjacent_pairs() {
        // Position 0 is the identity.
        let mut h = [1.0, 2.0, 3.0, 4.0];
        rope(&mut h, 0, 4, 10000.0);
        close(&h, &[1.0, 2.0, 3.0, 4.0], 0.0);
        // Pair 0 turns by pos * 1 rad; pair 1 by pos * 10000^(-2/4) = pos / 100 rad.
        let mut h = [1.0, 0.0, 0.0, 1.0];
        rope(&mut h, 2, 4, 10000.0);
        let (s0, c0) = 2.0f32.sin_cos();
        let (s1, c1) = 0.02f32.sin_cos();
        close(&h, &[c0, s0, -s1, c1], 1e-6);
    }

    #[test]
    fn rope_leaves_dims_past_rope_dim() {
        let mut h = [1.0, 0.0, 5.0, 6.0];
        rope(&mut h, 1, 2, 10000.0);
        let (s, c) = 1.0f32.sin_cos();
        close(&h, &[c, s, 5.0, 6.0], 1e-6);
    }

    #[test]
    fn rope_head_dim_100_last_pair() {
        // Ahma-3B: head_dim = rope_dim = 100; the last pair i = 49 turns by pos * 10000^(-0.98).
        let mut h = vec![0.0f32; 100];
        h[98] = 1.0;
        rope(&mut h, 7, 100, 10000.0);
        let theta = 7.0 * 10000f64.powf(-0.98);
        close(&h[98..], &[theta.cos() as f32, theta.sin() as f32], 1e-7);
    }

    #[test]
    fn silu_and_swiglu_by_hand() {
        assert_eq!(silu(0.0), 0.0);
        // silu(1) = 1 / (1 + e^-1) = 0.7310586
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        let mut g = [1.0, -2.0];
        swiglu(&mut g, &[2.0, 3.0]);
        // silu(-2) = -2 / (1 + e^2) = -0.23840584
        close(&g, &[1.462_117_2, -0.715_217_5], 1e-6);
    }

    #[test]
    fn add_assign_by_hand() {
        let mut x = [1.0, 2.0];
        add_assign(&mut x, &[0.5, -2.0]);
        assert_eq!(x, [1.5, 0.0]);
    }

    #[test]
    fn attention_one_position_returns_its_value() {
        let mut out = [0.0; 2];
        let mut scores = [0.0; 1];
        attention_head(
            &mut out,
            &[3.0, 1.0],
            &[1.0, 2.0],
            &[7.0, -1.0],
            2,
            0,
            1,
            &mut scores,
        );
        close(&out, &[7.0, -1.0], 0.0);
        close(&scores, &[1.0], 0.0);
    }

    #[test]
    fn attention_by_hand_with_gqa_offset() {
        // Two positions, two kv heads of dim 2 per position; the query reads kv head 1.
        // Scores: q.k / sqrt(2): k0 = [0, 0] -> 0, k1 = [ln 2 * sqrt 2, 0] -> ln 2,
        // so the weights are 1/3 and 2/3.
        let l2 = 2.0f32.ln() * 2.0f32.sqrt();
        let keys = [9.0, 9.0, 0.0, 0.0, 9.0, 9.0, l2, 0.0];
        let values = [9.0, 9.0, 3.0, 0.0, 9.0, 9.0, 0.0, 3.0];
        let mut out = [0.0; 2];
        let mut scores = [0.0; 2];
        attention_head(&mut out, &[1.0, 5.0], &keys, &values, 4, 2, 2, &mut scores);
        close(&scores, &[1.0 / 3.0, 2.0 / 3.0], 1e-6);
        close(&out, &[1.0, 2.0], 1e-6);
    }

    #[test]
    fn argmax_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }
}

//! The CPU sampler: the reference semantics the GPU engine is tested against.
//!
//! For one step, given the logits of the last position and every token of the sequence
//! so far (prompt included), in transformers' order:
//! 1. repetition penalty: for each distinct token already in the sequence,
//!    `logit < 0 ? logit * p : logit / p`;
//! 2. min length: while the sequence is shorter than `min_length`, EOS gets -inf;
//! 3. temperature: `logit / t` (t = 0 means greedy: the first index of the maximum);
//! 4. top-k: logits below the k-th largest become -inf (ties with it are kept);
//! 5. top-p (when < 1): sort ascending, softmax, cumulative sum; tokens whose cumulative
//!    probability is ≤ 1 - p become -inf, the most likely token always stays;
//! 6. softmax in f64, then one uniform draw `u` in [0, 1) from [`Rng`]: the token is the
//!    first id (ascending) whose running probability sum exceeds `u * total`.

use crate::error::{ChatError, Result};
use crate::settings::GenerationSettings;

/// SplitMix64: tiny, seedable and easy to reproduce on any platform (or in a shader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Samples the next token from logits with [`GenerationSettings`].
#[derive(Clone, Debug)]
pub struct Sampler {
    settings: GenerationSettings,
    eos_id: Option<u32>,
    rng: Rng,
}

impl Sampler {
    /// Validates the settings and seeds the generator with `settings.seed`.
    pub fn new(settings: GenerationSettings, eos_id: Option<u32>) -> Result<Sampler> {
        settings.validate()?;
        let rng = Rng::new(settings.seed);
        Ok(Sampler {
            settings,
            eos_id,
            rng,
        })
    }

    pub fn settings(&self) -> &GenerationSettings {
        &self.settings
    }

    /// Steps 1–5 in place: the logits the final softmax sees (-inf where filtered).
    pub fn process(&self, logits: &mut [f32], sequence: &[u32]) -> Result<()> {
        let n = logits.len();
        if n == 0 {
            return Err(ChatError::Sampler("empty logits".into()));
        }
        if let Some(&bad) = sequence.iter().find(|&&t| t as usize >= n) {
            return Err(ChatError::Sampler(format!(
                "token {bad} in the sequence is outside the {n} logits"
            )));
        }
        let s = &self.settings;
        let p = s.repetition_penalty;
        if p != 1.0 {
            let mut seen = vec![false; n];
            for &t in sequence {
                let t = t as usize;
                if !std::mem::replace(&mut seen[t], true) {
                    let l = logits[t];
                    logits[t] = if l < 0.0 { l * p } else { l / p };
                }
            }
        }
        if let Some(eos) = self.eos_id {
            if sequence.len() < s.min_length as usize && (eos as usize) < n {
                logits[eos as usize] = f32::NEG_INFINITY;
            }
        }
        if s.temperature == 0.0 {
            // Greedy: keep only the first maximum.
            let best = argmax(logits);
            for (i, l) in logits.iter_mut().enumerate() {
                if i != best {
                    *l = f32::NEG_INFINITY;
                }
            }
            return Ok(());
        }
        if s.temperature != 1.0 {
            for l in logits.iter_mut() {
                *l /= s.temperature;
            }
        }
        if s.top_k > 0 && (s.top_k as usize) < n {
            let mut sorted: Vec<f32> = logits.to_vec();
            let k = s.top_k as usize;
            sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            let kth = sorted[k - 1];
            for l in logits.iter_mut() {
                if *l < kth {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        if s.top_p < 1.0 {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(a.cmp(&b)));
            let probs = softmax_f64(logits);
            let mut cum = 0.0f64;
            let cut = 1.0 - f64::from(s.top_p);
            for (rank, &i) in order.iter().enumerate() {
                cum += probs[i];
                if cum <= cut && rank + 1 < n {
                    logits[i] = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }

    /// Step 6's distribution: softmax of the processed logits.
    pub fn probabilities(&self, logits: &[f32], sequence: &[u32]) -> Result<Vec<f64>> {
        let mut l = logits.to_vec();
        self.process(&mut l, sequence)?;
        Ok(softmax_f64(&l))
    }

    /// Pick the next token.
    pub fn sample(&mut self, logits: &[f32], sequence: &[u32]) -> Result<u32> {
        let probs = self.probabilities(logits, sequence)?;
        let total: f64 = probs.iter().sum();
        if !total.is_finite() || total <= 0.0 {
            return Err(ChatError::Sampler("no token has a finite logit".into()));
        }
        let u = self.rng.next_f64() * total;
        let mut cum = 0.0;
        let mut last = 0;
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                cum += p;
                last = i;
                if cum > u {
                    return Ok(i as u32);
                }
            }
        }
        Ok(last as u32)
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || (v[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

/// Softmax in f64; NaN logits count as -inf.
fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; logits.len()];
    }
    let e: Vec<f64> = logits
        .iter()
        .map(|&x| {
            if x.is_nan() {
                0.0
            } else {
                (f64::from(x) - f64::from(max)).exp()
            }
        })
        .collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

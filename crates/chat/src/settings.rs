//! Generation settings with the Ahma-Instruct model card's defaults.

use serde::{Deserialize, Serialize};

use crate::error::{ChatError, Result};

/// Sampling and stopping parameters. Serde-serializable so the browser app can store
/// them; missing fields take the model card's defaults.
///
/// The model card generates with `temperature=0.6, top_k=4, do_sample=True,
/// repetition_penalty=1.2, min_length=5, max_length=2048`. Lengths count *all* tokens
/// (prompt included), as transformers' `min_length`/`max_length` do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationSettings {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 disables the filter.
    pub top_k: u32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches
    /// `top_p`; 1.0 disables the filter.
    pub top_p: f32,
    /// transformers' repetition penalty: every token already in the sequence (prompt
    /// included) gets its logit divided by this (multiplied if negative); 1.0 disables.
    pub repetition_penalty: f32,
    /// EOS is suppressed while the sequence (prompt included) is shorter than this.
    pub min_length: u32,
    /// Generation stops when the sequence (prompt included) reaches this many tokens.
    pub max_length: u32,
    /// Seed of the sampler's random number generator.
    pub seed: u64,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            temperature: 0.6,
            top_k: 4,
            top_p: 1.0,
            repetition_penalty: 1.2,
            min_length: 5,
            max_length: 2048,
            seed: 0,
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, reason: &'static str) -> ChatError {
    ChatError::InvalidSetting {
        name,
        value: value.to_string(),
        reason,
    }
}

impl GenerationSettings {
    /// Check every field; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || !(0.0..=100.0).contains(&self.temperature) {
            return Err(invalid(
                "temperature",
                self.temperature,
                "must be between 0 (greedy) and 100",
            ));
        }
        if !self.top_p.is_finite() || self.top_p <= 0.0 || self.top_p > 1.0 {
            return Err(invalid("top_p", self.top_p, "must be in (0, 1]"));
        }
        if !self.repetition_penalty.is_finite()
            || self.repetition_penalty <= 0.0
            || self.repetition_penalty > 100.0
        {
            return Err(invalid(
                "repetition_penalty",
                self.repetition_penalty,
                "must be in (0, 100] (1 disables it)",
            ));
        }
        if self.max_length == 0 {
            return Err(invalid("max_length", self.max_length, "must be at least 1"));
        }
        if self.min_length > self.max_length {
            return Err(invalid(
                "min_length",
                self.min_length,
                "must not exceed max_length",
            ));
        }
        Ok(())
    }

    /// Whether generation is over after `token` made the sequence `total_len` long.
    pub fn should_stop(&self, token: u32, total_len: usize, eos_id: Option<u32>) -> bool {
        Some(token) == eos_id || total_len >= self.max_length as usize
    }
}

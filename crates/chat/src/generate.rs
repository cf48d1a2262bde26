//! The generation loop, over any model that turns (token, position) into logits.
//!
//! The CPU reference implements [`LanguageModel`] today; the GPU engine plugs in the
//! same way. The loop keeps the model's cache across turns: a chat prompt re-renders
//! the whole conversation, and only the tokens after the longest prefix shared with
//! what the model has already seen are fed again.

use crate::error::{ChatError, Result};
use crate::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A causal language model with a position-addressed cache.
pub trait LanguageModel {
    /// Process `token` at `pos` and return the logits for the next token. `pos` may be
    /// smaller than the number of cached positions: the cache is then rewound to `pos`.
    fn forward(
        &mut self,
        token: u32,
        pos: usize,
    ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>>;
    /// The context length (positions the model can hold).
    fn context_len(&self) -> usize;
}

/// A boxed model is a model, so a caller can choose the backend at run time.
impl<M: LanguageModel + ?Sized> LanguageModel for Box<M> {
    fn forward(
        &mut self,
        token: u32,
        pos: usize,
    ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        (**self).forward(token, pos)
    }
    fn context_len(&self) -> usize {
        (**self).context_len()
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced EOS.
    Eos,
    /// The sequence reached `max_length` (or the context length).
    MaxLength,
    /// The text callback asked to stop.
    Cancelled,
}

/// The result of one [`Session::generate`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// Generated ids (without the EOS that ended them).
    pub ids: Vec<u32>,
    /// Their text (what was streamed).
    pub text: String,
    pub stop: StopReason,
    /// Prompt tokens that were actually fed (the rest came from the cache).
    pub prompt_fed: usize,
}

/// A model plus the token sequence its cache currently holds.
pub struct Session<M: LanguageModel> {
    model: M,
    cached: Vec<u32>,
}

fn model_err(e: Box<dyn std::error::Error + Send + Sync>) -> ChatError {
    ChatError::Model(e.to_string())
}

impl<M: LanguageModel> Session<M> {
    pub fn new(model: M) -> Session<M> {
        Session {
            model,
            cached: Vec::new(),
        }
    }

    pub fn model(&self) -> &M {
        &self.model
    }

    /// Forget the cache (e.g. for a new conversation).
    pub fn reset(&mut self) {
        self.cached.clear();
    }

    /// Generate an answer to `prompt` (the full tokenized prompt, BOS included),
    /// calling `on_text` with each piece of final text; returning `false` from it stops.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        sampler: &mut Sampler,
        tok: &Tokenizer,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(ChatError::Conversation("empty prompt".into()));
        }
        let limit = (sampler.settings().max_length as usize).min(self.model.context_len());
        if prompt.len() >= limit {
            return Err(ChatError::ContextOverflow {
                needed: prompt.len() + 1,
                limit,
            });
        }
        // Reuse the cached prefix, but always feed at least the last prompt token to get
        // its logits.
        let common = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.cached.truncate(common);
        let mut logits = Vec::new();
        for (pos, &t) in prompt.iter().enumerate().skip(common) {
            logits = self.model.forward(t, pos).map_err(model_err)?;
            self.cached.push(t);
        }
        let mut seq = prompt.to_vec();
        let mut dec = StreamDecoder::new(true);
        let mut text = String::new();
        let eos = tok.eos_id();
        let stop = loop {
            let next = sampler.sample(&logits, &seq)?;
            seq.push(next);
            if Some(next) == eos {
                break StopReason::Eos;
            }
            if let Some(piece) = dec.push(tok, next)? {
                text.push_str(&piece);
                if !on_text(&piece) {
                    break StopReason::Cancelled;
                }
            }
            if seq.len() >= limit {
                break StopReason::MaxLength;
            }
            logits = self.model.forward(next, seq.len() - 1).map_err(model_err)?;
            self.cached.push(next);
        };
        let rest = dec.finish(tok)?;
        if !rest.is_empty() {
            text.push_str(&rest);
            on_text(&rest);
        }
        let ids = seq[prompt.len()..]
            .iter()
            .copied()
            .filter(|&t| Some(t) != eos)
            .collect();
        Ok(Generation {
            ids,
            text,
            stop,
            prompt_fed: prompt.len() - common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationSettings;

    /// A fake model: the logits always favour `script[pos]`, and every call is logged.
    struct Scripted {
        script: Vec<u32>,
        vocab: usize,
        calls: Vec<(u32, usize)>,
    }

    impl LanguageModel for Scripted {
        fn forward(
            &mut self,
            token: u32,
            pos: usize,
        ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
            self.calls.push((token, pos));
            let mut l = vec![0.0; self.vocab];
            let next = self.script.get(pos).copied().ok_or("past the script")?;
            l[next as usize] = 10.0;
            Ok(l)
        }
        fn context_len(&self) -> usize {
            64
        }
    }

    fn tokenizer() -> Tokenizer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        Tokenizer::from_json_file(dir.join("../../tests/fixtures/tokenizer/tokenizer.json"))
            .expect("tokenizer fixture")
    }

    fn greedy() -> Sampler {
        let s = GenerationSettings {
            temperature: 0.0,
            repetition_penalty: 1.0,
            min_length: 0,
            ..GenerationSettings::default()
        };
        Sampler::new(s, Some(2)).expect("valid settings")
    }

    #[test]
    fn streams_until_eos_and_reuses_the_cached_prefix() {
        let tok = tokenizer();
        let answer = tok.encode("Hyvää päivää", false).expect("encode");
        let prompt = vec![1, 3, 400, 500, 4];
        // After the prompt (positions 0..5) the model says `answer`, then EOS.
        let mut script = vec![0; prompt.len() - 1];
        script.extend(&answer);
        script.push(2);
        script.resize(64, 2);
        let mut session = Session::new(Scripted {
            script,
            vocab: tok.vocab_size(),
            calls: vec![],
        });
        let mut streamed = String::new();
        let g = session
            .generate(&prompt, &mut greedy(), &tok, &mut |t| {
                streamed.push_str(t);
                true
            })
            .expect("generate");
        assert_eq!(g.stop, StopReason::Eos);
        assert_eq!(g.ids, answer);
        assert_eq!(g.text, "Hyvää päivää");
        assert_eq!(streamed, g.text);
        assert_eq!(g.prompt_fed, prompt.len());
        // Next turn: the old prompt and answer are a cached prefix; only the rest is fed.
        let mut next = prompt.clone();
        next.extend(&answer);
        next.extend([2, 1, 3, 600]);
        session.model.calls.clear();
        let g2 = session
            .generate(&next, &mut greedy(), &tok, &mut |_| true)
            .expect("generate");
        assert_eq!(
            g2.prompt_fed, 4,
            "EOS was never fed, so it and what follows are new"
        );
        assert_eq!(session.model.calls[0], (2, prompt.len() + answer.len()));
    }

    #[test]
    fn stops_at_max_length_and_on_cancel() {
        let tok = tokenizer();
        let mut session = Session::new(Scripted {
            script: vec![500; 64],
            vocab: tok.vocab_size(),
            calls: vec![],
        });
        let mut s = greedy();
        let settings = GenerationSettings {
            max_length: 8,
            ..s.settings().clone()
        };
        s = Sampler::new(settings, Some(2)).expect("valid");
        let g = session
            .generate(&[1, 400, 401], &mut s, &tok, &mut |_| true)
            .expect("generate");
        assert_eq!((g.stop, g.ids.len()), (StopReason::MaxLength, 5));
        let g = session
            .generate(&[1, 400, 402], &mut greedy(), &tok, &mut |_| false)
            .expect("generate");
        assert_eq!((g.stop, g.ids.len()), (StopReason::Cancelled, 1));
        assert!(matches!(
            session.generate(&[1; 8], &mut s, &tok, &mut |_| true),
            Err(ChatError::ContextOverflow { .. })
        ));
    }
}

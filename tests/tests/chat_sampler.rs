//! Generation settings and the CPU sampler. The expected numbers are worked out by hand
//! from transformers' definitions (RepetitionPenaltyLogitsProcessor,
//! MinLengthLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
//! TopPLogitsWarper), in the order `generate(do_sample=True)` applies them.

use ahma_chat::{ChatError, GenerationSettings, Rng, Sampler};
use anyhow::Result;

const NEG: f32 = f32::NEG_INFINITY;

fn settings(f: impl FnOnce(&mut GenerationSettings)) -> GenerationSettings {
    let mut s = GenerationSettings {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        repetition_penalty: 1.0,
        min_length: 0,
        ..GenerationSettings::default()
    };
    f(&mut s);
    s
}

fn process(s: GenerationSettings, logits: &[f32], seq: &[u32]) -> Result<Vec<f32>> {
    let mut l = logits.to_vec();
    Sampler::new(s, Some(2))?.process(&mut l, seq)?;
    Ok(l)
}

#[test]
fn defaults_are_the_model_cards() {
    let s = GenerationSettings::default();
    assert_eq!(
        (
            s.temperature,
            s.top_k,
            s.top_p,
            s.repetition_penalty,
            s.min_length,
            s.max_length
        ),
        (0.6, 4, 1.0, 1.2, 5, 2048)
    );
    s.validate().unwrap();
}

#[test]
fn settings_round_trip_through_json_and_fill_defaults() -> Result<()> {
    let s = GenerationSettings {
        seed: 42,
        top_p: 0.9,
        ..GenerationSettings::default()
    };
    let back: GenerationSettings = serde_json::from_str(&serde_json::to_string(&s)?)?;
    assert_eq!(back, s);
    let partial: GenerationSettings = serde_json::from_str(r#"{"temperature": 0.2}"#)?;
    assert_eq!(
        partial,
        GenerationSettings {
            temperature: 0.2,
            ..GenerationSettings::default()
        }
    );
    Ok(())
}

#[test]
fn out_of_range_settings_are_named_errors() {
    let bad = [
        ("temperature", settings(|s| s.temperature = -0.1)),
        ("temperature", settings(|s| s.temperature = f32::NAN)),
        ("top_p", settings(|s| s.top_p = 0.0)),
        ("top_p", settings(|s| s.top_p = 1.5)),
        (
            "repetition_penalty",
            settings(|s| s.repetition_penalty = 0.0),
        ),
        ("max_length", settings(|s| s.max_length = 0)),
        ("min_length", settings(|s| s.min_length = 10_000)),
    ];
    for (name, s) in bad {
        match s.validate() {
            Err(ChatError::InvalidSetting { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
        assert!(Sampler::new(s, Some(2)).is_err());
    }
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_once() -> Result<()> {
    let l = [2.4, -1.0, 0.6, 3.0];
    // Token 0 appears twice but is penalized once; token 3 was never seen; the
    // negative logit of token 1 is multiplied: -1.0 * 1.2.
    let got = process(settings(|s| s.repetition_penalty = 1.2), &l, &[0, 1, 0, 2])?;
    assert_eq!(got, [2.4 / 1.2, -1.2, 0.6 / 1.2, 3.0]);
    Ok(())
}

#[test]
fn min_length_suppresses_eos_until_reached() -> Result<()> {
    let l = [0.0, 0.0, 5.0, 0.0];
    let s = settings(|s| s.min_length = 5);
    assert_eq!(process(s.clone(), &l, &[1, 3, 3, 3])?[2], NEG);
    assert_eq!(process(s, &l, &[1, 3, 3, 3, 3])?[2], 5.0);
    Ok(())
}

#[test]
fn temperature_then_top_k_keeps_ties() -> Result<()> {
    let l = [1.0, 4.0, 2.0, 2.0, 0.5];
    let got = process(
        settings(|s| {
            s.temperature = 0.5;
            s.top_k = 2;
        }),
        &l,
        &[],
    )?;
    // After temperature the values are [2, 8, 4, 4, 1]; the 2nd largest is 4 and
    // transformers removes only values *below* it, so both 4s stay.
    assert_eq!(got, [NEG, 8.0, 4.0, 4.0, NEG]);
    Ok(())
}

#[test]
fn top_p_removes_the_tail_but_keeps_the_best() -> Result<()> {
    // Probabilities of ln([1, 2, 3, 4]) are 0.1, 0.2, 0.3, 0.4; ascending cumulative sums
    // are 0.1, 0.3, 0.6, 1.0. top_p = 0.7 removes cum <= 0.3: tokens 0 and 1.
    let l: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|x| x.ln()).collect();
    let got = process(settings(|s| s.top_p = 0.7), &l, &[])?;
    assert_eq!(&got[..2], &[NEG, NEG]);
    assert_eq!(&got[2..], &l[2..]);
    // A tiny top_p still keeps the most likely token.
    let got = process(settings(|s| s.top_p = 0.01), &l, &[])?;
    assert_eq!(got.iter().filter(|x| x.is_finite()).count(), 1);
    assert!(got[3].is_finite());
    Ok(())
}

#[test]
fn greedy_picks_the_first_maximum() -> Result<()> {
    let mut s = Sampler::new(
        settings(|s| {
            s.temperature = 0.0;
            s.repetition_penalty = 1.2;
        }),
        Some(2),
    )?;
    assert_eq!(s.sample(&[0.0, 3.0, 3.0, 1.0], &[])?, 1);
    // The penalty applies before the argmax.
    assert_eq!(s.sample(&[0.0, 3.0, 2.9, 1.0], &[1])?, 2);
    Ok(())
}

#[test]
fn sampling_is_seeded_and_follows_the_distribution() -> Result<()> {
    let l: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|x| x.ln()).collect();
    let draw = |seed| -> Result<Vec<u32>> {
        let mut s = Sampler::new(settings(|s| s.seed = seed), None)?;
        (0..4000).map(|_| Ok(s.sample(&l, &[])?)).collect()
    };
    let a = draw(7)?;
    assert_eq!(a, draw(7)?);
    assert_ne!(a, draw(8)?);
    let mut counts = [0usize; 4];
    for t in a {
        counts[t as usize] += 1;
    }
    for (i, &c) in counts.iter().enumerate() {
        let expected = 4000.0 * (i + 1) as f64 / 10.0;
        assert!((c as f64 - expected).abs() < 0.1 * expected, "{counts:?}");
    }
    Ok(())
}

#[test]
fn rng_is_splitmix64() {
    // Reference values of SplitMix64 seeded with 1234567 (from the algorithm's
    // published reference implementation by Sebastiano Vigna).
    let mut r = Rng::new(1234567);
    assert_eq!(r.next_u64(), 6457827717110365317);
    assert_eq!(r.next_u64(), 3203168211198807973);
}

#[test]
fn bad_inputs_are_errors() -> Result<()> {
    let mut s = Sampler::new(GenerationSettings::default(), Some(2))?;
    assert!(s.sample(&[], &[]).is_err());
    assert!(s.sample(&[0.0; 4], &[9]).is_err());
    assert!(s.sample(&[NEG; 4], &[]).is_err());
    Ok(())
}

#[test]
fn stops_on_eos_or_max_length() {
    let s = GenerationSettings {
        max_length: 10,
        ..GenerationSettings::default()
    };
    assert!(s.should_stop(2, 5, Some(2)));
    assert!(!s.should_stop(3, 9, Some(2)));
    assert!(s.should_stop(3, 10, Some(2)));
}

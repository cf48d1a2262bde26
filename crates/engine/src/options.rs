//! Load-time and sampling options.

use crate::EngineError;

/// Options fixed when a model is loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Positions of KV cache to allocate (the longest prompt + generation).
    pub n_ctx: usize,
    /// Most tokens per prefill submit (default 512: bigger batches give the tiled mat-mul
    /// more workgroups). Bounds the activation and attention scratch buffers; longer prompts
    /// are processed in several batches. Where the scratch for it does not fit the device
    /// or the budget, the loader halves it (down to 64) rather than refuse the model.
    pub max_batch: usize,
    /// Capacity of the recent-token window the repetition penalty looks at.
    pub penalty_window: usize,
    /// Total GPU bytes the model may use, when the app knows it (see
    /// [`crate::DeviceBudget::memory_budget`]).
    pub memory_budget: Option<u64>,
    /// Bytes uploaded between waits for the GPU queue. Bounds the staging
    /// memory `write_buffer` holds on native backends, and with it the peak CPU
    /// memory of a streaming load.
    pub upload_window: u64,
    /// Submit each decode step before the previous sampled id is read back
    /// (the next step's input is already on the GPU), so the GPU never waits
    /// for the CPU to record a step or for the readback round trip. A step
    /// whose inputs turn out different (the caller stopped, or changed the
    /// sampling or the suppressed token) is redone or dropped; results are
    /// identical either way.
    pub pipeline_decode: bool,
    /// Decode applies RoPE and stores k and v in the KV cache inside the q/k/v mat-vec (one
    /// dispatch fewer per layer) instead of in a dispatch of its own. Results are identical.
    pub fuse_rope: bool,
    /// Fewest keys each split of decode's attention covers (a multiple of 64, at most 4096):
    /// a step's keys are shared out over up to 32 workgroups per head, whose partial results a
    /// second dispatch merges. More keys per split mean fewer, longer workgroups, and a
    /// context of at most this many keys needs no merge dispatch at all. Results agree to
    /// rounding.
    pub attn_split_keys: usize,
    /// The prefill mat-mul's workgroup tile for every product (one of
    /// `ahma_kernels::matmul::TILES`); `None` lets the kernel choose per matrix. A tile the
    /// device cannot hold fails the load with a typed error. Results agree to rounding.
    pub matmul_tile: Option<ahma_kernels::matmul::Tile>,
    /// Decode's mat-vecs walk two 32-element units per loop step, issuing both units' loads
    /// before their products (`ahma_kernels::matvec::MatVecOptions::pairs`). Results agree to
    /// rounding.
    pub matvec_pairs: bool,
    /// Decode's mat-vecs of Q4_0, Q5_0, Q8_0 and Q4_K weights quantize x to 8-bit integers as
    /// they load it (one scale per eight elements) and take packed integer dot products
    /// (`ahma_kernels::matvec::MatVecOptions::int_dot`), as llama.cpp's quantized-activation
    /// mat-vecs do. Not bit-exact: logits move by about what llama.cpp's own activation
    /// quantization moves them. Prefill's mat-muls are unchanged (its output head, a mat-vec
    /// over the batch's last row, takes the option too).
    pub matvec_int_dot: bool,
    /// Prefill's mat-muls of Q4_0, Q5_0, Q8_0 and Q4_K weights take X in 8-bit integers (one
    /// scale per token and 32 elements, as llama.cpp's q8_1; quantized once per input by
    /// `ahma_kernels::quantize::QuantizeX`, for q/k/v together and for gate/up together),
    /// stage the weights as 8-bit integers too, and multiply them in packed integer dot
    /// products (`ahma_kernels::matmul::MatMul::new_int8`), with any tile. Where
    /// `matmul_rows` is on (CPU adapters), the row-per-invocation product reads the same
    /// quantized X instead (nine words per unit and token instead of 32 floats) against its
    /// float weights. Not bit-exact, like `matvec_int_dot`.
    pub matmul_int_dot: bool,
    /// With `fuse_rope`: a layer whose attn_v has another type than attn_q and attn_k (the
    /// "more bits" layers of llama.cpp's Q4_K_M and Q5_K_M files) still computes q, k and v in
    /// one decode dispatch, each workgroup walking the matrix its rows lie in
    /// (`ahma_kernels::MatVecRope::v`), instead of one dispatch per type. Results agree to
    /// rounding.
    pub mixed_qkv: bool,
    /// The decode mat-vecs' workgroup shape, threads x rows
    /// (`ahma_kernels::matvec::MatVecShape`); `None` picks it for the adapter at load
    /// (`MatVecShape::for_device`: 16 x 32 on CPU adapters, 128 x 4 on GPUs), and the loaded
    /// model's [`crate::Model::options`] report the shape in use. Results agree to rounding.
    pub matvec_shape: Option<ahma_kernels::MatVecShape>,
    /// Decode's mat-vecs walk whole 32-element units per thread instead of quarters
    /// (`ahma_kernels::matvec::MatVecOptions::blocks`): the words of a Q4_0, Q5_0 or Q8_0 block
    /// are loaded once instead of once per quarter. `None` turns it on for CPU adapters (whose
    /// drivers make each load a gather) and off for GPUs (whose quarter loads coalesce); the
    /// loaded model's [`crate::Model::options`] report the choice in use. Results agree to
    /// rounding.
    pub matvec_blocks: Option<bool>,
    /// Prefill's float mat-muls give each invocation a few weight rows and a few tokens, with no
    /// workgroup memory and no barrier (`ahma_kernels::MatMulOptions::lanes`, shape
    /// `matmul_lanes`), instead of tiles staged in workgroup memory; with subgroups the lanes
    /// share their loads of X. `None` turns it on for CPU adapters (whose drivers issue every
    /// storage load lane by lane and switch every lane at a barrier) and off for GPUs; the
    /// loaded model's [`crate::Model::options`] report the choice in use. A chosen
    /// `matmul_tile` makes `None` mean off; with `matmul_int_dot` it reads the quantized X.
    /// Results agree to rounding.
    pub matmul_rows: Option<bool>,
    /// The shape of `matmul_rows`' product, invocations per workgroup x tokens per invocation
    /// (x weight rows per invocation); `None` is `ahma_kernels::Lanes::for_context` (16x16x4 with
    /// subgroups, 16x16x8 without).
    pub matmul_lanes: Option<ahma_kernels::Lanes>,
    /// Attention in one dispatch laid out for CPU adapters
    /// (`ahma_kernels::attention::Attention::new_with`): prefill gives each invocation one
    /// (token, head) that walks its keys alone, with no workgroup memory, barrier or split (with
    /// subgroups the lanes share their loads of keys and values); decode gives each head 8 lanes,
    /// each walking every 8th key, merged after one barrier. `None` turns it on for CPU adapters
    /// and off for GPUs (which keep the split passes); the loaded model's
    /// [`crate::Model::options`] report the choice in use. Results agree to rounding.
    pub attention_rows: Option<bool>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            n_ctx: 2048,
            max_batch: 512,
            penalty_window: 64,
            memory_budget: None,
            upload_window: 16 << 20,
            pipeline_decode: true,
            fuse_rope: true,
            attn_split_keys: 64,
            matmul_tile: None,
            matvec_pairs: false,
            matvec_int_dot: false,
            matmul_int_dot: false,
            mixed_qkv: true,
            matvec_shape: None,
            matvec_blocks: None,
            matmul_rows: None,
            matmul_lanes: None,
            attention_rows: None,
        }
    }
}

impl LoadOptions {
    /// Sets the kernel choices `ahma bench` and the browser benchmark page expose (each `None`
    /// keeps the current value): `matvec_pairs`, `matvec_int_dot`, `matmul_int_dot`,
    /// `attn_split_keys`, `matmul_tile`, the tile as `TOKENSxROWS[xTMxRN]`, and `matvec_shape`
    /// as `THREADSxROWS`, `matvec_blocks`, `matmul_rows`, `matmul_lanes` as `ROWSxTOKENS`, and
    /// `attention_rows` (an unknown tile or shape is a typed error; the loader validates the
    /// rest).
    #[allow(clippy::too_many_arguments)]
    pub fn set_kernel_choices(
        &mut self,
        matvec_pairs: Option<bool>,
        matvec_int_dot: Option<bool>,
        matmul_int_dot: Option<bool>,
        attn_split_keys: Option<usize>,
        matmul_tile: Option<&str>,
        matvec_shape: Option<&str>,
        matvec_blocks: Option<bool>,
        matmul_rows: Option<bool>,
        matmul_lanes: Option<&str>,
        attention_rows: Option<bool>,
    ) -> Result<(), EngineError> {
        if attention_rows.is_some() {
            self.attention_rows = attention_rows;
        }
        if matvec_blocks.is_some() {
            self.matvec_blocks = matvec_blocks;
        }
        if matmul_rows.is_some() {
            self.matmul_rows = matmul_rows;
        }
        if let Some(l) = matmul_lanes {
            self.matmul_lanes = Some(l.parse::<ahma_kernels::Lanes>()?);
        }
        if let Some(s) = matvec_shape {
            self.matvec_shape = Some(s.parse::<ahma_kernels::MatVecShape>()?);
        }
        if let Some(p) = matvec_pairs {
            self.matvec_pairs = p;
        }
        if let Some(i) = matvec_int_dot {
            self.matvec_int_dot = i;
        }
        if let Some(i) = matmul_int_dot {
            self.matmul_int_dot = i;
        }
        if let Some(k) = attn_split_keys {
            self.attn_split_keys = k;
        }
        if let Some(t) = matmul_tile {
            self.matmul_tile = Some(t.parse::<ahma_kernels::matmul::Tile>()?);
        }
        Ok(())
    }

    /// The decode mat-vecs' options these choices give on `ctx`: the chosen shape, else the
    /// adapter's (`MatVecShape::for_device`), the unit walk where chosen or on CPU adapters,
    /// and on CPU adapters the one-round reduction without subgroups.
    pub(crate) fn matvec_options(
        &self,
        ctx: &ahma_kernels::GpuContext,
    ) -> ahma_kernels::MatVecOptions {
        let device_type = ctx.adapter().device_type;
        ahma_kernels::MatVecOptions {
            pairs: self.matvec_pairs,
            int_dot: self.matvec_int_dot,
            flat_reduce: device_type == wgpu::DeviceType::Cpu,
            blocks: self
                .matvec_blocks
                .unwrap_or(device_type == wgpu::DeviceType::Cpu),
            ..Default::default()
        }
        .with_shape(
            self.matvec_shape
                .unwrap_or_else(|| ahma_kernels::MatVecShape::for_device(device_type)),
        )
    }

    /// The row-per-invocation shape prefill's float mat-muls use on `ctx`, or `None` for the
    /// tiles: `matmul_rows` where chosen, else on for CPU adapters unless a tile was chosen.
    pub(crate) fn matmul_lanes_on(
        &self,
        ctx: &ahma_kernels::GpuContext,
    ) -> Option<ahma_kernels::Lanes> {
        let cpu = ctx.adapter().device_type == wgpu::DeviceType::Cpu;
        self.matmul_rows
            .unwrap_or(cpu && self.matmul_tile.is_none())
            .then(|| {
                self.matmul_lanes
                    .unwrap_or_else(|| ahma_kernels::Lanes::for_context(ctx))
            })
    }

    /// Whether prefill's attention runs one invocation per (token, head) on `ctx`:
    /// `attention_rows` where chosen, else on for CPU adapters.
    pub(crate) fn attention_rows_on(&self, ctx: &ahma_kernels::GpuContext) -> bool {
        self.attention_rows
            .unwrap_or(ctx.adapter().device_type == wgpu::DeviceType::Cpu)
    }

    /// `matmul_lanes` as reports print it: the shape, or `auto` before a load resolves it.
    pub fn matmul_lanes_name(&self) -> String {
        self.matmul_lanes
            .map_or_else(|| "auto".to_string(), |l| l.to_string())
    }

    /// `matvec_shape` as reports print it: the shape, or `auto` before a load resolves it.
    pub fn matvec_shape_name(&self) -> String {
        self.matvec_shape
            .map_or_else(|| "auto".to_string(), |s| s.to_string())
    }

    /// `matmul_tile` as reports print it: the tile, or `auto` for the kernel's choice.
    pub fn matmul_tile_name(&self) -> String {
        self.matmul_tile
            .map_or_else(|| "auto".to_string(), |t| t.to_string())
    }

    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        if self.n_ctx == 0 || self.n_ctx > u32::MAX as usize / 2 {
            return Err(EngineError::InvalidArgument(format!(
                "n_ctx {} out of range",
                self.n_ctx
            )));
        }
        if self.max_batch == 0 || self.max_batch > 1024 {
            return Err(EngineError::InvalidArgument(format!(
                "max_batch {} must be in 1..=1024",
                self.max_batch
            )));
        }
        if self.penalty_window > 4096 {
            return Err(EngineError::InvalidArgument(format!(
                "penalty_window {} must be at most 4096",
                self.penalty_window
            )));
        }
        if self.attn_split_keys == 0
            || self.attn_split_keys > 4096
            || !self
                .attn_split_keys
                .is_multiple_of(ahma_kernels::attention::CHUNK as usize)
        {
            return Err(EngineError::InvalidArgument(format!(
                "attn_split_keys {} must be a multiple of {} in 64..=4096",
                self.attn_split_keys,
                ahma_kernels::attention::CHUNK
            )));
        }
        if self.upload_window < 4096 {
            return Err(EngineError::InvalidArgument(
                "upload_window must be at least 4096 bytes".into(),
            ));
        }
        Ok(())
    }
}

/// How the next token is chosen. Applied in this order: repetition penalty,
/// then greedy (temperature 0) or temperature, top-k, top-p and a seeded draw.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: u32,
    /// 1 = off.
    pub top_p: f32,
    /// 1 = off. Divides positive and multiplies negative logits of every
    /// distinct token among the last `LoadOptions::penalty_window` tokens
    /// (transformers' `RepetitionPenaltyLogitsProcessor`).
    pub repeat_penalty: f32,
    pub seed: u64,
}

impl SamplingParams {
    /// Argmax, no penalty.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            seed: 0,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::InvalidArgument(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad(format!(
                "repeat_penalty {} must be finite and > 0",
                self.repeat_penalty
            ));
        }
        Ok(())
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_are_rejected() {
        assert!(LoadOptions::default().validate().is_ok());
        for bad in [
            LoadOptions {
                n_ctx: 0,
                ..Default::default()
            },
            LoadOptions {
                max_batch: 0,
                ..Default::default()
            },
            LoadOptions {
                penalty_window: 100_000,
                ..Default::default()
            },
            LoadOptions {
                upload_window: 16,
                ..Default::default()
            },
            LoadOptions {
                attn_split_keys: 100,
                ..Default::default()
            },
            LoadOptions {
                attn_split_keys: 0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_sampling_is_rejected() {
        assert!(SamplingParams::greedy().validate().is_ok());
        let g = SamplingParams::greedy;
        for bad in [
            SamplingParams {
                temperature: -1.0,
                ..g()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..g()
            },
            SamplingParams { top_p: 0.0, ..g() },
            SamplingParams { top_p: 1.5, ..g() },
            SamplingParams {
                repeat_penalty: 0.0,
                ..g()
            },
            SamplingParams {
                repeat_penalty: f32::INFINITY,
                ..g()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

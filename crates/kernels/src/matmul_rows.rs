//! The prefill product laid out for CPU adapters (`shaders/matmul_rows.wgsl`): each invocation
//! [`Lanes::rows`] weight rows and [`Lanes::tokens`] tokens, no workgroup memory and no
//! barrier. Built through [`crate::MatMul`] with [`crate::MatMulOptions::lanes`]; this module
//! holds its shapes and keys.

use ahma_gguf::GgmlType;

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::quant_matrix::type_define;
use crate::registry::ParamsLayout;

/// The work of one workgroup of the row-per-invocation product: `threads` invocations, each
/// owning `rows` weight rows (`threads * rows` in all) for `tokens` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lanes {
    /// Invocations per workgroup.
    pub threads: u32,
    /// Tokens per invocation: 4, 8 or 16.
    pub tokens: u32,
    /// Weight rows per invocation: 1, 2, 4 or 8 (each unit of X then loaded once for all of them).
    pub rows: u32,
}

impl Lanes {
    /// One row per invocation.
    pub const fn new(threads: u32, tokens: u32) -> Lanes {
        Lanes {
            threads,
            tokens,
            rows: 1,
        }
    }

    /// `rows` rows per invocation.
    pub const fn with_rows(threads: u32, tokens: u32, rows: u32) -> Lanes {
        Lanes {
            threads,
            tokens,
            rows,
        }
    }

    /// Weight rows per workgroup.
    pub const fn block_rows(&self) -> u32 {
        self.threads * self.rows
    }

    /// The CPU adapters' default where the lanes of a subgroup share their loads of X
    /// (lavapipe; measured in BENCHMARKS.md).
    pub const CPU: Lanes = Lanes::with_rows(16, 16, 4);

    /// The CPU adapters' default without subgroups (the browser's SwiftShader), where every lane
    /// loads X itself, so more rows per load pay: 8 rows beat 4 by 25-55% on both CPU drivers
    /// there, and lose by 10-35% on lavapipe with subgroups.
    pub const CPU_UNSHARED: Lanes = Lanes::with_rows(16, 16, 8);

    /// The CPU adapters' default on `ctx`: [`Lanes::CPU`] where the shader shares X through
    /// subgroups ([`subgroup_width`] of at least 4), else [`Lanes::CPU_UNSHARED`].
    pub fn for_context(ctx: &GpuContext) -> Lanes {
        if subgroup_width(ctx) >= 4 {
            Lanes::CPU
        } else {
            Lanes::CPU_UNSHARED
        }
    }
}

/// Every shape the shader is built for.
pub const LANES: [Lanes; 13] = [
    Lanes::new(8, 8),
    Lanes::new(16, 4),
    Lanes::new(16, 8),
    Lanes::new(16, 16),
    Lanes::new(32, 8),
    Lanes::new(64, 8),
    Lanes::with_rows(8, 16, 2),
    Lanes::with_rows(16, 8, 2),
    Lanes::with_rows(16, 16, 2),
    Lanes::with_rows(8, 16, 4),
    Lanes::with_rows(16, 8, 4),
    Lanes::with_rows(16, 16, 4),
    Lanes::with_rows(16, 16, 8),
];

impl std::fmt::Display for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.threads, self.tokens)?;
        if self.rows != 1 {
            write!(f, "x{}", self.rows)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Lanes {
    type Err = KernelError;

    /// `THREADSxTOKENS` or `THREADSxTOKENSxROWS`, one of [`LANES`].
    fn from_str(s: &str) -> Result<Lanes, KernelError> {
        let bad = || {
            let known: Vec<String> = LANES.iter().map(|l| l.to_string()).collect();
            KernelError::InvalidArgument(format!(
                "row-per-invocation matmul shape `{s}`: expected one of {}",
                known.join(", ")
            ))
        };
        let parts: Vec<u32> = s
            .split('x')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let lanes = match parts[..] {
            [threads, tokens] => Lanes::new(threads, tokens),
            [threads, tokens, rows] => Lanes::with_rows(threads, tokens, rows),
            _ => return Err(bad()),
        };
        if LANES.contains(&lanes) {
            Ok(lanes)
        } else {
            Err(bad())
        }
    }
}

/// How the product reads X.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XRead {
    /// f32 rows; `x4` where X's offset, stride and row length are multiples of 4 (read as vec4);
    /// `subgroup` the fewest lanes of a subgroup, 4 or 8, where the lanes share their loads of X
    /// through subgroup operations (0: they do not).
    F32 { x4: bool, subgroup: u32 },
    /// Quantized by [`crate::quantize::QuantizeX`] (the `X8` variant, [`crate::MatMul::new_int8`]):
    /// nine words per unit and token instead of 32 floats.
    Int8,
}

/// The key of the variant for weights of type `ty` reading X as `x` says.
pub fn key(ty: GgmlType, lanes: Lanes, x: XRead) -> KernelKey {
    let (x4, subgroup, x8) = match x {
        XRead::F32 { x4, subgroup } => (x4, subgroup, false),
        XRead::Int8 => (false, 0, true),
    };
    KernelKey::new("matmul_rows", "main")
        .define(&type_define(ty), 1)
        .define("WG", lanes.threads)
        .define("TB", lanes.tokens)
        .flag("TB8", lanes.tokens >= 8)
        .flag("TB16", lanes.tokens >= 16)
        .define("RB", lanes.rows)
        .flag("RB2", lanes.rows >= 2)
        .flag("RB4", lanes.rows >= 4)
        .flag("RB8", lanes.rows == 8)
        .flag("MASKED_BYTES", true)
        .flag("X4", x4)
        .flag("X8", x8)
        .flag("SUBGROUPS", subgroup >= 4)
        .flag("SGW8", subgroup >= 8)
}

/// The `subgroup` argument of [`key`] (and of `attention_rows::key`) on `ctx`: 8 or 4 where
/// it uses subgroups of at least that many lanes, else 0.
pub fn subgroup_width(ctx: &GpuContext) -> u32 {
    match ctx.caps().subgroup_min_size {
        _ if !ctx.use_subgroups() => 0,
        8.. => 8,
        4..=7 => 4,
        _ => 0,
    }
}

/// Every variant: every type, shape, X layout and subgroup width, and the quantized X of the
/// types with an integer product ([`crate::matmul::has_int_dot`]: those `new_int8` takes).
pub fn variants() -> Vec<KernelKey> {
    let mut out = Vec::new();
    for ty in GgmlType::ALL {
        for lanes in LANES {
            for x4 in [false, true] {
                for subgroup in [0, 4, 8] {
                    out.push(key(ty, lanes, XRead::F32 { x4, subgroup }));
                }
            }
            if crate::matmul::has_int_dot(ty) {
                out.push(key(ty, lanes, XRead::Int8));
            }
        }
    }
    out
}

/// The same `MatMulParams` as `shaders/matmul.wgsl` (checked against this shader's copy).
pub fn params_layouts() -> Vec<ParamsLayout> {
    crate::matmul::params_layouts()
}

//! Every WGSL file compiled into this crate, and every kernel variant and params struct that the
//! CPU-only tests (`tests/naga_validate.rs`) check.
//!
//! Adding an op is one line in [`OPS`]: `op!(name)` for `shaders/name.wgsl` plus the module
//! `crate::name`, which must provide `pub fn variants() -> Vec<KernelKey>` (every key the op can
//! ever ask for) and `pub fn params_layouts() -> Vec<ParamsLayout>` (its `#[repr(C)]` uniform
//! structs, built with [`params_layout!`](crate::params_layout)). Shared fragments that are only
//! `#include`d are listed with `fragment!(name)`.

use crate::error::KernelError;
use crate::key::KernelKey;
use crate::preprocess::{preprocess, suffix_declared, PreprocessError};

/// One shader file: its stem, its source text, and (for ops) its variants and params structs.
pub struct ShaderEntry {
    pub stem: &'static str,
    pub source: &'static str,
    pub variants: fn() -> Vec<KernelKey>,
    pub params_layouts: fn() -> Vec<ParamsLayout>,
}

/// The layout of a `#[repr(C)]` params struct as Rust sees it, compared with the WGSL struct of
/// the same name by the layout test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsLayout {
    /// Name of the struct, identical in Rust and WGSL.
    pub name: &'static str,
    /// `size_of` the Rust struct.
    pub size: usize,
    /// `(field name, offset_of)` in declaration order; names equal the WGSL member names.
    pub fields: Vec<(&'static str, usize)>,
}

/// Builds a [`ParamsLayout`] for a struct: `params_layout!(MatVecParams { n_in, n_out })`.
#[macro_export]
macro_rules! params_layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        $crate::registry::ParamsLayout {
            name: stringify!($ty),
            size: ::core::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), ::core::mem::offset_of!($ty, $field))),*],
        }
    };
}

macro_rules! source {
    ($stem:ident) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shaders/",
            stringify!($stem),
            ".wgsl"
        ))
    };
}

macro_rules! op {
    ($stem:ident) => {
        ShaderEntry {
            stem: stringify!($stem),
            source: source!($stem),
            variants: crate::$stem::variants,
            params_layouts: crate::$stem::params_layouts,
        }
    };
}

macro_rules! fragment {
    ($stem:ident) => {
        ShaderEntry {
            stem: stringify!($stem),
            source: source!($stem),
            variants: Vec::new,
            params_layouts: Vec::new,
        }
    };
}

/// All shader files. Add one line per new op or fragment.
pub static OPS: &[ShaderEntry] = &[
    fragment!(common),
    fragment!(int8),
    fragment!(quant),
    fragment!(matvec_walk),
    op!(matvec),
    op!(matmul),
    op!(matmul_rows),
    op!(quantize),
    op!(embed),
    op!(step),
    op!(rms_norm),
    op!(rope),
    op!(attention),
    op!(attention_rows),
    op!(elementwise),
    op!(sample),
    op!(read_probe),
];

/// The source text of `shaders/<stem>.wgsl`.
pub fn source(stem: &str) -> Option<&'static str> {
    OPS.iter().find(|e| e.stem == stem).map(|e| e.source)
}

/// Every variant of every op.
pub fn all_variants() -> Vec<KernelKey> {
    OPS.iter().flat_map(|e| (e.variants)()).collect()
}

/// Every params struct of every op, with the stem of the shader that declares it.
pub fn all_params_layouts() -> Vec<(&'static str, ParamsLayout)> {
    OPS.iter()
        .flat_map(|e| (e.params_layouts)().into_iter().map(move |l| (e.stem, l)))
        .collect()
}

/// The final WGSL for `key`: enable directives, then the preprocessed source.
///
/// Conventions every shader follows: the flag `F16` means "this variant uses f16 arithmetic"
/// (adds `enable f16;`, as does `KV_F16`, an f16 KV cache), the flag `SUBGROUPS` means "this variant uses subgroup builtins" (adds
/// `enable subgroups;` for browsers; naga needs no directive for it), the flag `INT_DOT` means
/// "this variant uses packed 4x8 integer dot products" (adds the `requires` directive of that
/// language extension). A key with `V_TYPE` (a
/// ggml type name) and `V_FRAGMENT` (a fragment's stem) gets that fragment appended once more,
/// preprocessed for the second type, with the names it declares and `w` suffixed `_v`.
pub fn wgsl(key: &KernelKey, browser: bool) -> Result<String, KernelError> {
    Ok(wgsl_with(key, browser, &source)?)
}

/// [`wgsl`] with another source lookup (used by tests).
pub fn wgsl_with(
    key: &KernelKey,
    browser: bool,
    lookup: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<String, PreprocessError> {
    let mut body = preprocess(key.shader, &key.defines, lookup)?;
    if let (Some(ty), Some(fragment)) = (key.defines.get("V_TYPE"), key.defines.get("V_FRAGMENT")) {
        // A second weight type: the fragment again, made for that type, every name it declares
        // suffixed `_v`, reading the weights from `w_v` (see `shaders/matvec_walk.wgsl`).
        let mut defines = key.defines.clone();
        defines.retain(|k, _| !k.starts_with("TYPE_") && k != "V_TYPE" && k != "V_FRAGMENT");
        defines.insert(format!("TYPE_{ty}"), "1".to_string());
        let copy = preprocess(fragment, &defines, lookup)?;
        body.push_str(&suffix_declared(&copy, "_v", &["w"]));
    }
    let mut out = String::with_capacity(body.len() + 64);
    if key.defines.contains_key("F16") || key.defines.contains_key("KV_F16") {
        out.push_str("enable f16;\n");
    }
    if browser && key.defines.contains_key("SUBGROUPS") {
        out.push_str("enable subgroups;\n");
    }
    if key.defines.contains_key("INT_DOT") {
        out.push_str("requires packed_4x8_integer_dot_product;\n");
    }
    out.push_str(&body);
    Ok(out)
}

//! CPU-only checks of every shader variant: each one preprocesses, parses and validates with naga
//! (with the f16 and subgroup capabilities the variants may use), and every `#[repr(C)]` params
//! struct has exactly the size and member offsets naga's layouter gives its WGSL twin.

use ahma_kernels::registry;
use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};

fn validator() -> Validator {
    let mut v = Validator::new(
        ValidationFlags::all(),
        Capabilities::SHADER_FLOAT16
            | Capabilities::SHADER_FLOAT16_IN_FLOAT32
            | Capabilities::SUBGROUP
            | Capabilities::SUBGROUP_BARRIER,
    );
    v.subgroup_stages(ShaderStages::COMPUTE);
    v.subgroup_operations(SubgroupOperationSet::all());
    v
}

fn parse(label: &str, src: &str) -> naga::Module {
    match naga::front::wgsl::parse_str(src) {
        Ok(m) => m,
        Err(e) => panic!(
            "{label}: parse error\n{}",
            e.emit_to_string_with_path(src, label)
        ),
    }
}

#[test]
fn every_variant_validates() {
    let variants = registry::all_variants();
    assert!(!variants.is_empty());
    let mut failures = Vec::new();
    for key in &variants {
        let label = key.to_string();
        let src = match registry::wgsl(key, false) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        let module = match naga::front::wgsl::parse_str(&src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!(
                    "{label}: {}",
                    e.emit_to_string_with_path(&src, &label)
                ));
                continue;
            }
        };
        if let Err(e) = validator().validate(&module) {
            failures.push(format!(
                "{label}: {}",
                e.emit_to_string_with_path(&src, &label)
            ));
            continue;
        }
        if !module.entry_points.iter().any(|ep| ep.name == key.entry) {
            failures.push(format!("{label}: no entry point `{}`", key.entry));
        }
    }
    eprintln!("validated {} variants", variants.len());
    assert!(
        failures.is_empty(),
        "{} of {} variants failed:\n{}",
        failures.len(),
        variants.len(),
        failures.join("\n")
    );
}

#[test]
fn variant_labels_are_unique() {
    let variants = registry::all_variants();
    let mut labels: Vec<String> = variants.iter().map(|k| k.to_string()).collect();
    labels.sort();
    let n = labels.len();
    labels.dedup();
    assert_eq!(
        n,
        labels.len(),
        "two variants share a label (and so a cache entry)"
    );
}

#[test]
fn params_structs_match_wgsl_layout() {
    let layouts = registry::all_params_layouts();
    let variants = registry::all_variants();
    let mut checked = 0;
    for (stem, rust) in &layouts {
        // Any variant of the op declares the struct, so the first one is enough; a fragment with
        // no variants of its own is preprocessed without defines.
        let key = variants
            .iter()
            .find(|k| k.shader == *stem)
            .cloned()
            .unwrap_or_else(|| ahma_kernels::KernelKey::new(stem, "main"));
        let src = registry::wgsl(&key, false).unwrap();
        let module = parse(&key.to_string(), &src);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(rust.name))
            .unwrap_or_else(|| panic!("{stem}.wgsl has no struct `{}`", rust.name));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("`{}` in {stem}.wgsl is not a struct", rust.name);
        };
        let wgsl_fields: Vec<(String, usize)> = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect();
        let rust_fields: Vec<(String, usize)> = rust
            .fields
            .iter()
            .map(|(n, o)| (n.to_string(), *o))
            .collect();
        assert_eq!(
            rust_fields, wgsl_fields,
            "{stem}: members of `{}` differ",
            rust.name
        );
        assert_eq!(
            rust.size, *span as usize,
            "{stem}: size of `{}` differs",
            rust.name
        );
        assert_eq!(layouter[handle].size, *span);
        checked += 1;
    }
    eprintln!("checked {checked} params structs");
}

/// The text of the function (or other item) of `src` that starts with the line `head`.
fn fn_body(src: &str, head: &str) -> String {
    let start = src
        .find(&format!("\n{head}"))
        .unwrap_or_else(|| panic!("no `{head}`"));
    let end = src[start..].find("\n}\n").unwrap();
    src[start..start + end].to_string()
}

/// The mat-vec over two weight types carries the type-dependent code twice: once for the first
/// type, once (appended, names suffixed `_v`) for the second, reading `w_v`; the shared code
/// (params, x, the quarter loader) exists once.
#[test]
fn two_type_matvec_appends_a_renamed_copy() {
    use ahma_gguf::GgmlType;
    use ahma_kernels::matvec::{rope_key_mixed, MatVecOptions};
    let key = rope_key_mixed(
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        true,
        true,
        &MatVecOptions::default(),
        true,
    );
    let src = registry::wgsl(&key, false).unwrap();
    for once in [
        "\nfn walk(",
        "\nfn walk_v(",
        "\nfn dot_q(",
        "\nfn dot_q_v(",
        "\nfn load_quarter(",
        "\nstruct MatVecParams",
        "var<storage, read> w_v: array<u32>",
    ] {
        assert_eq!(src.matches(once).count(), 1, "`{once}` in\n{src}");
    }
    // Q5_0's fast dot reads `w`, Q8_0's reads `w_v` (through their unpackers); each walk calls
    // its own type's dot.
    let body = |f: &str| fn_body(&src, f);
    assert!(body("fn dot_q(").contains("q5_0_quarter("));
    assert!(body("fn dot_q_v(").contains("qi_quants_v("));
    assert!(
        body("fn q5_0_quarter(").contains("u * 22u") && body("fn q5_0_quarter(").contains("w[i]")
    );
    assert!(body("fn qi_quants(").contains("q5_0_quarter("));
    assert!(body("fn qi_quants_v(").contains("u * 34u"));
    assert!(body("fn w_u32x2_2_v(").contains("w_v[i]"));
    assert!(body("fn dot4_q_v(").contains("dot1_q_v("));
    assert!(body("fn dot1_q_v(").contains("dot_q_v("));
    assert!(
        body("fn walk_v(").contains("q_elems_v(") && body("fn walk_v(").contains("load_quarter(")
    );

    // With x in 8-bit integers each copy calls its own type's integer product, and the shader
    // declares the language extension it needs.
    let int_dot = MatVecOptions {
        int_dot: true,
        ..Default::default()
    };
    let key = rope_key_mixed(GgmlType::Q5_0, GgmlType::Q8_0, true, true, &int_dot, true);
    let src = registry::wgsl(&key, false).unwrap();
    assert!(src.contains("requires packed_4x8_integer_dot_product;"));
    let body = |f: &str| fn_body(&src, f);
    assert!(body("fn dot1_q(").contains("dot_qi("));
    assert!(body("fn dot1_q_v(").contains("dot_qi_v("));
    assert!(
        body("fn dot_qi(").contains("qi_quants(") && body("fn dot_qi(").contains("dot4I8Packed")
    );
    assert!(body("fn dot_qi_v(").contains("qi_quants_v("));
}

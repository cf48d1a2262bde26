//! A tiny C-like preprocessor for the WGSL sources in `shaders/`.
//!
//! Variants of a kernel (f16 or f32 arithmetic, subgroups or not, workgroup size, GGML type) are
//! made from one source by defines, so there is one readable file per op instead of generated code.
//!
//! Directives (a directive is a line whose first non-blank characters are `#`):
//! - `#include "name.wgsl"` pastes a shared fragment (each file at most once per output, so
//!   fragments may include each other freely);
//! - `#define NAME value` (value may be empty) defines or redefines `NAME`;
//! - `#ifdef NAME`, `#ifndef NAME`, `#if NAME` (true when `NAME` is defined with a value other
//!   than empty or `0`), `#else`, `#endif`.
//!
//! In every other line each identifier that names a define is replaced by its value (once, not
//! recursively), so `var<workgroup> sums: array<f32, WG>;` becomes `array<f32, 256>`.

use std::collections::{BTreeMap, HashSet};

/// Errors found while preprocessing; `file` and `line` (1-based) point at the offending line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    #[error("unknown shader `{0}`")]
    UnknownShader(String),
    #[error("{file}:{line}: `#include` of unknown file `{name}`")]
    UnknownInclude {
        file: String,
        line: usize,
        name: String,
    },
    #[error("{file}:{line}: malformed directive `{text}`")]
    BadDirective {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}:{line}: `{directive}` without a matching `#if`")]
    Unbalanced {
        file: String,
        line: usize,
        directive: String,
    },
    #[error("{file}: {count} `#if` block(s) not closed by `#endif`")]
    MissingEndif { file: String, count: usize },
    #[error("{file}:{line}: includes nested deeper than {max}")]
    IncludeTooDeep {
        file: String,
        line: usize,
        max: usize,
    },
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Preprocesses `stem` (a file stem such as `"matvec"`) with the given defines.
///
/// `lookup` maps a file stem to its source text; [`crate::registry::source`] is the lookup for the
/// shaders compiled into this crate, tests may pass their own.
pub fn preprocess(
    stem: &str,
    defines: &BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<String, PreprocessError> {
    let src = lookup(stem).ok_or_else(|| PreprocessError::UnknownShader(stem.to_string()))?;
    let mut state = State {
        defines: defines.clone(),
        included: HashSet::new(),
        out: String::with_capacity(src.len() * 2),
        lookup,
    };
    state.included.insert(stem.to_string());
    state.run(stem, src, 0)?;
    Ok(state.out)
}

struct State<'a> {
    defines: BTreeMap<String, String>,
    included: HashSet<String>,
    out: String,
    lookup: &'a dyn Fn(&str) -> Option<&'static str>,
}

/// One open `#if` block: whether its current branch is taken, whether the enclosing block was
/// active, and whether `#else` was seen.
struct Cond {
    taken: bool,
    parent_active: bool,
    seen_else: bool,
}

impl State<'_> {
    fn is_true(&self, name: &str) -> bool {
        matches!(self.defines.get(name), Some(v) if !v.is_empty() && v != "0")
    }

    fn run(&mut self, file: &str, src: &str, depth: usize) -> Result<(), PreprocessError> {
        let mut stack: Vec<Cond> = Vec::new();
        for (i, raw) in src.lines().enumerate() {
            let line_no = i + 1;
            let active = stack
                .last()
                .map(|c| c.taken && c.parent_active)
                .unwrap_or(true);
            let trimmed = raw.trim_start();
            let bad = || PreprocessError::BadDirective {
                file: file.to_string(),
                line: line_no,
                text: raw.trim().to_string(),
            };
            let Some(directive) = trimmed.strip_prefix('#') else {
                if active {
                    self.substitute_line(raw);
                }
                continue;
            };
            let mut parts = directive.splitn(2, char::is_whitespace);
            let word = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("").trim();
            match word {
                "include" => {
                    if !active {
                        continue;
                    }
                    let name = rest
                        .strip_prefix('"')
                        .and_then(|r| r.strip_suffix('"'))
                        .ok_or_else(bad)?;
                    let stem = name.strip_suffix(".wgsl").unwrap_or(name);
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        return Err(PreprocessError::IncludeTooDeep {
                            file: file.to_string(),
                            line: line_no,
                            max: MAX_INCLUDE_DEPTH,
                        });
                    }
                    let inc =
                        (self.lookup)(stem).ok_or_else(|| PreprocessError::UnknownInclude {
                            file: file.to_string(),
                            line: line_no,
                            name: name.to_string(),
                        })?;
                    if self.included.insert(stem.to_string()) {
                        self.run(stem, inc, depth + 1)?;
                    }
                }
                "define" => {
                    if !active {
                        continue;
                    }
                    let mut p = rest.splitn(2, char::is_whitespace);
                    let name = p.next().unwrap_or("");
                    if !is_ident(name) {
                        return Err(bad());
                    }
                    let value = p.next().unwrap_or("").trim().to_string();
                    self.defines.insert(name.to_string(), value);
                }
                "ifdef" | "ifndef" | "if" => {
                    if !is_ident(rest) {
                        return Err(bad());
                    }
                    let cond = match word {
                        "ifdef" => self.defines.contains_key(rest),
                        "ifndef" => !self.defines.contains_key(rest),
                        _ => self.is_true(rest),
                    };
                    stack.push(Cond {
                        taken: cond,
                        parent_active: active,
                        seen_else: false,
                    });
                }
                "else" | "endif" => {
                    if !rest.is_empty() && !rest.starts_with("//") {
                        return Err(bad());
                    }
                    let unbalanced = || PreprocessError::Unbalanced {
                        file: file.to_string(),
                        line: line_no,
                        directive: format!("#{word}"),
                    };
                    if word == "endif" {
                        stack.pop().ok_or_else(unbalanced)?;
                    } else {
                        let top = stack.last_mut().ok_or_else(unbalanced)?;
                        if top.seen_else {
                            return Err(unbalanced());
                        }
                        top.seen_else = true;
                        top.taken = !top.taken;
                    }
                }
                _ => return Err(bad()),
            }
        }
        if !stack.is_empty() {
            return Err(PreprocessError::MissingEndif {
                file: file.to_string(),
                count: stack.len(),
            });
        }
        Ok(())
    }

    /// Appends `line` with every identifier that names a define replaced by its value. Text after
    /// `//` is copied unchanged.
    fn substitute_line(&mut self, line: &str) {
        let (code, comment) = match line.find("//") {
            Some(p) => line.split_at(p),
            None => (line, ""),
        };
        for (ident, tok) in tokens(code) {
            match self.defines.get(tok) {
                Some(v) if ident => self.out.push_str(v),
                _ => self.out.push_str(tok),
            }
        }
        self.out.push_str(comment);
        self.out.push('\n');
    }
}

/// `text` (preprocessed WGSL) with every name it declares at module scope (functions, structs,
/// aliases, constants, overrides, module variables) and each name in `also` renamed to
/// `name + suffix`, wherever it occurs as an identifier outside comments and member accesses.
///
/// This lets a shader carry a second copy of a fragment made with other defines (the mat-vec's
/// second weight type, see `registry::wgsl`) next to the first without a name clash: the copy's
/// functions call each other under the new names and read the buffers named in `also` under
/// theirs, while the names it only uses (declared by the including shader) are left alone.
pub fn suffix_declared(text: &str, suffix: &str, also: &[&str]) -> String {
    let mut names: HashSet<String> = also.iter().map(|s| s.to_string()).collect();
    let mut depth = 0i64;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        if depth == 0 {
            if let Some(name) = declared_name(code) {
                names.insert(name.to_string());
            }
        }
        depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
    }
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        let (code, comment) = match line.find("//") {
            Some(p) => line.split_at(p),
            None => (line, ""),
        };
        let mut before = "";
        for (ident, tok) in tokens(code) {
            out.push_str(tok);
            if ident && !before.trim_end().ends_with('.') && names.contains(tok) {
                out.push_str(suffix);
            }
            before = tok;
        }
        out.push_str(comment);
        out.push('\n');
    }
    out
}

/// The name a module-scope declaration line declares (`fn f(`, `struct S {`, `alias A =`,
/// `const C`, `override O`, `var<private> v`, after any `@attribute(...)`s), if it is one.
fn declared_name(code: &str) -> Option<&str> {
    let mut rest = code.trim_start();
    while let Some(r) = rest.strip_prefix('@') {
        let end = r
            .find(|c: char| c == '(' || c.is_whitespace())
            .unwrap_or(r.len());
        rest = &r[end..];
        if rest.starts_with('(') {
            rest = &rest[rest.find(')')? + 1..];
        }
        rest = rest.trim_start();
    }
    let keyword_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (keyword, mut after) = rest.split_at(keyword_end);
    if !matches!(
        keyword,
        "fn" | "struct" | "alias" | "const" | "override" | "var"
    ) {
        return None;
    }
    if keyword == "var" {
        if let Some(r) = after.strip_prefix('<') {
            after = &r[r.find('>')? + 1..];
        }
    }
    let after = after.trim_start();
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    let name = &after[..end];
    is_ident(name).then_some(name)
}

/// `code` cut into identifiers (`true`) and everything else (`false`), in order: a numeric
/// literal such as `1u` or `0x1fu` is one non-identifier piece, so its suffix is never taken for
/// an identifier.
fn tokens(code: &str) -> Vec<(bool, &str)> {
    let bytes = code.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let ident = c.is_ascii_alphabetic() || c == b'_';
        if ident {
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (word(bytes[i]) || bytes[i] == b'.') {
                i += 1;
            }
        } else {
            while i < bytes.len() && !word(bytes[i]) {
                i += 1;
            }
        }
        out.push((ident, &code[start..i]));
    }
    out
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(name: &str) -> Option<&'static str> {
        match name {
            "main" => Some("#include \"frag.wgsl\"\n#include \"frag.wgsl\"\n#ifdef F16\nalias T = f16;\n#else\nalias T = f32;\n#endif\nvar<workgroup> s: array<T, WG>; // WG stays in comments\nlet x = 1u + WGX;\n"),
            "frag" => Some("#ifndef WG\n#define WG 64\n#endif\nfn frag() {}\n"),
            "bad_endif" => Some("#endif\n"),
            "open_if" => Some("#if A\nx\n"),
            "bad_inc" => Some("#include \"nope.wgsl\"\n"),
            "cycle" => Some("#include \"cycle2.wgsl\"\n"),
            "cycle2" => Some("#include \"cycle.wgsl\"\nfn c() {}\n"),
            "if_value" => Some("#if A\nyes\n#else\nno\n#endif\n"),
            _ => None,
        }
    }

    fn run(stem: &str, defs: &[(&str, &str)]) -> Result<String, PreprocessError> {
        let d = defs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        preprocess(stem, &d, &files)
    }

    #[test]
    fn includes_once_defaults_and_substitutes() {
        let out = run("main", &[]).unwrap();
        assert_eq!(out.matches("fn frag").count(), 1);
        assert!(out.contains("alias T = f32;"));
        assert!(out.contains("array<T, 64>; // WG stays in comments"));
        assert!(out.contains("1u + WGX"));
        let out = run("main", &[("F16", "1"), ("WG", "256")]).unwrap();
        assert!(out.contains("alias T = f16;"));
        assert!(out.contains("array<T, 256>;"));
    }

    #[test]
    fn suffix_declared_renames_declarations_and_their_uses_only() {
        let text = "alias wt = f32; // wt stays here\nconst K: u32 = 2u;\nvar<private> T: array<f32, 2>;\n\
            struct S {\n    a: wt,\n}\n@group(0) @binding(1) var<storage, read> b: array<u32>;\n\
            fn f(i: u32) -> wt {\n    let s = S(wt(w[i]));\n    return s.a + T[K] + g(1.5e2f) + f32(b[0]);\n}\n";
        let out = suffix_declared(text, "_v", &["w"]);
        assert!(out.contains("alias wt_v = f32; // wt stays here"));
        assert!(out.contains("const K_v: u32 = 2u;"));
        assert!(out.contains("var<private> T_v: array<f32, 2>;"));
        assert!(out.contains("struct S_v {\n    a: wt_v,"));
        assert!(out.contains("var<storage, read> b_v: array<u32>;"));
        assert!(out.contains("fn f_v(i: u32) -> wt_v {"));
        assert!(out.contains("let s = S_v(wt_v(w_v[i]));"));
        // Member accesses, undeclared names (g) and literals stay.
        assert!(out.contains("return s.a + T_v[K_v] + g(1.5e2f) + f32(b_v[0]);"));
    }

    #[test]
    fn if_checks_value() {
        assert!(run("if_value", &[("A", "1")]).unwrap().contains("yes"));
        assert!(run("if_value", &[("A", "0")]).unwrap().contains("no"));
        assert!(run("if_value", &[]).unwrap().contains("no"));
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            run("bad_endif", &[]),
            Err(PreprocessError::Unbalanced { line: 1, .. })
        ));
        assert!(matches!(
            run("open_if", &[]),
            Err(PreprocessError::MissingEndif { count: 1, .. })
        ));
        assert!(matches!(
            run("bad_inc", &[]),
            Err(PreprocessError::UnknownInclude { .. })
        ));
        assert!(matches!(
            run("nothing", &[]),
            Err(PreprocessError::UnknownShader(_))
        ));
        // A cycle terminates because each file is pasted at most once.
        assert_eq!(run("cycle", &[]).unwrap().matches("fn c()").count(), 1);
    }
}

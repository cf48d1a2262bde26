//! [`KernelKey`]: which shader file, entry point and defines make one pipeline.

use std::collections::BTreeMap;
use std::fmt;

/// Identifies one compiled variant of a kernel. Equal keys share one cached pipeline.
///
/// Its `Display` is the pipeline label seen in GPU captures and error messages: the shader stem,
/// the entry point when it is not `main`, then each define in name order, lower-cased, a flag with
/// value `1` as its bare name and any other value appended to the name (`WG=256` → `wg256`,
/// `TYPE=q4_0` → `type_q4_0`), e.g. `matvec_f16_sg_type_q4_0_wg256`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelKey {
    /// File stem in `shaders/`, e.g. `"matvec"`.
    pub shader: &'static str,
    /// WGSL entry point.
    pub entry: &'static str,
    /// Defines passed to the preprocessor.
    pub defines: BTreeMap<String, String>,
}

impl KernelKey {
    /// A key with no defines.
    pub fn new(shader: &'static str, entry: &'static str) -> KernelKey {
        KernelKey {
            shader,
            entry,
            defines: BTreeMap::new(),
        }
    }

    /// Adds a define (builder style).
    pub fn define(mut self, name: &str, value: impl fmt::Display) -> KernelKey {
        self.defines.insert(name.to_string(), value.to_string());
        self
    }

    /// Adds the flag `name = 1` when `on` (builder style); absent flags are simply not defined.
    pub fn flag(self, name: &str, on: bool) -> KernelKey {
        if on {
            self.define(name, 1)
        } else {
            self
        }
    }
}

impl fmt::Display for KernelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shader)?;
        if self.entry != "main" {
            write!(f, "_{}", self.entry)?;
        }
        for (name, value) in &self.defines {
            let name = name.to_ascii_lowercase();
            let value = value.to_ascii_lowercase();
            if value == "1" {
                write!(f, "_{name}")?;
            } else if value.starts_with(|c: char| c.is_ascii_digit()) {
                write!(f, "_{name}{value}")?;
            } else {
                write!(f, "_{name}_{value}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_readable() {
        let k = KernelKey::new("matvec", "main")
            .define("TYPE", "Q4_0")
            .flag("F16", true)
            .flag("SG", true)
            .flag("ACC", false)
            .define("WG", 256);
        assert_eq!(k.to_string(), "matvec_f16_sg_type_q4_0_wg256");
        assert_eq!(
            KernelKey::new("rope", "adjacent").to_string(),
            "rope_adjacent"
        );
    }
}

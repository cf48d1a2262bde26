// Shared helpers for every kernel. Included with `#include "common.wgsl"`.

// Ceil division for dispatch-size arithmetic inside shaders.
fn div_ceil_u32(a: u32, b: u32) -> u32 {
    return (a + b - 1u) / b;
}

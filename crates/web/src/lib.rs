//! Ahma in the browser: the leptos front end and the engine worker, compiled
//! into one wasm module. `index.html` calls [`start_app`] on the UI thread;
//! `worker.js` calls [`worker::worker_main`] in a dedicated module worker. The
//! two talk only through the typed messages of [`protocol`].

pub mod app;
pub mod markdown;
pub mod protocol;
pub mod worker;

use wasm_bindgen::prelude::*;

/// The message of a JS error value (an `Error`, a `DOMException` or anything else).
pub fn js_message(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    let get = |k: &str| {
        js_sys::Reflect::get(e, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
    };
    match (get("name"), get("message")) {
        (Some(n), Some(m)) if !m.is_empty() => format!("{n}: {m}"),
        (_, Some(m)) => m,
        _ => format!("{e:?}"),
    }
}

/// Bytes of this wasm instance's linear memory (its heap's high-water mark:
/// wasm memory never shrinks).
pub fn wasm_heap_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        wasm_bindgen::memory()
            .unchecked_into::<js_sys::WebAssembly::Memory>()
            .buffer()
            .unchecked_into::<js_sys::ArrayBuffer>()
            .byte_length() as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Entry point of the UI thread.
#[wasm_bindgen]
pub fn start_app() {
    app::mount();
}

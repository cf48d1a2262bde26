//! The UI side of the worker: starting it, sending typed messages, and the
//! promises of `window.ahmaDebug` waiting for answers.

use std::cell::RefCell;
use std::collections::HashMap;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::protocol::{FromWorker, ToWorker};

thread_local! {
    static WORKER: RefCell<Option<web_sys::Worker>> = const { RefCell::new(None) };
    /// `generateIds` promises by request id: (resolve, reject).
    static PENDING: RefCell<HashMap<u64, (js_sys::Function, js_sys::Function)>> = RefCell::new(HashMap::new());
    /// `cacheEntries` promises, resolved by the next `Cache` message.
    static CACHE_WAITERS: RefCell<Vec<js_sys::Function>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
    /// Messages sent before the worker said `Hello` (its listener is set only after its wasm
    /// module is instantiated; anything posted earlier would be lost).
    static QUEUE: RefCell<Option<Vec<js_sys::Object>>> = const { RefCell::new(Some(Vec::new())) };
}

/// The worker is listening: deliver what was queued.
pub fn worker_ready() {
    let queued = QUEUE.with(|q| q.borrow_mut().take()).unwrap_or_default();
    WORKER.with(|s| {
        if let Some(w) = s.borrow().as_ref() {
            for m in &queued {
                let _ = w.post_message(m);
            }
        }
    });
}

pub fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let v = n.get();
        n.set(v + 1);
        v
    })
}

/// Starts `worker.js` (a module worker next to the page) and routes its
/// messages to `on_msg`.
pub fn start(on_msg: impl Fn(FromWorker) + 'static) -> Result<(), String> {
    let opts = web_sys::WorkerOptions::new();
    opts.set_type(web_sys::WorkerType::Module);
    opts.set_name("ahma-engine");
    let w = web_sys::Worker::new_with_options("./worker.js", &opts)
        .map_err(|e| crate::js_message(&e))?;
    let cb = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
        let json = js_sys::Reflect::get(&ev.data(), &"msg".into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        match serde_json::from_str::<FromWorker>(&json) {
            Ok(m) => on_msg(m),
            Err(e) => {
                web_sys::console::error_1(&format!("bad message from the worker: {e}").into())
            }
        }
    });
    w.set_onmessage(Some(cb.as_ref().unchecked_ref()));
    cb.forget();
    WORKER.with(|s| *s.borrow_mut() = Some(w));
    Ok(())
}

/// Sends a message (and `File`s beside it).
pub fn send_with_files(msg: &ToWorker, files: &[web_sys::File]) {
    let Ok(json) = serde_json::to_string(msg) else {
        return;
    };
    let obj = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&obj, &"msg".into(), &JsValue::from_str(&json));
    if !files.is_empty() {
        let arr = js_sys::Array::new();
        for f in files {
            arr.push(f);
        }
        let _ = js_sys::Reflect::set(&obj, &"files".into(), &arr);
    }
    let obj = QUEUE.with(|q| match q.borrow_mut().as_mut() {
        Some(queue) => {
            queue.push(obj);
            None
        }
        None => Some(obj),
    });
    if let Some(obj) = obj {
        WORKER.with(|s| {
            if let Some(w) = s.borrow().as_ref() {
                let _ = w.post_message(&obj);
            }
        });
    }
}

pub fn send(msg: &ToWorker) {
    send_with_files(msg, &[]);
}

pub fn add_pending(id: u64, resolve: js_sys::Function, reject: js_sys::Function) {
    PENDING.with(|p| p.borrow_mut().insert(id, (resolve, reject)));
}

/// Settles a debug promise for request `id`; true if there was one.
pub fn settle(id: u64, ok: Result<JsValue, JsValue>) -> bool {
    let Some((res, rej)) = PENDING.with(|p| p.borrow_mut().remove(&id)) else {
        return false;
    };
    let _ = match ok {
        Ok(v) => res.call1(&JsValue::NULL, &v),
        Err(e) => rej.call1(&JsValue::NULL, &e),
    };
    true
}

pub fn wait_cache(resolve: js_sys::Function) {
    CACHE_WAITERS.with(|w| w.borrow_mut().push(resolve));
}

pub fn resolve_cache(value: &JsValue) {
    let waiters = CACHE_WAITERS.with(|w| std::mem::take(&mut *w.borrow_mut()));
    for f in waiters {
        let _ = f.call1(&JsValue::NULL, value);
    }
}

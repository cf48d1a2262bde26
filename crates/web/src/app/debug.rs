//! `window.ahmaDebug`: a small console API (also what the browser tests use).
//!
//! - `state()` → the app state string (`data-state` of the status line)
//! - `generateIds(ids, maxNew)` → Promise of the greedy continuation ids (no
//!   template, no BOS added, exactly `maxNew` ids, not stopping at EOS)
//! - `cacheEntries()` → Promise of the stored models
//! - `importConversation({title, messages: [{role, content}]})` → opens it
//! - `lastAnswerIds()` → the ids of the last answer
//! - `modelInfo()` → facts about the loaded model (sizes, wasm heap, load time)
//! - `progress()` → the current download/load progress (with the worker's wasm heap)
//! - `loseDevice(quiet)` → destroys the worker's GPU device, as a driver reset
//!   would; the worker notices within a second and the UI offers to reload
//!   (with `quiet = true` the idle watchdog stays silent, so the loss is met by
//!   the next GPU work instead, e.g. a message being answered)

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use super::persist::{Conv, Msg};
use super::{bridge, serde_wasm, AppState, Ui};
use crate::protocol::{Role, ToWorker};

#[derive(serde::Deserialize)]
struct Import {
    #[serde(default)]
    title: String,
    messages: Vec<ImportMsg>,
}

#[derive(serde::Deserialize)]
struct ImportMsg {
    role: Role,
    content: String,
}

fn set(obj: &js_sys::Object, name: &str, f: &JsValue) {
    let _ = js_sys::Reflect::set(obj, &name.into(), f);
}

pub fn install(ui: Ui) {
    let Some(w) = web_sys::window() else { return };
    let obj = js_sys::Object::new();

    let state =
        Closure::<dyn Fn() -> JsValue>::new(move || ui.state.get_untracked().as_str().into());
    set(&obj, "state", state.as_ref());
    state.forget();

    let gen = Closure::<dyn Fn(JsValue, JsValue) -> js_sys::Promise>::new(
        move |ids: JsValue, n: JsValue| {
            let ids: Vec<u32> = js_sys::Array::from(&ids)
                .iter()
                .filter_map(|v| v.as_f64())
                .map(|v| v as u32)
                .collect();
            let max_new = n.as_f64().unwrap_or(1.0) as u32;
            js_sys::Promise::new(&mut |resolve, reject| {
                if ui.state.get_untracked() != AppState::Ready {
                    let _ = reject.call1(&JsValue::NULL, &"the model is not ready".into());
                    return;
                }
                let id = bridge::next_id();
                bridge::add_pending(id, resolve, reject);
                ui.state.set(AppState::Generating);
                bridge::send(&ToWorker::GenerateIds {
                    id,
                    ids: ids.clone(),
                    max_new,
                });
            })
        },
    );
    set(&obj, "generateIds", gen.as_ref());
    gen.forget();

    let cache = Closure::<dyn Fn() -> js_sys::Promise>::new(move || {
        js_sys::Promise::new(&mut |resolve, _reject| {
            bridge::wait_cache(resolve);
            bridge::send(&ToWorker::ListCache);
        })
    });
    set(&obj, "cacheEntries", cache.as_ref());
    cache.forget();

    let import = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |v: JsValue| {
        let text = js_sys::JSON::stringify(&v)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default();
        match serde_json::from_str::<Import>(&text) {
            Ok(imp) => {
                let mut c = Conv::new();
                c.title = imp.title;
                c.messages = imp
                    .messages
                    .into_iter()
                    .map(|m| Msg {
                        role: m.role,
                        content: m.content,
                        stopped: false,
                    })
                    .collect();
                c.title_from_messages();
                let id = c.id.clone();
                ui.convs.update(|cs| cs.insert(0, c));
                ui.active.set(Some(id.clone()));
                ui.save_convs();
                id.into()
            }
            Err(e) => js_sys::Error::new(&format!("importConversation: {e}")).into(),
        }
    });
    set(&obj, "importConversation", import.as_ref());
    import.forget();

    let last =
        Closure::<dyn Fn() -> JsValue>::new(move || serde_wasm(&ui.last_ids.get_untracked()));
    set(&obj, "lastAnswerIds", last.as_ref());
    last.forget();

    let info = Closure::<dyn Fn() -> JsValue>::new(move || serde_wasm(&ui.model.get_untracked()));
    set(&obj, "modelInfo", info.as_ref());
    info.forget();

    let progress = Closure::<dyn Fn() -> JsValue>::new(move || {
        let p = ui.progress.get_untracked();
        serde_wasm(&p.map(|p| {
            serde_json::json!({
                "phase": p.phase, "bytes": p.bytes, "total": p.total,
                "bytes_per_s": p.bytes_per_s, "wasm_heap_bytes": p.heap,
            })
        }))
    });
    set(&obj, "progress", progress.as_ref());
    progress.forget();

    let lose = Closure::<dyn Fn(JsValue)>::new(move |quiet: JsValue| {
        bridge::send(&ToWorker::LoseDevice {
            quiet: quiet.as_bool().unwrap_or(false),
        })
    });
    set(&obj, "loseDevice", lose.as_ref());
    lose.forget();

    let _ = js_sys::Reflect::set(&w, &"ahmaDebug".into(), &obj);
}

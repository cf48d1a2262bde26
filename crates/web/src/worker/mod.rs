//! The engine worker: owns the GPU device, the model, the tokenizer and the
//! model store; talks to the UI only through [`crate::protocol`].
//!
//! Everything here is single-threaded async on the worker's event loop. Long
//! operations (a load, a generation) await the GPU or the network at every step,
//! so `stop` and `cancel` messages are seen within one chunk or one token.

mod fetch;
mod load;
pub(crate) mod store;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use ahma_chat::{ChatTemplate, Conversation, StreamDecoder, Tokenizer};
use ahma_engine::{EngineError, Model, SamplingParams};
use ahma_kernels::{ContextOptions, GpuContext};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::DedicatedWorkerGlobalScope;

use crate::protocol::{
    AdapterInfo, ErrorKind, FromWorker, GenStats, ModelInfo, ModelSource, Role, StopKind, ToWorker,
    Tuning,
};

/// Posts a message to the UI thread.
pub(crate) fn post(msg: &FromWorker) {
    let Ok(json) = serde_json::to_string(msg) else {
        return;
    };
    let obj = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&obj, &"msg".into(), &JsValue::from_str(&json));
    let g: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = g.post_message(&obj);
}

pub(crate) fn now_s() -> f64 {
    js_sys::Date::now() / 1000.0
}

/// The worker's monotonic clock in seconds (`performance.now()`, finer than `Date.now()`'s
/// milliseconds): the engine's CPU time per decoded token is read from it.
pub(crate) fn clock_s() -> f64 {
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    g.performance().map_or_else(js_sys::Date::now, |p| p.now()) / 1000.0
}

/// A loaded model with its tokenizer and the token ids its KV cache holds.
pub(crate) struct Loaded {
    pub model: Model,
    /// `None` when the GGUF has no vocabulary and no tokenizer.json was given:
    /// benchmarks and raw-id generation still work, chat does not.
    pub tok: Option<(Tokenizer, ChatTemplate)>,
    pub cached: Vec<u32>,
    pub info: ModelInfo,
}

#[derive(Default)]
pub(crate) struct State {
    pub ctx: RefCell<Option<Arc<GpuContext>>>,
    pub loaded: RefCell<Option<Loaded>>,
    /// A load or a generation is running.
    pub busy: Cell<bool>,
    pub cancel: Cell<bool>,
    pub stop: Cell<bool>,
    pub abort: RefCell<Option<web_sys::AbortController>>,
    /// The last model loaded, for a reload after a device loss.
    pub last: RefCell<Option<(ModelSource, Vec<web_sys::File>)>>,
    /// The benchmark page's engine options for the last load (kept for a reload).
    pub tuning: RefCell<Tuning>,
    /// Generation of the device watchdog: a watchdog ends when this moves on.
    pub watch: Cell<u64>,
}

impl State {
    /// Ends the running device watchdog, if any; returns the next generation.
    fn next_watch(&self) -> u64 {
        let gen = self.watch.get().wrapping_add(1);
        self.watch.set(gen);
        gen
    }
}

/// How often the watchdog looks at an idle device.
const WATCH_MS: i32 = 1000;

/// Resolves after `ms` milliseconds (a timer on the worker's event loop).
async fn sleep_ms(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let _ = g.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// Watches the device of a loaded model while nothing runs: a device lost
/// while idle (a driver reset, the GPU process restarting, a laptop waking)
/// is reported at once, with the reload offer, instead of when the user next
/// sends a message. A running load or generation meets the loss itself and
/// reports it as its own error; this one only looks while idle.
pub(crate) fn watch_device(st: Rc<State>, ctx: Arc<GpuContext>) {
    let gen = st.next_watch();
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            sleep_ms(WATCH_MS).await;
            let current = st
                .ctx
                .borrow()
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &ctx));
            if st.watch.get() != gen || !current {
                return;
            }
            if st.busy.get() {
                continue;
            }
            if let Some(why) = ctx.lost() {
                *st.ctx.borrow_mut() = None;
                if st.loaded.borrow_mut().take().is_some() {
                    post(&FromWorker::error(
                        None,
                        ErrorKind::DeviceLost,
                        format!("the GPU device was lost while idle ({why})"),
                    ));
                }
                return;
            }
        }
    });
}

/// Entry point of the worker (called by `worker.js` after the wasm module is
/// instantiated).
#[wasm_bindgen]
pub fn worker_main() {
    let st = Rc::new(State::default());
    let g: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_msg =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let data = ev.data();
            let json = js_sys::Reflect::get(&data, &"msg".into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            let files: Vec<web_sys::File> = js_sys::Reflect::get(&data, &"files".into())
                .ok()
                .filter(js_sys::Array::is_array)
                .map(|v| {
                    js_sys::Array::from(&v)
                        .iter()
                        .filter_map(|f| f.dyn_into::<web_sys::File>().ok())
                        .collect()
                })
                .unwrap_or_default();
            match serde_json::from_str::<ToWorker>(&json) {
                Ok(msg) => handle(st.clone(), msg, files),
                Err(e) => post(&FromWorker::error(
                    None,
                    ErrorKind::Internal,
                    format!("unreadable message from the page: {e}"),
                )),
            }
        });
    g.set_onmessage(Some(on_msg.as_ref().unchecked_ref()));
    on_msg.forget();
    post(&FromWorker::Hello);
}

fn handle(st: Rc<State>, msg: ToWorker, files: Vec<web_sys::File>) {
    match msg {
        ToWorker::Stop => st.stop.set(true),
        ToWorker::Cancel => {
            st.cancel.set(true);
            if let Some(a) = st.abort.borrow().as_ref() {
                a.abort();
            }
        }
        ToWorker::ResetChat => {
            if let Some(l) = st.loaded.borrow_mut().as_mut() {
                l.model.discard_pending();
                l.model.reset();
                l.cached.clear();
            }
        }
        ToWorker::Probe => wasm_bindgen_futures::spawn_local(async move {
            probe(&st).await;
        }),
        ToWorker::ListCache => wasm_bindgen_futures::spawn_local(async move {
            list_cache().await;
        }),
        ToWorker::DeleteModel { key } => wasm_bindgen_futures::spawn_local(async move {
            let in_use = st
                .loaded
                .borrow()
                .as_ref()
                .is_some_and(|l| l.info.key.as_deref() == Some(key.as_str()));
            if in_use {
                // Free the GPU copy too: the model is gone.
                *st.loaded.borrow_mut() = None;
            }
            let res = async {
                let dir = store::models_dir().await?;
                store::delete(&dir, &key).await
            }
            .await;
            if let Err(e) = res {
                post(&FromWorker::error(None, ErrorKind::Storage, e.0));
            }
            list_cache().await;
        }),
        ToWorker::Check { source, network } => wasm_bindgen_futures::spawn_local(async move {
            if let Err((kind, m)) = load::check(&st, &source, &files, network).await {
                post(&FromWorker::error(None, kind, m));
            }
        }),
        ToWorker::Load { source, tuning } => exclusive(st, move |st| async move {
            *st.last.borrow_mut() = Some((source.clone(), files.clone()));
            *st.tuning.borrow_mut() = tuning;
            load::load(&st, source, files).await;
            // Not awaited here: `Ready` is out, and the worker must be free (busy
            // cleared) by the time the UI can answer it with a generation.
            wasm_bindgen_futures::spawn_local(list_cache());
        }),
        ToWorker::Reload => exclusive(st, move |st| async move {
            // After a device loss: a fresh device, and the model again (from the store).
            *st.loaded.borrow_mut() = None;
            *st.ctx.borrow_mut() = None;
            let last = st.last.borrow().clone();
            match last {
                Some((source, files)) => load::load(&st, source, files).await,
                None => post(&FromWorker::error(
                    None,
                    ErrorKind::NoModel,
                    "no model to reload",
                )),
            }
        }),
        ToWorker::LoseDevice { quiet } => {
            if quiet {
                st.next_watch();
            }
            if let Some(ctx) = st.ctx.borrow().as_ref() {
                ctx.device().destroy();
            }
        }
        ToWorker::Generate {
            id,
            system,
            messages,
            settings,
            do_sample,
        } => with_model(st, Some(id), move |st, l| {
            Box::pin(
                async move { generate(&st, l, id, system, messages, settings, do_sample).await },
            )
        }),
        ToWorker::GenerateIds { id, ids, max_new } => with_model(st, Some(id), move |_st, l| {
            Box::pin(async move { generate_ids(l, id, ids, max_new).await })
        }),
        ToWorker::Bench {
            prompt_tokens,
            gen_tokens,
            read_probe,
        } => with_model(st, None, move |st, l| {
            Box::pin(async move { bench(&st, l, prompt_tokens, gen_tokens, read_probe).await })
        }),
    }
}

/// Runs a load-like task unless another one (or a generation) is running.
fn exclusive<F, Fut>(st: Rc<State>, f: F)
where
    F: FnOnce(Rc<State>) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    if st.busy.replace(true) {
        post(&FromWorker::error(
            None,
            ErrorKind::Busy,
            "the model is busy",
        ));
        return;
    }
    wasm_bindgen_futures::spawn_local(async move {
        f(st.clone()).await;
        st.busy.set(false);
    });
}

type Task<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), EngineError>> + 'a>>;

/// Runs `f` with the model taken out of the state (so no borrow is held across
/// awaits), puts it back afterwards and reports engine errors.
fn with_model(
    st: Rc<State>,
    id: Option<u64>,
    f: impl for<'a> FnOnce(Rc<State>, &'a mut Loaded) -> Task<'a> + 'static,
) {
    if st.busy.replace(true) {
        post(&FromWorker::error(id, ErrorKind::Busy, "the model is busy"));
        return;
    }
    let Some(mut l) = st.loaded.borrow_mut().take() else {
        st.busy.set(false);
        post(&FromWorker::error(
            id,
            ErrorKind::NoModel,
            "no model is loaded",
        ));
        return;
    };
    st.stop.set(false);
    wasm_bindgen_futures::spawn_local(async move {
        let res = f(st.clone(), &mut l).await;
        if let Err(e) = res {
            let lost = e.needs_new_device();
            post(&FromWorker::error(id, engine_kind(&e), e.to_string()));
            if lost {
                // The model's buffers died with the device: the UI offers a reload.
                *st.ctx.borrow_mut() = None;
                st.busy.set(false);
                return;
            }
            l.model.discard_pending();
            l.cached.truncate(l.model.n_past());
        }
        *st.loaded.borrow_mut() = Some(l);
        st.busy.set(false);
    });
}

pub(crate) fn engine_kind(e: &EngineError) -> ErrorKind {
    match e {
        EngineError::DoesNotFit { .. } => ErrorKind::DoesNotFit,
        EngineError::ContextOverflow { .. } => ErrorKind::ContextFull,
        e if e.needs_new_device() => ErrorKind::DeviceLost,
        EngineError::Gguf(_) | EngineError::Unsupported(_) | EngineError::Incomplete(_) => {
            ErrorKind::BadModel
        }
        _ => ErrorKind::Internal,
    }
}

pub(crate) fn adapter_info(ctx: &GpuContext) -> AdapterInfo {
    let a = ctx.adapter();
    let caps = ctx.caps();
    AdapterInfo {
        name: if a.name.is_empty() {
            "WebGPU adapter".into()
        } else {
            a.name.clone()
        },
        backend: format!("{:?}", a.backend),
        f16: ctx.use_f16(),
        subgroups: ctx.use_subgroups(),
        max_buffer_size: caps.max_buffer_size,
        max_binding_size: caps.max_storage_buffer_binding_size,
    }
}

fn has_webgpu() -> bool {
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    js_sys::Reflect::get(&g.navigator(), &"gpu".into())
        .is_ok_and(|v| !v.is_undefined() && !v.is_null())
}

/// The device, created on first use.
pub(crate) async fn ensure_ctx(st: &State) -> Result<Arc<GpuContext>, (ErrorKind, String)> {
    if let Some(c) = st.ctx.borrow().as_ref() {
        return Ok(c.clone());
    }
    if !has_webgpu() {
        return Err((
            ErrorKind::NoWebGpu,
            "this browser has no WebGPU (navigator.gpu is missing)".into(),
        ));
    }
    let ctx = GpuContext::new(ContextOptions::default())
        .await
        .map_err(|e| (ErrorKind::NoWebGpu, e.to_string()))?;
    // The engine's API shares the context as an Arc (threads natively); on the
    // web there is one thread and wgpu's WebGPU handles are not Send.
    #[allow(clippy::arc_with_non_send_sync)]
    let ctx = Arc::new(ctx);
    *st.ctx.borrow_mut() = Some(ctx.clone());
    Ok(ctx)
}

async fn probe(st: &State) {
    match ensure_ctx(st).await {
        Ok(ctx) => post(&FromWorker::Adapter {
            info: adapter_info(&ctx),
        }),
        Err((_, reason)) => post(&FromWorker::NoWebGpu { reason }),
    }
}

pub(crate) async fn list_cache() {
    match store::list().await {
        Ok(entries) => post(&FromWorker::Cache {
            entries,
            quota: store::quota().await,
        }),
        // Listing is informational: never turn it into an error in the middle of a load.
        Err(e) => {
            web_sys::console::warn_1(&format!("listing the stored models failed: {}", e.0).into())
        }
    }
}

fn random_seed() -> u64 {
    let a = (js_sys::Math::random() * 4294967296.0) as u64;
    let b = (js_sys::Math::random() * 4294967296.0) as u64;
    (a << 32) | b
}

/// `limit`: the context this generation may use (max_length, at most n_ctx).
fn stats(
    l: &Loaded,
    limit: usize,
    prompt: usize,
    fed: usize,
    generated: usize,
    t_prefill: f64,
    t_decode: f64,
) -> GenStats {
    GenStats {
        prompt_tokens: prompt as u32,
        prompt_fed: fed as u32,
        generated: generated as u32,
        prefill_tokens_per_s: if t_prefill > 0.0 {
            fed as f64 / t_prefill
        } else {
            0.0
        },
        decode_tokens_per_s: if t_decode > 0.0 && generated > 1 {
            (generated - 1) as f64 / t_decode
        } else {
            0.0
        },
        ctx_used: l.model.n_past() as u32,
        ctx_max: limit as u32,
    }
}

#[allow(clippy::too_many_arguments)]
async fn generate(
    st: &State,
    l: &mut Loaded,
    id: u64,
    system: Option<String>,
    messages: Vec<crate::protocol::ChatMessage>,
    settings: ahma_chat::GenerationSettings,
    do_sample: bool,
) -> Result<(), EngineError> {
    let fail = |kind: ErrorKind, m: String| post(&FromWorker::error(Some(id), kind, m));
    let Some((tok, template)) = l.tok.as_ref() else {
        fail(
            ErrorKind::Tokenizer,
            "this model file has no vocabulary: open its tokenizer.json together with the .gguf"
                .into(),
        );
        return Ok(());
    };
    if let Err(e) = settings.validate() {
        fail(ErrorKind::Internal, e.to_string());
        return Ok(());
    }
    let mut conv = Conversation::new(system.filter(|s| !s.trim().is_empty()));
    for m in messages {
        let r = match m.role {
            Role::User => conv.push_user(m.content),
            Role::Assistant => conv.push_assistant(m.content),
        };
        if let Err(e) = r {
            fail(ErrorKind::Internal, e.to_string());
            return Ok(());
        }
    }
    let n_ctx = l.model.options().n_ctx;
    let limit = (settings.max_length as usize).min(n_ctx);
    // Keep room for an answer: a quarter of the limit, at most 512 tokens.
    let reserve = (limit / 4).clamp(1, 512);
    let prompt = match conv.fit(template, tok, limit, reserve) {
        Ok(p) => p,
        Err(e) => {
            fail(ErrorKind::ContextFull, e.to_string());
            return Ok(());
        }
    };
    let ids = prompt.ids;
    l.model.discard_pending();
    let common = l
        .cached
        .iter()
        .zip(&ids)
        .take_while(|(a, b)| a == b)
        .count()
        .min(ids.len() - 1)
        .min(l.model.n_past());
    l.model.rewind(common)?;
    l.cached.truncate(common);
    l.model.set_sampling(SamplingParams {
        temperature: if do_sample { settings.temperature } else { 0.0 },
        top_k: settings.top_k,
        top_p: settings.top_p,
        repeat_penalty: settings.repetition_penalty,
        seed: if settings.seed != 0 {
            settings.seed
        } else {
            random_seed()
        },
    })?;
    let eos = tok.eos_id();
    // transformers' min_length: no end-of-sequence while the sequence (prompt
    // included) is shorter; the sampler gives EOS a -inf logit until then.
    let min_len = settings.min_length as usize;
    let suppress = |len: usize| eos.filter(|_| len < min_len);
    l.model.suppress(suppress(ids.len()))?;
    let t0 = now_s();
    let mut next = l.model.prefill(&ids[common..]).await?;
    let t_prefill = now_s() - t0;
    l.cached.extend_from_slice(&ids[common..]);
    let fed = ids.len() - common;
    let mut out: Vec<u32> = Vec::new();
    let mut text = String::new();
    let mut dec = StreamDecoder::new(true);
    let t1 = now_s();
    let mut last_stats = t1;
    let stop = loop {
        if Some(next) == eos {
            break StopKind::Eos;
        }
        out.push(next);
        match dec.push(tok, next) {
            Ok(Some(piece)) => {
                text.push_str(&piece);
                post(&FromWorker::Token { id, text: piece });
            }
            Ok(None) => {}
            Err(e) => {
                fail(ErrorKind::Tokenizer, e.to_string());
                break StopKind::Stopped;
            }
        }
        if st.stop.get() {
            break StopKind::Stopped;
        }
        if ids.len() + out.len() >= limit || l.model.room() == 0 {
            break StopKind::MaxLength;
        }
        l.model.suppress(suppress(ids.len() + out.len()))?;
        next = l.model.decode().await?;
        l.cached.push(*out.last().unwrap_or(&next));
        if now_s() - last_stats > 0.5 {
            last_stats = now_s();
            post(&FromWorker::Stats {
                stats: stats(l, limit, ids.len(), fed, out.len(), t_prefill, now_s() - t1),
            });
        }
    };
    let t_decode = now_s() - t1;
    l.model.discard_pending();
    l.cached.truncate(l.model.n_past());
    if let Ok(rest) = dec.finish(tok) {
        if !rest.is_empty() {
            text.push_str(&rest);
            post(&FromWorker::Token { id, text: rest });
        }
    }
    post(&FromWorker::Stats {
        stats: stats(l, limit, ids.len(), fed, out.len(), t_prefill, t_decode),
    });
    post(&FromWorker::Done {
        id,
        ids: out,
        text,
        stop,
        dropped_messages: prompt.dropped_messages as u32,
    });
    Ok(())
}

async fn generate_ids(
    l: &mut Loaded,
    id: u64,
    ids: Vec<u32>,
    max_new: u32,
) -> Result<(), EngineError> {
    l.model.discard_pending();
    l.model.reset();
    l.cached.clear();
    l.model.set_sampling(SamplingParams::greedy())?;
    let mut out = Vec::new();
    if max_new > 0 {
        out.push(l.model.prefill(&ids).await?);
        while out.len() < max_new as usize {
            out.push(l.model.decode().await?);
        }
    }
    l.model.discard_pending();
    l.model.reset();
    let text = l
        .tok
        .as_ref()
        .and_then(|(t, _)| t.decode(&out, true).ok())
        .unwrap_or_default();
    post(&FromWorker::Done {
        id,
        ids: out,
        text,
        stop: StopKind::MaxLength,
        dropped_messages: 0,
    });
    Ok(())
}

/// The same measurement as `ahma bench`, in the browser.
async fn bench(
    st: &State,
    l: &mut Loaded,
    prompt_tokens: u32,
    gen_tokens: u32,
    read_probe: bool,
) -> Result<(), EngineError> {
    let ctx = st.ctx.borrow().clone();
    l.model.discard_pending();
    l.model.reset();
    l.cached.clear();
    l.model.set_sampling(SamplingParams::greedy())?;
    let n_vocab = l.model.config().n_vocab as u64;
    let prompt: Vec<u32> = (0..prompt_tokens.max(1) as u64)
        .map(|i| (7 + (i * 7919) % (n_vocab - 7).max(1)) as u32)
        .collect();
    let t0 = now_s();
    l.model.prefill(&prompt).await?;
    let prefill_s = now_s() - t0;
    l.model.reset_stats();
    let t1 = now_s();
    let n_dec = gen_tokens.max(2) - 1;
    for _ in 0..n_dec {
        l.model.decode().await?;
    }
    let decode_s = now_s() - t1;
    let stats = l.model.stats();
    let plan = l.model.memory_plan().clone();
    l.model.discard_pending();
    l.model.reset();
    let a = ctx.as_deref().map(adapter_info).unwrap_or_default();
    let lanes = ctx.as_deref().map_or((0, 0), |c| {
        (c.caps().subgroup_min_size, c.caps().subgroup_max_size)
    });
    let n = n_dec as f64;
    let weight_bytes_per_token = l.info.weights_per_token;
    let decode_tps = n / decode_s;
    let mut v = serde_json::json!({
        "model": l.info.name,
        "adapter": a.name,
        "backend": a.backend,
        "f16": a.f16,
        "subgroups": a.subgroups,
        "subgroup_min_size": lanes.0,
        "subgroup_max_size": lanes.1,
        "n_ctx": l.model.options().n_ctx,
        "max_batch": l.model.options().max_batch,
        "pipeline_decode": l.model.options().pipeline_decode,
        "fused_rope": l.model.options().fuse_rope,
        "mixed_qkv": l.model.options().mixed_qkv,
        "attn_split_keys": l.model.options().attn_split_keys,
        "matmul_tile": l.model.options().matmul_tile_name(),
        "matvec_pairs": l.model.options().matvec_pairs,
        "matvec_int_dot": l.model.options().matvec_int_dot,
        "matmul_int_dot": l.model.options().matmul_int_dot,
        "matvec_shape": l.model.options().matvec_shape_name(),
        "matvec_blocks": l.model.options().matvec_blocks.unwrap_or(false),
        "matmul_rows": l.model.options().matmul_rows.unwrap_or(false),
        "matmul_lanes": l.model.options().matmul_lanes_name(),
        "attention_rows": l.model.options().attention_rows.unwrap_or(false),
        "penalty_window": l.model.options().penalty_window,
        "sampling": "greedy",
        "load_s": l.info.load_seconds,
        "prompt_tokens": prompt.len(),
        "prefill_s": prefill_s,
        "prefill_tokens_per_s": prompt.len() as f64 / prefill_s,
        "gen_tokens": gen_tokens,
        "decode_s": decode_s,
        "decode_tokens_per_s": decode_tps,
        "dispatches_per_token": stats.dispatches as f64 / n,
        "submits_per_token": stats.submits as f64 / n,
        "readback_bytes_per_token": stats.readback_bytes as f64 / n,
        "weight_bytes_per_token": weight_bytes_per_token,
        "implied_gb_per_s": weight_bytes_per_token as f64 * decode_tps / 1e9,
        "gpu_weight_bytes": plan.weight_bytes,
        "gpu_kv_bytes": plan.kv_bytes,
        "gpu_scratch_bytes": plan.scratch_bytes,
        "wasm_heap_bytes": crate::wasm_heap_bytes(),
        "user_agent": user_agent(),
    });
    // The keys `ahma bench` prints that the lines above leave out: the adapter's kind (what
    // picks the CPU adapters' kernels: a fallback adapter such as SwiftShader counts as one) and
    // the runtime checks left out of the shaders (none: the browser applies its own).
    v["device_type"] = ctx
        .as_deref()
        .map(|c| format!("{:?}", c.adapter().device_type))
        .unwrap_or_default()
        .into();
    v["unchecked"] = "".into();
    // CPU time per decoded token recording and submitting it (through the JS WebGPU API here)
    v["cpu_record_ms_per_token"] = (stats.record_ns as f64 / 1e6 / n).into();
    v["cooperative_matrix"] = serde_json::json!(ctx
        .as_deref()
        .map(|c| c.caps().cooperative_matrices.clone())
        .unwrap_or_default());
    if let (true, Some(c)) = (read_probe, ctx.as_deref()) {
        let size = ahma_kernels::read_probe::default_size(c);
        let rates = ahma_kernels::read_probe::measure(c, size, &now_s).await?;
        let best = rates.best();
        let each: serde_json::Map<String, serde_json::Value> = rates
            .named()
            .into_iter()
            .map(|(k, r)| (k, r.into()))
            .collect();
        v["read_probe"] = each.into();
        v["read_probe_gb_per_s"] = best.into();
        v["decode_read_ratio"] = (weight_bytes_per_token as f64 * decode_tps / 1e9 / best).into();
    }
    post(&FromWorker::BenchResult {
        json: v.to_string(),
    });
    Ok(())
}

fn user_agent() -> String {
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    g.navigator().user_agent().unwrap_or_default()
}

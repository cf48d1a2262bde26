//! Getting a model onto the GPU: the fit check, and the load from the store,
//! the network (resuming, verifying) or a local file.
//!
//! Bytes flow in chunks from their source to three places at once: the GPU
//! (through the engine's streaming loader), the store (when downloading) and a
//! SHA-256. The wasm heap holds one chunk at a time, never the model.

use std::rc::Rc;

use ahma_chat::{ChatTemplate, Tokenizer};
use ahma_engine::{EngineError, LoadOptions, ModelLoader};
use ahma_gguf::{Gguf, LlamaConfig, StreamEvent, StreamParser};
use sha2::{Digest, Sha256};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use xxhash_rust::xxh3::Xxh3;

use super::fetch::{self, Download};
use super::store::{self, Blob, Meta};
use super::{adapter_info, engine_kind, ensure_ctx, now_s, post, Loaded, State};
use crate::protocol::{ErrorKind, FromWorker, ModelInfo, ModelSource, NoticeKind, Phase, Tuning};

type Failure = (ErrorKind, String);

/// Bytes read from the store (or a local file) per step.
const READ_CHUNK: usize = 4 << 20;
/// The context the app allocates: the model card's `max_length`.
const N_CTX: usize = 2048;

fn load_options(ctx_train: Option<usize>) -> LoadOptions {
    let n_ctx = ctx_train.map_or(N_CTX, |c| c.clamp(1, N_CTX));
    LoadOptions {
        n_ctx,
        // transformers' repetition penalty looks at the whole sequence.
        penalty_window: n_ctx,
        ..Default::default()
    }
}

/// The load options with the benchmark page's choices applied (a bad tile is a typed error;
/// the engine validates the rest when the loader is made).
fn tuned_options(tuning: &Tuning) -> Result<LoadOptions, Failure> {
    let mut opts = load_options(None);
    opts.set_kernel_choices(
        tuning.matvec_pairs,
        tuning.matvec_int_dot,
        tuning.matmul_int_dot,
        tuning.attn_split_keys.map(|k| k as usize),
        tuning.matmul_tile.as_deref(),
        tuning.matvec_shape.as_deref(),
        tuning.matvec_blocks,
        tuning.matmul_rows,
        tuning.matmul_lanes.as_deref(),
        tuning.attention_rows,
    )
    .map_err(engine_err)?;
    Ok(opts)
}

fn store_err(e: store::StoreError) -> Failure {
    (ErrorKind::Storage, e.0)
}

fn engine_err(e: EngineError) -> Failure {
    (engine_kind(&e), e.to_string())
}

/// Absolute URL of `url` relative to the worker's location.
fn absolute(url: &str) -> String {
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let base = g.location().href();
    web_sys::Url::new_with_base(url, &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| url.to_string())
}

/// Reads `len` bytes at `at` of a local `File`.
async fn file_slice(file: &web_sys::File, at: u64, len: u64) -> Result<Vec<u8>, Failure> {
    let end = (at + len).min(file.size() as u64);
    let blob = file
        .slice_with_f64_and_f64(at as f64, end as f64)
        .map_err(|e| (ErrorKind::Storage, crate::js_message(&e)))?;
    let buf = JsFuture::from(blob.array_buffer()).await.map_err(|e| {
        (
            ErrorKind::Storage,
            format!("reading the file: {}", crate::js_message(&e)),
        )
    })?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// Parses a GGUF header out of the file's first bytes (`None`: need more bytes).
fn parse_header(bytes: &[u8]) -> Result<Option<Gguf>, Failure> {
    let mut p = StreamParser::new();
    let r = p.feed(
        bytes,
        &mut |_ev: StreamEvent<'_>| -> Result<(), ahma_gguf::GgufError> { Ok(()) },
    );
    match (r, p.header()) {
        (_, Some(h)) => Ok(Some(h.clone())),
        (Err(e), None) => Err((ErrorKind::BadModel, format!("not a usable GGUF file: {e}"))),
        (Ok(()), None) => Ok(None),
    }
}

/// The header of a model, from the store, a local file or a few Range requests.
async fn read_header(
    source: &ModelSource,
    files: &[web_sys::File],
) -> Result<(Gguf, Option<u64>), Failure> {
    let mut want: u64 = 4 << 20;
    loop {
        let (bytes, size) = match source {
            ModelSource::Local { .. } => {
                let f = files.first().ok_or((
                    ErrorKind::Internal,
                    "the file did not reach the worker".to_string(),
                ))?;
                (file_slice(f, 0, want).await?, Some(f.size() as u64))
            }
            ModelSource::Url { url, .. } => {
                let url = absolute(url);
                let mut d = fetch::open(&url, 0, Some(want - 1), None).await?;
                let size = d.total;
                let mut bytes = Vec::new();
                while let Some(c) = d.next().await? {
                    bytes.extend_from_slice(&c.to_vec());
                    if bytes.len() as u64 >= want {
                        break;
                    }
                }
                d.close();
                (bytes, size)
            }
        };
        if let Some(h) = parse_header(&bytes)? {
            return Ok((h, size));
        }
        if (bytes.len() as u64) < want || want >= 256 << 20 {
            return Err((
                ErrorKind::BadModel,
                "the GGUF header is incomplete or too large".into(),
            ));
        }
        want *= 4;
    }
}

/// A `Fit` answer that did not size the model (`checked`: it is stored complete).
fn unsized_fit(
    checked: bool,
    max_buffer: u64,
    file_bytes: Option<u64>,
    message: String,
    stored: u64,
    complete: bool,
) -> FromWorker {
    FromWorker::Fit {
        checked,
        fits: true,
        needed_bytes: 0,
        largest_buffer: 0,
        max_buffer,
        file_bytes,
        message,
        stored,
        complete,
    }
}

/// Answers `Check`: does the model fit this adapter? Reads only the header.
pub async fn check(
    st: &State,
    source: &ModelSource,
    files: &[web_sys::File],
    network: bool,
) -> Result<(), Failure> {
    let ctx = ensure_ctx(st).await?;
    let max_buffer = ctx.caps().max_buffer_size;
    // Stored state first: a complete model needs no network to be checked.
    let (mut stored, mut complete) = (0, false);
    if let ModelSource::Url { url, .. } = source {
        let key = store::key_for(&absolute(url));
        if let Ok(dir) = store::models_dir().await {
            if let Ok(Some(e)) = store::entry(&dir, &key).await {
                stored = e.stored;
                complete = e.complete;
                if complete {
                    post(&unsized_fit(
                        true,
                        max_buffer,
                        e.size,
                        String::new(),
                        stored,
                        complete,
                    ));
                    return Ok(());
                }
            }
        }
    }
    if !network && matches!(source, ModelSource::Url { .. }) {
        post(&unsized_fit(
            false,
            max_buffer,
            None,
            String::new(),
            stored,
            complete,
        ));
        return Ok(());
    }
    let (g, size) = match read_header(source, files).await {
        Ok(h) => h,
        Err((ErrorKind::BadModel, m)) => return Err((ErrorKind::BadModel, m)),
        Err((_, m)) => {
            // Offline or a server error: say so, but let the user try the download.
            post(&unsized_fit(false, max_buffer, None, m, stored, complete));
            return Ok(());
        }
    };
    let cfg = LlamaConfig::from_gguf(&g).map_err(|e| (ErrorKind::BadModel, e.to_string()))?;
    let opts = load_options(Some(cfg.n_ctx_train));
    let budget = ModelLoader::budget(&ctx, &opts);
    let caps = ctx.caps();
    let msg = match ahma_engine::plan::plan_fitting(&g, &cfg, &opts, ctx.use_f16(), &budget) {
        Ok(p) => FromWorker::Fit {
            checked: true,
            fits: true,
            needed_bytes: p.total(),
            largest_buffer: p.largest_buffer.1,
            max_buffer: caps.max_buffer_size,
            file_bytes: size,
            message: String::new(),
            stored,
            complete,
        },
        Err(e) => FromWorker::Fit {
            checked: true,
            fits: false,
            needed_bytes: 0,
            largest_buffer: 0,
            max_buffer: caps.max_buffer_size,
            file_bytes: size,
            // the UI says "does not fit" itself: only the reason
            message: match e {
                EngineError::DoesNotFit { reason } => reason,
                e => e.to_string(),
            },
            stored,
            complete,
        },
    };
    post(&msg);
    Ok(())
}

/// Everything that consumes the model's bytes in order.
struct Feed {
    loader: ModelLoader,
    /// SHA-256 of the bytes, unless the store's fast checksum alone is checked.
    sha: Option<Sha256>,
    /// XXH3-128 of the bytes (see [`Meta::xxh3`]).
    fast: Xxh3,
    fed: u64,
    total: Option<u64>,
    phase: Phase,
    t_last: f64,
    /// Download speed: bytes and time since the network part started.
    net_bytes: u64,
    net_t0: f64,
    peak_heap: u64,
}

impl Feed {
    fn new(
        ctx: std::sync::Arc<ahma_kernels::GpuContext>,
        phase: Phase,
        total: Option<u64>,
        tuning: &Tuning,
        with_sha: bool,
    ) -> Result<Feed, Failure> {
        Ok(Feed {
            loader: ModelLoader::new(ctx, tuned_options(tuning)?).map_err(engine_err)?,
            sha: with_sha.then(Sha256::new),
            fast: Xxh3::new(),
            fed: 0,
            total,
            phase,
            t_last: 0.0,
            net_bytes: 0,
            net_t0: now_s(),
            peak_heap: crate::wasm_heap_bytes(),
        })
    }

    async fn push(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        if let Some(h) = &mut self.sha {
            h.update(bytes);
        }
        self.fast.update(bytes);
        self.loader.push(bytes).await.map_err(engine_err)?;
        self.fed += bytes.len() as u64;
        if self.phase == Phase::Download {
            self.net_bytes += bytes.len() as u64;
        }
        self.progress(false);
        Ok(())
    }

    fn progress(&mut self, force: bool) {
        let now = now_s();
        let heap = crate::wasm_heap_bytes();
        self.peak_heap = self.peak_heap.max(heap);
        if !force && now - self.t_last < 0.1 {
            return;
        }
        self.t_last = now;
        let dt = now - self.net_t0;
        post(&FromWorker::Progress {
            phase: self.phase,
            bytes: self.fed,
            total: self.total,
            bytes_per_s: if self.phase == Phase::Download && dt > 0.2 {
                self.net_bytes as f64 / dt
            } else {
                0.0
            },
            wasm_heap_bytes: heap,
        });
    }

    fn set_phase(&mut self, phase: Phase) {
        if phase == Phase::Download && self.phase != Phase::Download {
            self.net_bytes = 0;
            self.net_t0 = now_s();
        }
        self.phase = phase;
        self.progress(true);
    }

    /// The SHA-256 (lower-case hex), when this feed computes it.
    fn digest(&self) -> Option<String> {
        self.sha.as_ref().map(|h| store::hex(&h.clone().finalize()))
    }

    /// The XXH3-128 (32 lower-case hex digits).
    fn fast_digest(&self) -> String {
        format!("{:032x}", self.fast.digest128())
    }

    /// Builds the model and its tokenizer.
    async fn finish(
        mut self,
        tokenizer: Option<Tokenizer>,
        name: String,
        key: Option<String>,
        from_cache: bool,
        t0: f64,
    ) -> Result<Loaded, Failure> {
        self.set_phase(Phase::Finishing);
        let header = self.loader.header().ok_or((
            ErrorKind::BadModel,
            "the file ended before the GGUF header".to_string(),
        ))?;
        let tok = match tokenizer {
            Some(t) => Some((t, "tokenizer.json")),
            None => match Tokenizer::from_gguf(header) {
                Ok(t) => Some((t, "GGUF vocabulary")),
                Err(e) => {
                    post(&FromWorker::Notice {
                        kind: NoticeKind::NoTokenizer,
                        detail: e.to_string(),
                    });
                    None
                }
            },
        };
        let tok_name = tok.as_ref().map_or("none", |t| t.1);
        let tok = match tok {
            Some((t, _)) => {
                let template = ChatTemplate::for_tokenizer(&t)
                    .map_err(|e| (ErrorKind::Tokenizer, e.to_string()))?;
                Some((t, template))
            }
            None => None,
        };
        let embd = header.tensor(ahma_gguf::names::TOKEN_EMBD);
        let all: u64 = header.tensors.iter().map(|t| t.n_bytes).sum();
        let weights_per_token = match embd {
            Some(e) => all - e.n_bytes + e.n_bytes / e.n_rows().max(1),
            None => all,
        };
        let file_bytes = self.fed;
        let peak = self.peak_heap;
        let mut model = self.loader.finish().await.map_err(engine_err)?;
        model.set_clock(super::clock_s);
        let cfg = model.config().clone();
        let plan = model.memory_plan().clone();
        let heap = crate::wasm_heap_bytes();
        Ok(Loaded {
            info: ModelInfo {
                name,
                key,
                file_bytes,
                gpu_bytes: plan.total(),
                weights_per_token,
                wasm_heap_bytes: heap,
                peak_wasm_heap_bytes: peak.max(heap),
                n_ctx: model.options().n_ctx as u32,
                n_layer: cfg.n_layer as u32,
                n_embd: cfg.n_embd as u32,
                n_vocab: cfg.n_vocab as u32,
                tokenizer: tok_name.into(),
                from_cache,
                load_seconds: now_s() - t0,
            },
            model,
            tok,
            cached: Vec::new(),
        })
    }
}

/// Loads a model and reports `Ready` or an error.
pub async fn load(st: &Rc<State>, source: ModelSource, files: Vec<web_sys::File>) {
    st.cancel.set(false);
    // Free the previous model's GPU memory first.
    *st.loaded.borrow_mut() = None;
    let res = match &source {
        ModelSource::Local { name, .. } => load_local(st, name.clone(), &files).await,
        ModelSource::Url {
            url,
            tokenizer_url,
            tokenizer_config_url,
            sha256,
            name,
        } => {
            let url = absolute(url);
            let name = name.clone().unwrap_or_else(|| source.display_name());
            let tok = (tokenizer_url.as_deref(), tokenizer_config_url.as_deref());
            load_url(st, &url, tok, sha256.as_deref(), name).await
        }
    };
    *st.abort.borrow_mut() = None;
    match res {
        Ok(l) => {
            let info = l.info.clone();
            *st.loaded.borrow_mut() = Some(l);
            let ctx = st.ctx.borrow().clone();
            if let Some(ctx) = ctx {
                post(&FromWorker::Adapter {
                    info: adapter_info(&ctx),
                });
                super::watch_device(st.clone(), ctx);
            }
            post(&FromWorker::Ready { model: info });
        }
        Err((ErrorKind::Cancelled, _)) => {}
        Err((kind, m)) => {
            if kind == ErrorKind::DeviceLost {
                *st.ctx.borrow_mut() = None;
            }
            post(&FromWorker::error(None, kind, m));
        }
    }
}

async fn load_local(st: &State, name: String, files: &[web_sys::File]) -> Result<Loaded, Failure> {
    let t0 = now_s();
    let ctx = ensure_ctx(st).await?;
    let file = files.first().ok_or((
        ErrorKind::Internal,
        "the file did not reach the worker".to_string(),
    ))?;
    let tokenizer = match files.get(1) {
        Some(t) => Some(
            Tokenizer::from_json(&file_slice(t, 0, t.size() as u64).await?, None)
                .map_err(|e| (ErrorKind::Tokenizer, e.to_string()))?,
        ),
        None => None,
    };
    let size = file.size() as u64;
    // Nothing is stored, so nothing needs the SHA-256.
    let mut feed = Feed::new(ctx, Phase::Local, Some(size), &st.tuning.borrow(), false)?;
    let mut at = 0;
    while at < size {
        if st.cancel.get() {
            post(&FromWorker::Cancelled { stored: 0 });
            return Err((ErrorKind::Cancelled, String::new()));
        }
        let chunk = file_slice(file, at, READ_CHUNK as u64).await?;
        if chunk.is_empty() {
            break;
        }
        at += chunk.len() as u64;
        feed.push(&chunk).await?;
    }
    feed.finish(tokenizer, name, None, false, t0).await
}

/// A small file beside a catalog model: the stored copy, else fetched and stored.
async fn side_file(
    dir: &web_sys::FileSystemDirectoryHandle,
    name: &str,
    url: &str,
) -> Result<String, Failure> {
    if let Ok(Some(t)) = store::read_text(dir, name).await {
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let t = fetch::text(&absolute(url)).await?;
    let _ = store::write_text(dir, name, &t).await;
    Ok(t)
}

/// The tokenizer files of a catalog model (`tokenizer.json` and its
/// `tokenizer_config.json`), or `None`: the GGUF vocabulary is used then.
async fn tokenizer_for(
    dir: &web_sys::FileSystemDirectoryHandle,
    key: &str,
    (json_url, config_url): (Option<&str>, Option<&str>),
) -> Option<Tokenizer> {
    let json_url = json_url?;
    let res = async {
        let json = side_file(dir, &format!("{key}.tokenizer.json"), json_url).await?;
        let config = match config_url {
            Some(u) => Some(side_file(dir, &format!("{key}.tokenizer_config.json"), u).await?),
            None => None,
        };
        Tokenizer::from_json(json.as_bytes(), config.as_deref().map(str::as_bytes))
            .map_err(|e| (ErrorKind::Tokenizer, e.to_string()))
    }
    .await;
    match res {
        Ok(t) => Some(t),
        Err((_, m)) => {
            post(&FromWorker::Notice {
                kind: NoticeKind::TokenizerFallback,
                detail: m,
            });
            None
        }
    }
}

async fn load_url(
    st: &State,
    url: &str,
    tokenizer_urls: (Option<&str>, Option<&str>),
    expected_sha: Option<&str>,
    name: String,
) -> Result<Loaded, Failure> {
    let t0 = now_s();
    let ctx = ensure_ctx(st).await?;
    let key = store::key_for(url);
    let dir = store::models_dir().await.map_err(store_err)?;
    let mut meta = store::read_meta(&dir, &key)
        .await
        .map_err(store_err)?
        .filter(|m| m.url == url)
        .unwrap_or_else(|| Meta {
            url: url.to_string(),
            name: name.clone(),
            ..Default::default()
        });
    if let Some(s) = expected_sha {
        meta.expected_sha256 = Some(s.to_ascii_lowercase());
    }
    let tokenizer = tokenizer_for(&dir, &key, tokenizer_urls).await;
    let blob = Blob::open(&dir, &key).await.map_err(store_err)?;
    let mut restarts = 0;
    loop {
        match load_url_once(st, &ctx, &dir, &key, &blob, &mut meta).await? {
            Outcome::Done(filled) => {
                drop(blob);
                return filled.finish_loaded(tokenizer, name, key, t0).await;
            }
            Outcome::Restart => {
                restarts += 1;
                blob.truncate(0).map_err(store_err)?;
                meta.complete = false;
                meta.sha256 = None;
                meta.xxh3 = None;
                meta.size = None;
                meta.validator = None;
                store::write_meta(&dir, &key, &meta)
                    .await
                    .map_err(store_err)?;
                if restarts > 2 {
                    return Err((
                        ErrorKind::BadModel,
                        "the downloaded file does not match its checksum (tried three times)"
                            .into(),
                    ));
                }
            }
        }
    }
}

/// What `load_url_once` hands back when all bytes are in: the feed, ready to finish.
struct Filled {
    feed: Feed,
    from_cache: bool,
}

impl Filled {
    async fn finish_loaded(
        self,
        tokenizer: Option<Tokenizer>,
        name: String,
        key: String,
        t0: f64,
    ) -> Result<Loaded, Failure> {
        self.feed
            .finish(tokenizer, name, Some(key), self.from_cache, t0)
            .await
    }
}

enum Outcome {
    /// Every byte is in and checked.
    Done(Box<Filled>),
    /// Start over from byte 0 (damage found, or the file changed).
    Restart,
}

fn done(feed: Feed, from_cache: bool) -> Result<Outcome, Failure> {
    Ok(Outcome::Done(Box::new(Filled { feed, from_cache })))
}

async fn load_url_once(
    st: &State,
    ctx: &std::sync::Arc<ahma_kernels::GpuContext>,
    dir: &web_sys::FileSystemDirectoryHandle,
    key: &str,
    blob: &Blob,
    meta: &mut Meta,
) -> Result<Outcome, Failure> {
    let stored = blob.len().map_err(store_err)?;
    let complete = meta.complete && meta.size == Some(stored) && meta.sha256.is_some();
    let phase = if complete {
        Phase::Cache
    } else {
        Phase::Download
    };
    // A complete copy whose fast checksum is on record is checked with that alone.
    let fast_only = complete && meta.xxh3.is_some();
    let mut feed = Feed::new(
        ctx.clone(),
        phase,
        meta.size,
        &st.tuning.borrow(),
        !fast_only,
    )?;
    if complete {
        feed.set_phase(Phase::Cache);
    }
    // 1. The stored part, read back into the GPU (and the checksum).
    let mut buf = vec![0u8; READ_CHUNK];
    let mut at = 0;
    while at < stored {
        if st.cancel.get() {
            post(&FromWorker::Cancelled { stored });
            return Err((ErrorKind::Cancelled, String::new()));
        }
        let want = ((stored - at) as usize).min(READ_CHUNK);
        let n = blob.read_at(&mut buf[..want], at).map_err(store_err)?;
        if n == 0 {
            break;
        }
        at += n as u64;
        if let Err((kind, m)) = feed.push(&buf[..n]).await {
            if kind == ErrorKind::BadModel {
                // The stored bytes do not parse: damage. Fetch again.
                post(&FromWorker::Notice {
                    kind: NoticeKind::CacheDamaged,
                    detail: m,
                });
                return Ok(Outcome::Restart);
            }
            return Err((kind, m));
        }
    }
    drop(buf);
    if complete {
        let fast = feed.fast_digest();
        let (what, got, recorded) = match feed.digest() {
            None => ("checksum (XXH3-128)", fast.clone(), meta.xxh3.clone()),
            Some(sha) => ("SHA-256", sha, meta.sha256.clone()),
        };
        // The recorded SHA-256 was checked against the promised one at download; a different
        // promise now (the catalog's file changed) means the copy is stale.
        let promised = meta
            .expected_sha256
            .as_deref()
            .is_none_or(|e| meta.sha256.as_deref() == Some(e));
        if recorded.as_deref() == Some(got.as_str()) && promised {
            if meta.xxh3.is_none() {
                // A record from before the fast checksum: add it. Best effort: if the store
                // refuses the write, the next load checks the SHA-256 again.
                meta.xxh3 = Some(fast);
                let _ = store::write_meta(dir, key, meta).await;
            }
            return done(feed, true);
        }
        let detail = if promised {
            format!(
                "the stored copy's {what} {got} differs from the recorded {}",
                recorded.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "the stored copy's SHA-256 {} differs from the expected {}",
                meta.sha256.as_deref().unwrap_or("?"),
                meta.expected_sha256.as_deref().unwrap_or("?")
            )
        };
        post(&FromWorker::Notice {
            kind: NoticeKind::CacheDamaged,
            detail,
        });
        return Ok(Outcome::Restart);
    }
    // 2. The rest from the network, into the store and the GPU at once.
    let abort = web_sys::AbortController::new()
        .map_err(|e| (ErrorKind::Internal, crate::js_message(&e)))?;
    *st.abort.borrow_mut() = Some(abort.clone());
    let mut d: Download = fetch::open(&meta.url, stored, None, Some(&abort.signal())).await?;
    if stored > 0 {
        let same = d.status == 206
            && d.start == stored
            && (meta.validator.is_none() || d.validator.is_none() || meta.validator == d.validator)
            && (meta.size.is_none() || d.total.is_none() || meta.size == d.total);
        if d.status == 416 && meta.size == Some(stored) {
            // Everything is stored; only the completion record was missing.
        } else if !same {
            post(&FromWorker::Notice {
                kind: NoticeKind::RemoteChanged,
                detail: format!("the server did not continue at byte {stored}; starting over"),
            });
            d.close();
            return Ok(Outcome::Restart);
        } else {
            post(&FromWorker::Notice {
                kind: NoticeKind::Resumed,
                detail: format!("{stored}"),
            });
        }
    }
    if d.status != 416 {
        meta.size = d.total.or(meta.size);
        meta.validator = d.validator.clone().or(meta.validator.take());
        if meta.expected_sha256.is_none() {
            meta.expected_sha256 = d.sha256.clone();
        }
        store::write_meta(dir, key, meta).await.map_err(store_err)?;
    }
    feed.total = meta.size;
    feed.set_phase(Phase::Download);
    let mut pos = stored;
    let mut since_flush = 0u64;
    let mut chunk = Vec::new();
    loop {
        if st.cancel.get() {
            d.close();
            blob.flush().map_err(store_err)?;
            post(&FromWorker::Cancelled { stored: pos });
            return Err((ErrorKind::Cancelled, String::new()));
        }
        let next = match d.next().await {
            Ok(n) => n,
            Err((kind, m)) => {
                blob.flush().map_err(store_err)?;
                if st.cancel.get() {
                    post(&FromWorker::Cancelled { stored: pos });
                    return Err((ErrorKind::Cancelled, String::new()));
                }
                return Err((
                    kind,
                    format!("{m} (stored {pos} bytes; retrying continues from there)"),
                ));
            }
        };
        let Some(arr) = next else { break };
        let n = arr.length() as usize;
        chunk.resize(n, 0);
        arr.copy_to(&mut chunk[..]);
        blob.write_at(&chunk, pos).map_err(store_err)?;
        pos += n as u64;
        since_flush += n as u64;
        if since_flush >= 32 << 20 {
            blob.flush().map_err(store_err)?;
            since_flush = 0;
        }
        if let Err((kind, m)) = feed.push(&chunk).await {
            d.close();
            blob.flush().map_err(store_err)?;
            if kind == ErrorKind::BadModel {
                // Not a model we can run: the stored bytes are useless.
                let _ = blob.truncate(0);
                let _ = store::delete(dir, key).await;
            }
            return Err((kind, m));
        }
    }
    blob.flush().map_err(store_err)?;
    if let Some(size) = meta.size {
        if pos != size {
            return Err((
                ErrorKind::Network,
                format!(
                    "the download ended at byte {pos} of {size}; retrying continues from there"
                ),
            ));
        }
    }
    let Some(digest) = feed.digest() else {
        return Err((
            ErrorKind::Internal,
            "a download was hashed without its SHA-256".into(),
        ));
    };
    if let Some(e) = meta.expected_sha256.as_deref() {
        if e != digest {
            post(&FromWorker::Notice {
                kind: NoticeKind::CacheDamaged,
                detail: format!("the download's SHA-256 {digest} differs from the expected {e}"),
            });
            return Ok(Outcome::Restart);
        }
    }
    meta.size = Some(pos);
    meta.sha256 = Some(digest);
    meta.xxh3 = Some(feed.fast_digest());
    meta.complete = true;
    store::write_meta(dir, key, meta).await.map_err(store_err)?;
    done(feed, false)
}

//! The leptos front end (UI thread). It never touches the GPU or the model:
//! everything heavy happens in the worker, so the page never freezes.

mod bridge;
mod debug;
pub mod persist;
mod view;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;

use crate::protocol::{
    AdapterInfo, CacheEntry, ErrorKind, FromWorker, GenStats, ModelInfo, ModelSource, NoticeKind,
    Phase, Quota, Role, StopKind, ToWorker, Tuning,
};
use persist::{Conv, Msg, Settings};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    Fi,
    En,
}

/// What the app is doing; the `data-state` of `[data-testid=status]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppState {
    Starting,
    Idle,
    Downloading,
    Loading,
    Ready,
    Generating,
    Error,
    NoWebGpu,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Starting | AppState::Idle => "idle",
            AppState::Downloading => "downloading",
            AppState::Loading => "loading",
            AppState::Ready => "ready",
            AppState::Generating => "generating",
            AppState::Error => "error",
            AppState::NoWebGpu => "no-webgpu",
        }
    }
}

/// One catalog entry (`web/catalog.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub quant: String,
    pub url: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub tokenizer_url: Option<String>,
    #[serde(default)]
    pub tokenizer_config_url: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default)]
    pub default: Option<String>,
    pub models: Vec<CatalogEntry>,
}

/// The model the user picked.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    None,
    Catalog(String),
    Url(String),
    Local { name: String, size: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    pub checked: bool,
    pub fits: bool,
    pub needed_bytes: u64,
    pub file_bytes: Option<u64>,
    pub message: String,
    pub stored: u64,
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    pub bytes: u64,
    pub total: Option<u64>,
    pub bytes_per_s: f64,
    pub heap: u64,
}

/// An answer being generated.
#[derive(Clone, Debug, PartialEq)]
pub struct Streaming {
    pub id: u64,
    pub conv: String,
    pub text: String,
}

/// All UI state, as copyable signals (provided as context).
#[derive(Clone, Copy)]
pub struct Ui {
    pub lang: RwSignal<Lang>,
    pub state: RwSignal<AppState>,
    pub adapter: RwSignal<Option<AdapterInfo>>,
    pub no_webgpu: RwSignal<Option<String>>,
    pub error: RwSignal<Option<(ErrorKind, String)>>,
    pub notice: RwSignal<Option<String>>,
    pub progress: RwSignal<Option<Progress>>,
    pub fit: RwSignal<Option<Fit>>,
    pub catalog: RwSignal<Catalog>,
    pub selection: RwSignal<Selection>,
    pub custom_url: RwSignal<String>,
    pub model: RwSignal<Option<ModelInfo>>,
    pub convs: RwSignal<Vec<Conv>>,
    pub active: RwSignal<Option<String>>,
    pub streaming: RwSignal<Option<Streaming>>,
    pub stats: RwSignal<Option<GenStats>>,
    pub dropped: RwSignal<u32>,
    pub settings: RwSignal<Settings>,
    pub cache: RwSignal<Vec<CacheEntry>>,
    pub quota: RwSignal<Option<Quota>>,
    pub show_settings: RwSignal<bool>,
    pub editing: RwSignal<Option<usize>>,
    pub bench: RwSignal<Option<String>>,
    pub bench_mode: RwSignal<bool>,
    /// Load the selected model by itself once the fit check says it is stored.
    pub autoload: RwSignal<bool>,
    pub last_ids: RwSignal<Vec<u32>>,
    /// The download waits for the network fit check.
    pub pending_load: RwSignal<bool>,
    /// The selection the current (or last started) load was for.
    pub loaded_selection: RwSignal<Option<Selection>>,
    pub draft: RwSignal<String>,
    /// The last deleted conversation and where it was, until it is undone or
    /// another one is deleted (a deletion is one click: it must be undoable).
    pub deleted: RwSignal<Option<(usize, Conv)>>,
}

impl Ui {
    /// The Finnish or English text, following the language toggle.
    pub fn t(&self, fi: &'static str, en: &'static str) -> &'static str {
        if self.lang.get() == Lang::Fi {
            fi
        } else {
            en
        }
    }

    pub fn t_untracked(&self, fi: &'static str, en: &'static str) -> &'static str {
        if self.lang.get_untracked() == Lang::Fi {
            fi
        } else {
            en
        }
    }

    pub fn active_conv(&self) -> Option<Conv> {
        let id = self.active.get()?;
        self.convs.with(|c| c.iter().find(|c| c.id == id).cloned())
    }

    pub fn save_convs(&self) {
        let ok = self
            .convs
            .with_untracked(|c| persist::save(persist::CONVERSATIONS, c));
        if !ok {
            self.notice.set(Some(
                self.t_untracked(
                    "Keskustelua ei voitu tallentaa selaimen muistiin (tila täynnä?).",
                    "The conversation could not be saved in the browser (storage full?).",
                )
                .into(),
            ));
        }
    }

    /// Applies `f` to the active conversation (creating one if needed) and saves.
    pub fn with_conv(&self, f: impl FnOnce(&mut Conv)) {
        let active = self.active.get_untracked();
        let mut created = None;
        self.convs.update(|cs| {
            let idx = match active.and_then(|id| cs.iter().position(|c| c.id == id)) {
                Some(i) => i,
                None => {
                    let c = Conv::new();
                    created = Some(c.id.clone());
                    cs.insert(0, c);
                    0
                }
            };
            let c = &mut cs[idx];
            f(c);
            c.updated = js_sys::Date::now();
            c.title_from_messages();
        });
        if let Some(id) = created {
            self.active.set(Some(id));
        }
        self.save_convs();
    }

    /// The source of the current selection.
    pub fn source(&self) -> Option<ModelSource> {
        match self.selection.get_untracked() {
            Selection::None | Selection::Local { .. } => None,
            Selection::Catalog(id) => self.catalog.with_untracked(|c| {
                c.models
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| ModelSource::Url {
                        url: m.url.clone(),
                        tokenizer_url: m.tokenizer_url.clone(),
                        tokenizer_config_url: m.tokenizer_config_url.clone(),
                        sha256: m.sha256.clone(),
                        name: Some(format!("{} {}", m.name, m.quant).trim().to_string()),
                    })
            }),
            Selection::Url(u) => Some(ModelSource::Url {
                url: u,
                tokenizer_url: None,
                tokenizer_config_url: None,
                sha256: None,
                name: None,
            }),
        }
    }

    pub fn busy(&self) -> bool {
        matches!(
            self.state.get_untracked(),
            AppState::Downloading | AppState::Loading | AppState::Generating
        )
    }

    /// Starts an answer to the active conversation (whose last message is the user's).
    pub fn generate(&self) {
        let Some(conv) = self.active_conv_untracked() else {
            return;
        };
        if conv.messages.last().is_none_or(|m| m.role != Role::User) {
            return;
        }
        let s = self.settings.get_untracked();
        let id = bridge::next_id();
        self.streaming.set(Some(Streaming {
            id,
            conv: conv.id.clone(),
            text: String::new(),
        }));
        self.error.set(None);
        self.dropped.set(0);
        self.state.set(AppState::Generating);
        bridge::send(&ToWorker::Generate {
            id,
            system: Some(s.system.clone()).filter(|x| !x.trim().is_empty()),
            messages: conv.messages.iter().map(|m| m.chat()).collect(),
            settings: s.generation.clone(),
            do_sample: s.do_sample,
        });
    }

    pub fn active_conv_untracked(&self) -> Option<Conv> {
        let id = self.active.get_untracked()?;
        self.convs
            .with_untracked(|c| c.iter().find(|c| c.id == id).cloned())
    }

    /// A generation failed before its first token: the unanswered user message
    /// goes back into the message box (in front of any draft), so that sending
    /// again after the fix (a reload, a shorter message) needs one key and the
    /// conversation keeps alternating user and assistant turns.
    fn unsend_last(&self) {
        let mut text = None;
        self.with_conv(|c| {
            if c.messages.last().is_some_and(|m| m.role == Role::User) {
                text = c.messages.pop().map(|m| m.content);
                if c.messages.is_empty() {
                    // the title came from that message: it is the next message's to give
                    c.title.clear();
                }
            }
        });
        if let Some(t) = text {
            let draft = self.draft.get_untracked();
            let v = if draft.trim().is_empty() {
                t
            } else {
                format!("{t}\n\n{draft}")
            };
            persist::save_string(persist::DRAFT, &v);
            self.draft.set(v);
        }
    }

    pub fn send_message(&self, text: String) {
        let text = text.trim().to_string();
        if text.is_empty() || self.state.get_untracked() != AppState::Ready {
            return;
        }
        self.with_conv(|c| {
            c.messages.push(Msg {
                role: Role::User,
                content: text,
                stopped: false,
            })
        });
        self.draft.set(String::new());
        persist::save_string(persist::DRAFT, "");
        self.generate();
    }

    pub fn regenerate(&self) {
        if self.state.get_untracked() != AppState::Ready {
            return;
        }
        self.with_conv(|c| {
            if c.messages.last().is_some_and(|m| m.role == Role::Assistant) {
                c.messages.pop();
            }
        });
        self.generate();
    }

    /// Replaces user message `idx`, drops everything after it and answers again.
    pub fn edit_and_resend(&self, idx: usize, text: String) {
        let text = text.trim().to_string();
        if text.is_empty() || self.state.get_untracked() != AppState::Ready {
            return;
        }
        self.with_conv(|c| {
            if idx < c.messages.len() && c.messages[idx].role == Role::User {
                c.messages.truncate(idx + 1);
                c.messages[idx].content = text;
            }
        });
        self.editing.set(None);
        self.generate();
    }

    pub fn new_chat(&self) {
        if self.state.get_untracked() == AppState::Generating {
            return;
        }
        let c = Conv::new();
        self.active.set(Some(c.id.clone()));
        self.convs.update(|cs| cs.insert(0, c));
        self.dropped.set(0);
        self.save_convs();
        bridge::send(&ToWorker::ResetChat);
    }

    pub fn load_selected(&self) {
        if self.busy() {
            return;
        }
        let Some(source) = self.source() else { return };
        request_persistence(*self);
        self.loaded_selection
            .set(Some(self.selection.get_untracked()));
        match self.selection.get_untracked() {
            Selection::Catalog(id) => {
                persist::save_string(persist::SELECTION, &format!("catalog:{id}"))
            }
            Selection::Url(u) => persist::save_string(persist::SELECTION, &format!("url:{u}")),
            _ => {}
        }
        self.error.set(None);
        self.notice.set(None);
        self.state.set(AppState::Loading);
        bridge::send(&ToWorker::Load {
            source,
            tuning: self.tuning(),
        });
    }

    pub fn load_local(&self, files: Vec<web_sys::File>) {
        if self.busy() {
            return;
        }
        let gguf: Vec<_> = files
            .iter()
            .filter(|f| f.name().to_lowercase().ends_with(".gguf"))
            .cloned()
            .collect();
        let tok: Vec<_> = files
            .iter()
            .filter(|f| f.name().to_lowercase().ends_with(".json"))
            .cloned()
            .collect();
        let Some(model) = gguf.first().cloned() else {
            self.error.set(Some((
                ErrorKind::BadModel,
                self.t_untracked("Valitse .gguf-tiedosto.", "Choose a .gguf file.")
                    .into(),
            )));
            return;
        };
        let mut send = vec![model.clone()];
        send.extend(tok.first().cloned());
        let name = model.name();
        let size = model.size() as u64;
        self.selection.set(Selection::Local {
            name: name.clone(),
            size,
        });
        self.loaded_selection
            .set(Some(self.selection.get_untracked()));
        self.error.set(None);
        self.notice.set(None);
        self.fit.set(None);
        self.state.set(AppState::Loading);
        bridge::send_with_files(
            &ToWorker::Load {
                source: ModelSource::Local { name, size },
                tuning: self.tuning(),
            },
            &send,
        );
    }

    /// The benchmark page's engine options from its query (`pairs=on|off`, `int8=on|off` for
    /// the mat-vecs, `mm_int8=on|off` for the mat-muls, `split_keys=N`, `tile=64x64x8`,
    /// `shape=64x8` for the mat-vecs' workgroups, `blocks=on|off` for their walk, `rows=on|off`
    /// and `lanes=16x8` or `lanes=16x16x4` for the mat-muls' row-per-invocation product, `attn_rows=on|off` for
    /// prefill's attention with one invocation per token and head); the chat
    /// always loads with the engine's defaults.
    fn tuning(&self) -> Tuning {
        if !self.bench_mode.get_untracked() {
            return Tuning::default();
        }
        let q = view::query();
        let on = |v: &String| v == "on" || v == "1" || v == "true";
        Tuning {
            matvec_pairs: q.get("pairs").map(on),
            matvec_int_dot: q.get("int8").map(on),
            matmul_int_dot: q.get("mm_int8").map(on),
            // not a number: 0, which the engine refuses with its message
            attn_split_keys: q.get("split_keys").map(|v| v.parse().unwrap_or(0)),
            matmul_tile: q.get("tile").cloned(),
            matvec_shape: q.get("shape").cloned(),
            matvec_blocks: q.get("blocks").map(on),
            matmul_rows: q.get("rows").map(on),
            matmul_lanes: q.get("lanes").cloned(),
            attention_rows: q.get("attn_rows").map(on),
        }
    }

    /// Asks the worker what is stored for the selection (no network).
    pub fn check_selected(&self) {
        self.fit.set(None);
        if let Some(source) = self.source() {
            bridge::send(&ToWorker::Check {
                source,
                network: false,
            });
        }
    }

    /// The download button: read the header first (a small Range request) and
    /// start the download only if the model fits this adapter.
    pub fn start_download(&self) {
        if self.busy() {
            return;
        }
        if self
            .fit
            .get_untracked()
            .is_some_and(|f| f.complete || (f.checked && f.fits))
        {
            self.load_selected();
            return;
        }
        let Some(source) = self.source() else { return };
        self.error.set(None);
        self.pending_load.set(true);
        self.state.set(AppState::Loading);
        bridge::send(&ToWorker::Check {
            source,
            network: true,
        });
    }

    fn on_message(&self, m: FromWorker) {
        match m {
            FromWorker::Hello => {
                bridge::worker_ready();
                bridge::send(&ToWorker::Probe);
                bridge::send(&ToWorker::ListCache);
            }
            FromWorker::Adapter { info } => {
                self.adapter.set(Some(info));
                if self.state.get_untracked() == AppState::Starting {
                    self.state.set(AppState::Idle);
                    self.check_selected();
                }
            }
            FromWorker::NoWebGpu { reason } => {
                self.no_webgpu.set(Some(reason));
                self.state.set(AppState::NoWebGpu);
            }
            FromWorker::Fit {
                checked,
                fits,
                needed_bytes,
                file_bytes,
                message,
                stored,
                complete,
                ..
            } => {
                // An unchecked verdict with no reason answers a check that did not use the
                // network (sent before the click): a pending download waits for its own.
                let offline_answer = !checked && !complete && message.is_empty();
                self.fit.set(Some(Fit {
                    checked,
                    fits,
                    needed_bytes,
                    file_bytes,
                    message,
                    stored,
                    complete,
                }));
                if self.pending_load.get_untracked() && !offline_answer {
                    self.pending_load.set(false);
                    self.state.set(AppState::Idle);
                    if fits {
                        self.load_selected();
                    }
                } else if !self.pending_load.get_untracked()
                    && complete
                    && self.autoload.get_untracked()
                    && self.state.get_untracked() == AppState::Idle
                {
                    self.autoload.set(false);
                    self.load_selected();
                }
            }
            FromWorker::Progress {
                phase,
                bytes,
                total,
                bytes_per_s,
                wasm_heap_bytes,
            } => {
                if !matches!(
                    self.state.get_untracked(),
                    AppState::Downloading | AppState::Loading
                ) {
                    return;
                }
                self.state.set(if phase == Phase::Download {
                    AppState::Downloading
                } else {
                    AppState::Loading
                });
                self.progress.set(Some(Progress {
                    phase,
                    bytes,
                    total,
                    bytes_per_s,
                    heap: wasm_heap_bytes,
                }));
            }
            FromWorker::Notice { kind, detail } => {
                let text = match kind {
                    NoticeKind::Resumed => format!(
                        "{} {}",
                        self.t_untracked("Lataus jatkuu kohdasta", "Download resumes at"),
                        view::fmt_bytes(detail.parse().unwrap_or(0))
                    ),
                    NoticeKind::CacheDamaged => format!(
                        "{} ({detail})",
                        self.t_untracked(
                            "Tallennettu malli oli vioittunut; ladataan uudelleen.",
                            "The stored model was damaged; downloading it again."
                        )
                    ),
                    NoticeKind::RemoteChanged => self
                        .t_untracked(
                            "Tiedosto on muuttunut palvelimella; lataus alkaa alusta.",
                            "The file changed on the server; the download starts over.",
                        )
                        .into(),
                    NoticeKind::TokenizerFallback => format!(
                        "{} ({detail})",
                        self.t_untracked(
                            "tokenizer.json ei latautunut; käytetään GGUF:n sanastoa.",
                            "tokenizer.json did not load; using the GGUF vocabulary."
                        )
                    ),
                    NoticeKind::NotPersistent => detail,
                    NoticeKind::NoTokenizer => format!(
                        "{} ({detail})",
                        self.t_untracked(
                            "Mallitiedostossa ei ole sanastoa: avaa sen tokenizer.json samalla, jotta voit keskustella.",
                            "The model file has no vocabulary: open its tokenizer.json with it to chat."
                        )
                    ),
                };
                self.notice.set(Some(text));
            }
            FromWorker::Ready { model } => {
                // The model is now stored whole: the model panel offers to load the stored copy
                // (after a device loss, say) instead of a download.
                if model.key.is_some()
                    && self.loaded_selection.get_untracked() == Some(self.selection.get_untracked())
                {
                    self.fit.update(|f| {
                        if let Some(f) = f.as_mut() {
                            f.stored = model.file_bytes;
                            f.complete = true;
                        }
                    });
                }
                self.model.set(Some(model));
                self.progress.set(None);
                self.error.set(None);
                self.state.set(AppState::Ready);
                if self.bench_mode.get_untracked() {
                    let q = view::query();
                    let get = |k: &str, d: u32| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
                    bridge::send(&ToWorker::Bench {
                        prompt_tokens: get("prompt", 128),
                        gen_tokens: get("gen", 64),
                        read_probe: q.get("read_probe").is_some_and(|v| v == "on"),
                    });
                    self.state.set(AppState::Generating);
                }
            }
            FromWorker::Token { id, text } => {
                self.streaming.update(|s| {
                    if let Some(s) = s.as_mut().filter(|s| s.id == id) {
                        s.text.push_str(&text);
                    }
                });
            }
            FromWorker::Done {
                id,
                ids,
                text,
                stop,
                dropped_messages,
            } => {
                if bridge::settle(id, Ok(serde_wasm(&ids))) {
                    self.state.set(AppState::Ready);
                    return;
                }
                self.last_ids.set(ids);
                let Some(s) = self.streaming.get_untracked().filter(|s| s.id == id) else {
                    return;
                };
                self.streaming.set(None);
                self.dropped.set(dropped_messages);
                let conv = s.conv.clone();
                if self.active.get_untracked().as_deref() != Some(conv.as_str()) {
                    self.active.set(Some(conv));
                }
                self.with_conv(|c| {
                    c.messages.push(Msg {
                        role: Role::Assistant,
                        content: text,
                        stopped: stop == StopKind::Stopped,
                    })
                });
                self.state.set(AppState::Ready);
            }
            FromWorker::Stats { stats } => self.stats.set(Some(stats)),
            FromWorker::Error { id, kind, message } => {
                if let Some(id) = id {
                    if bridge::settle(id, Err(message.clone().into())) {
                        self.state.set(AppState::Ready);
                        return;
                    }
                    if let Some(s) = self.streaming.get_untracked().filter(|s| s.id == id) {
                        self.streaming.set(None);
                        if self.active.get_untracked().as_deref() != Some(s.conv.as_str()) {
                            self.active.set(Some(s.conv.clone()));
                        }
                        if !s.text.is_empty() {
                            // Keep what was generated so far, marked as stopped.
                            self.with_conv(|c| {
                                c.messages.push(Msg {
                                    role: Role::Assistant,
                                    content: s.text,
                                    stopped: true,
                                })
                            });
                        } else {
                            self.unsend_last();
                        }
                    }
                }
                if self.pending_load.get_untracked() {
                    self.pending_load.set(false);
                    self.state.set(AppState::Idle);
                }
                self.error.set(Some((kind, message)));
                let loaded = self.model.get_untracked().is_some();
                match kind {
                    ErrorKind::DeviceLost => {
                        self.model.set(None);
                        self.state.set(AppState::Error);
                    }
                    ErrorKind::NoWebGpu => self.state.set(AppState::NoWebGpu),
                    ErrorKind::Busy => {}
                    _ if id.is_some() && loaded => self.state.set(AppState::Ready),
                    _ if matches!(
                        self.state.get_untracked(),
                        AppState::Downloading | AppState::Loading
                    ) =>
                    {
                        self.progress.set(None);
                        self.model.set(None);
                        self.state.set(AppState::Error);
                    }
                    _ => {}
                }
            }
            FromWorker::Cache { entries, quota } => {
                bridge::resolve_cache(&serde_wasm(&entries));
                self.cache.set(entries);
                self.quota.set(quota);
            }
            FromWorker::BenchResult { json } => {
                self.bench.set(Some(json));
                self.state.set(AppState::Ready);
            }
            FromWorker::Cancelled { stored } => {
                self.progress.set(None);
                self.state.set(AppState::Idle);
                self.notice.set(Some(format!(
                    "{} {}",
                    self.t_untracked("Lataus keskeytetty; tallessa", "Download paused; stored"),
                    view::fmt_bytes(stored)
                )));
                self.check_selected();
            }
        }
    }
}

/// A serde value as a plain JS value (through JSON).
pub fn serde_wasm<T: Serialize>(v: &T) -> wasm_bindgen::JsValue {
    serde_json::to_string(v)
        .ok()
        .and_then(|s| js_sys::JSON::parse(&s).ok())
        .unwrap_or(wasm_bindgen::JsValue::NULL)
}

/// Asks the browser once to keep our storage (the model) from eviction.
fn request_persistence(ui: Ui) {
    let Some(w) = web_sys::window() else { return };
    let storage = w.navigator().storage();
    if let Ok(p) = storage.persist() {
        wasm_bindgen_futures::spawn_local(async move {
            let granted = wasm_bindgen_futures::JsFuture::from(p)
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if !granted {
                ui.on_message(FromWorker::Notice {
                    kind: NoticeKind::NotPersistent,
                    detail: ui
                        .t_untracked(
                            "Selain ei luvannut pysyvää tallennustilaa: se voi poistaa mallin, jos levytila loppuu.",
                            "The browser did not grant persistent storage: it may evict the model when disk space runs low.",
                        )
                        .into(),
                });
            }
            bridge::send(&ToWorker::ListCache);
        });
    }
}

fn initial_lang() -> Lang {
    let q = view::query();
    match q.get("lang").map(|s| s.as_str()) {
        Some("en") => return Lang::En,
        Some("fi") => return Lang::Fi,
        _ => {}
    }
    match persist::load_string(persist::LANG).as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Fi,
    }
}

/// Mounts the app on `<body>` and starts the worker.
pub fn mount() {
    let q = view::query();
    let ui = Ui {
        lang: RwSignal::new(initial_lang()),
        state: RwSignal::new(AppState::Starting),
        adapter: RwSignal::new(None),
        no_webgpu: RwSignal::new(None),
        error: RwSignal::new(None),
        notice: RwSignal::new(None),
        progress: RwSignal::new(None),
        fit: RwSignal::new(None),
        catalog: RwSignal::new(Catalog::default()),
        selection: RwSignal::new(Selection::None),
        custom_url: RwSignal::new(String::new()),
        model: RwSignal::new(None),
        convs: RwSignal::new(persist::load(persist::CONVERSATIONS).unwrap_or_default()),
        active: RwSignal::new(None),
        streaming: RwSignal::new(None),
        stats: RwSignal::new(None),
        dropped: RwSignal::new(0),
        settings: RwSignal::new(persist::load(persist::SETTINGS).unwrap_or_default()),
        cache: RwSignal::new(Vec::new()),
        quota: RwSignal::new(None),
        show_settings: RwSignal::new(false),
        editing: RwSignal::new(None),
        bench: RwSignal::new(None),
        bench_mode: RwSignal::new(q.contains_key("bench")),
        autoload: RwSignal::new(true),
        last_ids: RwSignal::new(Vec::new()),
        pending_load: RwSignal::new(false),
        loaded_selection: RwSignal::new(None),
        draft: RwSignal::new(persist::load_string(persist::DRAFT).unwrap_or_default()),
        deleted: RwSignal::new(None),
    };
    if let Some(first) = ui.convs.with_untracked(|c| c.first().map(|c| c.id.clone())) {
        ui.active.set(Some(first));
    }
    debug::install(ui);
    let has_gpu = web_sys::window()
        .map(|w| {
            js_sys::Reflect::get(&w.navigator(), &"gpu".into())
                .is_ok_and(|v| !v.is_undefined() && !v.is_null())
        })
        .unwrap_or(false);
    if !has_gpu {
        ui.no_webgpu.set(Some("navigator.gpu is missing".into()));
        ui.state.set(AppState::NoWebGpu);
    }
    leptos::mount::mount_to_body(move || {
        provide_context(ui);
        view::App()
    });
    load_catalog(ui, q.get("model").cloned());
    if has_gpu {
        if let Err(e) = bridge::start(move |m| ui.on_message(m)) {
            ui.error.set(Some((ErrorKind::Internal, e)));
            ui.state.set(AppState::Error);
        }
    }
}

/// Fetches `catalog.json` (next to the page) and applies `?model=`.
fn load_catalog(ui: Ui, wanted: Option<String>) {
    wasm_bindgen_futures::spawn_local(async move {
        let cat: Option<Catalog> = async {
            let w = web_sys::window()?;
            let resp: web_sys::Response =
                wasm_bindgen_futures::JsFuture::from(w.fetch_with_str("catalog.json"))
                    .await
                    .ok()?
                    .dyn_into()
                    .ok()?;
            let text = wasm_bindgen_futures::JsFuture::from(resp.text().ok()?)
                .await
                .ok()?;
            serde_json::from_str(&text.as_string()?).ok()
        }
        .await;
        let cat = cat.unwrap_or_default();
        let sel = match wanted {
            Some(w) if cat.models.iter().any(|m| m.id == w) => Selection::Catalog(w),
            Some(w) if !w.is_empty() => {
                ui.custom_url.set(w.clone());
                Selection::Url(w)
            }
            _ => {
                // The model used last time (it loads by itself if it is stored), else the default.
                let saved = persist::load_string(persist::SELECTION).unwrap_or_default();
                if let Some(id) = saved
                    .strip_prefix("catalog:")
                    .filter(|id| cat.models.iter().any(|m| m.id == *id))
                {
                    Selection::Catalog(id.to_string())
                } else if let Some(u) = saved.strip_prefix("url:").filter(|u| !u.is_empty()) {
                    ui.custom_url.set(u.to_string());
                    Selection::Url(u.to_string())
                } else {
                    match cat
                        .default
                        .clone()
                        .or_else(|| cat.models.first().map(|m| m.id.clone()))
                    {
                        Some(id) => Selection::Catalog(id),
                        None => Selection::None,
                    }
                }
            }
        };
        ui.catalog.set(cat);
        ui.selection.set(sel);
        if ui.adapter.get_untracked().is_some() {
            ui.check_selected();
        }
    });
}

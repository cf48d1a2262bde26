//! The typed message protocol between the UI thread and the engine worker.
//!
//! Messages travel as JSON strings (serde) in the `msg` field of a plain JS object;
//! `File` objects (a model opened from disk) travel beside it in `files`, since a
//! `File` is structured-cloned by the browser without copying its bytes.

use ahma_chat::GenerationSettings;
use serde::{Deserialize, Serialize};

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSource {
    /// An HTTP(S) URL (absolute, or relative to the page). Cached in OPFS.
    Url {
        url: String,
        /// A Hugging Face `tokenizer.json` to use instead of the GGUF vocabulary.
        #[serde(default)]
        tokenizer_url: Option<String>,
        /// Its `tokenizer_config.json` (special tokens, chat template).
        #[serde(default)]
        tokenizer_config_url: Option<String>,
        /// Expected SHA-256 of the file (lower-case hex), when the catalog knows it.
        #[serde(default)]
        sha256: Option<String>,
        /// A display name.
        #[serde(default)]
        name: Option<String>,
    },
    /// A file the user opened from disk (the `File` objects travel in `files`:
    /// the GGUF first, then an optional `tokenizer.json`). Never cached, never
    /// touches the network.
    Local { name: String, size: u64 },
}

impl ModelSource {
    pub fn display_name(&self) -> String {
        match self {
            ModelSource::Url { name: Some(n), .. } => n.clone(),
            ModelSource::Url { url, .. } => url
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or(url)
                .split('?')
                .next()
                .unwrap_or(url)
                .to_string(),
            ModelSource::Local { name, .. } => name.clone(),
        }
    }
}

/// A chat message as the UI stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// Kernel choices of a load that the benchmark page exposes, as `ahma bench` does (its
/// `--matvec-pairs`, `--matvec-int-dot`, `--matmul-int-dot`, `--attn-split-keys`,
/// `--matmul-tile` and `--matvec-shape`); `None` keeps the engine's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    #[serde(default)]
    pub matvec_pairs: Option<bool>,
    #[serde(default)]
    pub matvec_int_dot: Option<bool>,
    #[serde(default)]
    pub matmul_int_dot: Option<bool>,
    #[serde(default)]
    pub attn_split_keys: Option<u32>,
    #[serde(default)]
    pub matmul_tile: Option<String>,
    #[serde(default)]
    pub matvec_shape: Option<String>,
    #[serde(default)]
    pub matvec_blocks: Option<bool>,
    #[serde(default)]
    pub matmul_rows: Option<bool>,
    #[serde(default)]
    pub matmul_lanes: Option<String>,
    #[serde(default)]
    pub attention_rows: Option<bool>,
}

/// UI → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ToWorker {
    /// Find the WebGPU adapter; answered by `Adapter` or `NoWebGpu`.
    Probe,
    /// Read the model's header (a small Range request, or the file's start) and
    /// answer with `Fit`, before anything big is downloaded.
    Check {
        source: ModelSource,
        /// Read the header over the network when the model is not stored. Without it
        /// the answer comes from the store alone (no request leaves the browser).
        #[serde(default)]
        network: bool,
    },
    /// Download (or resume, or read from the cache) and load onto the GPU.
    Load {
        source: ModelSource,
        /// Engine options the benchmark page can set from its query (`?bench&pairs=on`);
        /// the chat loads with the defaults.
        #[serde(default)]
        tuning: Tuning,
    },
    /// Cancel a download/load in progress (the stored part is kept for resuming).
    Cancel,
    /// Answer the conversation (the last message must be the user's).
    Generate {
        id: u64,
        system: Option<String>,
        messages: Vec<ChatMessage>,
        settings: GenerationSettings,
        /// `false` = greedy (transformers' `do_sample=False`).
        do_sample: bool,
    },
    /// Greedy continuation of raw ids (no template, no BOS added), exactly
    /// `max_new` ids, not stopping at EOS. For tests and the console.
    GenerateIds {
        id: u64,
        ids: Vec<u32>,
        max_new: u32,
    },
    /// Stop the generation in progress after the current token.
    Stop,
    /// Forget the KV cache (a new chat).
    ResetChat,
    /// List the cached models and the storage quota.
    ListCache,
    /// Delete a cached model (by key).
    DeleteModel { key: String },
    /// Drop the current model and device and load the model again (after a device loss).
    Reload,
    /// Destroy the GPU device, as a driver reset would (a console and test aid:
    /// the only way to reproduce a device loss on demand). `quiet`: the idle
    /// watchdog does not report it, so the next GPU work meets the loss.
    LoseDevice {
        #[serde(default)]
        quiet: bool,
    },
    /// Run the benchmark on the loaded model and answer with `BenchResult`; `read_probe`:
    /// also measure what a shader reads per second (as `ahma bench --read-probe`).
    Bench {
        prompt_tokens: u32,
        gen_tokens: u32,
        #[serde(default)]
        read_probe: bool,
    },
}

/// What the adapter offers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub f16: bool,
    pub subgroups: bool,
    pub max_buffer_size: u64,
    pub max_binding_size: u64,
}

/// Phases of getting a model ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Reading the stored copy (and checking it) while uploading it to the GPU.
    Cache,
    /// Downloading (bytes go to storage and to the GPU at once).
    Download,
    /// Reading a local file.
    Local,
    /// Building the pipelines after the last byte.
    Finishing,
}

/// Typed error classes, so the UI can say what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    NoWebGpu,
    DoesNotFit,
    Network,
    Http,
    Storage,
    BadModel,
    Tokenizer,
    DeviceLost,
    OutOfMemory,
    ContextFull,
    Busy,
    NoModel,
    Cancelled,
    Internal,
}

/// Notices that are not errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// A download continues from a stored part.
    Resumed,
    /// The stored copy was damaged or did not match its checksum; downloading again.
    CacheDamaged,
    /// The host changed the file since the stored part was written; starting over.
    RemoteChanged,
    /// The tokenizer.json could not be fetched; the GGUF vocabulary is used.
    TokenizerFallback,
    /// The browser did not grant persistent storage.
    NotPersistent,
    /// The model has no vocabulary (and no tokenizer.json was given): chat is off.
    NoTokenizer,
}

/// Facts about the loaded model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub key: Option<String>,
    pub file_bytes: u64,
    pub gpu_bytes: u64,
    /// Weight bytes one decoded token reads (all but one embedding row).
    pub weights_per_token: u64,
    /// Size of the wasm heap after the load (bytes).
    pub wasm_heap_bytes: u64,
    /// Largest wasm heap seen while loading (bytes).
    pub peak_wasm_heap_bytes: u64,
    pub n_ctx: u32,
    pub n_layer: u32,
    pub n_embd: u32,
    pub n_vocab: u32,
    pub tokenizer: String,
    pub from_cache: bool,
    pub load_seconds: f64,
}

/// Generation statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenStats {
    pub prompt_tokens: u32,
    /// Prompt tokens actually evaluated (the rest came from the KV cache).
    pub prompt_fed: u32,
    pub generated: u32,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub ctx_used: u32,
    pub ctx_max: u32,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopKind {
    Eos,
    MaxLength,
    Stopped,
}

/// One stored model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: String,
    pub url: String,
    pub name: String,
    pub size: Option<u64>,
    pub stored: u64,
    pub complete: bool,
    pub sha256: Option<String>,
    /// OPFS path of the bytes from the OPFS root.
    pub path: Vec<String>,
}

/// Storage usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub usage: f64,
    pub quota: f64,
    pub persisted: bool,
}

/// Worker → UI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FromWorker {
    /// The worker is running and listens.
    Hello,
    Adapter {
        info: AdapterInfo,
    },
    NoWebGpu {
        reason: String,
    },
    Fit {
        /// False when the header could not be read (offline, server error): `message` says why.
        checked: bool,
        fits: bool,
        /// GPU bytes the model needs (weights + KV cache + scratch).
        needed_bytes: u64,
        /// The largest single buffer it needs, and the adapter's limit for one.
        largest_buffer: u64,
        max_buffer: u64,
        file_bytes: Option<u64>,
        message: String,
        /// Bytes already stored for this model, and whether it is complete.
        stored: u64,
        complete: bool,
    },
    Progress {
        phase: Phase,
        bytes: u64,
        total: Option<u64>,
        bytes_per_s: f64,
        wasm_heap_bytes: u64,
    },
    Notice {
        kind: NoticeKind,
        detail: String,
    },
    Ready {
        model: ModelInfo,
    },
    Token {
        id: u64,
        text: String,
    },
    Done {
        id: u64,
        ids: Vec<u32>,
        text: String,
        stop: StopKind,
        dropped_messages: u32,
    },
    Stats {
        stats: GenStats,
    },
    Error {
        /// The generation request this belongs to, if any.
        id: Option<u64>,
        kind: ErrorKind,
        message: String,
    },
    Cache {
        entries: Vec<CacheEntry>,
        quota: Option<Quota>,
    },
    BenchResult {
        json: String,
    },
    /// The current load was cancelled; `stored` bytes are kept for resuming.
    Cancelled {
        stored: u64,
    },
}

impl FromWorker {
    pub fn error(id: Option<u64>, kind: ErrorKind, message: impl Into<String>) -> FromWorker {
        FromWorker::Error {
            id,
            kind,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_without_tuning_parses() {
        // a Load as pages before the tuning field sent it
        let load = ToWorker::Load {
            source: ModelSource::Local {
                name: "m.gguf".into(),
                size: 9,
            },
            tuning: Tuning::default(),
        };
        let mut v = serde_json::to_value(&load).unwrap();
        assert!(v.as_object_mut().unwrap().remove("tuning").is_some());
        let m: ToWorker = serde_json::from_value(v).unwrap();
        assert_eq!(m, load);
    }

    #[test]
    fn round_trips_through_json() {
        let msgs = vec![
            ToWorker::Load {
                source: ModelSource::Url {
                    url: "models/a.gguf".into(),
                    tokenizer_url: None,
                    tokenizer_config_url: None,
                    sha256: None,
                    name: None,
                },
                tuning: Tuning::default(),
            },
            ToWorker::Load {
                source: ModelSource::Local {
                    name: "m.gguf".into(),
                    size: 9,
                },
                tuning: Tuning {
                    matvec_pairs: Some(true),
                    matvec_int_dot: Some(true),
                    matmul_int_dot: Some(true),
                    attn_split_keys: Some(256),
                    matmul_tile: Some("64x64x8".into()),
                    matvec_shape: Some("64x8".into()),
                    matvec_blocks: Some(false),
                    matmul_rows: Some(true),
                    matmul_lanes: Some("16x16".into()),
                    attention_rows: Some(false),
                },
            },
            ToWorker::Generate {
                id: 7,
                system: Some("s".into()),
                messages: vec![ChatMessage {
                    role: Role::User,
                    content: "hei".into(),
                }],
                settings: GenerationSettings::default(),
                do_sample: true,
            },
            ToWorker::Stop,
        ];
        for m in msgs {
            let s = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<ToWorker>(&s).unwrap(), m);
        }
        let s = r#"{"type":"generate-ids","id":1,"ids":[1,2],"max_new":3}"#;
        assert_eq!(
            serde_json::from_str::<ToWorker>(s).unwrap(),
            ToWorker::GenerateIds {
                id: 1,
                ids: vec![1, 2],
                max_new: 3
            }
        );
    }

    #[test]
    fn display_names() {
        let u = |url: &str| ModelSource::Url {
            url: url.into(),
            tokenizer_url: None,
            tokenizer_config_url: None,
            sha256: None,
            name: None,
        };
        assert_eq!(
            u("https://h/x/Ahma.Q4_K_M.gguf?download=1").display_name(),
            "Ahma.Q4_K_M.gguf"
        );
        assert_eq!(u("m.gguf").display_name(), "m.gguf");
    }
}

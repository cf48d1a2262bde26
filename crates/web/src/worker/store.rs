//! The model store in the Origin Private File System (OPFS), worker side.
//!
//! Layout under the OPFS root: `ahma/models/<key>.gguf` (the bytes, written in
//! order, so the file's length is the resume offset) and `<key>.json` (a
//! [`Meta`] record). A model is used from the store only when the meta says
//! `complete` *and* the file's length equals the size *and* its SHA-256, computed
//! again while it is read, matches the recorded one. Anything else is a partial
//! download (resumed) or damage (deleted and fetched again).
//!
//! The worker writes through `FileSystemSyncAccessHandle`, which only dedicated
//! workers have: synchronous positioned reads/writes, no copies through JS
//! streams, and the bytes never collect in the wasm heap.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemReadWriteOptions, FileSystemSyncAccessHandle,
};

use crate::protocol::{CacheEntry, Quota};

pub const DIR: [&str; 2] = ["ahma", "models"];

/// What the store knows about one model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub url: String,
    pub name: String,
    /// Full size, once a response told it.
    pub size: Option<u64>,
    /// The host's validator (`ETag` or `Last-Modified`), for `If-Range`.
    pub validator: Option<String>,
    /// SHA-256 the host or the catalog promised (lower-case hex).
    pub expected_sha256: Option<String>,
    /// SHA-256 of the complete file as stored (lower-case hex).
    pub sha256: Option<String>,
    /// XXH3-128 of the complete file as stored (32 hex digits), recorded with the SHA-256.
    /// Loads from the store check this one alone: it runs at several GB/s in wasm where
    /// SHA-256 runs at a few hundred MB/s, which made the hash most of a reload's time. A
    /// record without it (written by an older build) gets it at the next load, after the
    /// SHA-256 check.
    #[serde(default)]
    pub xxh3: Option<String>,
    pub complete: bool,
}

/// A storage failure, with the browser's message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

pub fn js_err(context: &str, e: JsValue) -> StoreError {
    StoreError(format!("{context}: {}", crate::js_message(&e)))
}

/// The store key of a URL: 16 hex digits of its SHA-256.
pub fn key_for(url: &str) -> String {
    let d = Sha256::digest(url.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn storage() -> Result<web_sys::StorageManager, StoreError> {
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(g.navigator().storage())
}

async fn await_js<T: JsCast>(p: js_sys::Promise, context: &str) -> Result<T, StoreError> {
    let v = JsFuture::from(p).await.map_err(|e| js_err(context, e))?;
    v.dyn_into::<T>().map_err(|v| {
        js_err(
            context,
            JsValue::from_str(&format!("unexpected value {v:?}")),
        )
    })
}

/// The `ahma/models` directory, created when missing.
pub async fn models_dir() -> Result<FileSystemDirectoryHandle, StoreError> {
    let mut dir: FileSystemDirectoryHandle = await_js(
        storage()?.get_directory(),
        "opening the origin private file system",
    )
    .await?;
    let opts = FileSystemGetDirectoryOptions::new();
    opts.set_create(true);
    for name in DIR {
        dir = await_js(
            dir.get_directory_handle_with_options(name, &opts),
            "opening the model folder",
        )
        .await?;
    }
    Ok(dir)
}

async fn file(
    dir: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
) -> Result<Option<FileSystemFileHandle>, StoreError> {
    let opts = FileSystemGetFileOptions::new();
    opts.set_create(create);
    match JsFuture::from(dir.get_file_handle_with_options(name, &opts)).await {
        Ok(v) => Ok(Some(v.unchecked_into())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(js_err(&format!("opening {name}"), e)),
    }
}

fn is_not_found(e: &JsValue) -> bool {
    e.dyn_ref::<web_sys::DomException>()
        .is_some_and(|d| d.name() == "NotFoundError" || d.name() == "TypeMismatchError")
}

async fn read_small(
    dir: &FileSystemDirectoryHandle,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let Some(h) = file(dir, name, false).await? else {
        return Ok(None);
    };
    let f: web_sys::File = await_js(h.get_file(), "reading metadata").await?;
    let text = JsFuture::from(f.text())
        .await
        .map_err(|e| js_err("reading metadata", e))?;
    Ok(text.as_string())
}

async fn write_small(
    dir: &FileSystemDirectoryHandle,
    name: &str,
    text: &str,
) -> Result<(), StoreError> {
    let h = file(dir, name, true)
        .await?
        .ok_or_else(|| StoreError(format!("could not create {name}")))?;
    let sync: FileSystemSyncAccessHandle =
        await_js(h.create_sync_access_handle(), "writing metadata").await?;
    let res = (|| {
        sync.truncate_with_f64(0.0)?;
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(0.0);
        sync.write_with_u8_array_and_options(text.as_bytes(), &opts)?;
        sync.flush()
    })();
    sync.close();
    res.map_err(|e| js_err("writing metadata", e))
}

pub async fn read_meta(
    dir: &FileSystemDirectoryHandle,
    key: &str,
) -> Result<Option<Meta>, StoreError> {
    Ok(read_small(dir, &format!("{key}.json"))
        .await?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

pub async fn write_meta(
    dir: &FileSystemDirectoryHandle,
    key: &str,
    meta: &Meta,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(meta).map_err(|e| StoreError(e.to_string()))?;
    write_small(dir, &format!("{key}.json"), &text).await
}

/// Deletes a model's bytes and metadata (missing files are fine).
pub async fn delete(dir: &FileSystemDirectoryHandle, key: &str) -> Result<(), StoreError> {
    for name in [
        format!("{key}.gguf"),
        format!("{key}.json"),
        format!("{key}.tokenizer.json"),
        format!("{key}.tokenizer_config.json"),
    ] {
        if let Err(e) = JsFuture::from(dir.remove_entry(&name)).await {
            if !is_not_found(&e) {
                return Err(js_err(&format!("deleting {name}"), e));
            }
        }
    }
    Ok(())
}

/// The model bytes, open for synchronous positioned access. Closed on drop.
pub struct Blob {
    sync: FileSystemSyncAccessHandle,
}

impl Blob {
    pub async fn open(dir: &FileSystemDirectoryHandle, key: &str) -> Result<Blob, StoreError> {
        let name = format!("{key}.gguf");
        let h = file(dir, &name, true)
            .await?
            .ok_or_else(|| StoreError(format!("could not create {name}")))?;
        let sync = await_js(
            h.create_sync_access_handle(),
            "opening the stored model (is the app open in another tab?)",
        )
        .await?;
        Ok(Blob { sync })
    }

    pub fn len(&self) -> Result<u64, StoreError> {
        self.sync
            .get_size()
            .map(|s| s as u64)
            .map_err(|e| js_err("reading the stored size", e))
    }

    pub fn read_at(&self, buf: &mut [u8], at: u64) -> Result<usize, StoreError> {
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(at as f64);
        self.sync
            .read_with_u8_array_and_options(buf, &opts)
            .map(|n| n as usize)
            .map_err(|e| js_err("reading the stored model", e))
    }

    pub fn write_at(&self, buf: &[u8], at: u64) -> Result<(), StoreError> {
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(at as f64);
        let n = self
            .sync
            .write_with_u8_array_and_options(buf, &opts)
            .map_err(|e| js_err("storing the model (is the disk full?)", e))?
            as usize;
        if n != buf.len() {
            return Err(StoreError(format!(
                "storing the model: wrote {n} of {} bytes (is the disk full?)",
                buf.len()
            )));
        }
        Ok(())
    }

    pub fn truncate(&self, len: u64) -> Result<(), StoreError> {
        self.sync
            .truncate_with_f64(len as f64)
            .map_err(|e| js_err("truncating the stored model", e))
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.sync
            .flush()
            .map_err(|e| js_err("flushing the stored model", e))
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        let _ = self.sync.flush();
        self.sync.close();
    }
}

/// Every stored model, from the metadata files.
pub async fn list() -> Result<Vec<CacheEntry>, StoreError> {
    let dir = models_dir().await?;
    let keys = dir.keys();
    let mut names = Vec::new();
    loop {
        let next = JsFuture::from(keys.next().map_err(|e| js_err("listing models", e))?)
            .await
            .map_err(|e| js_err("listing models", e))?;
        let next: js_sys::IteratorNext = next.unchecked_into();
        if next.done() {
            break;
        }
        if let Some(n) = next.value().as_string() {
            names.push(n);
        }
    }
    let mut out = Vec::new();
    for n in &names {
        let Some(key) = n
            .strip_suffix(".json")
            .filter(|k| !k.ends_with(".tokenizer") && !k.ends_with(".tokenizer_config"))
        else {
            continue;
        };
        if let Some(e) = entry(&dir, key).await? {
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The stored model `key` (None when it has no metadata).
pub async fn entry(
    dir: &web_sys::FileSystemDirectoryHandle,
    key: &str,
) -> Result<Option<CacheEntry>, StoreError> {
    let Some(meta) = read_meta(dir, key).await? else {
        return Ok(None);
    };
    // While a download holds the file's access handle, its size may be unreadable: 0 then.
    let stored = match file(dir, &format!("{key}.gguf"), false).await {
        Ok(Some(h)) => {
            match await_js::<web_sys::File>(h.get_file(), "reading the stored size").await {
                Ok(f) => f.size() as u64,
                Err(_) => 0,
            }
        }
        _ => 0,
    };
    Ok(Some(CacheEntry {
        key: key.to_string(),
        url: meta.url,
        name: meta.name,
        size: meta.size,
        stored,
        complete: meta.complete && Some(stored) == meta.size,
        sha256: meta.sha256,
        path: vec![DIR[0].into(), DIR[1].into(), format!("{key}.gguf")],
    }))
}

/// Usage and quota of the origin's storage, and whether it is persistent.
pub async fn quota() -> Option<Quota> {
    let s = storage().ok()?;
    let est = JsFuture::from(s.estimate().ok()?).await.ok()?;
    let get = |k: &str| {
        js_sys::Reflect::get(&est, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let persisted = JsFuture::from(s.persisted().ok()?)
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Some(Quota {
        usage: get("usage"),
        quota: get("quota"),
        persisted,
    })
}

/// Reads a small stored file (the tokenizer.json beside a model).
pub async fn read_text(
    dir: &FileSystemDirectoryHandle,
    name: &str,
) -> Result<Option<String>, StoreError> {
    read_small(dir, name).await
}

/// Writes a small stored file.
pub async fn write_text(
    dir: &FileSystemDirectoryHandle,
    name: &str,
    text: &str,
) -> Result<(), StoreError> {
    write_small(dir, name, text).await
}

//! HTTP downloads with Range requests, for resuming and for reading a model's
//! header before the whole file.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, Request, RequestCache, RequestInit, Response};

use crate::protocol::ErrorKind;

pub type FetchError = (ErrorKind, String);

/// An open response body.
pub struct Download {
    pub status: u16,
    /// Offset of the first body byte in the file.
    pub start: u64,
    /// The file's full size, when the response says it.
    pub total: Option<u64>,
    /// `ETag`, else `Last-Modified`.
    pub validator: Option<String>,
    /// A SHA-256 the host gives for the file (Hugging Face LFS ETags are one).
    pub sha256: Option<String>,
    reader: Option<ReadableStreamDefaultReader>,
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).ok().flatten()
}

/// Parses `bytes a-b/total`.
pub fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (a, _b) = range.split_once('-')?;
    Some((a.trim().parse().ok()?, total.trim().parse().ok()))
}

/// A 64-hex-digit SHA-256 out of an ETag-like value.
pub fn sha256_of_etag(v: &str) -> Option<String> {
    let v = v
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase();
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
}

/// Starts a GET of `url` from byte `from` (to `to`, inclusive, if given).
pub async fn open(
    url: &str,
    from: u64,
    to: Option<u64>,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<Download, FetchError> {
    let init = RequestInit::new();
    init.set_method("GET");
    // The app stores the model itself: keep the HTTP cache out of it.
    init.set_cache(RequestCache::NoStore);
    if let Some(s) = signal {
        init.set_signal(Some(s));
    }
    let req = Request::new_with_str_and_init(url, &init).map_err(|e| {
        (
            ErrorKind::Network,
            format!("bad model URL {url}: {}", crate::js_message(&e)),
        )
    })?;
    if from > 0 || to.is_some() {
        let range = match to {
            Some(t) => format!("bytes={from}-{t}"),
            None => format!("bytes={from}-"),
        };
        req.headers()
            .set("Range", &range)
            .map_err(|e| (ErrorKind::Internal, crate::js_message(&e)))?;
    }
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: Response = JsFuture::from(g.fetch_with_request(&req))
        .await
        .map_err(|e| {
            (
                ErrorKind::Network,
                format!("could not reach {url}: {}", crate::js_message(&e)),
            )
        })?
        .unchecked_into();
    let status = resp.status();
    let validator = header(&resp, "etag").or_else(|| header(&resp, "last-modified"));
    let sha256 = header(&resp, "x-linked-etag")
        .or_else(|| header(&resp, "etag"))
        .and_then(|v| sha256_of_etag(&v));
    let (start, total) = match status {
        206 => header(&resp, "content-range")
            .and_then(|v| parse_content_range(&v))
            .ok_or_else(|| {
                (
                    ErrorKind::Http,
                    "the server sent a partial response without Content-Range".to_string(),
                )
            })?,
        200 => {
            let encoded = header(&resp, "content-encoding").is_some_and(|e| e != "identity");
            let len = header(&resp, "content-length").and_then(|v| v.trim().parse().ok());
            (0, if encoded { None } else { len })
        }
        416 => {
            let total = header(&resp, "content-range")
                .and_then(|v| v.rsplit('/').next().and_then(|t| t.trim().parse().ok()));
            return Ok(Download {
                status,
                start: from,
                total,
                validator,
                sha256,
                reader: None,
            });
        }
        s => {
            return Err((
                ErrorKind::Http,
                format!("{url}: HTTP {s} {}", resp.status_text()),
            ))
        }
    };
    let reader = resp.body().map(|b| {
        b.get_reader()
            .unchecked_into::<ReadableStreamDefaultReader>()
    });
    Ok(Download {
        status,
        start,
        total,
        validator,
        sha256,
        reader,
    })
}

impl Download {
    /// The next chunk of the body, `None` at its end.
    pub async fn next(&mut self) -> Result<Option<js_sys::Uint8Array>, FetchError> {
        let Some(r) = &self.reader else {
            return Ok(None);
        };
        let res = JsFuture::from(r.read()).await.map_err(|e| {
            (
                ErrorKind::Network,
                format!("the download was interrupted: {}", crate::js_message(&e)),
            )
        })?;
        let done = js_sys::Reflect::get(&res, &JsValue::from_str("done"))
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            self.reader = None;
            return Ok(None);
        }
        let v = js_sys::Reflect::get(&res, &JsValue::from_str("value"))
            .map_err(|e| (ErrorKind::Network, crate::js_message(&e)))?;
        Ok(Some(v.unchecked_into()))
    }

    /// Stops reading (releases the connection).
    pub fn close(&mut self) {
        if let Some(r) = self.reader.take() {
            // cancel() rejects when the stream has already failed: consume that
            // rejection so it never surfaces as an unhandled promise rejection.
            let p = r.cancel();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = JsFuture::from(p).await;
            });
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.close();
    }
}

/// Fetches a small whole file as text.
pub async fn text(url: &str) -> Result<String, FetchError> {
    let g: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: Response = JsFuture::from(g.fetch_with_str(url))
        .await
        .map_err(|e| {
            (
                ErrorKind::Network,
                format!("could not reach {url}: {}", crate::js_message(&e)),
            )
        })?
        .unchecked_into();
    if !resp.ok() {
        return Err((ErrorKind::Http, format!("{url}: HTTP {}", resp.status())));
    }
    let t = JsFuture::from(
        resp.text()
            .map_err(|e| (ErrorKind::Network, crate::js_message(&e)))?,
    )
    .await
    .map_err(|e| (ErrorKind::Network, crate::js_message(&e)))?;
    Ok(t.as_string().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn etag_sha() {
        let h = "a".repeat(64);
        assert_eq!(sha256_of_etag(&format!("\"{h}\"")), Some(h.clone()));
        assert_eq!(
            sha256_of_etag(&format!("W/\"{}\"", h.to_uppercase())),
            Some(h)
        );
        assert_eq!(sha256_of_etag("\"123-456\""), None);
    }
}

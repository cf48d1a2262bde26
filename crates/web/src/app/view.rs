//! The page: model picker and download, chat, settings, storage.

use std::collections::HashMap;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::persist::{self, Settings};
use super::{bridge, AppState, Lang, Selection, Ui};
use crate::markdown::{self, Block, Inline};
use crate::protocol::{ErrorKind, Phase, Role, ToWorker};

/// The page's query parameters.
pub fn query() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(search) = web_sys::window().and_then(|w| w.location().search().ok()) else {
        return out;
    };
    if let Ok(p) = web_sys::UrlSearchParams::new_with_str(&search) {
        for k in [
            "model",
            "lang",
            "bench",
            "prompt",
            "gen",
            "pairs",
            "int8",
            "mm_int8",
            "split_keys",
            "tile",
            "shape",
            "blocks",
            "rows",
            "lanes",
            "attn_rows",
            "read_probe",
        ] {
            if let Some(v) = p.get(k) {
                out.insert(k.to_string(), v);
            }
        }
    }
    out
}

pub fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn fmt_secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".into();
    }
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

fn inline_view(spans: Vec<Inline>) -> impl IntoView {
    spans
        .into_iter()
        .map(|s| match s {
            Inline::Text(t) => t.into_any(),
            Inline::Code(t) => view! { <code>{t}</code> }.into_any(),
            Inline::Bold(t) => view! { <strong>{t}</strong> }.into_any(),
            Inline::Italic(t) => view! { <em>{t}</em> }.into_any(),
        })
        .collect::<Vec<_>>()
}

/// Model text as DOM text nodes (never HTML).
pub fn render_markdown(text: &str) -> impl IntoView {
    markdown::parse(text)
        .into_iter()
        .map(|b| match b {
            Block::Paragraph(lines) => {
                let n = lines.len();
                let parts = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| {
                        view! { {inline_view(l)} {(i + 1 < n).then(|| view! { <br/> })} }
                    })
                    .collect::<Vec<_>>();
                view! { <p>{parts}</p> }.into_any()
            }
            Block::Heading(_, spans) => {
                view! { <p class="heading"><strong>{inline_view(spans)}</strong></p> }.into_any()
            }
            Block::List { ordered, items } => {
                let lis = items
                    .into_iter()
                    .map(|i| view! { <li>{inline_view(i)}</li> })
                    .collect::<Vec<_>>();
                if ordered {
                    view! { <ol>{lis}</ol> }.into_any()
                } else {
                    view! { <ul>{lis}</ul> }.into_any()
                }
            }
            Block::Code { text, .. } => view! { <pre><code>{text}</code></pre> }.into_any(),
        })
        .collect::<Vec<_>>()
}

fn copy_text(text: String) {
    if let Some(w) = web_sys::window() {
        // The promise rejects without clipboard permission: consume it (never an unhandled
        // rejection) and log why.
        let p = w.navigator().clipboard().write_text(&text);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = wasm_bindgen_futures::JsFuture::from(p).await {
                web_sys::console::warn_1(&format!("copy: {}", crate::js_message(&e)).into());
            }
        });
    }
}

#[component]
pub fn App() -> impl IntoView {
    let ui = expect_context::<Ui>();
    Effect::new(move |_| {
        let l = ui.lang.get();
        let code = if l == Lang::Fi { "fi" } else { "en" };
        persist::save_string(persist::LANG, code);
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = el.set_attribute("lang", code);
        }
    });
    Effect::new(move |_| {
        let s = ui.settings.get();
        persist::save(persist::SETTINGS, &s);
    });
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        let Some(dt) = ev.data_transfer() else { return };
        let Some(list) = dt.files() else { return };
        let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
        if !files.is_empty() {
            ui.load_local(files);
        }
    };
    view! {
        <div class="app" on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <Header/>
            <NoWebGpu/>
            <ModelPanel/>
            <div class="main">
                <Conversations/>
                <Chat/>
            </div>
            <SettingsPanel/>
            <Bench/>
        </div>
    }
}

#[component]
fn Header() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let status_text = move || match ui.state.get() {
        AppState::Starting => ui.t("Käynnistyy…", "Starting…"),
        AppState::Idle => ui.t("Valitse malli", "Choose a model"),
        AppState::Downloading => ui.t("Ladataan mallia…", "Downloading the model…"),
        AppState::Loading => ui.t("Ladataan näytönohjaimelle…", "Loading onto the GPU…"),
        AppState::Ready => ui.t("Valmis", "Ready"),
        AppState::Generating => ui.t("Kirjoittaa…", "Writing…"),
        AppState::Error => ui.t("Virhe", "Error"),
        AppState::NoWebGpu => ui.t("WebGPU puuttuu", "No WebGPU"),
    };
    view! {
        <header class="top">
            <h1><img src="icon.svg" alt="" width="28" height="28"/>" Ahma"</h1>
            <span class="status" data-testid="status" role="status" aria-live="polite"
                data-state=move || ui.state.get().as_str()>{status_text}</span>
            <span class="spacer"></span>
            <button data-testid="settings-toggle" aria-expanded=move || ui.show_settings.get().to_string()
                on:click=move |_| {
                    ui.show_settings.update(|s| *s = !*s);
                    if ui.show_settings.get_untracked() {
                        // on a narrow screen the panel opens below the chat: bring it into view
                        request_animation_frame(|| {
                            if let Some(el) = web_sys::window()
                                .and_then(|w| w.document())
                                .and_then(|d| d.query_selector("[data-testid=settings-panel]").ok().flatten())
                            {
                                el.scroll_into_view();
                            }
                        });
                    }
                }>
                {move || ui.t("Asetukset", "Settings")}
            </button>
            <button data-testid="lang-toggle" aria-label=move || ui.t("Switch to English", "Vaihda suomeksi")
                on:click=move |_| ui.lang.update(|l| *l = if *l == Lang::Fi { Lang::En } else { Lang::Fi })>
                {move || if ui.lang.get() == Lang::Fi { "EN" } else { "FI" }}
            </button>
        </header>
    }
}

#[component]
fn NoWebGpu() -> impl IntoView {
    let ui = expect_context::<Ui>();
    view! {
        <Show when=move || ui.no_webgpu.get().is_some()>
            <section class="panel alert" data-testid="no-webgpu" role="alert">
                <h2>{move || ui.t("Selaimesi ei tue WebGPU:ta", "Your browser has no WebGPU")}</h2>
                <p>{move || ui.t(
                    "Ahma toimii kokonaan omalla näytönohjaimellasi WebGPU:n avulla. Käytä Chromea tai Edgeä (versio 113 tai uudempi) Windowsissa, macOS:ssä tai ChromeOS:ssä, Chromea Androidilla (121+), tai Safaria (26+). Linuxilla ota Chromessa käyttöön chrome://flags/#enable-unsafe-webgpu ja chrome://flags/#enable-vulkan. Firefoxissa WebGPU on käytössä versiosta 141 alkaen Windowsilla.",
                    "Ahma runs entirely on your own GPU through WebGPU. Use Chrome or Edge 113+ on Windows, macOS or ChromeOS, Chrome 121+ on Android, or Safari 26+. On Linux, enable chrome://flags/#enable-unsafe-webgpu and chrome://flags/#enable-vulkan in Chrome. Firefox has WebGPU on Windows from version 141.",
                )}</p>
                <p class="detail">{move || ui.no_webgpu.get().unwrap_or_default()}</p>
            </section>
        </Show>
    }
}

#[component]
fn ModelPanel() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let select_value = move || match ui.selection.get() {
        Selection::Catalog(id) => id,
        Selection::Url(_) => "__url".into(),
        Selection::Local { .. } => "__file".into(),
        Selection::None => String::new(),
    };
    let on_select = move |ev: leptos::ev::Event| {
        let v = event_target_value(&ev);
        match v.as_str() {
            "__url" => ui
                .selection
                .set(Selection::Url(ui.custom_url.get_untracked())),
            "__file" => {}
            id => ui.selection.set(Selection::Catalog(id.to_string())),
        }
        ui.check_selected();
    };
    let options = move || {
        ui.catalog
            .get()
            .models
            .into_iter()
            .map(|m| {
                let size = m
                    .size
                    .map(|s| format!(" · {}", fmt_bytes(s)))
                    .unwrap_or_default();
                let label = format!("{} {}{}", m.name, m.quant, size);
                view! { <option value=m.id.clone()>{label}</option> }
            })
            .collect::<Vec<_>>()
    };
    let on_file = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(list) = input.files() else { return };
        let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
        ui.load_local(files);
        input.set_value("");
    };
    let load_label = move || {
        let fit = ui.fit.get();
        match fit {
            Some(f) if f.complete => ui
                .t("Lataa tallennettu malli", "Load the stored model")
                .to_string(),
            Some(f) if f.stored > 0 => format!(
                "{} ({} / {})",
                ui.t("Jatka latausta", "Resume download"),
                fmt_bytes(f.stored),
                f.file_bytes.map(fmt_bytes).unwrap_or_else(|| "?".into())
            ),
            Some(f) => match f.file_bytes {
                Some(b) => format!(
                    "{} ({})",
                    ui.t("Lataa malli", "Download the model"),
                    fmt_bytes(b)
                ),
                None => ui.t("Lataa malli", "Download the model").to_string(),
            },
            None => ui.t("Lataa malli", "Download the model").to_string(),
        }
    };
    let fit_text =
        move || {
            let f = ui.fit.get()?;
            let a = ui.adapter.get();
            if !f.checked && f.message.is_empty() {
                return if f.stored > 0 {
                    Some(format!(
                        "{} {}",
                        fmt_bytes(f.stored),
                        ui.t(
                            "on jo tallessa; lataus jatkuu siitä.",
                            "already stored; the download continues from there."
                        )
                    ))
                } else {
                    Some(ui.t(
                    "Ennen latausta tarkistetaan, että malli mahtuu näytönohjaimelle.",
                    "Before the download starts, the app checks that the model fits your GPU.",
                ).to_string())
                };
            }
            Some(if !f.checked {
                format!(
                    "{} ({})",
                    ui.t(
                        "Mallin kokoa ei voitu tarkistaa nyt.",
                        "The model's size could not be checked now."
                    ),
                    f.message
                )
            } else if f.fits {
                if f.needed_bytes > 0 {
                    format!(
                        "{} {} {}{}",
                        ui.t("Mahtuu: tarvitsee", "Fits: needs"),
                        fmt_bytes(f.needed_bytes),
                        ui.t("näytönohjaimen muistia", "of GPU memory"),
                        a.map(|a| format!(" ({})", a.name)).unwrap_or_default()
                    )
                } else {
                    ui.t(
                        "Malli on tallessa tällä laitteella.",
                        "The model is stored on this device.",
                    )
                    .to_string()
                }
            } else {
                format!(
                    "{} {}",
                    ui.t("Ei mahdu tälle näytönohjaimelle:", "Does not fit this GPU:"),
                    f.message
                )
            })
        };
    let fit_ok = move || ui.fit.get().is_none_or(|f| f.fits);
    let progress_value = move || ui.progress.get().map(|p| p.bytes as f64).unwrap_or(0.0);
    let progress_max = move || {
        ui.progress
            .get()
            .and_then(|p| p.total)
            .map(|t| t as f64)
            .unwrap_or(1.0)
            .max(1.0)
    };
    let percent = move || {
        let p = ui.progress.get()?;
        p.total
            .map(|t| (p.bytes as f64 / t.max(1) as f64 * 100.0).min(100.0))
    };
    let progress_text = move || {
        let p = ui.progress.get()?;
        let phase = match p.phase {
            Phase::Cache => ui.t("Luetaan tallennettua mallia", "Reading the stored model"),
            Phase::Download => ui.t("Ladataan", "Downloading"),
            Phase::Local => ui.t("Luetaan tiedostoa", "Reading the file"),
            Phase::Finishing => ui.t("Viimeistellään", "Finishing"),
        };
        let mut s = format!("{phase}: {}", fmt_bytes(p.bytes));
        if let Some(t) = p.total {
            s.push_str(&format!(
                " / {} ({:.1} %)",
                fmt_bytes(t),
                p.bytes as f64 / t.max(1) as f64 * 100.0
            ));
        }
        if p.bytes_per_s > 0.0 {
            s.push_str(&format!(" · {}/s", fmt_bytes(p.bytes_per_s as u64)));
            if let Some(t) = p.total {
                let left = (t.saturating_sub(p.bytes)) as f64 / p.bytes_per_s;
                s.push_str(&format!(
                    " · {} {}",
                    ui.t("aikaa jäljellä", "time left"),
                    fmt_secs(left)
                ));
            }
        }
        Some(s)
    };
    let error_text = move || {
        let (kind, msg) = ui.error.get()?;
        let head = match kind {
            ErrorKind::Network => ui.t("Lataus katkesi.", "The download failed."),
            ErrorKind::Http => ui.t(
                "Palvelin ei antanut mallia.",
                "The server did not give the model.",
            ),
            ErrorKind::DoesNotFit => ui.t(
                "Malli ei mahdu tälle näytönohjaimelle.",
                "The model does not fit this GPU.",
            ),
            ErrorKind::DeviceLost => ui.t(
                "Näytönohjain nollautui. Lataa malli uudelleen tallennetusta kopiosta.",
                "The GPU was reset. Reload the model from the stored copy.",
            ),
            ErrorKind::OutOfMemory => ui.t(
                "Näytönohjaimen muisti loppui.",
                "The GPU ran out of memory.",
            ),
            ErrorKind::BadModel => ui.t(
                "Tiedosto ei ole käyttökelpoinen malli.",
                "The file is not a usable model.",
            ),
            ErrorKind::Storage => ui.t("Tallennus epäonnistui.", "Storage failed."),
            ErrorKind::ContextFull => ui.t(
                "Viesti ei mahdu mallin kontekstiin.",
                "The message does not fit the model's context.",
            ),
            ErrorKind::Tokenizer => ui.t("Tokenisoija ei latautunut.", "The tokenizer failed."),
            _ => ui.t("Jokin meni vikaan.", "Something went wrong."),
        };
        Some((head, msg, kind))
    };
    let retry = move |_| {
        let kind = ui.error.get_untracked().map(|e| e.0);
        ui.error.set(None);
        if kind == Some(ErrorKind::DeviceLost) {
            ui.state.set(AppState::Loading);
            bridge::send(&ToWorker::Reload);
        } else if matches!(ui.selection.get_untracked(), Selection::Local { .. }) {
            ui.state.set(AppState::Idle);
        } else {
            ui.state.set(AppState::Idle);
            ui.load_selected();
        }
    };
    let model_line = move || {
        let m = ui.model.get()?;
        let a = ui.adapter.get().unwrap_or_default();
        Some(format!(
            "{} · {} · {} {} · {}{}",
            m.name,
            fmt_bytes(m.file_bytes),
            a.name,
            if a.f16 { "(f16)" } else { "(f32)" },
            m.tokenizer,
            if m.from_cache {
                ui.t(" · tallennetusta kopiosta", " · from the stored copy")
            } else {
                ""
            }
        ))
    };
    let loading = move || matches!(ui.state.get(), AppState::Downloading | AppState::Loading);
    view! {
        <section class="panel model" aria-label=move || ui.t("Malli", "Model")>
            <div class="row">
                <label for="model-select">{move || ui.t("Malli", "Model")}</label>
                <select id="model-select" data-testid="model-select" prop:value=select_value on:change=on_select
                    disabled=loading>
                    {options}
                    <option value="__url">{move || ui.t("Oma osoite (URL)…", "Custom URL…")}</option>
                    <Show when=move || matches!(ui.selection.get(), Selection::Local { .. })>
                        <option value="__file">{move || match ui.selection.get() { Selection::Local { name, .. } => name, _ => String::new() }}</option>
                    </Show>
                </select>
                <label class="file button">
                    {move || ui.t("Avaa tiedosto…", "Open a file…")}
                    <input type="file" data-testid="file-input" multiple accept=".gguf,.json" on:change=on_file
                        aria-label=move || ui.t("Avaa .gguf-malli (ja tokenizer.json) levyltä", "Open a .gguf model (and tokenizer.json) from disk")/>
                </label>
            </div>
            <Show when=move || matches!(ui.selection.get(), Selection::Url(_))>
                <div class="row">
                    <label for="custom-url">"URL"</label>
                    <input id="custom-url" data-testid="custom-url" type="url" placeholder="https://…/model.gguf"
                        prop:value=move || ui.custom_url.get()
                        on:input=move |ev| ui.custom_url.set(event_target_value(&ev))
                        on:change=move |_| { ui.selection.set(Selection::Url(ui.custom_url.get_untracked())); ui.check_selected(); }/>
                </div>
            </Show>
            <p class="fit" data-testid="fit" class:bad=move || !fit_ok()>{fit_text}</p>
            <div class="row">
                <Show when=move || {
                    let sel = ui.selection.get();
                    let loaded = ui.model.get().is_some() && ui.loaded_selection.get().as_ref() == Some(&sel);
                    !loading() && !loaded && !matches!(sel, Selection::Local { .. } | Selection::None)
                }>
                    <button class="primary" data-testid="load" on:click=move |_| ui.start_download()
                        disabled=move || !fit_ok() || matches!(ui.state.get(), AppState::Starting | AppState::Generating | AppState::NoWebGpu)>
                        {load_label}
                    </button>
                </Show>
                <Show when=loading>
                    <button data-testid="cancel" on:click=move |_| bridge::send(&ToWorker::Cancel)>
                        {move || ui.t("Keskeytä", "Cancel")}
                    </button>
                </Show>
            </div>
            <Show when=move || ui.progress.get().is_some()>
                <div class="progress">
                    <progress data-testid="progress" max=progress_max value=progress_value
                        aria-valuenow=move || percent().map(|p| format!("{p:.0}")).unwrap_or_default()
                        aria-label=move || ui.t("Latauksen edistyminen", "Download progress")></progress>
                    <span data-testid="progress-text">{progress_text}</span>
                </div>
            </Show>
            <Show when=move || ui.notice.get().is_some()>
                <p class="notice" role="status">{move || ui.notice.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || ui.error.get().is_some()>
                <div class="error" role="alert">
                    <p data-testid="error">
                        <strong>{move || error_text().map(|e| e.0).unwrap_or_default()}</strong>" "
                        <span class="detail">{move || error_text().map(|e| e.1).unwrap_or_default()}</span>
                    </p>
                    <button data-testid="retry" on:click=retry>
                        {move || if ui.error.get().is_some_and(|e| e.0 == ErrorKind::DeviceLost) {
                            ui.t("Lataa malli uudelleen", "Reload the model")
                        } else {
                            ui.t("Yritä uudelleen", "Retry")
                        }}
                    </button>
                </div>
            </Show>
            <Show when=move || ui.model.get().is_some()>
                <p class="model-line" data-testid="model-info">{model_line}</p>
            </Show>
            <Storage/>
        </section>
    }
}

#[component]
fn Storage() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let quota = move || {
        let q = ui.quota.get()?;
        Some(format!(
            "{} {} / {}{}",
            ui.t("Tallennustila:", "Storage:"),
            fmt_bytes(q.usage as u64),
            fmt_bytes(q.quota as u64),
            if q.persisted {
                ui.t(" · pysyvä", " · persistent")
            } else {
                ""
            }
        ))
    };
    let items = move || {
        ui.cache
            .get()
            .into_iter()
            .map(|e| {
                let key = e.key.clone();
                let status = if e.complete {
                    fmt_bytes(e.stored)
                } else {
                    format!(
                        "{} / {} ({})",
                        fmt_bytes(e.stored),
                        e.size.map(fmt_bytes).unwrap_or_else(|| "?".into()),
                        ui.t_untracked("kesken", "partial")
                    )
                };
                let name = e.name.clone();
                let label = format!("{} {}", ui.t_untracked("Poista", "Delete"), name);
                view! {
                    <li data-testid="cached-model">
                        <span class="name">{name}</span>" "<span class="size">{status}</span>" "
                        <button data-testid="delete-model" aria-label=label
                            disabled=move || ui.busy()
                            on:click=move |_| {
                                if ui.model.get_untracked().is_some_and(|m| m.key.as_deref() == Some(key.as_str())) {
                                    ui.model.set(None);
                                    ui.state.set(AppState::Idle);
                                }
                                bridge::send(&ToWorker::DeleteModel { key: key.clone() });
                                ui.check_selected();
                            }>
                            {move || ui.t("Poista", "Delete")}
                        </button>
                    </li>
                }
            })
            .collect::<Vec<_>>()
    };
    view! {
        <details class="storage">
            <summary>{move || ui.t("Tallennetut mallit", "Stored models")}" ("{move || ui.cache.get().len()}")"</summary>
            <p data-testid="quota">{quota}</p>
            <ul>{items}</ul>
        </details>
    }
}

#[component]
fn Conversations() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let items = move || {
        let active = ui.active.get();
        ui.convs
            .get()
            .into_iter()
            .map(|c| {
                let id = c.id.clone();
                let id2 = c.id.clone();
                let is_active = active.as_deref() == Some(c.id.as_str());
                let title = if c.title.is_empty() {
                    ui.t_untracked("Uusi keskustelu", "New chat").to_string()
                } else {
                    c.title.clone()
                };
                let label = format!("{} {}", ui.t_untracked("Poista keskustelu", "Delete chat"), title);
                view! {
                    <li data-testid="conversation" class:active=is_active>
                        <button class="conv-title" aria-current=is_active.then_some("true")
                            disabled=move || ui.state.get() == AppState::Generating
                            on:click=move |_| {
                                ui.active.set(Some(id.clone()));
                                ui.editing.set(None);
                                ui.dropped.set(0);
                            }>{title}</button>
                        <button class="icon" data-testid="delete-conversation" aria-label=label.clone() title=label
                            disabled=move || ui.state.get() == AppState::Generating
                            on:click=move |_| {
                                let mut gone = None;
                                ui.convs.update(|cs| {
                                    if let Some(i) = cs.iter().position(|c| c.id == id2) {
                                        gone = Some((i, cs.remove(i)));
                                    }
                                });
                                if ui.active.get_untracked().as_deref() == Some(id2.as_str()) {
                                    ui.active.set(ui.convs.with_untracked(|c| c.first().map(|c| c.id.clone())));
                                    bridge::send(&ToWorker::ResetChat);
                                }
                                ui.deleted.set(gone);
                                ui.save_convs();
                            }>"×"</button>
                    </li>
                }
            })
            .collect::<Vec<_>>()
    };
    view! {
        <aside class="convs" aria-label=move || ui.t("Keskustelut", "Chats")>
            <button data-testid="new-chat" on:click=move |_| ui.new_chat()
                disabled=move || ui.state.get() == AppState::Generating>
                {move || ui.t("+ Uusi keskustelu", "+ New chat")}
            </button>
            <ul>{items}</ul>
            <Show when=move || ui.deleted.with(|d| d.is_some())>
                <p class="notice undo" data-testid="deleted-notice" role="status">
                    {move || ui.t("Keskustelu poistettu.", "Chat deleted.")}" "
                    <button data-testid="undo-delete" on:click=move |_| {
                        if let Some((i, c)) = ui.deleted.get_untracked() {
                            let id = c.id.clone();
                            ui.convs.update(|cs| {
                                let i = i.min(cs.len());
                                cs.insert(i, c);
                            });
                            ui.active.set(Some(id));
                            ui.editing.set(None);
                            ui.dropped.set(0);
                            ui.save_convs();
                        }
                        ui.deleted.set(None);
                    }>{move || ui.t("Kumoa", "Undo")}</button>
                    <button class="icon" aria-label=move || ui.t("Sulje", "Dismiss")
                        on:click=move |_| ui.deleted.set(None)>"×"</button>
                </p>
            </Show>
        </aside>
    }
}

#[component]
fn Chat() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let messages = move || {
        let conv = ui.active_conv();
        let editing = ui.editing.get();
        let ready = ui.state.get() == AppState::Ready;
        let msgs = conv.map(|c| c.messages).unwrap_or_default();
        let n = msgs.len();
        msgs.into_iter()
            .enumerate()
            .map(|(i, m)| {
                let role = if m.role == Role::User { "user" } else { "assistant" };
                let content = m.content.clone();
                if editing == Some(i) {
                    let text = RwSignal::new(m.content.clone());
                    return view! {
                        <div class="msg user editing" data-testid="message" data-role=role>
                            <textarea data-testid="edit-input" aria-label=ui.t_untracked("Muokkaa viestiä", "Edit the message")
                                prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))
                                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                                        ev.prevent_default();
                                        ui.edit_and_resend(i, text.get_untracked());
                                    } else if ev.key() == "Escape" {
                                        ui.editing.set(None);
                                    }
                                }></textarea>
                            <div class="actions">
                                <button data-testid="edit-send" on:click=move |_| ui.edit_and_resend(i, text.get_untracked())>
                                    {ui.t_untracked("Lähetä", "Send")}
                                </button>
                                <button on:click=move |_| ui.editing.set(None)>{ui.t_untracked("Peru", "Cancel")}</button>
                            </div>
                        </div>
                    }
                    .into_any();
                }
                let body = if m.role == Role::User {
                    view! { <div class="content plain" data-testid="message-content">{content.clone()}</div> }.into_any()
                } else {
                    view! { <div class="content" data-testid="message-content">{render_markdown(&content)}</div> }.into_any()
                };
                let actions = if m.role == Role::User {
                    view! {
                        <button class="small" data-testid="edit" disabled=!ready
                            on:click=move |_| ui.editing.set(Some(i))>{ui.t_untracked("Muokkaa", "Edit")}</button>
                    }
                    .into_any()
                } else {
                    let c = content.clone();
                    let last = i + 1 == n;
                    view! {
                        <button class="small" data-testid="copy" on:click=move |_| copy_text(c.clone())>
                            {ui.t_untracked("Kopioi", "Copy")}
                        </button>
                        {last.then(|| view! {
                            <button class="small" data-testid="regenerate" disabled=!ready
                                on:click=move |_| ui.regenerate()>{ui.t_untracked("Luo uudelleen", "Regenerate")}</button>
                        })}
                    }
                    .into_any()
                };
                view! {
                    <div class=format!("msg {role}") data-testid="message" data-role=role>
                        {body}
                        {m.stopped.then(|| view! { <span class="stopped">{ui.t_untracked("(keskeytetty)", "(stopped)")}</span> })}
                        <div class="actions">{actions}</div>
                    </div>
                }
                .into_any()
            })
            .collect::<Vec<_>>()
    };
    let streaming = move || {
        let s = ui.streaming.get()?;
        Some(view! {
            <div class="msg assistant streaming" data-testid="message" data-role="assistant" aria-busy="true">
                <div class="content" data-testid="message-content">{render_markdown(&s.text)}</div>
                <span class="cursor" aria-hidden="true">"▍"</span>
            </div>
        })
    };
    let stats = move || {
        let s = ui.stats.get();
        let m = ui.model.get();
        let (p, d, used, max) = match (&s, &m) {
            (Some(s), _) => (
                s.prefill_tokens_per_s,
                s.decode_tokens_per_s,
                s.ctx_used,
                s.ctx_max,
            ),
            (None, Some(m)) => (0.0, 0.0, 0, m.n_ctx),
            _ => (0.0, 0.0, 0, 0),
        };
        (p, d, used, max)
    };
    let scroller: NodeRef<leptos::html::Div> = NodeRef::new();
    Effect::new(move |_| {
        ui.streaming.track();
        ui.convs.track();
        if let Some(el) = scroller.get() {
            el.set_scroll_top(el.scroll_height());
        }
    });
    let input: NodeRef<leptos::html::Textarea> = NodeRef::new();
    let send = move || {
        let text = ui.draft.get_untracked();
        ui.send_message(text);
        if let Some(el) = input.get() {
            let _ = el.focus();
        }
    };
    view! {
        <main class="chat">
            <div class="messages" role="log" aria-live="polite" node_ref=scroller
                aria-label=move || ui.t("Keskustelu", "Conversation")>
                {messages}
                {streaming}
                <Show when=move || ui.active_conv().is_none_or(|c| c.messages.is_empty()) && ui.streaming.get().is_none()>
                    <p class="empty">{move || ui.t(
                        "Kaikki pysyy tällä laitteella: malli toimii omalla näytönohjaimellasi, eikä mitään lähetetä minnekään.",
                        "Everything stays on this device: the model runs on your own GPU and nothing is sent anywhere.",
                    )}</p>
                </Show>
            </div>
            <Show when=move || { ui.dropped.get() > 0 }>
                <p class="notice" data-testid="dropped-notice" role="status">
                    {move || format!("{} {}", ui.dropped.get(), ui.t(
                        "vanhinta viestiä ei enää mahtunut mallin muistiin, joten se ei näe niitä.",
                        "oldest messages no longer fit in the model's context; it no longer sees them.",
                    ))}
                </p>
            </Show>
            <p class="stats" data-testid="stats" class:hidden=move || ui.model.get().is_none()
                data-prefill-tps=move || format!("{:.2}", stats().0)
                data-decode-tps=move || format!("{:.2}", stats().1)
                data-ctx-used=move || stats().2.to_string()
                data-ctx-max=move || stats().3.to_string()>
                {move || {
                    let (p, d, used, max) = stats();
                    let ctx = format!("{} {used} / {max}", ui.t("Konteksti", "Context"));
                    if ui.stats.get().is_none() {
                        // No answer yet: no speeds to show (zeros would read as "broken").
                        return ctx;
                    }
                    format!("{} {p:.1} {} · {} {d:.1} {} · {ctx}",
                        ui.t("Kehote", "Prefill"), ui.t("tok/s", "tok/s"),
                        ui.t("Vastaus", "Decode"), ui.t("tok/s", "tok/s"))
                }}
            </p>
            <div class="composer">
                <textarea data-testid="chat-input" node_ref=input rows="2"
                    aria-label=move || ui.t("Viesti (Enter lähettää, Shift+Enter uusi rivi)", "Message (Enter sends, Shift+Enter new line)")
                    placeholder=move || ui.t("Kirjoita viesti… (Enter lähettää, Shift+Enter uusi rivi)", "Write a message… (Enter sends, Shift+Enter new line)")
                    prop:value=move || ui.draft.get()
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        persist::save_string(persist::DRAFT, &v);
                        ui.draft.set(v);
                    }
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            send();
                        }
                    }></textarea>
                <Show when=move || ui.state.get() == AppState::Generating && ui.streaming.get().is_some()
                    fallback=move || view! {
                        <button class="primary" data-testid="send" on:click=move |_| send()
                            disabled=move || ui.state.get() != AppState::Ready || ui.draft.get().trim().is_empty()>
                            {move || ui.t("Lähetä", "Send")}
                        </button>
                    }>
                    <button data-testid="stop" on:click=move |_| bridge::send(&ToWorker::Stop)>
                        {move || ui.t("Pysäytä", "Stop")}
                    </button>
                </Show>
            </div>
        </main>
    }
}

/// One numeric generation setting: a number input (a decimal comma is
/// accepted) whose value is clamped to `min..=max`; text that is not a number
/// is replaced by the current value.
#[component]
fn NumberSetting(
    fi: &'static str,
    en: &'static str,
    testid: &'static str,
    step: &'static str,
    min: f64,
    max: f64,
    get: fn(&Settings) -> String,
    set: fn(&mut Settings, f64),
) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let max_attr = max.is_finite().then(|| max.to_string());
    let on_change = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev).trim().replace(',', ".");
        if let Ok(v) = text.parse::<f64>() {
            if v.is_finite() {
                ui.settings.update(|s| set(s, v.clamp(min, max)));
            }
        }
        // show what is in effect (clamped, or unchanged after bad text)
        if let Some(el) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        {
            el.set_value(&ui.settings.with_untracked(get));
        }
    };
    view! {
        <label>{move || ui.t(fi, en)}
            <input type="number" step=step min=min.to_string() max=max_attr data-testid=testid
                prop:value=move || ui.settings.with(get)
                on:change=on_change/>
        </label>
    }
}

#[component]
fn SettingsPanel() -> impl IntoView {
    let ui = expect_context::<Ui>();
    view! {
        <Show when=move || ui.show_settings.get()>
            <section class="panel settings" data-testid="settings-panel" aria-label=move || ui.t("Asetukset", "Settings")>
                <h2>{move || ui.t("Asetukset", "Settings")}</h2>
                <label for="s-system">{move || ui.t("Järjestelmäkehote", "System prompt")}</label>
                <textarea id="s-system" data-testid="setting-system" rows="4"
                    prop:value=move || ui.settings.get().system
                    on:change=move |ev| { let v = event_target_value(&ev); ui.settings.update(|s| s.system = v) }></textarea>
                <div class="grid">
                    <NumberSetting fi="Lämpötila" en="Temperature" testid="setting-temperature" step="0.05" min=0.0 max=5.0
                        get=|s| s.generation.temperature.to_string() set=|s, v| s.generation.temperature = v as f32/>
                    <NumberSetting fi="top_k" en="top_k" testid="setting-top-k" step="1" min=0.0 max=f64::INFINITY
                        get=|s| s.generation.top_k.to_string() set=|s, v| s.generation.top_k = v.round() as u32/>
                    <NumberSetting fi="top_p" en="top_p" testid="setting-top-p" step="0.05" min=0.01 max=1.0
                        get=|s| s.generation.top_p.to_string() set=|s, v| s.generation.top_p = v as f32/>
                    <NumberSetting fi="Toistosakko" en="Repetition penalty" testid="setting-repetition-penalty" step="0.05" min=0.5 max=3.0
                        get=|s| s.generation.repetition_penalty.to_string() set=|s, v| s.generation.repetition_penalty = v as f32/>
                    <NumberSetting fi="min_length" en="min_length" testid="setting-min-length" step="1" min=0.0 max=2048.0
                        get=|s| s.generation.min_length.to_string() set=|s, v| s.generation.min_length = v.round() as u32/>
                    <NumberSetting fi="max_length" en="max_length" testid="setting-max-tokens" step="1" min=16.0 max=2048.0
                        get=|s| s.generation.max_length.to_string() set=|s, v| s.generation.max_length = v.round() as u32/>
                    <label class="check">
                        <input type="checkbox" data-testid="setting-do-sample"
                            prop:checked=move || ui.settings.get().do_sample
                            on:change=move |ev| { let v = event_target_checked(&ev); ui.settings.update(|s| s.do_sample = v) }/>
                        {move || ui.t(" Satunnaisotanta (pois = ahne)", " Sampling (off = greedy)")}
                    </label>
                </div>
                <button data-testid="settings-reset" on:click=move |_| ui.settings.set(Settings::default())>
                    {move || ui.t("Palauta mallikortin oletukset", "Reset to the model card's defaults")}
                </button>
            </section>
        </Show>
    }
}

#[component]
fn Bench() -> impl IntoView {
    let ui = expect_context::<Ui>();
    view! {
        <Show when=move || ui.bench_mode.get()>
            <section class="panel bench">
                <h2>{move || ui.t("Suorituskykytesti", "Benchmark")}</h2>
                <p>{move || ui.t(
                    "Lataa malli; testi ajetaan heti sen jälkeen (?prompt=128&gen=64; ytimien valinnat: pairs=on, int8=on, mm_int8=on, split_keys=256, tile=64x64x8, shape=64x8, blocks=off, rows=off, lanes=16x16x4, attn_rows=off, read_probe=on).",
                    "Load a model; the benchmark runs right after (?prompt=128&gen=64; kernel choices: pairs=on, int8=on, mm_int8=on, split_keys=256, tile=64x64x8, shape=64x8, blocks=off, rows=off, lanes=16x16x4, attn_rows=off, read_probe=on).",
                )}</p>
                <table class="bench-summary" data-testid="bench-summary">
                    <tbody>
                        {move || {
                            let fi = ui.lang.get() == Lang::Fi;
                            ui.bench
                                .get()
                                .map(|json| bench_summary(&json, fi))
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(id, label, value)| view! {
                                    <tr data-testid=id><th>{label}</th><td>{value}</td></tr>
                                })
                                .collect_view()
                        }}
                    </tbody>
                </table>
                <Show when=move || ui.bench.with(Option::is_some)>
                    <button class="small" data-testid="bench-copy"
                        on:click=move |_| if let Some(json) = ui.bench.get_untracked() { copy_text(json) }>
                        {move || ui.t("Kopioi JSON", "Copy the JSON")}
                    </button>
                </Show>
                <pre data-testid="bench-result">{move || ui.bench.get().unwrap_or_default()}</pre>
            </section>
        </Show>
    }
}

/// The headline figures of a benchmark's JSON (the keys `ahma bench --json` prints) as rows of
/// (test id, label, value) in Finnish or English; a figure the run did not report is left out.
fn bench_summary(json: &str, fi: bool) -> Vec<(&'static str, String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or("?");
    let on = |k: &str| v.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    let t = |a: &'static str, b: &'static str| if fi { a } else { b }.to_string();
    let mut rows = Vec::new();
    let features: Vec<&str> = [("f16", "shader-f16"), ("subgroups", "subgroups")]
        .into_iter()
        .filter(|(k, _)| on(k))
        .map(|(_, name)| name)
        .collect();
    let features = if features.is_empty() {
        t(
            "ei shader-f16:ta eikä subgroupeja",
            "no shader-f16, no subgroups",
        )
    } else {
        features.join(", ")
    };
    rows.push((
        "bench-adapter",
        t("Näytönohjain", "Adapter"),
        format!("{} · {} · {features}", text("adapter"), text("backend")),
    ));
    if let (Some(tps), Some(n)) = (num("prefill_tokens_per_s"), num("prompt_tokens")) {
        rows.push((
            "bench-prefill",
            t("Kehotteen käsittely", "Prefill"),
            format!("{tps:.2} tok/s ({n} {})", t("tokenia", "tokens")),
        ));
    }
    if let (Some(tps), Some(n)) = (num("decode_tokens_per_s"), num("gen_tokens")) {
        let ms = if tps > 0.0 { 1000.0 / tps } else { 0.0 };
        rows.push((
            "bench-decode",
            t("Tuottaminen", "Decode"),
            format!(
                "{tps:.2} tok/s ({ms:.1} ms/token, {n} {})",
                t("tokenia", "tokens")
            ),
        ));
    }
    if let (Some(bytes), Some(gbs)) = (num("weight_bytes_per_token"), num("implied_gb_per_s")) {
        rows.push((
            "bench-bandwidth",
            t("Luetut painot", "Weights read"),
            if bytes >= 1e9 {
                format!("{:.3} GB/token → {gbs:.2} GB/s", bytes / 1e9)
            } else {
                format!("{:.2} MB/token → {gbs:.2} GB/s", bytes / 1e6)
            },
        ));
    }
    if let (Some(best), Some(ratio)) = (num("read_probe_gb_per_s"), num("decode_read_ratio")) {
        rows.push((
            "bench-read-probe",
            t("Varjostimen lukunopeus", "Shader read rate"),
            if fi {
                format!("{best:.2} GB/s; tuottaminen {:.0} % siitä", 100.0 * ratio)
            } else {
                format!(
                    "{best:.2} GB/s; decode reaches {:.0} % of it",
                    100.0 * ratio
                )
            },
        ));
    }
    if let (Some(d), Some(s), Some(r)) = (
        num("dispatches_per_token"),
        num("submits_per_token"),
        num("readback_bytes_per_token"),
    ) {
        rows.push((
            "bench-per-token",
            t("Tokenia kohden", "Per token"),
            if fi {
                format!("{d:.0} ajoa, {s:.0} lähetys, {r:.0} tavua takaisin")
            } else {
                format!("{d:.0} dispatches, {s:.0} submit, {r:.0} bytes read back")
            },
        ));
    }
    if let Some(ms) = num("cpu_record_ms_per_token") {
        rows.push((
            "bench-cpu",
            t("Suorittimen aika tokenia kohden", "CPU time per token"),
            format!("{ms:.2} ms"),
        ));
    }
    if let (Some(w), Some(kv), Some(sc)) = (
        num("gpu_weight_bytes"),
        num("gpu_kv_bytes"),
        num("gpu_scratch_bytes"),
    ) {
        let mib = |b: f64| b / 1048576.0;
        rows.push((
            "bench-memory",
            t("GPU-muisti", "GPU memory"),
            if fi {
                format!(
                    "painot {:.0} MiB + KV {:.0} MiB + työmuisti {:.0} MiB",
                    mib(w),
                    mib(kv),
                    mib(sc)
                )
            } else {
                format!(
                    "weights {:.0} MiB + KV {:.0} MiB + scratch {:.0} MiB",
                    mib(w),
                    mib(kv),
                    mib(sc)
                )
            },
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::bench_summary;

    #[test]
    fn bench_summary_shows_the_reported_figures_and_leaves_out_the_rest() {
        let json = r#"{"adapter":"NVIDIA H100","backend":"Vulkan","f16":true,"subgroups":false,
            "prompt_tokens":128,"prefill_tokens_per_s":1722.04,"gen_tokens":128,
            "decode_tokens_per_s":250.0,"weight_bytes_per_token":2619000000,
            "implied_gb_per_s":654.75,"dispatches_per_token":159,"submits_per_token":1,
            "readback_bytes_per_token":4,"cpu_record_ms_per_token":0.456,
            "gpu_weight_bytes":2831155200,"gpu_kv_bytes":52428800,"gpu_scratch_bytes":10485760}"#;
        let en = bench_summary(json, false);
        let row = |rows: &[(&str, String, String)], id: &str| {
            rows.iter()
                .find(|r| r.0 == id)
                .map(|r| r.2.clone())
                .unwrap_or_else(|| panic!("no row {id} in {rows:?}"))
        };
        for (id, want) in [
            ("bench-adapter", "NVIDIA H100 · Vulkan · shader-f16"),
            ("bench-prefill", "1722.04 tok/s (128 tokens)"),
            ("bench-decode", "250.00 tok/s (4.0 ms/token, 128 tokens)"),
            ("bench-bandwidth", "2.619 GB/token → 654.75 GB/s"),
            (
                "bench-per-token",
                "159 dispatches, 1 submit, 4 bytes read back",
            ),
            ("bench-cpu", "0.46 ms"),
            (
                "bench-memory",
                "weights 2700 MiB + KV 50 MiB + scratch 10 MiB",
            ),
        ] {
            assert_eq!(row(&en, id), want);
        }
        // no read probe in this run: no row for it
        assert!(en.iter().all(|r| r.0 != "bench-read-probe"));
        let fi = bench_summary(json, true);
        assert_eq!(fi.len(), en.len());
        assert_eq!(row(&fi, "bench-prefill"), "1722.04 tok/s (128 tokenia)");
        assert!(fi.iter().any(|r| r.1 == "Tuottaminen"));
        let probed = json.replace(
            "\"f16\":true",
            "\"f16\":false,\"read_probe_gb_per_s\":2900.5,\"decode_read_ratio\":0.2257",
        );
        let p = bench_summary(&probed, false);
        assert_eq!(
            row(&p, "bench-read-probe"),
            "2900.50 GB/s; decode reaches 23 % of it"
        );
        assert_eq!(
            row(&p, "bench-adapter"),
            "NVIDIA H100 · Vulkan · no shader-f16, no subgroups"
        );
        let small = json.replace("2619000000", "5439240");
        assert_eq!(
            row(&bench_summary(&small, false), "bench-bandwidth"),
            "5.44 MB/token → 654.75 GB/s"
        );
        assert!(bench_summary("not json", false).is_empty());
    }
}

//! What the UI keeps in `localStorage`: conversations, settings, the language
//! and the unsent draft. Nothing leaves the browser.

use ahma_chat::{GenerationSettings, DEFAULT_SYSTEM_PROMPT};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::protocol::{ChatMessage, Role};

pub const CONVERSATIONS: &str = "ahma.conversations.v1";
pub const SETTINGS: &str = "ahma.settings.v1";
pub const LANG: &str = "ahma.lang";
pub const DRAFT: &str = "ahma.draft";
/// The model loaded last (`catalog:<id>` or `url:<url>`).
pub const SELECTION: &str = "ahma.selection";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Msg {
    pub role: Role,
    pub content: String,
    /// The answer was stopped before the model finished it.
    #[serde(default)]
    pub stopped: bool,
}

impl Msg {
    pub fn chat(&self) -> ChatMessage {
        ChatMessage {
            role: self.role,
            content: self.content.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    pub id: String,
    pub title: String,
    pub messages: Vec<Msg>,
    /// Milliseconds since the epoch.
    pub updated: f64,
}

impl Default for Conv {
    fn default() -> Self {
        Conv::new()
    }
}

impl Conv {
    pub fn new() -> Conv {
        let now = js_sys::Date::now();
        Conv {
            id: format!("c{}-{}", now as u64, (js_sys::Math::random() * 1e9) as u64),
            title: String::new(),
            messages: Vec::new(),
            updated: now,
        }
    }

    /// The first user message, shortened, as the title.
    pub fn title_from_messages(&mut self) {
        if !self.title.is_empty() {
            return;
        }
        if let Some(m) = self.messages.iter().find(|m| m.role == Role::User) {
            let t: String = m.content.split_whitespace().collect::<Vec<_>>().join(" ");
            self.title = if t.chars().count() > 40 {
                format!("{}…", t.chars().take(40).collect::<String>())
            } else {
                t
            };
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub system: String,
    pub generation: GenerationSettings,
    /// `false` = greedy (transformers' `do_sample=False`).
    pub do_sample: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            system: DEFAULT_SYSTEM_PROMPT.to_string(),
            generation: GenerationSettings::default(),
            do_sample: true,
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn load<T: DeserializeOwned>(key: &str) -> Option<T> {
    let s = storage()?.get_item(key).ok().flatten()?;
    serde_json::from_str(&s).ok()
}

/// Saves `value`; returns false when the browser refused (quota, private mode).
pub fn save<T: Serialize>(key: &str, value: &T) -> bool {
    let Some(s) = storage() else { return false };
    let Ok(text) = serde_json::to_string(value) else {
        return false;
    };
    s.set_item(key, &text).is_ok()
}

pub fn load_string(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

pub fn save_string(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

//! Chat templates: the model's Jinja `chat_template`, rendered as transformers'
//! `apply_chat_template` renders it, or the built-in Llama-2 format when a file has none.
//!
//! transformers compiles templates in a sandboxed jinja2 environment with
//! `trim_blocks=True, lstrip_blocks=True`, a `raise_exception(message)` global, a `tojson`
//! filter that does *not* HTML-escape (plain `json.dumps`), and (since 4.45) the
//! loop-controls extension and a `strftime_now(format)` global. The context holds
//! `messages`, `add_generation_prompt`, `tools`/`documents` (None here) and the special
//! tokens (`bos_token`, `eos_token`). We mirror that with minijinja plus its Python
//! compatibility layer (`str.strip()`, `dict.items()`, …).

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{ChatError, Result};

/// The system prompt of the Ahma-Instruct model card.
pub const DEFAULT_SYSTEM_PROMPT: &str = "Olet tekoälyavustaja. Vastaat aina mahdollisimman avuliaasti. Vastauksesi eivät saa sisältää mitään haitallista, epäeettistä, rasistista, seksististä, vaarallista tai laitonta sisältöä. Jos kysymyksessä ei ole mitään järkeä tai se ei ole asiasisällöltään johdonmukainen, selitä miksi sen sijaan, että vastaisit jotain väärin. Jos et tiedä vastausta kysymykseen, älä kerro väärää tietoa.";

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message, serialized to the template as `{"role": …, "content": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    kind: Kind,
}

enum Kind {
    Jinja(Box<Environment<'static>>),
    Llama2,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_builtin() {
            "ChatTemplate(built-in Llama-2)"
        } else {
            "ChatTemplate(jinja)"
        })
    }
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compile a Jinja template (syntax errors are reported here, not at render time).
    pub fn from_jinja(source: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", py_tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(template_err)?;
        Ok(ChatTemplate {
            kind: Kind::Jinja(Box::new(env)),
        })
    }

    /// The built-in Llama-2 chat format, used when the model files carry no template:
    /// `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>` per turn.
    /// It renders byte-identically to Meta's Llama-2 Jinja template.
    pub fn llama2() -> ChatTemplate {
        ChatTemplate { kind: Kind::Llama2 }
    }

    /// The tokenizer's template if it has one, else the built-in Llama-2 format.
    pub fn for_tokenizer(tok: &crate::Tokenizer) -> Result<ChatTemplate> {
        match tok.chat_template() {
            Some(src) => ChatTemplate::from_jinja(src),
            None => Ok(ChatTemplate::llama2()),
        }
    }

    /// Whether this is the built-in Llama-2 format.
    pub fn is_builtin(&self) -> bool {
        matches!(self.kind, Kind::Llama2)
    }

    /// Render `messages` as `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=…)` does.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        match &self.kind {
            Kind::Llama2 => render_llama2(messages, bos_token, eos_token),
            Kind::Jinja(env) => {
                let tmpl = env.get_template(NAME).map_err(template_err)?;
                tmpl.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => add_generation_prompt,
                    tools => Value::from(()),
                    documents => Value::from(()),
                    bos_token => bos_token,
                    eos_token => eos_token,
                })
                .map_err(template_err)
            }
        }
    }
}

fn template_err(e: Error) -> ChatError {
    // raise_exception() messages are reported verbatim, as transformers' TemplateError does.
    if e.kind() == ErrorKind::InvalidOperation {
        if let Some(detail) = e.detail() {
            return ChatError::Template(detail.to_string());
        }
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    ChatError::Template(msg)
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// Python's `str.strip()` whitespace: Unicode White_Space plus the separators
/// U+001C..U+001F, which Python also counts.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// The built-in format; mirrors Meta's Llama-2 template line by line.
fn render_llama2(messages: &[Message], bos: &str, eos: &str) -> Result<String> {
    let (system, rest) = match messages.first() {
        Some(m) if m.role == Role::System => (Some(m.content.as_str()), &messages[1..]),
        _ => (None, messages),
    };
    let mut out = String::new();
    for (i, m) in rest.iter().enumerate() {
        if (m.role == Role::User) != (i % 2 == 0) {
            return Err(ChatError::Template(
                "Conversation roles must alternate user/assistant/user/assistant/...".into(),
            ));
        }
        let content = match (i, system) {
            (0, Some(sys)) => format!("<<SYS>>\n{sys}\n<</SYS>>\n\n{}", m.content),
            _ => m.content.clone(),
        };
        match m.role {
            Role::User => {
                out.push_str(bos);
                out.push_str("[INST] ");
                out.push_str(py_strip(&content));
                out.push_str(" [/INST]");
            }
            Role::Assistant => {
                out.push(' ');
                out.push_str(py_strip(&content));
                out.push(' ');
                out.push_str(eos);
            }
            Role::System => {}
        }
    }
    Ok(out)
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`; unlike jinja2's own filter it does not escape
/// `<`, `>`, `&` or `'`, which matters because templates emit tokens like `<s>`.
fn py_tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => {
                Some(" ".repeat(usize::try_from(i64::try_from(v)?.max(0)).unwrap_or(0)))
            }
            ValueKind::String => Some(v.as_str().unwrap_or("").to_string()),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or string",
                ))
            }
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let a = v.get_item(&Value::from(0))?;
            let b = v.get_item(&Value::from(1))?;
            (
                a.as_str().unwrap_or(",").to_string(),
                b.as_str().unwrap_or(":").to_string(),
            )
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let opts = JsonOpts {
        indent,
        item_sep,
        key_sep,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}

struct JsonOpts {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    ensure_ascii: bool,
    sort_keys: bool,
}

fn json_string(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline(opts: &JsonOpts, depth: usize, out: &mut String) {
    if let Some(ind) = &opts.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(ind);
        }
    }
}

fn write_json(
    v: &Value,
    opts: &JsonOpts,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), Error> {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(v.clone()) {
                out.push_str(&i.to_string());
            } else {
                let f = f64::try_from(v.clone())?;
                out.push_str(&py_float_repr(f));
            }
        }
        ValueKind::String => json_string(v.as_str().unwrap_or(""), opts.ensure_ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline(opts, depth + 1, out);
                write_json(item, opts, depth + 1, out)?;
            }
            newline(opts, depth, out);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if opts.sort_keys {
                keys.sort();
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline(opts, depth + 1, out);
                match k.as_str() {
                    Some(s) => json_string(s, opts.ensure_ascii, out),
                    None => json_string(&k.to_string(), opts.ensure_ascii, out),
                }
                out.push_str(&opts.key_sep);
                write_json(&v.get_item(k)?, opts, depth + 1, out)?;
            }
            newline(opts, depth, out);
            out.push('}');
        }
        _ => json_string(&v.to_string(), opts.ensure_ascii, out),
    }
    Ok(())
}

/// Python's `repr(float)` for the values JSON can carry.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let s = format!("{f:?}");
    // Rust prints 1e20 as "1e20"; Python as "1e+20".
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s,
    }
}

/// `strftime_now(format)`: the current time, formatted. Python uses local time; we use
/// UTC (a browser worker has no time-zone database), which is what matters for the
/// "today's date" lines templates print.
fn strftime_now(format: String) -> std::result::Result<Value, Error> {
    Ok(Value::from(strftime(&format, unix_now_secs())))
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
fn unix_now_secs() -> i64 {
    (js_sys::Date::now() / 1000.0).floor() as i64
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn unix_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The C `strftime` directives Python templates use (`%d %B %Y`, `%Y-%m-%d`, …).
pub(crate) fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let is_leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + u32::from(is_leap && m > 2);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('I') => out.push_str(&format!("{:02}", if hh % 12 == 0 { 12 } else { hh % 12 })),
            Some('p') => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2024-02-29 13:05:09");
        assert_eq!(
            strftime("%d %B %Y, %A (%a %b) day %j %I%p %%", t),
            "29 February 2024, Thursday (Thu Feb) day 060 01PM %"
        );
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
        assert_eq!(strftime("%Y-%m-%d %A", -86_400), "1969-12-31 Wednesday");
    }

    #[test]
    fn tojson_is_python_json_dumps() {
        let t = ChatTemplate::from_jinja(
            "{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ '<s>' | tojson }}",
        )
        .unwrap();
        let env = match &t.kind {
            Kind::Jinja(env) => env,
            Kind::Llama2 => unreachable!(),
        };
        let out = env
            .get_template(NAME)
            .unwrap()
            .render(minijinja::context! { x => serde_json::json!({"a": [1, 2.5, null, true], "ä": "\"q\"\n"}) })
            .unwrap();
        // json.dumps({"a": [1, 2.5, None, True], "ä": "\"q\"\n"}, ensure_ascii=False) and indent=2.
        assert_eq!(
            out,
            "{\"a\": [1, 2.5, null, true], \"ä\": \"\\\"q\\\"\\n\"}|{\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"ä\": \"\\\"q\\\"\\n\"\n}|\"<s>\""
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        assert!(matches!(
            ChatTemplate::from_jinja("{% for %}"),
            Err(ChatError::Template(_))
        ));
    }

    #[test]
    fn py_strip_matches_python() {
        assert_eq!(py_strip("\u{1c} a b\u{a0}\n\u{3000}"), "a b");
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x");
    }
}

//! A small Markdown subset for model answers: paragraphs, line breaks, bullet
//! and numbered lists, fenced code blocks, headings, `inline code`, **bold**
//! and *italic*. The output is a tree of blocks holding plain strings; the UI
//! turns it into DOM text nodes, so nothing the model writes is ever parsed
//! as HTML or run as script.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Code(String),
    Bold(String),
    Italic(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// Lines of a paragraph (soft line breaks kept as separate lines).
    Paragraph(Vec<Vec<Inline>>),
    Heading(u8, Vec<Inline>),
    List {
        ordered: bool,
        items: Vec<Vec<Inline>>,
    },
    Code {
        lang: String,
        text: String,
    },
}

fn list_item(line: &str) -> Option<(bool, &str)> {
    let t = line.trim_start();
    for m in ["- ", "* ", "• "] {
        if let Some(rest) = t.strip_prefix(m) {
            return Some((false, rest));
        }
    }
    let digits = t.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && digits < 4 {
        let rest = &t[digits..];
        if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some((true, r));
        }
    }
    None
}

/// Parses `text` into blocks. Unclosed code fences run to the end (useful while
/// an answer is still streaming).
pub fn parse(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut para: Vec<Vec<Inline>> = Vec::new();
    let mut list: Option<(bool, Vec<Vec<Inline>>)> = None;
    let mut lines = text.lines().peekable();
    let flush = |out: &mut Vec<Block>,
                 para: &mut Vec<Vec<Inline>>,
                 list: &mut Option<(bool, Vec<Vec<Inline>>)>| {
        if !para.is_empty() {
            out.push(Block::Paragraph(std::mem::take(para)));
        }
        if let Some((ordered, items)) = list.take() {
            out.push(Block::List { ordered, items });
        }
    };
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if let Some(lang) = t.strip_prefix("```") {
            flush(&mut out, &mut para, &mut list);
            let mut code = Vec::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push(l);
            }
            out.push(Block::Code {
                lang: lang.trim().to_string(),
                text: code.join("\n"),
            });
            continue;
        }
        if t.is_empty() {
            flush(&mut out, &mut para, &mut list);
            continue;
        }
        let hashes = t.bytes().take_while(|&b| b == b'#').count();
        if (1..=4).contains(&hashes) && t[hashes..].starts_with(' ') {
            flush(&mut out, &mut para, &mut list);
            out.push(Block::Heading(hashes as u8, inlines(t[hashes..].trim())));
            continue;
        }
        if let Some((ordered, rest)) = list_item(line) {
            if !para.is_empty() {
                out.push(Block::Paragraph(std::mem::take(&mut para)));
            }
            match &mut list {
                Some((o, items)) if *o == ordered => items.push(inlines(rest)),
                _ => {
                    if let Some((o, items)) = list.take() {
                        out.push(Block::List { ordered: o, items });
                    }
                    list = Some((ordered, vec![inlines(rest)]));
                }
            }
            continue;
        }
        if let Some((_, items)) = &mut list {
            if line.starts_with("  ") {
                // A continuation line of the last item.
                if let Some(last) = items.last_mut() {
                    last.push(Inline::Text(" ".into()));
                    last.extend(inlines(t));
                }
                continue;
            }
            flush(&mut out, &mut para, &mut list);
        }
        para.push(inlines(line));
    }
    flush(&mut out, &mut para, &mut list);
    out
}

/// Splits a line into inline spans. Markers without a closing partner stay text.
pub fn inlines(line: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    let push_text = |out: &mut Vec<Inline>, text: &mut String| {
        if !text.is_empty() {
            out.push(Inline::Text(std::mem::take(text)));
        }
    };
    while let Some(c) = rest.chars().next() {
        let span = if let Some(r) = rest.strip_prefix('`') {
            r.find('`').map(|e| (1, e + 1, 1, 0u8))
        } else if let Some(r) = rest.strip_prefix("**") {
            r.find("**").filter(|&e| e > 0).map(|e| (2, e + 2, 2, 1u8))
        } else if let Some(r) = rest.strip_prefix('*').filter(|r| !r.starts_with(' ')) {
            r.find('*').filter(|&e| e > 0).map(|e| (1, e + 1, 1, 2u8))
        } else {
            None
        };
        match span {
            Some((open, end, close, kind)) => {
                push_text(&mut out, &mut text);
                let inner = rest[open..end].to_string();
                out.push(match kind {
                    0 => Inline::Code(inner),
                    1 => Inline::Bold(inner),
                    _ => Inline::Italic(inner),
                });
                rest = &rest[end + close..];
            }
            None => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    push_text(&mut out, &mut text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Inline {
        Inline::Text(s.into())
    }

    #[test]
    fn paragraphs_lists_code() {
        let b = parse(
            "Hei!\nToinen rivi\n\n- yksi\n- **kaksi**\n1. a\n2. b\n```rust\nfn x() {}\n```\nloppu",
        );
        assert_eq!(
            b,
            vec![
                Block::Paragraph(vec![vec![t("Hei!")], vec![t("Toinen rivi")]]),
                Block::List {
                    ordered: false,
                    items: vec![vec![t("yksi")], vec![Inline::Bold("kaksi".into())]]
                },
                Block::List {
                    ordered: true,
                    items: vec![vec![t("a")], vec![t("b")]]
                },
                Block::Code {
                    lang: "rust".into(),
                    text: "fn x() {}".into()
                },
                Block::Paragraph(vec![vec![t("loppu")]]),
            ]
        );
    }

    #[test]
    fn html_stays_text() {
        let s = "<script>alert(1)</script><img src=x onerror=\"alert(2)\">";
        assert_eq!(parse(s), vec![Block::Paragraph(vec![vec![t(s)]])]);
    }

    #[test]
    fn inline_spans_and_unclosed_markers() {
        assert_eq!(
            inlines("a `b` *c* **d** 2 * 3 **e"),
            vec![
                t("a "),
                Inline::Code("b".into()),
                t(" "),
                Inline::Italic("c".into()),
                t(" "),
                Inline::Bold("d".into()),
                t(" 2 * 3 **e"),
            ]
        );
        assert_eq!(
            inlines("ääkköset `ö`"),
            vec![t("ääkköset "), Inline::Code("ö".into())]
        );
    }

    #[test]
    fn streaming_unclosed_fence() {
        assert_eq!(
            parse("```\nabc"),
            vec![Block::Code {
                lang: String::new(),
                text: "abc".into()
            }]
        );
    }
}

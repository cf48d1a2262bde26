//! Chat templates against transformers' `apply_chat_template` (and jinja2 configured as
//! newer transformers configures it), from tests/fixtures/tokenizer/expected_chat.json.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ahma_chat::{
    ChatError, ChatTemplate, Conversation, Message, Role, Tokenizer, DEFAULT_SYSTEM_PROMPT,
};
use anyhow::Result;
use serde::Deserialize;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tokenizer")
        .join(name)
}

#[derive(Deserialize)]
struct Expected {
    templates: BTreeMap<String, String>,
    bos_token: String,
    eos_token: String,
    conversations: BTreeMap<String, Vec<Message>>,
    renders: Vec<Render>,
}

#[derive(Deserialize)]
struct Render {
    template: String,
    conversation: String,
    add_generation_prompt: bool,
    text: Option<String>,
    ids: Option<Vec<u32>>,
    error: Option<String>,
}

fn expected() -> Result<Expected> {
    Ok(serde_json::from_str(&std::fs::read_to_string(fixture(
        "expected_chat.json",
    ))?)?)
}

fn tokenizers() -> Result<Vec<Tokenizer>> {
    let (g, _f) = ahma_gguf::Gguf::open(fixture("vocab-const-scores.gguf"))?;
    Ok(vec![
        Tokenizer::from_json_file(fixture("tokenizer.json"))?,
        Tokenizer::from_gguf(&g)?,
    ])
}

fn check(template: &ChatTemplate, exp: &Expected, r: &Render, toks: &[Tokenizer]) -> Result<()> {
    let msgs = &exp.conversations[&r.conversation];
    let what = format!(
        "{} / {} / agp={}",
        r.template, r.conversation, r.add_generation_prompt
    );
    let got = template.render(
        msgs,
        r.add_generation_prompt,
        &exp.bos_token,
        &exp.eos_token,
    );
    match (&r.text, &r.error, got) {
        (Some(text), _, Ok(got)) => {
            assert_eq!(&got, text, "{what}");
            for tok in toks {
                assert_eq!(Some(tok.encode(&got, false)?), r.ids, "{what}: ids");
            }
        }
        (_, Some(err), Err(ChatError::Template(msg))) => {
            assert!(msg.contains(err.as_str()), "{what}: {msg:?} vs {err:?}")
        }
        (_, _, got) => panic!("{what}: expected {:?}/{:?}, got {got:?}", r.text, r.error),
    }
    Ok(())
}

#[test]
fn jinja_templates_render_byte_identical() -> Result<()> {
    let exp = expected()?;
    let toks = tokenizers()?;
    let mut n = 0;
    for r in &exp.renders {
        let template = ChatTemplate::from_jinja(&exp.templates[&r.template])?;
        check(&template, &exp, r, &toks)?;
        n += 1;
    }
    assert_eq!(n, 42);
    Ok(())
}

#[test]
fn builtin_llama2_equals_the_llama2_jinja_template() -> Result<()> {
    let exp = expected()?;
    let toks = tokenizers()?;
    let builtin = ChatTemplate::llama2();
    for r in exp.renders.iter().filter(|r| r.template == "llama2") {
        check(&builtin, &exp, r, &toks)?;
    }
    Ok(())
}

#[test]
fn tokenizer_files_carry_the_template() -> Result<()> {
    let exp = expected()?;
    for tok in tokenizers()? {
        assert_eq!(tok.chat_template(), Some(exp.templates["llama2"].as_str()));
        assert!(!ChatTemplate::for_tokenizer(&tok)?.is_builtin());
    }
    Ok(())
}

#[test]
fn conversation_drops_oldest_turns_to_fit() -> Result<()> {
    let tok = Tokenizer::from_json_file(fixture("tokenizer.json"))?;
    let template = ChatTemplate::for_tokenizer(&tok)?;
    let mut conv = Conversation::new(Some(DEFAULT_SYSTEM_PROMPT.to_string()));
    let long = "Tämä on pitkä viesti, joka vie paljon tilaa. ".repeat(8);
    for i in 0..4 {
        conv.push_user(format!("Kysymys {i}: {long}"))?;
        conv.push_assistant(format!("Vastaus {i}."))?;
    }
    conv.push_user("Viimeinen kysymys?")?;
    assert!(conv.push_user("kaksi peräkkäin").is_err());

    let full = conv.prompt_ids(&template, &tok)?;
    // Plenty of room: nothing dropped, and the ids are the rendered template's.
    let p = conv.clone().fit(&template, &tok, full.len() + 100, 100)?;
    assert_eq!((p.ids.clone(), p.dropped_messages), (full.clone(), 0));

    // Room for about half: the oldest pairs go, the system prompt and last question stay.
    let mut c2 = conv.clone();
    let p = c2.fit(&template, &tok, full.len() / 2 + 50, 50)?;
    assert!(p.dropped_messages >= 2 && p.dropped_messages % 2 == 0);
    assert!(p.ids.len() + 50 <= full.len() / 2 + 50);
    assert_eq!(c2.system(), Some(DEFAULT_SYSTEM_PROMPT));
    assert_eq!(c2.turns().first().map(|m| m.role), Some(Role::User));
    assert_eq!(
        c2.turns().last(),
        Some(&Message::user("Viimeinen kysymys?"))
    );
    assert_eq!(c2.turns().len(), 9 - p.dropped_messages);
    let text = tok.decode(&p.ids, false)?;
    assert!(
        text.starts_with("<s>[INST]") && text.contains("Olet tekoälyavustaja."),
        "{text}"
    );
    assert!(
        !text.contains("Kysymys 0") && text.ends_with("Viimeinen kysymys? [/INST]"),
        "{text}"
    );

    // Not even the system prompt and the last question fit: a typed error.
    let mut c3 = conv.clone();
    assert!(matches!(
        c3.fit(&template, &tok, 20, 10),
        Err(ChatError::ContextOverflow { .. })
    ));
    Ok(())
}

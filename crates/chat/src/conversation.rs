//! Conversation state: the system prompt, the alternating user/assistant turns, and
//! what happens when the next prompt would not fit the model's context.

use serde::{Deserialize, Serialize};

use crate::error::{ChatError, Result};
use crate::template::{ChatTemplate, Message, Role};
use crate::tokenizer::Tokenizer;

/// A chat: an optional system prompt and user/assistant turns that alternate,
/// starting with the user (the shape Llama-2 templates accept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    system: Option<String>,
    turns: Vec<Message>,
}

/// The tokenized prompt for the next answer, and what had to go to make it fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Token ids to feed the model (the rendered template, special tokens parsed,
    /// no extra BOS: the template writes it, as `apply_chat_template(tokenize=True)`).
    pub ids: Vec<u32>,
    /// How many of the oldest messages were removed to fit (always whole user +
    /// assistant pairs; the system prompt and the newest user message are kept).
    pub dropped_messages: usize,
}

impl Conversation {
    /// A new conversation; `system` is typically [`crate::DEFAULT_SYSTEM_PROMPT`].
    pub fn new(system: Option<String>) -> Conversation {
        Conversation {
            system,
            turns: Vec::new(),
        }
    }

    /// The system prompt.
    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// The user/assistant turns, oldest first.
    pub fn turns(&self) -> &[Message] {
        &self.turns
    }

    /// All messages as the template sees them (system first).
    pub fn messages(&self) -> Vec<Message> {
        self.system
            .iter()
            .map(|s| Message::system(s.clone()))
            .chain(self.turns.iter().cloned())
            .collect()
    }

    /// Add the user's next message; the previous turn must be the assistant's (or none).
    pub fn push_user(&mut self, text: impl Into<String>) -> Result<()> {
        if self.turns.last().is_some_and(|m| m.role == Role::User) {
            return Err(ChatError::Conversation(
                "two user messages in a row; add the assistant's answer first".into(),
            ));
        }
        self.turns.push(Message::user(text));
        Ok(())
    }

    /// Add the model's answer to the pending user message.
    pub fn push_assistant(&mut self, text: impl Into<String>) -> Result<()> {
        if self.turns.last().is_none_or(|m| m.role != Role::User) {
            return Err(ChatError::Conversation(
                "an assistant message must answer a user message".into(),
            ));
        }
        self.turns.push(Message::assistant(text));
        Ok(())
    }

    /// Remove the pending user message (e.g. after a failed or cancelled generation).
    pub fn pop_user(&mut self) -> Option<String> {
        match self.turns.last() {
            Some(m) if m.role == Role::User => self.turns.pop().map(|m| m.content),
            _ => None,
        }
    }

    /// Render with `add_generation_prompt=True` and tokenize.
    pub fn prompt_ids(&self, template: &ChatTemplate, tok: &Tokenizer) -> Result<Vec<u32>> {
        let text = template.render(&self.messages(), true, tok.bos_token(), tok.eos_token())?;
        tok.encode(&text, false)
    }

    /// The prompt for the next answer, dropping the oldest user+assistant pairs until
    /// the prompt plus `reserve` tokens (room for the answer) fits in `context` tokens.
    /// The dropped turns are gone from the conversation; [`Prompt::dropped_messages`]
    /// says how many, so the UI can tell the user. Errors if even the system prompt
    /// and the last user message alone do not fit.
    pub fn fit(
        &mut self,
        template: &ChatTemplate,
        tok: &Tokenizer,
        context: usize,
        reserve: usize,
    ) -> Result<Prompt> {
        if self.turns.last().is_none_or(|m| m.role != Role::User) {
            return Err(ChatError::Conversation(
                "there is no user message to answer".into(),
            ));
        }
        let mut dropped = 0;
        loop {
            let ids = self.prompt_ids(template, tok)?;
            let needed = ids.len() + reserve;
            if needed <= context {
                return Ok(Prompt {
                    ids,
                    dropped_messages: dropped,
                });
            }
            if self.turns.len() < 3 {
                return Err(ChatError::ContextOverflow {
                    needed,
                    limit: context,
                });
            }
            self.turns.drain(..2);
            dropped += 2;
        }
    }
}

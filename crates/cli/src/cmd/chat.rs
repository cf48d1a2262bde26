//! `ahma chat MODEL [--tokenizer tokenizer.json] [--system TEXT]`: an interactive chat
//! in the terminal, with the answer streamed as it is generated.
//!
//! Runs on the GPU engine (crate `ahma-engine`, the default) or on the CPU reference
//! (`--backend cpu`), both through `ahma_chat::LanguageModel`, so the conversation,
//! template, sampling and streaming code is one. The model card's generation settings are
//! the defaults. Lines typed are user messages; `/reset` starts over, `/exit` (or end of
//! input) quits. When the conversation outgrows the context, the oldest turns are
//! dropped (never the system prompt) and a note says so.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use ahma_chat::{
    ChatTemplate, Conversation, GenerationSettings, LanguageModel, Sampler, Session, StopReason,
    DEFAULT_SYSTEM_PROMPT,
};
use anyhow::Context;

/// Which implementation runs the model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The GPU engine (crate `ahma-engine`).
    Gpu,
    /// The plain f32 CPU reference (crate `ahma-reference`); slow, for checking.
    Cpu,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model file.
    pub model: PathBuf,
    /// Backend that runs the model.
    #[arg(long, value_enum, default_value_t = Backend::Gpu)]
    pub backend: Backend,
    /// Context length to allocate on the GPU (default: the model's training context).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// A Hugging Face tokenizer.json to use instead of the GGUF vocabulary.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// System prompt (default: the Ahma-Instruct model card's Finnish one).
    #[arg(long, conflicts_with = "no_system")]
    pub system: Option<String>,
    /// Chat without a system prompt.
    #[arg(long)]
    pub no_system: bool,
    /// Apply Unicode NFKC to what you type, as Ahma's SentencePiece trainer did.
    #[arg(long)]
    pub nfkc: bool,
    /// Softmax temperature (0 = greedy).
    #[arg(long, default_value_t = GenerationSettings::default().temperature)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = GenerationSettings::default().top_k)]
    pub top_k: u32,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = GenerationSettings::default().top_p)]
    pub top_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = GenerationSettings::default().repetition_penalty)]
    pub repetition_penalty: f32,
    /// EOS is suppressed until the sequence (prompt included) has this many tokens.
    #[arg(long, default_value_t = GenerationSettings::default().min_length)]
    pub min_length: u32,
    /// Maximum sequence length, prompt included.
    #[arg(long, default_value_t = GenerationSettings::default().max_length)]
    pub max_length: u32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tokens kept free for the answer when fitting the conversation into the context.
    #[arg(long, default_value_t = 256)]
    pub reserve: usize,
}

/// The CPU reference as a [`LanguageModel`].
pub struct CpuModel(pub ahma_reference::Model);

impl LanguageModel for CpuModel {
    fn forward(
        &mut self,
        token: u32,
        pos: usize,
    ) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.forward(token, pos)?.to_vec())
    }
    fn context_len(&self) -> usize {
        self.0.config.n_ctx_train
    }
}

/// The GPU engine as a [`LanguageModel`]: one evaluation per token with its logits read
/// back, so the chat's CPU sampler applies the model card's settings exactly (min_length
/// included) on both backends.
pub struct GpuModel(pub ahma_engine::Model);

impl GpuModel {
    /// Loads `path` on a new GPU context with room for `n_ctx` positions.
    pub fn load(path: &std::path::Path, n_ctx: Option<usize>) -> anyhow::Result<Self> {
        let ctx = pollster::block_on(ahma_kernels::GpuContext::new(Default::default()))
            .context("no usable GPU")?;
        let (header, _) = ahma_gguf::Gguf::open(path)
            .with_context(|| format!("cannot open model {}", path.display()))?;
        let cfg = ahma_gguf::LlamaConfig::from_gguf(&header)?;
        let opts = ahma_engine::LoadOptions {
            n_ctx: n_ctx.unwrap_or(cfg.n_ctx_train),
            ..Default::default()
        };
        let model =
            pollster::block_on(ahma_engine::load_file(std::sync::Arc::new(ctx), path, opts))
                .with_context(|| format!("cannot load model {}", path.display()))?;
        Ok(GpuModel(model))
    }
}

impl LanguageModel for GpuModel {
    fn forward(
        &mut self,
        token: u32,
        pos: usize,
    ) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        if pos != self.0.n_past() {
            self.0.rewind(pos)?;
        }
        Ok(pollster::block_on(self.0.logits(&[token]))?)
    }
    fn context_len(&self) -> usize {
        self.0.options().n_ctx
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    run_with_input(args, &mut input, out)
}

/// [`run`] reading the user's lines from `input` (tests pass a buffer).
pub fn run_with_input(
    args: Args,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let settings = GenerationSettings {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        min_length: args.min_length,
        max_length: args.max_length,
        seed: args.seed,
    };
    settings.validate()?;
    let mut tok = super::tokenize::load_tokenizer(&args.model, args.tokenizer.as_deref())?;
    tok.set_nfkc(args.nfkc);
    let template = ChatTemplate::for_tokenizer(&tok)?;
    let model: Box<dyn LanguageModel> = match args.backend {
        Backend::Gpu => Box::new(GpuModel::load(&args.model, args.ctx)?),
        Backend::Cpu => Box::new(CpuModel(
            ahma_reference::Model::load(&args.model)
                .with_context(|| format!("cannot load model {}", args.model.display()))?,
        )),
    };
    let mut session = Session::new(model);
    let context = session
        .model()
        .context_len()
        .min(settings.max_length as usize);
    let system = if args.no_system {
        None
    } else {
        Some(
            args.system
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string()),
        )
    };
    let mut conv = Conversation::new(system.clone());
    let mut sampler = Sampler::new(settings.clone(), tok.eos_id())?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        eprintln!(
            "ahma chat ({}; {} template). /reset starts over, /exit quits.",
            args.model.display(),
            if template.is_builtin() {
                "built-in Llama-2"
            } else {
                "model's"
            }
        );
    }
    let mut line = String::new();
    loop {
        if interactive {
            eprint!("> ");
        }
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        match text.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                conv = Conversation::new(system.clone());
                session.reset();
                writeln!(out, "[conversation reset]")?;
                continue;
            }
            _ => {}
        }
        conv.push_user(text)?;
        let reserve = args.reserve.min(context.saturating_sub(1));
        let prompt = match conv.fit(&template, &tok, context, reserve) {
            Ok(p) => p,
            Err(e) => {
                conv.pop_user();
                writeln!(out, "[{e}]")?;
                continue;
            }
        };
        if prompt.dropped_messages > 0 {
            writeln!(
                out,
                "[dropped the {} oldest messages to fit the {context}-token context]",
                prompt.dropped_messages
            )?;
        }
        let mut write_err = None;
        let generation = session.generate(&prompt.ids, &mut sampler, &tok, &mut |piece| {
            let r = out.write_all(piece.as_bytes()).and_then(|_| out.flush());
            match r {
                Ok(()) => true,
                Err(e) => {
                    write_err = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        writeln!(out)?;
        if generation.stop == StopReason::MaxLength {
            writeln!(out, "[stopped at the length limit]")?;
        }
        conv.push_assistant(generation.text)?;
    }
    Ok(())
}

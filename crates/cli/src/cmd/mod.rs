pub mod chat;
pub mod info;
pub mod logits;
pub mod synth;
pub mod tokenize;

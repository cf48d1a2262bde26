//! Incremental parsing of a GGUF byte stream (a `fetch()` body, a file read in pieces).

use crate::header::HeaderMachine;
use crate::{Gguf, GgufError, Limits};

/// What [`StreamParser::feed`] reports, in stream order.
#[derive(Debug)]
pub enum StreamEvent<'a> {
    /// Once, as soon as the header, metadata and tensor table are complete and validated
    /// (before the alignment padding that precedes the data section).
    Header(&'a Gguf),
    /// A piece of tensor `index`, starting at its byte `offset`. `bytes` borrows the fed
    /// chunk directly: tensor data is never copied or buffered by the parser.
    TensorData {
        index: usize,
        offset: u64,
        bytes: &'a [u8],
    },
    /// Every byte of tensor `index` has been delivered. Tensors of zero bytes complete
    /// right after [`StreamEvent::Header`], in table order.
    TensorComplete { index: usize },
    /// Every tensor is complete (for a file without tensor data: the data section has
    /// been reached). Bytes after this point are ignored.
    Finished,
}

enum Phase {
    Header(Box<HeaderMachine>),
    Data,
    Finished,
    Failed,
}

/// A push parser for GGUF: feed bytes as they arrive, in chunks of any size (even one
/// byte), and receive the header, then tensor data pieces, as events.
///
/// Memory stays bounded by the [`Limits`]: before the data section only the primitive
/// being read is buffered (at most one string); tensor data is passed through as slices
/// of the fed chunk. Tensors are delivered in data-section order (by offset), which for
/// files written by llama.cpp and gguf-py is table order.
///
/// Any error (from the input or from the sink) leaves the parser failed; later calls to
/// [`feed`](Self::feed) return [`GgufError::StreamFailed`].
pub struct StreamParser {
    phase: Phase,
    partial: Vec<u8>,
    header: Option<Gguf>,
    consumed: u64,
    /// Indices of tensors with data, sorted by offset.
    order: Vec<usize>,
    /// Next entry of `order` to deliver.
    next: usize,
    /// Position within the data section.
    data_pos: u64,
    /// Padding between the tensor table and the data section still to skip.
    pad_left: u64,
}

impl Default for StreamParser {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamParser {
    /// A parser with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A parser with explicit limits.
    pub fn with_limits(limits: Limits) -> Self {
        StreamParser {
            phase: Phase::Header(Box::new(HeaderMachine::new(limits, None))),
            partial: Vec::new(),
            header: None,
            consumed: 0,
            order: Vec::new(),
            next: 0,
            data_pos: 0,
            pad_left: 0,
        }
    }

    /// The header, once it has been parsed.
    pub fn header(&self) -> Option<&Gguf> {
        self.header.as_ref()
    }

    /// Bytes of input processed so far (including ignored trailing bytes).
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// True once every tensor has been delivered.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// Call at the end of the stream: an error if the stream ended before every tensor
    /// was delivered.
    pub fn finish(&self) -> Result<(), GgufError> {
        match &self.phase {
            Phase::Finished => Ok(()),
            Phase::Failed => Err(GgufError::StreamFailed),
            Phase::Header(m) => Err(m.truncated(self.partial.len())),
            Phase::Data if self.pad_left > 0 => Err(GgufError::Truncated {
                what: "padding before the data section",
                offset: self.consumed,
                needed: self.pad_left,
            }),
            Phase::Data => {
                let (g, i) = (
                    self.header.as_ref().expect("header in data phase"),
                    self.order[self.next],
                );
                let end = g.tensors[i].offset + g.tensors[i].n_bytes;
                Err(GgufError::Truncated {
                    what: "tensor data",
                    offset: g.data_offset + self.data_pos,
                    needed: end - self.data_pos,
                })
            }
        }
    }

    /// Processes `chunk`, calling `sink` for every event it completes. An error from
    /// `sink` stops processing and is returned as is.
    pub fn feed<E: From<GgufError>>(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(StreamEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let r = self.feed_inner(chunk, sink);
        if r.is_err() {
            self.phase = Phase::Failed;
            self.partial = Vec::new();
        }
        r
    }

    fn feed_inner<E: From<GgufError>>(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(StreamEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        if let Phase::Failed = self.phase {
            return Err(GgufError::StreamFailed.into());
        }
        if let Phase::Header(m) = &mut self.phase {
            // A step may need zero bytes (an empty string), so run steps until the machine
            // needs bytes this chunk no longer has.
            while !m.is_done() {
                let need = m.need();
                if self.partial.is_empty() && rest.len() >= need {
                    m.step(&rest[..need])?;
                    rest = &rest[need..];
                    self.consumed += need as u64;
                    continue;
                }
                if rest.is_empty() {
                    break;
                }
                let take = (need - self.partial.len()).min(rest.len());
                self.partial.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                self.consumed += take as u64;
                if self.partial.len() == need {
                    m.step(&self.partial)?;
                    self.partial.clear();
                }
            }
            if !m.is_done() {
                return Ok(());
            }
            self.pad_left = m.padding();
            let g = m.take_gguf();
            self.partial = Vec::new();
            let mut order: Vec<usize> = (0..g.tensors.len())
                .filter(|&i| g.tensors[i].n_bytes > 0)
                .collect();
            order.sort_by_key(|&i| g.tensors[i].offset);
            self.order = order;
            self.phase = Phase::Data;
            let g = self.header.insert(g);
            sink(StreamEvent::Header(g))?;
            for (index, t) in g.tensors.iter().enumerate() {
                if t.n_bytes == 0 {
                    sink(StreamEvent::TensorComplete { index })?;
                }
            }
        }
        if let Phase::Data = self.phase {
            let g = self.header.as_ref().expect("header in data phase");
            let skip = self.pad_left.min(rest.len() as u64) as usize;
            rest = &rest[skip..];
            self.pad_left -= skip as u64;
            self.consumed += skip as u64;
            // Like the blocking reader, the stream is complete only once it has reached
            // the data section, even when there is no tensor data.
            if self.pad_left == 0 && self.order.is_empty() {
                self.phase = Phase::Finished;
                sink(StreamEvent::Finished)?;
            }
            while !rest.is_empty() && self.next < self.order.len() {
                let index = self.order[self.next];
                let t = &g.tensors[index];
                if self.data_pos < t.offset {
                    // Alignment padding (or a gap) before the next tensor: skip it.
                    let skip = (t.offset - self.data_pos).min(rest.len() as u64) as usize;
                    rest = &rest[skip..];
                    self.data_pos += skip as u64;
                    self.consumed += skip as u64;
                    continue;
                }
                let within = self.data_pos - t.offset;
                let take = (t.n_bytes - within).min(rest.len() as u64) as usize;
                let (piece, tail) = rest.split_at(take);
                rest = tail;
                self.data_pos += take as u64;
                self.consumed += take as u64;
                sink(StreamEvent::TensorData {
                    index,
                    offset: within,
                    bytes: piece,
                })?;
                if within + take as u64 == t.n_bytes {
                    sink(StreamEvent::TensorComplete { index })?;
                    self.next += 1;
                    if self.next == self.order.len() {
                        self.phase = Phase::Finished;
                        sink(StreamEvent::Finished)?;
                        break;
                    }
                }
            }
        }
        // Trailing bytes after the last tensor are ignored.
        self.consumed += rest.len() as u64;
        Ok(())
    }
}

//! The resumable GGUF header parser shared by [`Gguf::read_header`] and
//! [`crate::StreamParser`].
//!
//! The parser is a state machine that is always waiting for exactly [`HeaderMachine::need`]
//! bytes (one primitive: a fixed-size number, or the payload of a string). Callers hand it
//! exactly that many bytes with [`HeaderMachine::step`]. This lets the blocking reader read
//! exactly the header and nothing more, and lets the streaming parser resume anywhere
//! without re-parsing, while buffering at most one string.

use std::collections::HashSet;

use crate::{tensor_bytes, GgmlType, Gguf, GgufError, TensorInfo, Value};

/// Upper bounds on what a header may ask this crate to hold in memory. Every count and
/// length in a file is checked against these before anything is allocated for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Budget for the in-memory size of metadata and tensor infos, in bytes. Each value is
    /// charged `size_of::<Value>()` plus its heap bytes, so a million one-byte array
    /// elements cost 32 MiB even though the file spends only 1 MB on them.
    pub max_metadata_bytes: u64,
    /// Longest array (elements) in a metadata value.
    pub max_array_len: u64,
    /// Longest string (bytes): keys, values and tensor names.
    pub max_string_len: u64,
    /// Most tensors in the tensor table.
    pub max_tensors: u64,
    /// Most metadata key/value pairs.
    pub max_kv: u64,
    /// Most dimensions of one tensor.
    pub max_dims: u32,
    /// Deepest nesting of arrays inside arrays (deeply nested values would overflow the
    /// stack when dropped or compared).
    pub max_array_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_metadata_bytes: 64 << 20,
            max_array_len: 16 << 20,
            max_string_len: 1 << 20,
            max_tensors: 65536,
            max_kv: 1 << 20,
            max_dims: 8,
            max_array_depth: 16,
        }
    }
}

const VALUE_COST: u64 = std::mem::size_of::<Value>() as u64;
const KV_COST: u64 = std::mem::size_of::<(String, Value)>() as u64;
const TENSOR_COST: u64 = std::mem::size_of::<TensorInfo>() as u64;

/// What the machine waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Magic,
    Version,
    TensorCount,
    KvCount,
    KeyLen,
    KeyBytes(u64),
    ValueType,
    /// A value of the given GGUF type (scalar, string length or array header).
    Value(u32),
    StrBytes(u64),
    ArrayCount(u32),
    TensorNameLen,
    TensorNameBytes(u64),
    NDims,
    Dim(u32),
    TensorType,
    TensorOffset,
    Done,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::Magic => "magic",
            Step::Version => "version",
            Step::TensorCount => "tensor count",
            Step::KvCount => "metadata count",
            Step::KeyLen | Step::KeyBytes(_) => "metadata key",
            Step::ValueType => "metadata value type",
            Step::Value(_) | Step::StrBytes(_) | Step::ArrayCount(_) => "metadata value",
            Step::TensorNameLen | Step::TensorNameBytes(_) => "tensor name",
            Step::NDims | Step::Dim(_) => "tensor dimensions",
            Step::TensorType => "tensor type",
            Step::TensorOffset => "tensor offset",
            Step::Done => "end of header",
        }
    }
}

struct ArrayFrame {
    elem_ty: u32,
    remaining: u64,
    items: Vec<Value>,
}

pub(crate) struct HeaderMachine {
    limits: Limits,
    /// Total input length when known (a file), to reject impossible lengths early.
    total_len: Option<u64>,
    pos: u64,
    step: Step,
    version: u32,
    n_tensors: u64,
    n_kv: u64,
    mem: u64,
    metadata: Vec<(String, Value)>,
    key: String,
    stack: Vec<ArrayFrame>,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
    cur_name: String,
    cur_dims: Vec<u64>,
    cur_ty: GgmlType,
    alignment: u64,
    data_offset: u64,
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// File bytes of one scalar of GGUF value type `ty`; `None` for string, array and unknown.
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Smallest number of file bytes one value of type `ty` can occupy.
fn min_value_size(ty: u32) -> u64 {
    match ty {
        8 => 8,
        9 => 12,
        t => scalar_size(t).unwrap_or(1),
    }
}

fn decode_scalar(ty: u32, b: &[u8]) -> Value {
    match ty {
        0 => Value::U8(b[0]),
        1 => Value::I8(b[0] as i8),
        2 => Value::U16(u16::from_le_bytes([b[0], b[1]])),
        3 => Value::I16(i16::from_le_bytes([b[0], b[1]])),
        4 => Value::U32(u32_le(b)),
        5 => Value::I32(u32_le(b) as i32),
        6 => Value::F32(f32::from_bits(u32_le(b))),
        // Like llama.cpp, any non-zero byte reads as true.
        7 => Value::Bool(b[0] != 0),
        10 => Value::U64(u64_le(b)),
        11 => Value::I64(u64_le(b) as i64),
        _ => Value::F64(f64::from_bits(u64_le(b))),
    }
}

impl HeaderMachine {
    pub(crate) fn new(limits: Limits, total_len: Option<u64>) -> Self {
        HeaderMachine {
            limits,
            total_len,
            pos: 0,
            step: Step::Magic,
            version: 0,
            n_tensors: 0,
            n_kv: 0,
            mem: 0,
            metadata: Vec::new(),
            key: String::new(),
            stack: Vec::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
            cur_name: String::new(),
            cur_dims: Vec::new(),
            cur_ty: GgmlType::F32,
            alignment: 32,
            data_offset: 0,
        }
    }

    /// Bytes the next [`step`](Self::step) needs; 0 once the header is complete.
    pub(crate) fn need(&self) -> usize {
        let n: u64 = match self.step {
            Step::Magic | Step::Version | Step::ValueType | Step::NDims | Step::TensorType => 4,
            Step::TensorCount
            | Step::KvCount
            | Step::KeyLen
            | Step::TensorNameLen
            | Step::Dim(_)
            | Step::TensorOffset => 8,
            Step::ArrayCount(_) => 8,
            Step::KeyBytes(n) | Step::StrBytes(n) | Step::TensorNameBytes(n) => n,
            Step::Value(ty) => match ty {
                8 => 8,
                9 => 4,
                t => scalar_size(t).unwrap_or(0),
            },
            Step::Done => 0,
        };
        // Lengths were checked against `max_string_len` before entering the step.
        n as usize
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The error for input that ended while the machine still waited for bytes.
    pub(crate) fn truncated(&self, have: usize) -> GgufError {
        GgufError::Truncated {
            what: self.step.what(),
            offset: self.pos,
            needed: (self.need() - have.min(self.need())) as u64,
        }
    }

    fn charge(&mut self, what: &'static str, cost: u64) -> Result<(), GgufError> {
        let total = self.mem.saturating_add(cost);
        if total > self.limits.max_metadata_bytes {
            return Err(GgufError::LimitExceeded {
                what,
                value: total,
                limit: self.limits.max_metadata_bytes,
            });
        }
        self.mem = total;
        Ok(())
    }

    /// Checks that `len` more bytes can still follow in the input, when its length is known.
    fn check_remaining(&self, what: &'static str, len: u64) -> Result<(), GgufError> {
        if let Some(total) = self.total_len {
            let avail = total.saturating_sub(self.pos);
            if len > avail {
                return Err(GgufError::Truncated {
                    what,
                    offset: self.pos,
                    needed: len - avail,
                });
            }
        }
        Ok(())
    }

    fn string_len(&self, len: u64, what: &'static str) -> Result<u64, GgufError> {
        if len > self.limits.max_string_len || usize::try_from(len).is_err() {
            return Err(GgufError::LimitExceeded {
                what,
                value: len,
                limit: self.limits.max_string_len,
            });
        }
        self.check_remaining(what, len)?;
        Ok(len)
    }

    fn utf8(&self, bytes: &[u8], what: &'static str, start: u64) -> Result<String, GgufError> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| GgufError::InvalidUtf8 {
                what,
                offset: start,
            })
    }

    /// Consumes exactly `self.need()` bytes.
    pub(crate) fn step(&mut self, b: &[u8]) -> Result<(), GgufError> {
        debug_assert_eq!(b.len(), self.need());
        let start = self.pos;
        self.pos += b.len() as u64;
        match self.step {
            Step::Magic => {
                if b != b"GGUF" {
                    return Err(GgufError::BadMagic {
                        found: [b[0], b[1], b[2], b[3]],
                    });
                }
                self.step = Step::Version;
            }
            Step::Version => {
                let version = u32_le(b);
                if version != 2 && version != 3 {
                    return Err(GgufError::UnsupportedVersion { version });
                }
                self.version = version;
                self.step = Step::TensorCount;
            }
            Step::TensorCount => {
                self.n_tensors = u64_le(b);
                if self.n_tensors > self.limits.max_tensors {
                    return Err(GgufError::LimitExceeded {
                        what: "tensor count",
                        value: self.n_tensors,
                        limit: self.limits.max_tensors,
                    });
                }
                self.step = Step::KvCount;
            }
            Step::KvCount => {
                self.n_kv = u64_le(b);
                if self.n_kv > self.limits.max_kv {
                    return Err(GgufError::LimitExceeded {
                        what: "metadata count",
                        value: self.n_kv,
                        limit: self.limits.max_kv,
                    });
                }
                // Each kv needs at least 8 + 4 + 1 bytes, each tensor info at least 8 + 4 + 4 + 8.
                let min_bytes = self
                    .n_kv
                    .saturating_mul(13)
                    .saturating_add(self.n_tensors.saturating_mul(24));
                self.check_remaining("metadata and tensor table", min_bytes)?;
                self.next_kv_or_tensors()?;
            }
            Step::KeyLen => {
                let len = self.string_len(u64_le(b), "metadata key length")?;
                self.charge("metadata size", KV_COST + len)?;
                self.step = Step::KeyBytes(len);
            }
            Step::KeyBytes(_) => {
                self.key = self.utf8(b, "metadata key", start)?;
                self.step = Step::ValueType;
            }
            Step::ValueType => {
                let ty = u32_le(b);
                if ty > 12 {
                    return Err(GgufError::UnknownValueType {
                        type_id: ty,
                        offset: start,
                    });
                }
                self.step = Step::Value(ty);
            }
            Step::Value(ty) => match ty {
                8 => {
                    let len = self.string_len(u64_le(b), "string length")?;
                    self.charge("metadata size", len)?;
                    self.step = Step::StrBytes(len);
                }
                9 => {
                    let elem_ty = u32_le(b);
                    if elem_ty > 12 {
                        return Err(GgufError::UnknownValueType {
                            type_id: elem_ty,
                            offset: start,
                        });
                    }
                    self.step = Step::ArrayCount(elem_ty);
                }
                _ => self.complete_value(decode_scalar(ty, b))?,
            },
            Step::StrBytes(_) => {
                let s = self.utf8(b, "metadata string", start)?;
                self.complete_value(Value::String(s))?;
            }
            Step::ArrayCount(elem_ty) => {
                let count = u64_le(b);
                if count > self.limits.max_array_len {
                    return Err(GgufError::LimitExceeded {
                        what: "array length",
                        value: count,
                        limit: self.limits.max_array_len,
                    });
                }
                self.check_remaining("array", count.saturating_mul(min_value_size(elem_ty)))?;
                self.charge("metadata size", count.saturating_mul(VALUE_COST))?;
                if count == 0 {
                    self.complete_value(Value::Array(Vec::new()))?;
                } else {
                    if self.stack.len() as u64 >= u64::from(self.limits.max_array_depth) {
                        return Err(GgufError::LimitExceeded {
                            what: "array nesting depth",
                            value: self.stack.len() as u64 + 1,
                            limit: self.limits.max_array_depth.into(),
                        });
                    }
                    // Grow lazily: the count is only a claim until the elements arrive.
                    let cap = count.min(1024) as usize;
                    self.stack.push(ArrayFrame {
                        elem_ty,
                        remaining: count,
                        items: Vec::with_capacity(cap),
                    });
                    self.step = Step::Value(elem_ty);
                }
            }
            Step::TensorNameLen => {
                let len = self.string_len(u64_le(b), "tensor name length")?;
                self.charge("metadata size", TENSOR_COST + len)?;
                self.step = Step::TensorNameBytes(len);
            }
            Step::TensorNameBytes(_) => {
                self.cur_name = self.utf8(b, "tensor name", start)?;
                self.step = Step::NDims;
            }
            Step::NDims => {
                let n = u32_le(b);
                if n > self.limits.max_dims {
                    return Err(GgufError::LimitExceeded {
                        what: "tensor dimension count",
                        value: n.into(),
                        limit: self.limits.max_dims.into(),
                    });
                }
                self.charge("metadata size", u64::from(n) * 8)?;
                self.cur_dims = Vec::with_capacity(n as usize);
                self.step = if n == 0 {
                    Step::TensorType
                } else {
                    Step::Dim(n)
                };
            }
            Step::Dim(left) => {
                self.cur_dims.push(u64_le(b));
                self.step = if left > 1 {
                    Step::Dim(left - 1)
                } else {
                    Step::TensorType
                };
            }
            Step::TensorType => {
                let type_id = u32_le(b);
                let ty =
                    GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
                        tensor: self.cur_name.clone(),
                        type_id,
                    })?;
                self.cur_ty = ty;
                self.step = Step::TensorOffset;
            }
            Step::TensorOffset => {
                let mut t = TensorInfo {
                    name: std::mem::take(&mut self.cur_name),
                    dims: std::mem::take(&mut self.cur_dims),
                    ty: self.cur_ty,
                    offset: u64_le(b),
                    n_bytes: 0,
                };
                t.n_bytes = self.validate_tensor(&t)?;
                if !self.names.insert(t.name.clone()) {
                    return Err(GgufError::DuplicateTensor { name: t.name });
                }
                self.tensors.push(t);
                self.next_tensor_or_done()?;
            }
            Step::Done => {}
        }
        Ok(())
    }

    /// Checks one tensor info on its own and fills in its byte size.
    fn validate_tensor(&self, t: &TensorInfo) -> Result<u64, GgufError> {
        let overflow = || GgufError::ElementCountOverflow {
            tensor: t.name.clone(),
            dims: t.dims.clone(),
        };
        let mut n: u64 = 1;
        for &d in &t.dims {
            n = n.checked_mul(d).ok_or_else(overflow)?;
        }
        // ggml counts elements in int64_t.
        if n > i64::MAX as u64 {
            return Err(overflow());
        }
        let row = t.dims.first().copied().unwrap_or(1);
        let block = t.ty.block_elems() as u64;
        if !row.is_multiple_of(block) {
            return Err(GgufError::RowNotBlockMultiple {
                tensor: t.name.clone(),
                ty: t.ty,
                row_len: row,
                block,
            });
        }
        let n_bytes = tensor_bytes(t.ty, n).map_err(|_| overflow())?;
        if !t.offset.is_multiple_of(self.alignment) {
            return Err(GgufError::MisalignedOffset {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment: self.alignment,
            });
        }
        if t.offset
            .checked_add(n_bytes)
            .is_none_or(|e| e > i64::MAX as u64)
        {
            return Err(GgufError::TensorOutOfRange {
                tensor: t.name.clone(),
                end: u64::MAX,
                len: u64::MAX,
            });
        }
        Ok(n_bytes)
    }

    fn complete_value(&mut self, mut v: Value) -> Result<(), GgufError> {
        loop {
            match self.stack.last_mut() {
                Some(top) => {
                    top.items.push(v);
                    top.remaining -= 1;
                    if top.remaining > 0 {
                        self.step = Step::Value(top.elem_ty);
                        return Ok(());
                    }
                    let frame = self.stack.pop().expect("non-empty stack");
                    v = Value::Array(frame.items);
                }
                None => {
                    let key = std::mem::take(&mut self.key);
                    self.metadata.push((key, v));
                    return self.next_kv_or_tensors();
                }
            }
        }
    }

    fn next_kv_or_tensors(&mut self) -> Result<(), GgufError> {
        if (self.metadata.len() as u64) < self.n_kv {
            self.step = Step::KeyLen;
            return Ok(());
        }
        // Metadata complete: check keys and settle the alignment before the tensor table,
        // whose offsets must respect it.
        let mut seen = HashSet::with_capacity(self.metadata.len());
        for (k, _) in &self.metadata {
            if !seen.insert(k.as_str()) {
                return Err(GgufError::DuplicateKey { key: k.clone() });
            }
        }
        if let Some((_, v)) = self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            let a = v.as_u64().ok_or(GgufError::WrongValueType {
                key: "general.alignment".into(),
                expected: "unsigned integer",
            })?;
            if a == 0 || !a.is_power_of_two() {
                return Err(GgufError::BadAlignment { value: a });
            }
            self.alignment = a;
        }
        self.next_tensor_or_done()
    }

    fn next_tensor_or_done(&mut self) -> Result<(), GgufError> {
        if (self.tensors.len() as u64) < self.n_tensors {
            self.step = Step::TensorNameLen;
            return Ok(());
        }
        let a = self.alignment;
        let data_offset = self
            .pos
            .checked_next_multiple_of(a)
            .ok_or(GgufError::BadAlignment { value: a })?;
        self.data_offset = data_offset;
        // The padding up to the data section is not part of the header proper: the header
        // is complete (and reported) as soon as the table is, and callers skip
        // `padding()` bytes themselves.
        self.check_remaining("padding before the data section", data_offset - self.pos)?;
        self.step = Step::Done;
        self.finish_table()
    }

    /// Bytes of padding between the end of the tensor table and the data section; valid
    /// once [`is_done`](Self::is_done).
    pub(crate) fn padding(&self) -> u64 {
        self.data_offset - self.pos
    }

    /// Whole-table checks: tensor ranges must not overlap and must be addressable.
    fn finish_table(&mut self) -> Result<(), GgufError> {
        let mut order: Vec<usize> = (0..self.tensors.len())
            .filter(|&i| self.tensors[i].n_bytes > 0)
            .collect();
        order.sort_by_key(|&i| self.tensors[i].offset);
        for w in order.windows(2) {
            let (a, b) = (&self.tensors[w[0]], &self.tensors[w[1]]);
            if a.offset + a.n_bytes > b.offset {
                return Err(GgufError::OverlappingTensors {
                    first: a.name.clone(),
                    second: b.name.clone(),
                });
            }
        }
        for t in &self.tensors {
            let end = t.offset + t.n_bytes;
            if self.data_offset.checked_add(end).is_none() {
                return Err(GgufError::TensorOutOfRange {
                    tensor: t.name.clone(),
                    end: u64::MAX,
                    len: u64::MAX,
                });
            }
        }
        Ok(())
    }

    /// The parsed header; only valid once [`is_done`](Self::is_done).
    pub(crate) fn into_gguf(self) -> Gguf {
        debug_assert!(self.is_done());
        Gguf {
            version: self.version,
            metadata: self.metadata,
            tensors: self.tensors,
            alignment: self.alignment,
            data_offset: self.data_offset,
        }
    }

    /// Like [`into_gguf`](Self::into_gguf) without consuming the machine.
    pub(crate) fn take_gguf(&mut self) -> Gguf {
        let m = std::mem::replace(self, HeaderMachine::new(self.limits, None));
        m.into_gguf()
    }
}

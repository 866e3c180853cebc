//! Splitting a byte stream into JSON documents, in one linear pass.
//!
//! Audit files come as JSON lines, one pretty-printed document, a JSON array
//! over many lines, or several objects one after another. The framer tracks
//! nesting depth and string state as a state machine over bytes (`step`;
//! fast.rs runs it 64 bytes at a time where nothing but those move), and
//! emits a frame each time a top-level value closes — so every shape streams without buffering the
//! whole input. Broken input is cut where the next document visibly starts,
//! so it never swallows the good records after it, and a broken document
//! stays one frame (one dead letter), not one per line:
//! - a `{` or `[` in column 0 while a value is still open starts a new frame
//!   (a truncated line followed by the next record);
//! - a raw newline inside a string (JSON forbids it) breaks the value: string
//!   and nesting state can no longer be trusted, so the frame runs on line by
//!   line until a line starts a new document (`{` / `[` in column 0, which
//!   starts the next frame) or closes one (`}` / `]` in column 0, the end of
//!   a pretty-printed document, which ends this one), or the input ends;
//! - anything that does not start with `{`, `[` or `"` runs to the end of its line.
//!
//! Frames are not validated here: the decoder parses them and reports errors.

mod fast;

/// One top-level document (or one record of a container document) and where it was found.
#[derive(Debug, PartialEq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// 1-based line where the frame starts; for a record of a container,
    /// the line where its document starts (with `index`, the record's origin).
    pub line: u64,
    /// The record's 0-based position in its container, when the document was split.
    pub index: Option<u32>,
    /// Byte offset (in the decoded stream) just after the frame, and the
    /// line that offset is on: where a reader resumes.
    pub end_offset: u64,
    pub end_line: u64,
    /// Set when the frame ended inside a container: what a reader resuming
    /// at `end_offset` must know (the rest of the container is records).
    pub container: Option<ContainerAt>,
    /// The frame was longer than the limit; `bytes` holds only its start.
    pub oversized: bool,
    /// Object members and array items in the frame (`:` and `,` outside
    /// strings, plus one): what its parsed JSON tree costs in memory scales with it.
    pub nodes: u32,
}

/// Where a reader stands inside a container that is being split into records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerAt {
    /// Nesting depth of the array whose elements are records: 1 for a
    /// top-level array, 2 for the `Records` / `traces` array of an object.
    pub depth: u32,
    /// Line where the document starts (records' origins name it).
    pub doc_line: u64,
    /// Index of the next record.
    pub next_index: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Idle,
    /// Inside a value that started with `{`, `[` or `"`.
    Value {
        depth: u32,
    },
    /// Inside something that is not JSON-shaped, until the end of the line.
    Bare,
    /// Inside a value broken by a raw newline in a string, until a line
    /// starts or closes a document in column 0.
    Broken,
}

/// A container document being split: its records are framed one by one.
#[derive(Clone, Copy, Debug)]
struct Container {
    at: ContainerAt,
    /// A record is open (its bytes are in `current`).
    element_open: bool,
    /// The open record is a bare scalar (`1`, `true` …), which ends at `,`, `]` or a blank.
    element_scalar: bool,
    /// The open record started in column 0 (arrays written one record per line).
    element_column_zero: bool,
}

/// Incremental framer; feed it blocks, then call `finish` at end of input.
///
/// Container documents — a top-level JSON array of objects, or an object
/// whose first key is `Records` (CloudTrail) or `traces` (CTS) holding an
/// array of objects — are split: each element becomes its own frame, with
/// the document's line and the element's index, so a 300 MB CloudTrail file
/// is never held whole (in bytes, in a JSON tree, or as one batch of events).
/// Whatever follows the container inside its document is not audit data and
/// is dropped. An array whose first element is not an object (`[1, 2]`,
/// nested arrays) is framed whole, as before, and the decoder judges it.
pub struct Framer {
    state: State,
    in_string: bool,
    escape: bool,
    at_line_start: bool,
    line: u64,
    frame_line: u64,
    offset: u64,
    current: Vec<u8>,
    max_frame_bytes: usize,
    oversized: bool,
    /// `Frame::nodes` of the current frame, so far.
    nodes: u32,
    /// An array that may be a container just opened at this depth; its
    /// first element decides.
    pending_container: Option<u32>,
    container: Option<Container>,
    /// The rest of a split document after its container closed: consumed, never emitted.
    discard: bool,
}

/// Most room reserved ahead for the next frame (a huge record is no reason
/// to reserve as much for the next one).
const NEXT_FRAME_HINT_MAX: usize = 64 << 10;

/// A block scan that stops within this many bytes cost more than it saved…
const SHORT_SCAN: usize = 8;

/// … so the bytes after it go the byte-by-byte way, this many of them.
const SHORT_SCAN_PAUSE: usize = 64;

/// How much of an oversized frame is kept, for the dead-letter excerpt.
const OVERSIZED_KEEP: usize = 1024;

/// Keys of an object whose array value is a container of records.
const CONTAINER_KEYS: [&[u8]; 2] = [b"Records", b"traces"];

impl Framer {
    pub fn new(max_frame_bytes: usize) -> Framer {
        Framer::starting_at(max_frame_bytes, 1, 0, None)
    }

    /// A framer resuming at `line` / `offset` of a stream, inside a
    /// container when `container` says so.
    pub fn starting_at(max_frame_bytes: usize, line: u64, offset: u64, container: Option<ContainerAt>) -> Framer {
        let mut framer = Framer {
            state: State::Idle,
            in_string: false,
            escape: false,
            at_line_start: true,
            line,
            frame_line: line,
            offset,
            current: Vec::new(),
            max_frame_bytes: max_frame_bytes.max(OVERSIZED_KEEP),
            oversized: false,
            nodes: 1,
            pending_container: None,
            container: None,
            discard: false,
        };
        if let Some(at) = container.filter(|at| at.depth > 0) {
            framer.state = State::Value { depth: at.depth };
            framer.frame_line = at.doc_line;
            framer.at_line_start = false;
            framer.container = Some(Container {
                at,
                element_open: false,
                element_scalar: false,
                element_column_zero: false,
            });
        }
        framer
    }

    /// Current line (1-based) and decoded byte offset.
    pub fn position(&self) -> (u64, u64) {
        (self.line, self.offset)
    }

    /// The container the framer stands in between two records, if any:
    /// with `position`, where a reader resumes.
    pub fn container_position(&self) -> Option<ContainerAt> {
        self.container
            .filter(|container| !container.element_open)
            .map(|container| container.at)
    }

    fn start(&mut self, byte: u8, state: State) {
        self.state = state;
        self.frame_line = self.line;
        self.current.clear();
        self.oversized = false;
        self.nodes = 1;
        self.container = None;
        self.discard = false;
        // A top-level array may be a container of records.
        self.pending_container = (byte == b'[').then_some(1);
        self.push(byte);
    }

    fn push(&mut self, byte: u8) {
        if self.current.len() < self.max_frame_bytes {
            self.current.push(byte);
        } else {
            if !self.oversized {
                self.current.truncate(OVERSIZED_KEEP);
            }
            self.oversized = true;
        }
    }

    /// The bytes of the current frame, without trailing blanks.
    fn take_current(&mut self) -> Vec<u8> {
        // The next record is likely about as long as this one: start it with
        // that much room instead of growing from nothing by doubling (a
        // dozen reallocations and copies per record).
        let hint = (self.current.len() + self.current.len() / 4).min(NEXT_FRAME_HINT_MAX);
        let mut bytes = std::mem::replace(&mut self.current, Vec::with_capacity(hint));
        let keep = bytes
            .iter()
            .rposition(|byte| !byte.is_ascii_whitespace())
            .map_or(0, |last| last + 1);
        bytes.truncate(keep);
        bytes
    }

    /// Emit the current frame; `end` is the decoded offset just after it.
    fn emit(&mut self, end: u64, out: &mut Vec<Frame>) {
        let bytes = self.take_current();
        if !bytes.is_empty() {
            out.push(Frame {
                bytes,
                line: self.frame_line,
                index: None,
                end_offset: end,
                end_line: self.line,
                container: None,
                oversized: self.oversized,
                nodes: self.nodes,
            });
        }
        self.state = State::Idle;
        self.in_string = false;
        self.escape = false;
        self.oversized = false;
        self.pending_container = None;
        self.container = None;
        self.discard = false;
    }

    /// Emit the open record of the container; `end` is the offset just after it.
    /// The framer stays in the container, between records.
    fn emit_element(&mut self, end: u64, out: &mut Vec<Frame>) {
        let Some(container) = self.container.as_mut() else {
            return;
        };
        let index = container.at.next_index;
        container.at.next_index = index.saturating_add(1);
        container.element_open = false;
        container.element_scalar = false;
        let at = container.at;
        let bytes = self.take_current();
        if !bytes.is_empty() {
            out.push(Frame {
                bytes,
                line: at.doc_line,
                index: Some(index),
                end_offset: end,
                end_line: self.line,
                container: Some(at),
                oversized: self.oversized,
                nodes: self.nodes,
            });
        }
        self.oversized = false;
    }

    /// Whether the open object's text so far is `{"Records":` or `{"traces":`
    /// (blanks allowed): the array now opening holds its records.
    fn at_container_key(&self) -> bool {
        let text = self.current.as_slice();
        let skip_blank = |mut at: usize| {
            while text.get(at).is_some_and(|byte| byte.is_ascii_whitespace()) {
                at += 1;
            }
            at
        };
        let mut at = skip_blank(1);
        let Some(key) = CONTAINER_KEYS.iter().find(|key| {
            text.get(at) == Some(&b'"')
                && text.get(at + 1..at + 1 + key.len()) == Some(**key)
                && text.get(at + 1 + key.len()) == Some(&b'"')
        }) else {
            return false;
        };
        at = skip_blank(at + key.len() + 2);
        if text.get(at) != Some(&b':') {
            return false;
        }
        skip_blank(at + 1) == text.len()
    }

    /// Append a run of bytes to the current frame: exactly what `push` of
    /// each byte would leave.
    fn push_slice(&mut self, mut bytes: &[u8]) {
        loop {
            let room = self.max_frame_bytes.saturating_sub(self.current.len());
            if bytes.len() <= room {
                self.current.extend_from_slice(bytes);
                return;
            }
            let (fits, rest) = bytes.split_at(room);
            self.current.extend_from_slice(fits);
            // The frame is full and the next byte is dropped: the first time,
            // the frame is cut back to its start; after that, all is dropped.
            if self.oversized {
                return;
            }
            self.current.truncate(OVERSIZED_KEEP);
            self.oversized = true;
            bytes = &rest[1..];
        }
    }

    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        let mut position = 0;
        // Where the block scan is tried again after one that stopped within
        // a few bytes: input where something happens every few bytes (say
        // backslashes outside strings) is cheaper byte by byte than with a
        // block classified for each.
        let mut scan_from = 0;
        while position < data.len() {
            // Fast paths: the inside of objects and arrays is scanned by
            // blocks (fast.rs), runs of string content and of bare text are
            // copied in bulk; `step` takes the bytes where something happens.
            match self.state {
                State::Value { .. } => {
                    if position >= scan_from
                        && let Some(run) = self.scan(&data[position..])
                    {
                        position += run;
                        // The scan stopped before a byte for `step` (or at
                        // the end); after a short scan, a few more.
                        scan_from = position + if run < SHORT_SCAN { SHORT_SCAN_PAUSE } else { 1 };
                        continue;
                    }
                    // A string the block scan does not take (a top-level
                    // string, a string record, the first record of a
                    // container, a pause after a short scan).
                    if self.in_string && !self.escape {
                        let rest = &data[position..];
                        let run = memchr::memchr3(b'"', b'\\', b'\n', rest).unwrap_or(rest.len());
                        if run > 0 {
                            self.push_slice(&rest[..run]);
                            self.offset += run as u64;
                            self.at_line_start = false;
                            position += run;
                            continue;
                        }
                    }
                }
                // Only column 0 matters in a broken value: copy the rest of the line.
                State::Bare | State::Broken if self.state == State::Bare || !self.at_line_start => {
                    let rest = &data[position..];
                    let run = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    if run > 0 {
                        self.push_slice(&rest[..run]);
                        self.offset += run as u64;
                        self.at_line_start = false;
                        position += run;
                        continue;
                    }
                }
                _ => {}
            }
            let byte = data[position];
            position += 1;
            self.step(byte, out);
        }
    }

    /// `feed` without its fast paths: the state machine byte by byte, the
    /// definition the fast paths are tested against.
    #[cfg(test)]
    fn feed_plain(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        for &byte in data {
            self.step(byte, out);
        }
    }

    /// Advance the state machine by one byte.
    fn step(&mut self, byte: u8, out: &mut Vec<Frame>) {
        self.offset += 1;
        let column_zero = self.at_line_start;
        self.at_line_start = byte == b'\n';
        match self.state {
            State::Idle => match byte {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' | 0xEF | 0xBB | 0xBF => {}
                b'{' | b'[' => self.start(byte, State::Value { depth: 1 }),
                b'"' => {
                    self.start(byte, State::Value { depth: 0 });
                    self.in_string = true;
                }
                _ => self.start(byte, State::Bare),
            },
            State::Bare => {
                if byte == b'\n' {
                    self.emit(self.offset - 1, out);
                    self.line += 1;
                } else {
                    self.push(byte);
                }
            }
            State::Broken => match byte {
                b'{' | b'[' if column_zero => {
                    self.emit(self.offset - 1, out);
                    self.start(byte, State::Value { depth: 1 });
                }
                b'}' | b']' if column_zero => {
                    self.push(byte);
                    self.emit(self.offset, out);
                }
                b'\n' => {
                    self.push(byte);
                    self.line += 1;
                }
                _ => self.push(byte),
            },
            State::Value { depth } => {
                if self.in_string {
                    self.step_in_string(byte, depth, out);
                } else if let Some(container) = self.container {
                    self.step_in_container(byte, depth, column_zero, container, out);
                } else {
                    self.step_in_value(byte, depth, column_zero, out);
                }
            }
        }
    }

    fn step_in_string(&mut self, byte: u8, depth: u32, out: &mut Vec<Frame>) {
        if self.escape {
            self.escape = false;
            self.push(byte);
        } else if byte == b'\\' {
            self.escape = true;
            self.push(byte);
        } else if byte == b'"' {
            self.in_string = false;
            self.push(byte);
            if depth == 0 {
                self.emit(self.offset, out);
            } else if self.container.is_some_and(|container| container.at.depth == depth) {
                // A string record of a container (the decoder will say it is not a record).
                self.emit_element(self.offset, out);
            }
        } else if byte == b'\n' {
            // JSON strings cannot hold a raw newline: the value is broken.
            if self.container.is_some() {
                self.emit_element(self.offset - 1, out);
                self.emit(self.offset - 1, out);
            } else if self.discard {
                self.current.clear();
                self.emit(self.offset - 1, out);
            } else {
                // Where a broken document ends can only be told by lines:
                // it runs to the next line that visibly starts a document,
                // so it stays one frame (one dead letter).
                self.state = State::Broken;
                self.in_string = false;
                self.escape = false;
                self.push(byte);
            }
            self.line += 1;
        } else {
            self.push(byte);
        }
    }

    /// A byte of a document that is not being split (or not yet).
    fn step_in_value(&mut self, byte: u8, depth: u32, column_zero: bool, out: &mut Vec<Frame>) {
        if let Some(candidate) = self.pending_container
            && candidate == depth
            && !byte.is_ascii_whitespace()
        {
            self.pending_container = None;
            if byte == b'{' && !self.discard {
                // The first element is an object: split the document.
                self.current.clear();
                self.oversized = false;
                self.nodes = 1;
                self.container = Some(Container {
                    at: ContainerAt {
                        depth,
                        doc_line: self.frame_line,
                        next_index: 0,
                    },
                    element_open: true,
                    element_scalar: false,
                    element_column_zero: column_zero,
                });
                self.state = State::Value { depth: depth + 1 };
                self.push(byte);
                return;
            }
        }
        match byte {
            b'"' => {
                self.in_string = true;
                self.push(byte);
            }
            b'{' | b'[' if column_zero => {
                // A new document starts while the last one is open: it was truncated.
                if self.discard {
                    self.current.clear();
                } else {
                    self.emit(self.offset - 1, out);
                }
                self.start(byte, State::Value { depth: 1 });
            }
            b'{' | b'[' => {
                if byte == b'['
                    && depth == 1
                    && !self.discard
                    && self.current.first() == Some(&b'{')
                    && self.at_container_key()
                {
                    self.pending_container = Some(2);
                }
                self.state = State::Value { depth: depth + 1 };
                self.push(byte);
            }
            b'}' | b']' => {
                self.push(byte);
                let depth = depth.saturating_sub(1);
                if depth == 0 {
                    if self.discard {
                        // The tail of a split document: nothing to emit.
                        self.current.clear();
                        self.state = State::Idle;
                        self.discard = false;
                    } else {
                        self.emit(self.offset, out);
                    }
                } else {
                    self.state = State::Value { depth };
                }
            }
            b'\n' => {
                self.push(byte);
                self.line += 1;
            }
            b':' | b',' => {
                self.nodes = self.nodes.saturating_add(1);
                self.push(byte);
            }
            _ => self.push(byte),
        }
    }

    /// A byte of a container document being split into records.
    fn step_in_container(
        &mut self,
        byte: u8,
        depth: u32,
        column_zero: bool,
        container: Container,
        out: &mut Vec<Frame>,
    ) {
        let element_depth = container.at.depth;
        if depth == element_depth {
            if container.element_open && container.element_scalar {
                if matches!(byte, b',' | b']') || byte.is_ascii_whitespace() {
                    self.emit_element(self.offset - 1, out);
                } else {
                    self.push(byte);
                    return;
                }
            }
            // Between records.
            match byte {
                b'\n' => self.line += 1,
                b',' => {}
                _ if byte.is_ascii_whitespace() => {}
                b']' => {
                    // The container is done; its document may go on (other keys).
                    self.container = None;
                    self.current.clear();
                    let depth = element_depth - 1;
                    if depth == 0 {
                        self.state = State::Idle;
                    } else {
                        self.state = State::Value { depth };
                        self.discard = true;
                    }
                }
                _ => {
                    self.open_element(byte, column_zero);
                    match byte {
                        b'{' | b'[' => self.state = State::Value { depth: depth + 1 },
                        b'"' => self.in_string = true,
                        _ => {
                            if let Some(open) = self.container.as_mut() {
                                open.element_scalar = true;
                            }
                        }
                    }
                }
            }
            return;
        }
        // Inside a record.
        match byte {
            b'"' => {
                self.in_string = true;
                self.push(byte);
            }
            b'{' if column_zero && container.element_column_zero => {
                // A record written one per line was cut off; the next one starts here.
                self.emit_element(self.offset - 1, out);
                self.open_element(byte, column_zero);
                self.state = State::Value {
                    depth: element_depth + 1,
                };
            }
            b'{' | b'[' if column_zero => {
                // A new document starts while a record is open: it was truncated.
                self.emit_element(self.offset - 1, out);
                self.container = None;
                self.start(byte, State::Value { depth: 1 });
            }
            b'{' | b'[' => {
                self.state = State::Value { depth: depth + 1 };
                self.push(byte);
            }
            b'}' | b']' => {
                self.push(byte);
                let depth = depth.saturating_sub(1);
                self.state = State::Value { depth };
                if depth == element_depth {
                    self.emit_element(self.offset, out);
                }
            }
            b'\n' => {
                self.push(byte);
                self.line += 1;
            }
            b':' | b',' => {
                self.nodes = self.nodes.saturating_add(1);
                self.push(byte);
            }
            _ => self.push(byte),
        }
    }

    /// Start a record of the container with `byte`.
    fn open_element(&mut self, byte: u8, column_zero: bool) {
        self.current.clear();
        self.oversized = false;
        self.nodes = 1;
        if let Some(container) = self.container.as_mut() {
            container.element_open = true;
            container.element_scalar = false;
            container.element_column_zero = column_zero;
        }
        self.push(byte);
    }

    /// End of input: whatever is open is emitted as is (the decoder will
    /// report it as truncated). A container cut off between two records
    /// has lost nothing that can be read.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        if let Some(container) = self.container {
            if container.element_open {
                self.emit_element(self.offset, out);
            }
            return;
        }
        if self.discard {
            return;
        }
        if self.state != State::Idle {
            self.emit(self.offset, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(text: &[u8]) -> Vec<(String, u64)> {
        let mut framer = Framer::new(1 << 20);
        let mut out = Vec::new();
        // Feed in small blocks to exercise values spanning blocks.
        for block in text.chunks(7) {
            framer.feed(block, &mut out);
        }
        framer.finish(&mut out);
        out.into_iter()
            .map(|frame| (String::from_utf8_lossy(&frame.bytes).into_owned(), frame.line))
            .collect()
    }

    #[test]
    fn json_lines_and_pretty_documents() {
        let text = b"{\"a\":1}\n{\"b\":[1,{\"c\":\"}\"}]}\n\n{\n  \"d\": 2\n}\n[\n {\"e\": 3}\n]\n";
        let got = frames(text);
        assert_eq!(
            got,
            vec![
                ("{\"a\":1}".to_string(), 1),
                ("{\"b\":[1,{\"c\":\"}\"}]}".to_string(), 2),
                ("{\n  \"d\": 2\n}".to_string(), 4),
                // An array of objects is a container: its records are frames.
                ("{\"e\": 3}".to_string(), 7),
            ]
        );
    }

    #[test]
    fn truncated_lines_do_not_swallow_the_next_record() {
        let text = b"{\"a\": {\"b\": 1\n{\"ok\": 1}\n{\"s\": \"unterminated\n{\"ok\": 2}\n";
        let got = frames(text);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[1], ("{\"ok\": 1}".to_string(), 2));
        assert_eq!(got[3], ("{\"ok\": 2}".to_string(), 4));
    }

    #[test]
    fn a_raw_newline_in_a_pretty_document_keeps_it_one_frame() {
        let text = b"{\n  \"message\": \"two\nlines\",\n  \"b\": {\n    \"c\": 1\n  }\n}\n{\"ok\": 1}\n";
        let got = frames(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].1, 1);
        assert!(got[0].0.ends_with("  }\n}"), "{:?}", got[0].0);
        assert_eq!(got[1], ("{\"ok\": 1}".to_string(), 8));
        // Broken JSON lines: each line starting a document is its own frame.
        let got = frames(b"{\"s\": \"cut\n  more text\n{\"ok\": 2}\n");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], ("{\"ok\": 2}".to_string(), 3));
    }

    #[test]
    fn junk_runs_to_the_end_of_its_line() {
        let text = b"\xff\xfe\x00junk\n{\"ok\": 1}\n\"a string\"\n42\n";
        let got = frames(text);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[1].0, "{\"ok\": 1}");
        assert_eq!(got[2].0, "\"a string\"");
        assert_eq!(got[3], ("42".to_string(), 4));
    }

    #[test]
    fn escaped_quotes_and_braces_in_strings() {
        let got = frames(b"{\"a\": \"x\\\"}{[\"}\n");
        assert_eq!(got, vec![("{\"a\": \"x\\\"}{[\"}".to_string(), 1)]);
    }

    #[test]
    fn oversized_frames_are_flagged_and_cut() {
        let mut framer = Framer::new(1024);
        let mut out = Vec::new();
        let mut big = b"{\"a\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        big.extend(b"\"}\n{\"ok\":1}\n");
        framer.feed(&big, &mut out);
        framer.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].oversized);
        assert!(out[0].bytes.len() <= 1024);
        assert!(!out[1].oversized);
    }

    /// Frames as (text, line, index), fed in blocks of 7 bytes.
    fn records(framer: &mut Framer, text: &[u8]) -> Vec<(String, u64, Option<u32>)> {
        let mut out = Vec::new();
        for block in text.chunks(7) {
            framer.feed(block, &mut out);
        }
        framer.finish(&mut out);
        out.into_iter()
            .map(|frame| {
                (
                    String::from_utf8_lossy(&frame.bytes).into_owned(),
                    frame.line,
                    frame.index,
                )
            })
            .collect()
    }

    fn owned(expected: &[(&str, u64, Option<u32>)]) -> Vec<(String, u64, Option<u32>)> {
        expected
            .iter()
            .map(|(text, line, index)| (text.to_string(), *line, *index))
            .collect()
    }

    #[test]
    fn records_and_traces_containers_are_split_into_records_with_their_index() {
        let text = b"{\"Records\": [{\"a\":1},\n {\"b\":[2,{\"c\":\"]}\"}]}]}\n{\"x\":1}\n{ \"traces\" :[{\"t\":1}], \"meta_data\": {\"count\": [1]}}\n";
        assert_eq!(
            records(&mut Framer::new(1 << 20), text),
            owned(&[
                ("{\"a\":1}", 1, Some(0)),
                ("{\"b\":[2,{\"c\":\"]}\"}]}", 1, Some(1)),
                ("{\"x\":1}", 3, None),
                // What follows the container in its document is dropped.
                ("{\"t\":1}", 4, Some(0)),
            ])
        );
    }

    #[test]
    fn arrays_of_objects_are_split_even_one_record_per_line() {
        let text = b"[\n{\"a\":1},\n{\"b\":2}\n]\n[\n  {\n    \"c\": 3\n  }\n]\n";
        assert_eq!(
            records(&mut Framer::new(1 << 20), text),
            owned(&[
                ("{\"a\":1}", 1, Some(0)),
                ("{\"b\":2}", 1, Some(1)),
                ("{\n    \"c\": 3\n  }", 5, Some(0)),
            ])
        );
    }

    #[test]
    fn other_arrays_and_other_objects_are_framed_whole() {
        let text =
            b"[1, 2, 3]\n[[{\"a\":1}]]\n{\"eventName\":\"X\",\"resources\":[{\"r\":1}]}\n{\"Records\":{\"a\":1}}\n[]\n";
        let got = records(&mut Framer::new(1 << 20), text);
        assert_eq!(
            got,
            owned(&[
                ("[1, 2, 3]", 1, None),
                ("[[{\"a\":1}]]", 2, None),
                ("{\"eventName\":\"X\",\"resources\":[{\"r\":1}]}", 3, None),
                ("{\"Records\":{\"a\":1}}", 4, None),
                ("[]", 5, None),
            ])
        );
    }

    #[test]
    fn a_record_cut_off_inside_a_container_loses_only_itself() {
        // The second record breaks off; the next line starts a new document.
        let text = b"{\"Records\":[{\"a\":1},{\"b\":{\"c\":\n{\"ok\":1}\n[{\"a\":1}, 7, \"s\"]\n";
        assert_eq!(
            records(&mut Framer::new(1 << 20), text),
            owned(&[
                ("{\"a\":1}", 1, Some(0)),
                ("{\"b\":{\"c\":", 1, Some(1)),
                ("{\"ok\":1}", 2, None),
                // Scalars among records are records too (the decoder refuses them).
                ("{\"a\":1}", 3, Some(0)),
                ("7", 3, Some(1)),
                ("\"s\"", 3, Some(2)),
            ])
        );
    }

    #[test]
    fn frames_count_their_members_and_items_outside_strings() {
        let mut framer = Framer::new(1 << 20);
        let mut out = Vec::new();
        framer.feed(
            b"{\"a\":1,\"b\":[1,2,3],\"t\":\"10:00:00, x\"}\n[{\"k\":1},{\"k\":2,\"l\":3}]\n",
            &mut out,
        );
        framer.finish(&mut out);
        let nodes: Vec<u32> = out.iter().map(|frame| frame.nodes).collect();
        // 3 members, 4 separators, plus one; then one record per element.
        assert_eq!(nodes, [8, 2, 4]);
    }

    #[test]
    fn the_size_limit_applies_to_each_record_of_a_container() {
        let mut text = b"{\"Records\":[{\"a\":1},{\"big\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 5000));
        text.extend(b"\"},{\"b\":2}]}\n");
        let mut framer = Framer::new(1024);
        let mut out = Vec::new();
        framer.feed(&text, &mut out);
        framer.finish(&mut out);
        let summary: Vec<(Option<u32>, bool)> = out.iter().map(|frame| (frame.index, frame.oversized)).collect();
        assert_eq!(summary, [(Some(0), false), (Some(1), true), (Some(2), false)]);
        assert_eq!(out[2].bytes, b"{\"b\":2}");
    }

    #[test]
    fn a_reader_resumes_between_two_records_of_a_container() {
        let text = b"\n{\"Records\":[\n  {\"a\":1},\n  {\"b\":2},\n  {\"c\":3}\n]}\n{\"d\":4}\n";
        let mut framer = Framer::new(1 << 20);
        let mut out = Vec::new();
        framer.feed(text, &mut out);
        framer.finish(&mut out);
        let first = &out[0];
        assert_eq!((first.line, first.index), (2, Some(0)));
        let at = first.container.expect("inside the container");
        assert_eq!(at.next_index, 1);
        // A new framer starting where the first record ended reads the rest exactly.
        let mut resumed = Framer::starting_at(1 << 20, first.end_line, first.end_offset, Some(at));
        let rest = records(&mut resumed, &text[first.end_offset as usize..]);
        assert_eq!(
            rest,
            owned(&[
                ("{\"b\":2}", 2, Some(1)),
                ("{\"c\":3}", 2, Some(2)),
                ("{\"d\":4}", 7, None)
            ])
        );
        assert_eq!(resumed.position(), (8, text.len() as u64));
        assert_eq!(resumed.container_position(), None);
        let full: Vec<(u64, Option<u32>)> = out.iter().map(|frame| (frame.line, frame.index)).collect();
        assert_eq!(full, [(2, Some(0)), (2, Some(1)), (2, Some(2)), (7, None)]);
    }

    mod fast_path_equals_the_state_machine {
        use super::*;
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        /// Strings with what matters to a framer: quotes, backslashes,
        /// brackets, separators, newlines (escaped by the writer), non-ASCII,
        /// and sometimes enough of them to cross the size limit.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                6 => "[a-zA-Z0-9 ]{0,20}",
                3 => r#"[\\"{}\[\]:, \n\ta-zé中]{0,24}"#,
                1 => "x{1000,3000}",
            ]
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i32>().prop_map(|number| json!(number)),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(
                        (prop_oneof![3 => text(), 1 => Just("Records".to_string())], inner),
                        0..6
                    )
                    .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
                ]
            })
        }

        /// A record: an object, usually with a few members.
        fn record() -> impl Strategy<Value = Value> {
            prop::collection::vec((text(), json()), 1..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>()))
        }

        /// One piece of an input file, in one of the shapes audit files come in.
        fn piece() -> impl Strategy<Value = Vec<u8>> {
            let compact = |value: &Value| serde_json::to_vec(value).unwrap_or_default();
            let pretty = |value: &Value| serde_json::to_vec_pretty(value).unwrap_or_default();
            prop_oneof![
                // JSON lines.
                4 => prop::collection::vec(record(), 1..5).prop_map(move |records| {
                    records.iter().flat_map(|record| [compact(record), b"\n".to_vec()].concat()).collect()
                }),
                // Any value, compact or pretty.
                2 => (json(), any::<bool>()).prop_map(move |(value, indent)| {
                    [if indent { pretty(&value) } else { compact(&value) }, b"\n".to_vec()].concat()
                }),
                // Containers: Records / traces documents and arrays of records,
                // compact, pretty or one record per line.
                3 => (
                    prop::collection::vec(record(), 0..5),
                    prop::sample::select(vec!["Records", "traces", ""]),
                    0..3u8
                )
                    .prop_map(move |(records, key, layout)| {
                        let list = Value::Array(records.clone());
                        let document = if key.is_empty() { list } else { json!({ key: list, "more": [1, {"a": 2}] }) };
                        match layout {
                            0 => [compact(&document), b"\n".to_vec()].concat(),
                            1 => [pretty(&document), b"\n".to_vec()].concat(),
                            _ => {
                                let lines: Vec<Vec<u8>> = records.iter().map(compact).collect();
                                let open = if key.is_empty() { "[\n".to_string() } else { format!("{{\"{key}\": [\n") };
                                let close = if key.is_empty() { "\n]\n" } else { "\n]}\n" };
                                [open.into_bytes(), lines.join(&b",\n"[..]), close.as_bytes().to_vec()].concat()
                            }
                        }
                    }),
                // Anything else.
                1 => prop::collection::vec(any::<u8>(), 0..40),
            ]
        }

        /// Damage, as files get it: a cut, or bytes that matter dropped in.
        #[derive(Clone, Debug)]
        enum Damage {
            Cut { at: usize, len: usize },
            Insert { at: usize, byte: u8 },
        }

        fn damage() -> impl Strategy<Value = Damage> {
            prop_oneof![
                (any::<usize>(), 1..200usize).prop_map(|(at, len)| Damage::Cut { at, len }),
                (any::<usize>(), prop::sample::select(b"\n\"\\{}[]:, \r\t\xef".to_vec()))
                    .prop_map(|(at, byte)| Damage::Insert { at, byte }),
            ]
        }

        fn input() -> impl Strategy<Value = Vec<u8>> {
            (
                prop::collection::vec(piece(), 1..6),
                prop::collection::vec(damage(), 0..4),
            )
                .prop_map(|(pieces, damages)| {
                    let mut bytes = pieces.concat();
                    for damage in damages {
                        if bytes.is_empty() {
                            break;
                        }
                        match damage {
                            Damage::Cut { at, len } => {
                                let at = at % bytes.len();
                                let end = (at + len).min(bytes.len());
                                bytes.drain(at..end);
                            }
                            Damage::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
                        }
                    }
                    bytes
                })
        }

        /// What a framer says after each block and at the end.
        type Run = (Vec<Frame>, Vec<((u64, u64), Option<ContainerAt>)>);

        fn run(mut framer: Framer, text: &[u8], blocks: &[usize], plain: bool) -> Run {
            let mut out = Vec::new();
            let mut positions = Vec::new();
            let mut rest = text;
            for size in blocks.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (block, tail) = rest.split_at((*size).min(rest.len()));
                if plain {
                    framer.feed_plain(block, &mut out);
                } else {
                    framer.feed(block, &mut out);
                }
                positions.push((framer.position(), framer.container_position()));
                rest = tail;
            }
            framer.finish(&mut out);
            positions.push((framer.position(), framer.container_position()));
            (out, positions)
        }

        fn blocks() -> impl Strategy<Value = Vec<usize>> {
            prop_oneof![
                Just(vec![64 << 10]),
                prop::collection::vec(1..200usize, 1..8),
                prop::collection::vec(prop_oneof![1..4usize, 60..70usize, 120..140usize], 1..8),
            ]
        }

        fn limit() -> impl Strategy<Value = usize> {
            prop::sample::select(vec![0, 1100, 2000, 1 << 20])
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn for_any_input_and_any_blocks(text in input(), blocks in blocks(), limit in limit()) {
                let fast = run(Framer::new(limit), &text, &blocks, false);
                let plain = run(Framer::new(limit), &text, &[text.len().max(1)], true);
                prop_assert_eq!(&fast.0, &plain.0);
                // Positions after each block, against the plain machine fed the same blocks.
                let plain_blocks = run(Framer::new(limit), &text, &blocks, true);
                prop_assert_eq!(&fast.1, &plain_blocks.1);
                prop_assert_eq!(&fast.0, &plain_blocks.0);
            }

            #[test]
            fn when_resuming_inside_a_container(text in input(), blocks in blocks(), limit in limit()) {
                // Resume after every frame that ends inside a container.
                let plain = run(Framer::new(limit), &text, &[text.len().max(1)], true);
                for frame in plain.0.iter().filter(|frame| frame.container.is_some()).take(3) {
                    let resume = || Framer::starting_at(limit, frame.end_line, frame.end_offset, frame.container);
                    let rest = &text[frame.end_offset as usize..];
                    let fast = run(resume(), rest, &blocks, false);
                    let plain = run(resume(), rest, &blocks, true);
                    prop_assert_eq!(fast, plain);
                }
            }

            #[test]
            fn for_any_bytes(text in prop::collection::vec(
                prop_oneof![
                    3 => prop::sample::select(b"\n\"\\{}[]:, a".to_vec()),
                    1 => any::<u8>(),
                ],
                0..600,
            ), blocks in blocks()) {
                let fast = run(Framer::new(1 << 20), &text, &blocks, false);
                let plain = run(Framer::new(1 << 20), &text, &blocks, true);
                prop_assert_eq!(fast, plain);
            }
        }
    }
}

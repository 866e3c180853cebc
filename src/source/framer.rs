//! Splitting a byte stream into JSON documents, in one linear pass.
//!
//! Audit files come as JSON lines, one pretty-printed document, a JSON array
//! over many lines, or several objects one after another. The framer tracks
//! nesting depth and string state byte by byte, and emits a frame each time
//! a top-level value closes — so every shape streams without buffering the
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

/// One top-level document and where it was found.
#[derive(Debug, PartialEq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// 1-based line where the frame starts.
    pub line: u64,
    /// Byte offset (in the decoded stream) just after the frame, and the
    /// line that offset is on: where a reader resumes.
    pub end_offset: u64,
    pub end_line: u64,
    /// The frame was longer than the limit; `bytes` holds only its start.
    pub oversized: bool,
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

/// Incremental framer; feed it blocks, then call `finish` at end of input.
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
}

/// How much of an oversized frame is kept, for the dead-letter excerpt.
const OVERSIZED_KEEP: usize = 1024;

impl Framer {
    pub fn new(max_frame_bytes: usize) -> Framer {
        Framer::starting_at(max_frame_bytes, 1, 0)
    }

    /// A framer resuming at `line` / `offset` of a stream.
    pub fn starting_at(max_frame_bytes: usize, line: u64, offset: u64) -> Framer {
        Framer {
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
        }
    }

    /// Current line (1-based) and decoded byte offset.
    pub fn position(&self) -> (u64, u64) {
        (self.line, self.offset)
    }

    fn start(&mut self, byte: u8, state: State) {
        self.state = state;
        self.frame_line = self.line;
        self.current.clear();
        self.oversized = false;
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

    /// Emit the current frame; `end` is the decoded offset just after it.
    fn emit(&mut self, end: u64, out: &mut Vec<Frame>) {
        let bytes = std::mem::take(&mut self.current);
        let keep_trailing_space = bytes
            .iter()
            .rposition(|byte| !byte.is_ascii_whitespace())
            .map_or(0, |last| last + 1);
        let mut bytes = bytes;
        bytes.truncate(keep_trailing_space);
        if !bytes.is_empty() {
            out.push(Frame {
                bytes,
                line: self.frame_line,
                end_offset: end,
                end_line: self.line,
                oversized: self.oversized,
            });
        }
        self.state = State::Idle;
        self.in_string = false;
        self.escape = false;
        self.oversized = false;
    }

    /// Append a run of bytes to the current frame (respecting the size limit).
    fn push_slice(&mut self, bytes: &[u8]) {
        let room = self.max_frame_bytes.saturating_sub(self.current.len());
        if bytes.len() <= room {
            self.current.extend_from_slice(bytes);
        } else {
            self.current.extend_from_slice(&bytes[..room]);
            if !self.oversized {
                self.current.truncate(OVERSIZED_KEEP);
            }
            self.oversized = true;
        }
    }

    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        let mut position = 0;
        while position < data.len() {
            // Fast paths: runs of string content and of bare text are copied
            // in bulk (string bytes are most of an audit record).
            match self.state {
                State::Value { .. } if self.in_string && !self.escape => {
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
                        }
                    } else if byte == b'\n' {
                        // JSON strings cannot hold a raw newline: the value is
                        // broken, and where it ends can only be told by lines.
                        self.state = State::Broken;
                        self.in_string = false;
                        self.escape = false;
                        self.push(byte);
                        self.line += 1;
                    } else {
                        self.push(byte);
                    }
                    return;
                }
                match byte {
                    b'"' => {
                        self.in_string = true;
                        self.push(byte);
                    }
                    b'{' | b'[' if column_zero => {
                        // A new document starts while the last one is open: it was truncated.
                        self.emit(self.offset - 1, out);
                        self.start(byte, State::Value { depth: 1 });
                    }
                    b'{' | b'[' => {
                        self.state = State::Value { depth: depth + 1 };
                        self.push(byte);
                    }
                    b'}' | b']' => {
                        self.push(byte);
                        let depth = depth.saturating_sub(1);
                        if depth == 0 {
                            self.emit(self.offset, out);
                        } else {
                            self.state = State::Value { depth };
                        }
                    }
                    b'\n' => {
                        self.push(byte);
                        self.line += 1;
                    }
                    _ => self.push(byte),
                }
            }
        }
    }

    /// End of input: whatever is open is emitted as is (the decoder will
    /// report it as truncated).
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
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
                ("[\n {\"e\": 3}\n]".to_string(), 7),
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
}

//! Reading files, directories and stdin into chunk batches.
//!
//! Gzip is recognised by its magic bytes (not the file name) and may be
//! multi-member. Directories are walked recursively in path order, skipping
//! digest files (`CloudTrail-Digest`, `CloudTrace-Digest`), hidden files and
//! partial downloads. A read error part-way (a truncated gzip file, say) keeps
//! every document read before it and reports the rest as one dead letter.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;

use super::framer::{ContainerAt, Frame, Framer};
use super::{Chunk, ChunkBatch, FileCheckpoint};
use crate::event::decode::DeadLetter;
use crate::event::origin::{Origin, Position};

/// Limits and batching for readers.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Largest single document (or record of a split container); bigger ones become dead letters.
    pub max_document_bytes: usize,
    /// Chunks per batch handed to the pipeline.
    pub batch_chunks: usize,
    /// Bytes of documents per batch: a batch is cut when it reaches either
    /// bound (a single larger document is a batch of its own).
    pub batch_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            max_document_bytes: 16 << 20,
            batch_chunks: 512,
            batch_bytes: 1 << 20,
        }
    }
}

/// The receiving end refused a batch (the pipeline is shutting down).
#[derive(Debug)]
pub struct Stopped;

/// Where reading a stream starts (resuming a file part-way), and where it
/// can resume after a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartAt {
    pub offset: u64,
    pub line: u64,
    /// Set when the position is between two records of a container being split.
    pub container: Option<ContainerAt>,
}

/// What reading one stream produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamSummary {
    pub chunks: u64,
    pub bytes: u64,
    /// Where the stream ended (a grown file resumes there).
    pub end: StartAt,
}

/// Builds the checkpoint of a batch from the position after it and whether
/// the stream is complete (file sources in the daemon; `None` elsewhere).
pub type MakeCheckpoint<'a> = dyn Fn(StartAt, bool) -> Option<FileCheckpoint> + 'a;

/// One open stream read batch by batch: the unit the merging reader
/// interleaves (`merge.rs`), and what `read_stream` drains.
pub struct StreamReader {
    reader: Box<dyn Read + Send>,
    source: Arc<str>,
    framer: Framer,
    /// Decoded bytes still to skip (resuming).
    skip: u64,
    /// Frames made but not yet handed out in a batch.
    frames: VecDeque<Frame>,
    scratch: Vec<Frame>,
    ingest_time: DateTime<Utc>,
    /// A read error, reported with the stream's last batch.
    read_error: Option<DeadLetter>,
    /// The reader is exhausted and the framer finished.
    exhausted: bool,
    /// The last batch was handed out.
    done: bool,
    summary: StreamSummary,
}

/// Read size.
const READ_BLOCK: usize = 64 << 10;

/// The block streams read into: one per reading thread, shared by all the
/// streams it reads (a merged read keeps hundreds open), and allocated once.
#[derive(Default)]
pub struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    /// The first `limit` bytes (at most one `READ_BLOCK`).
    fn block(&mut self, limit: usize) -> &mut [u8] {
        if self.0.len() < READ_BLOCK {
            self.0.resize(READ_BLOCK, 0);
        }
        &mut self.0[..limit.clamp(1, READ_BLOCK)]
    }
}

/// Read size while looking for a stream's first record (a record of an
/// audit log is about 1.5 KB).
const PEEK_BLOCK: usize = 4 << 10;

impl StreamReader {
    pub fn new(
        reader: Box<dyn Read + Send>,
        source: Arc<str>,
        start: StartAt,
        ingest_time: DateTime<Utc>,
        max_document_bytes: usize,
    ) -> StreamReader {
        StreamReader {
            reader,
            source,
            framer: Framer::starting_at(max_document_bytes, start.line.max(1), start.offset, start.container),
            skip: start.offset,
            frames: VecDeque::new(),
            scratch: Vec::new(),
            ingest_time,
            read_error: None,
            exhausted: false,
            done: false,
            summary: StreamSummary::default(),
        }
    }

    /// The stream's name (a path or `stdin`), as origins print it.
    pub fn source(&self) -> &Arc<str> {
        &self.source
    }

    /// True once the last batch has been handed out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn summary(&self) -> StreamSummary {
        self.summary
    }

    pub fn ingest_time(&self) -> DateTime<Utc> {
        self.ingest_time
    }

    /// Read at most `limit` bytes into frames through `buffer` (or reach the end).
    fn fill(&mut self, buffer: &mut ReadBuffer, limit: usize) {
        if self.exhausted {
            return;
        }
        let block = buffer.block(limit);
        let read = loop {
            match self.reader.read(block) {
                Ok(read) => break read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let (line, offset) = self.framer.position();
                    self.read_error = Some(DeadLetter::new(
                        Origin::new(self.source.clone(), Position::Line(line)),
                        format!("read error after {offset} decoded bytes: {error}; the rest of the stream is lost"),
                        b"",
                    ));
                    break 0;
                }
            }
        };
        if read == 0 {
            self.framer.finish(&mut self.scratch);
            self.frames.extend(self.scratch.drain(..));
            self.exhausted = true;
            return;
        }
        let mut data = &block[..read];
        // Resuming: skip what earlier runs already processed.
        if self.skip > 0 {
            let skipped = data.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            data = &data[skipped..];
            self.skip -= skipped as u64;
        }
        self.summary.bytes += data.len() as u64;
        self.framer.feed(data, &mut self.scratch);
        self.frames.extend(self.scratch.drain(..));
    }

    /// The next frame this stream will hand out, reading as needed (`None` at the end).
    /// Reads in small steps: a merged read peeks at every file's first
    /// record, and most files are closed again until their turn.
    pub fn peek_frame(&mut self, buffer: &mut ReadBuffer) -> Option<&Frame> {
        while self.frames.is_empty() && !self.exhausted {
            self.fill(buffer, PEEK_BLOCK);
        }
        self.frames.front()
    }

    /// The next batch, or `None` once the last one (which carries the
    /// completed checkpoint and any read error) was handed out.
    pub fn next_batch(
        &mut self,
        buffer: &mut ReadBuffer,
        options: &ReadOptions,
        make_checkpoint: &MakeCheckpoint<'_>,
    ) -> Option<ChunkBatch> {
        if self.done {
            return None;
        }
        let mut batch = ChunkBatch {
            ingest_time: self.ingest_time,
            ..ChunkBatch::default()
        };
        let mut bytes = 0usize;
        loop {
            while let Some(frame) = self.frames.pop_front() {
                let end = StartAt {
                    offset: frame.end_offset,
                    line: frame.end_line,
                    container: frame.container,
                };
                bytes += frame.bytes.len();
                batch.chunks.push(chunk_of(&self.source, frame));
                self.summary.chunks += 1;
                if batch.chunks.len() >= options.batch_chunks || bytes >= options.batch_bytes {
                    batch.checkpoints.extend(make_checkpoint(end, false));
                    return Some(batch);
                }
            }
            if self.exhausted {
                break;
            }
            self.fill(buffer, READ_BLOCK);
        }
        let (line, offset) = self.framer.position();
        let end = StartAt {
            offset,
            line,
            container: self.framer.container_position(),
        };
        self.summary.end = end;
        batch.source_errors.extend(self.read_error.take());
        batch.checkpoints.extend(make_checkpoint(end, true));
        self.done = true;
        Some(batch)
    }
}

fn chunk_of(source: &Arc<str>, frame: Frame) -> Chunk {
    let mut origin = Origin::new(source.clone(), Position::Line(frame.line));
    origin.index = frame.index;
    Chunk {
        bytes: frame.bytes,
        origin,
        oversized: frame.oversized,
        nodes: Some(frame.nodes),
        ingest_time: None,
    }
}

/// Read a stream to its end, handing batches to `send`.
///
/// `make_checkpoint(position, completed)` lets file sources attach their
/// progress to each batch. Read errors end the stream with a dead letter in
/// the last batch; the documents before the error are kept.
pub fn read_stream(
    reader: impl Read + Send + 'static,
    source: &Arc<str>,
    start: StartAt,
    ingest_time: DateTime<Utc>,
    options: &ReadOptions,
    make_checkpoint: &MakeCheckpoint<'_>,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<StreamSummary, Stopped> {
    let mut stream = StreamReader::new(
        Box::new(reader),
        source.clone(),
        start,
        ingest_time,
        options.max_document_bytes,
    );
    let mut buffer = ReadBuffer::default();
    while let Some(batch) = stream.next_batch(&mut buffer, options, make_checkpoint) {
        send(batch)?;
    }
    Ok(stream.summary())
}

/// Open a file, transparently decompressing gzip (by magic bytes).
pub fn open_decoded(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let mut filled = 0;
    while filled < 2 {
        match file.read(&mut magic[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    let head = io::Cursor::new(magic[..filled].to_vec());
    let chained = head.chain(file);
    if filled == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(chained)))
    } else {
        Ok(Box::new(chained))
    }
}

/// File size and modification time in ms since the epoch.
pub fn file_identity(path: &Path) -> io::Result<(u64, i64, DateTime<Utc>)> {
    let metadata = std::fs::metadata(path)?;
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let time: DateTime<Utc> = modified.into();
    Ok((metadata.len(), time.timestamp_millis(), time))
}

/// A file opened for reading from `start`: its stream and its checkpoint maker.
pub struct OpenFile {
    pub stream: StreamReader,
    /// Size and modification time when opened: the file's identity in checkpoints.
    pub size: u64,
    pub mtime_ms: i64,
}

impl OpenFile {
    pub fn open(path: &Path, start: StartAt, options: &ReadOptions) -> Result<OpenFile, String> {
        let (size, mtime_ms, modified) = file_identity(path).map_err(|error| format!("{}: {error}", path.display()))?;
        let reader = open_decoded(path).map_err(|error| format!("{}: {error}", path.display()))?;
        let name: Arc<str> = Arc::from(path.display().to_string());
        Ok(OpenFile {
            stream: StreamReader::new(reader, name, start, modified, options.max_document_bytes),
            size,
            mtime_ms,
        })
    }

    /// The checkpoint of this file at `end`.
    pub fn checkpoint(&self, end: StartAt, completed: bool) -> FileCheckpoint {
        FileCheckpoint {
            path: self.stream.source().to_string(),
            size: self.size,
            mtime_ms: self.mtime_ms,
            offset: end.offset,
            line: end.line,
            container: end.container,
            completed,
        }
    }

    /// The next batch, with checkpoints when `with_checkpoints`.
    pub fn next_batch(
        &mut self,
        buffer: &mut ReadBuffer,
        options: &ReadOptions,
        with_checkpoints: bool,
    ) -> Option<ChunkBatch> {
        let (path, size, mtime_ms) = (self.stream.source().clone(), self.size, self.mtime_ms);
        let make_checkpoint = |end: StartAt, completed: bool| {
            with_checkpoints.then(|| FileCheckpoint {
                path: path.to_string(),
                size,
                mtime_ms,
                offset: end.offset,
                line: end.line,
                container: end.container,
                completed,
            })
        };
        self.stream.next_batch(buffer, options, &make_checkpoint)
    }
}

/// Read one file from `start`, with checkpoints when `with_checkpoints` is set.
pub fn read_file(
    path: &Path,
    start: StartAt,
    options: &ReadOptions,
    with_checkpoints: bool,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<Result<StreamSummary, String>, Stopped> {
    let mut file = match OpenFile::open(path, start, options) {
        Ok(file) => file,
        Err(error) => return Ok(Err(error)),
    };
    let mut buffer = ReadBuffer::default();
    while let Some(batch) = file.next_batch(&mut buffer, options, with_checkpoints) {
        send(batch)?;
    }
    Ok(Ok(file.stream.summary()))
}

/// Stdin as a stream, transparently decompressing gzip (by magic bytes).
pub fn open_stdin() -> Box<dyn Read + Send> {
    let mut reader = BufReader::new(io::stdin());
    let is_gzip = matches!(io::BufRead::fill_buf(&mut reader), Ok([0x1f, 0x8b, ..]));
    if is_gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    }
}

/// Read stdin to its end. Records without a time get the time reading started.
pub fn read_stdin(
    options: &ReadOptions,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<StreamSummary, Stopped> {
    let name: Arc<str> = Arc::from("stdin");
    read_stream(
        open_stdin(),
        &name,
        StartAt::default(),
        Utc::now(),
        options,
        &|_, _| None,
        send,
    )
}

/// Whether a file in a watched or replayed directory holds audit data.
pub fn is_data_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.contains("Digest") {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    for partial in [".tmp", ".part", ".partial", ".crdownload", ".swp", "~"] {
        if lower.ends_with(partial) {
            return false;
        }
    }
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    match Path::new(base).extension().and_then(|ext| ext.to_str()) {
        None => true,
        Some(ext) => matches!(ext, "json" | "jsonl" | "ndjson" | "log" | "txt"),
    }
}

/// Every data file under `path` (or `path` itself when it is a file), sorted.
pub fn list_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    walk_files(path, &is_data_file)
}

/// Files under `dir` (recursively, hidden entries skipped) that `accept`
/// takes, sorted by path.
pub fn walk_files(dir: &Path, accept: &dyn Fn(&Path) -> bool) -> io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, accept: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let hidden = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.'));
            if hidden {
                continue;
            }
            if entry.file_type()?.is_dir() {
                walk(&path, accept, out)?;
            } else if accept(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, accept, &mut out)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(text: &'static [u8], start: StartAt) -> (Vec<ChunkBatch>, StreamSummary) {
        let mut batches = Vec::new();
        let options = ReadOptions {
            batch_chunks: 2,
            ..ReadOptions::default()
        };
        let summary = read_stream(
            text,
            &Arc::from("mem"),
            start,
            Utc::now(),
            &options,
            &|end: StartAt, completed| {
                Some(FileCheckpoint {
                    path: "mem".into(),
                    size: 0,
                    mtime_ms: 0,
                    offset: end.offset,
                    line: end.line,
                    container: end.container,
                    completed,
                })
            },
            &mut |batch| {
                batches.push(batch);
                Ok(())
            },
        )
        .unwrap();
        (batches, summary)
    }

    #[test]
    fn batches_carry_checkpoints_that_resume_exactly() {
        let text = b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n";
        let (batches, _) = collect(text, StartAt::default());
        let first = batches[0].checkpoints[0].clone();
        assert_eq!(batches[0].chunks.len(), 2);
        assert!(!first.completed);
        // Resume from the first checkpoint: only the third record remains.
        let (resumed, _) = collect(
            text,
            StartAt {
                offset: first.offset,
                line: first.line,
                container: first.container,
            },
        );
        let chunks: Vec<&Chunk> = resumed.iter().flat_map(|batch| &batch.chunks).collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].bytes, b"{\"n\":3}");
        assert_eq!(chunks[0].origin.line(), Some(3));
        assert!(resumed.last().unwrap().checkpoints[0].completed);
    }

    #[test]
    fn a_records_document_is_read_record_by_record_and_resumes_inside_its_container() {
        let records: Vec<String> = (0..5).map(|n| format!("{{\"eventName\":\"E{n}\"}}")).collect();
        let text: &'static [u8] = format!("{{\"Records\":[{}]}}\n", records.join(",")).leak().as_bytes();
        let (batches, summary) = collect(text, StartAt::default());
        // Two records per batch: the document never travels whole.
        let sizes: Vec<usize> = batches.iter().map(|batch| batch.chunks.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(batches[1].chunks[1].origin.to_string(), "mem:1[3]");
        assert_eq!(summary.chunks, 5);
        let first = batches[0].checkpoints[0].clone();
        assert_eq!(first.container.map(|at| at.next_index), Some(2));
        // A restart from the first batch's checkpoint reads records 2, 3 and 4 only.
        let (resumed, _) = collect(
            text,
            StartAt {
                offset: first.offset,
                line: first.line,
                container: first.container,
            },
        );
        let origins: Vec<String> = resumed
            .iter()
            .flat_map(|batch| &batch.chunks)
            .map(|chunk| format!("{} {}", chunk.origin, String::from_utf8_lossy(&chunk.bytes)))
            .collect();
        assert_eq!(
            origins,
            [
                "mem:1[2] {\"eventName\":\"E2\"}",
                "mem:1[3] {\"eventName\":\"E3\"}",
                "mem:1[4] {\"eventName\":\"E4\"}"
            ]
        );
        let last = resumed.last().unwrap().checkpoints[0].clone();
        assert!(last.completed);
        assert_eq!(last.container, None, "the document ended");
    }

    #[test]
    fn batches_are_cut_by_bytes_too() {
        let text: &'static [u8] = "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"
            .repeat(10)
            .leak()
            .as_bytes();
        let mut batches = Vec::new();
        let options = ReadOptions {
            batch_chunks: 100,
            batch_bytes: 100,
            ..ReadOptions::default()
        };
        read_stream(
            text,
            &Arc::from("mem"),
            StartAt::default(),
            Utc::now(),
            &options,
            &|_, _| None,
            &mut |batch| {
                batches.push(batch);
                Ok(())
            },
        )
        .unwrap();
        let sizes: Vec<usize> = batches.iter().map(|batch| batch.chunks.len()).collect();
        // 40-byte documents: a batch closes once it holds 100 bytes or more.
        assert_eq!(sizes, [3, 3, 3, 1]);
    }

    #[test]
    fn truncated_gzip_keeps_what_came_before() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for n in 0..200 {
            writeln!(encoder, "{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(50)).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        let cut = &compressed[..compressed.len() / 2];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.json.gz");
        std::fs::write(&path, cut).unwrap();
        let mut batches = Vec::new();
        let result = read_file(
            &path,
            StartAt::default(),
            &ReadOptions::default(),
            false,
            &mut |batch| {
                batches.push(batch);
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        let chunks = batches.iter().map(|batch| batch.chunks.len()).sum::<usize>();
        let errors: Vec<_> = batches.iter().flat_map(|batch| &batch.source_errors).collect();
        assert!(chunks > 10, "kept {chunks} chunks");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].reason.contains("read error"), "{}", errors[0].reason);
        assert!(result.chunks as usize == chunks);
    }

    #[test]
    fn data_files_are_recognised_by_name() {
        assert!(is_data_file(Path::new("a/CloudTrail_us-east-1_x.json.gz")));
        assert!(is_data_file(Path::new("trace")));
        assert!(!is_data_file(Path::new("x_CloudTrail-Digest_y.json.gz")));
        assert!(!is_data_file(Path::new(".hidden.json")));
        assert!(!is_data_file(Path::new("upload.json.part")));
        assert!(!is_data_file(Path::new("README.md")));
    }
}

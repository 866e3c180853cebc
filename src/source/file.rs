//! Reading files, directories and stdin into chunk batches.
//!
//! Gzip is recognised by its magic bytes (not the file name) and may be
//! multi-member. Directories are walked recursively in path order, skipping
//! digest files (`CloudTrail-Digest`, `CloudTrace-Digest`), hidden files and
//! partial downloads. A read error part-way (a truncated gzip file, say) keeps
//! every document read before it and reports the rest as one dead letter.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;

use super::framer::{Frame, Framer};
use super::{Chunk, ChunkBatch, FileCheckpoint};
use crate::event::decode::DeadLetter;
use crate::event::origin::{Origin, Position};

/// Limits and batching for readers.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Largest single document; bigger ones become dead letters.
    pub max_document_bytes: usize,
    /// Chunks per batch handed to the pipeline.
    pub batch_chunks: usize,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            max_document_bytes: 256 << 20,
            batch_chunks: 512,
        }
    }
}

/// The receiving end refused a batch (the pipeline is shutting down).
#[derive(Debug)]
pub struct Stopped;

/// Where reading a stream starts (resuming a file part-way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartAt {
    pub offset: u64,
    pub line: u64,
}

/// What reading one stream produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamSummary {
    pub chunks: u64,
    pub bytes: u64,
    pub end_offset: u64,
    pub end_line: u64,
}

/// Read a stream to its end, handing batches to `send`.
///
/// `make_checkpoint(offset, line, completed)` lets file sources attach their
/// progress to each batch. Read errors end the stream with a dead letter in
/// the last batch; the documents before the error are kept.
pub fn read_stream(
    reader: impl Read,
    source: &Arc<str>,
    start: StartAt,
    ingest_time: DateTime<Utc>,
    options: &ReadOptions,
    make_checkpoint: &dyn Fn(u64, u64, bool) -> Option<FileCheckpoint>,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<StreamSummary, Stopped> {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let mut framer = Framer::starting_at(options.max_document_bytes, start.line.max(1), start.offset);
    let mut frames: Vec<Frame> = Vec::new();
    let mut batch = ChunkBatch {
        ingest_time,
        ..ChunkBatch::default()
    };
    let mut summary = StreamSummary::default();
    let mut skip = start.offset;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let (line, offset) = framer.position();
                batch.source_errors.push(DeadLetter::new(
                    Origin::new(source.clone(), Position::Line(line)),
                    format!("read error after {offset} decoded bytes: {error}; the rest of the stream is lost"),
                    b"",
                ));
                break;
            }
        };
        let mut data = &buffer[..read];
        // Resuming: skip what earlier runs already processed.
        if skip > 0 {
            let skipped = data.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
            data = &data[skipped..];
            skip -= skipped as u64;
        }
        summary.bytes += data.len() as u64;
        framer.feed(data, &mut frames);
        for frame in frames.drain(..) {
            let last_end = (frame.end_offset, frame.end_line);
            push_frame(&mut batch, source, frame);
            summary.chunks += 1;
            if batch.chunks.len() >= options.batch_chunks {
                batch.checkpoint = make_checkpoint(last_end.0, last_end.1, false);
                send(std::mem::replace(
                    &mut batch,
                    ChunkBatch {
                        ingest_time,
                        ..ChunkBatch::default()
                    },
                ))?;
            }
        }
    }
    framer.finish(&mut frames);
    for frame in frames.drain(..) {
        push_frame(&mut batch, source, frame);
        summary.chunks += 1;
    }
    let (end_line, end_offset) = framer.position();
    summary.end_offset = end_offset;
    summary.end_line = end_line;
    batch.checkpoint = make_checkpoint(end_offset, end_line, true);
    send(batch)?;
    Ok(summary)
}

fn push_frame(batch: &mut ChunkBatch, source: &Arc<str>, frame: Frame) {
    batch.chunks.push(Chunk {
        bytes: frame.bytes,
        origin: Origin::new(source.clone(), Position::Line(frame.line)),
        oversized: frame.oversized,
    });
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

/// Read one file from `start`, with checkpoints when `checkpoint` is set.
pub fn read_file(
    path: &Path,
    start: StartAt,
    options: &ReadOptions,
    with_checkpoints: bool,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<Result<StreamSummary, String>, Stopped> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let (size, mtime_ms, modified) = match file_identity(path) {
        Ok(identity) => identity,
        Err(error) => return Ok(Err(format!("{}: {error}", path.display()))),
    };
    let reader = match open_decoded(path) {
        Ok(reader) => reader,
        Err(error) => return Ok(Err(format!("{}: {error}", path.display()))),
    };
    let path_text = path.display().to_string();
    let make_checkpoint = move |offset: u64, line: u64, completed: bool| {
        with_checkpoints.then(|| FileCheckpoint {
            path: path_text.clone(),
            size,
            mtime_ms,
            offset,
            line,
            completed,
        })
    };
    read_stream(reader, &name, start, modified, options, &make_checkpoint, send).map(Ok)
}

/// Read stdin to its end. Records without a time get the time reading started.
pub fn read_stdin(
    options: &ReadOptions,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<StreamSummary, Stopped> {
    let name: Arc<str> = Arc::from("stdin");
    let stdin = io::stdin().lock();
    // Peek for gzip on stdin too.
    let mut reader = BufReader::new(stdin);
    let is_gzip = matches!(io::BufRead::fill_buf(&mut reader), Ok([0x1f, 0x8b, ..]));
    let boxed: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    read_stream(
        boxed,
        &name,
        StartAt::default(),
        Utc::now(),
        options,
        &|_, _, _| None,
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

    fn collect(text: &[u8], start: StartAt) -> (Vec<ChunkBatch>, StreamSummary) {
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
            &|offset, line, completed| {
                Some(FileCheckpoint {
                    path: "mem".into(),
                    size: 0,
                    mtime_ms: 0,
                    offset,
                    line,
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
        let first = batches[0].checkpoint.clone().unwrap();
        assert_eq!(batches[0].chunks.len(), 2);
        assert!(!first.completed);
        // Resume from the first checkpoint: only the third record remains.
        let (resumed, _) = collect(
            text,
            StartAt {
                offset: first.offset,
                line: first.line,
            },
        );
        let chunks: Vec<&Chunk> = resumed.iter().flat_map(|batch| &batch.chunks).collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].bytes, b"{\"n\":3}");
        assert_eq!(chunks[0].origin.line(), Some(3));
        assert!(resumed.last().unwrap().checkpoint.as_ref().unwrap().completed);
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

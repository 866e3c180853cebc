//! Reading many files as one stream in event-time order.
//!
//! The clouds deliver audit logs region first (`…/CloudTrail/ap-northeast-1/2026/02/15/`
//! sorts before `…/us-east-1/2026/01/01/`), one file per account, region
//! and few minutes, so path order is not time order; read in path order, an
//! idle key's reuse in one region is evaluated before its last use in
//! another, and a replay disagrees with the live run. File names carry a
//! time, but it is the delivery time, after the records (it bounds them from
//! above, which says nothing about where a file must start). So every file
//! is opened once to read its first record's time, and then the files are
//! merged like the runs of a sort: the next batch always comes from the
//! stream that is furthest behind in event time (a file's progress is the
//! time of the last record it handed out), and a file is opened only when
//! the merge reaches its first record. Each batch tells the pipeline the
//! merge's floor — the oldest point any unfinished stream has reached — and
//! the reorder buffer holds events until the floor passes them
//! (`reorder.rs`), so events of a file read early wait for the files that
//! cover the same minutes. Records out of order inside one file are the
//! reorder buffer's allowed lateness to absorb, as in a live stream.
//!
//! Memory stays bounded: at most `max_open_files` streams are open, each
//! holding one read block and its decoder; batches are small so that no
//! stream runs far ahead of the others. With more overlapping files than
//! that, the merge reads the open ones to their end before opening more, and
//! events of the files left waiting may be late (counted as such).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{FixedOffset, Utc};

use super::file::{OpenFile, ReadBuffer, ReadOptions, StartAt, Stopped, StreamReader, StreamSummary, open_stdin};
use super::{Chunk, ChunkBatch};
use crate::event::decode::Decoded;
use crate::event::normalize::NormalizeContext;
use crate::event::window::{TimeBounds, TimeWindow};

/// Settings of a merged read.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    pub read: ReadOptions,
    /// Most streams open at once (`source.files.max_open_files`).
    pub max_open_files: usize,
    /// What the peeks at records' times need to normalize them as the pipeline will.
    pub naive_time_offset: FixedOffset,
    pub time_window: TimeWindow,
    /// Attach file checkpoints to batches (the daemon).
    pub with_checkpoints: bool,
    /// Most records per batch of one stream (`STREAM_BATCH_RECORDS`).
    pub batch_records: usize,
}

/// Records per batch of one stream: small, so that no stream runs far ahead
/// of the others in event time — what it reads beyond the floor waits in
/// the reorder buffer, and in the daemon an event still waiting when its
/// transaction commits is written to the store so that a restart resumes it
/// (measured on 4 322 hourly files: 54 000 of 200 000 events written at 128
/// records per batch, 33 000 at 32); large enough that the peek at each
/// batch's last record costs about 3 % of normalizing, on the reading
/// thread. The same for `replay` and the daemon, so both interleave files
/// alike (which matters only for records out of order by more than the
/// allowed lateness). Batches sent down the pipeline gather several of these.
pub const STREAM_BATCH_RECORDS: usize = 32;

/// One input of a merged read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    File { path: PathBuf, start: StartAt },
    Stdin,
}

/// How an input ended.
#[derive(Debug)]
pub struct Finished {
    /// Position of the input in the list given to `read_merged`.
    pub input: usize,
    /// What was read, with the file's size and modification time (ms) when opened;
    /// or why it could not be read.
    pub result: Result<(StreamSummary, u64, i64), String>,
}

enum Opened {
    File(OpenFile),
    Stdin(StreamReader),
}

impl Opened {
    fn stream(&mut self) -> &mut StreamReader {
        match self {
            Opened::File(file) => &mut file.stream,
            Opened::Stdin(stream) => stream,
        }
    }

    fn identity(&self) -> (u64, i64) {
        match self {
            Opened::File(file) => (file.size, file.mtime_ms),
            Opened::Stdin(_) => (0, 0),
        }
    }

    fn next_batch(
        &mut self,
        buffer: &mut ReadBuffer,
        options: &ReadOptions,
        with_checkpoints: bool,
    ) -> Option<ChunkBatch> {
        match self {
            Opened::File(file) => file.next_batch(buffer, options, with_checkpoints),
            Opened::Stdin(stream) => stream.next_batch(buffer, options, &|_, _| None),
        }
    }
}

/// Reads the event time of records, as the pipeline will normalize them.
struct TimePeek {
    decoded: Decoded,
    naive_time_offset: FixedOffset,
    bounds: TimeBounds,
}

impl TimePeek {
    /// The newest believable event time in `chunk`, if it holds any event.
    fn newest(&mut self, chunk: &Chunk, ingest_time: chrono::DateTime<Utc>) -> Option<i64> {
        let mut context = NormalizeContext::new(ingest_time);
        context.naive_time_offset = self.naive_time_offset;
        let mut newest: Option<i64> = None;
        super::normalize_chunk(
            chunk,
            &context,
            &self.bounds,
            &mut self.decoded,
            &mut |event| {
                let time = event.time.timestamp_millis();
                newest = Some(newest.map_or(time, |newest| newest.max(time)));
                true
            },
            &mut |_| {},
        );
        newest
    }
}

/// What peeking at a file gives: its first record's time (`i64::MIN` when
/// it has none), and the file itself when it may stay open.
type Peeked = Result<(i64, Option<OpenFile>), String>;

/// Open every file of `inputs` and read its first record's time, on a few
/// threads (opening thousands of small gzip files costs tens of
/// microseconds each, and nothing else runs before the order is known).
/// At most `room` files stay open; results come in input order.
fn peek_files(inputs: &[Input], read: &ReadOptions, room: usize, options: &MergeOptions) -> Vec<(usize, Peeked)> {
    let files: Vec<(usize, &PathBuf, StartAt)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(index, input)| match input {
            Input::File { path, start } => Some((index, path, *start)),
            Input::Stdin => None,
        })
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, PEEK_THREADS)
        .min(files.len().div_ceil(PEEK_FILES_PER_THREAD).max(1));
    let per_worker = files.len().div_ceil(workers).max(1);
    let peek_some = |part: &[(usize, &PathBuf, StartAt)], room: usize| -> Vec<(usize, Peeked)> {
        let mut peek = TimePeek {
            decoded: Decoded::default(),
            naive_time_offset: options.naive_time_offset,
            bounds: options.time_window.bounds(Utc::now()),
        };
        let mut buffer = ReadBuffer::default();
        let mut kept = 0usize;
        part.iter()
            .map(|(index, path, start)| {
                let peeked = OpenFile::open(path, *start, read).map(|mut file| {
                    let ingest_time = file.stream.ingest_time();
                    // A file whose first record has no readable time goes
                    // first: its first batch says where it stands.
                    let first = file
                        .stream
                        .peek_frame(&mut buffer)
                        .map(|frame| Chunk {
                            bytes: frame.bytes.clone(),
                            origin: Default::default(),
                            oversized: frame.oversized,
                            nodes: Some(frame.nodes),
                            ingest_time: None,
                        })
                        .and_then(|chunk| peek.newest(&chunk, ingest_time))
                        .unwrap_or(i64::MIN);
                    // Keep it open while there is room (no second open to pay).
                    let keep = kept < room;
                    kept += usize::from(keep);
                    (first, keep.then_some(file))
                });
                (*index, peeked)
            })
            .collect()
    };
    if workers <= 1 {
        return peek_some(&files, room);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(per_worker)
            .map(|part| scope.spawn(move || peek_some(part, room / workers)))
            .collect();
        handles
            .into_iter()
            .zip(files.chunks(per_worker))
            .flat_map(|(handle, part)| {
                // A worker that panicked (it cannot on data, but still) has its
                // files reported instead of losing them silently.
                handle.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|(index, path, _)| (*index, Err(format!("{}: could not be opened", path.display()))))
                        .collect()
                })
            })
            .collect()
    })
}

/// Threads that peek at files' first records, at most.
const PEEK_THREADS: usize = 4;

/// Below this many files per thread, one thread peeks them all.
const PEEK_FILES_PER_THREAD: usize = 64;

/// Read `inputs` merged in event-time order (see the module header), handing
/// batches to `send` and each input's end to `on_finished`.
pub fn read_merged(
    inputs: &[Input],
    options: &MergeOptions,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
    on_finished: &mut dyn FnMut(Finished),
) -> Result<(), Stopped> {
    let read = ReadOptions {
        batch_chunks: options.read.batch_chunks.min(options.batch_records).max(1),
        ..options.read
    };
    let max_open = options.max_open_files.max(1);
    // Streams are read one at a time: one read block serves them all.
    let mut buffer = ReadBuffer::default();
    let mut peek = TimePeek {
        decoded: Decoded::default(),
        naive_time_offset: options.naive_time_offset,
        bounds: options.time_window.bounds(Utc::now()),
    };
    // Streams by (event time reached, input position): open ones, and the
    // ones waiting to be opened (by their first record's time).
    let started = std::time::Instant::now();
    let mut open: Vec<Option<Opened>> = (0..inputs.len()).map(|_| None).collect();
    let mut starts: Vec<(i64, usize)> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        // Stdin cannot be read twice: it is open from the start, first in line.
        if matches!(input, Input::Stdin) {
            let stream = StreamReader::new(
                open_stdin(),
                Arc::from("stdin"),
                StartAt::default(),
                Utc::now(),
                read.max_document_bytes,
            );
            open[index] = Some(Opened::Stdin(stream));
            starts.push((i64::MIN, index));
        }
    }
    let room = max_open.saturating_sub(starts.len());
    for (index, peeked) in peek_files(inputs, &read, room, options) {
        match peeked {
            Ok((first, file)) => {
                open[index] = file.map(Opened::File);
                starts.push((first, index));
            }
            Err(error) => on_finished(Finished {
                input: index,
                result: Err(error),
            }),
        }
    }
    tracing::debug!(
        files = inputs.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "merged read: first records peeked"
    );
    // The streams that start first are the ones open; a file kept open by
    // the peek that starts later is closed again (it was not read yet).
    starts.sort_unstable();
    let mut active: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut waiting: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for (rank, (first, index)) in starts.into_iter().enumerate() {
        if rank >= max_open && matches!(open[index], Some(Opened::File(_))) {
            open[index] = None;
        }
        if open[index].is_some() {
            active.push(Reverse((first, index)));
        } else {
            waiting.push(Reverse((first, index)));
        }
    }
    // The floor holds from the first batch on: before it, the pipeline may
    // have released events up to an earlier read's end.
    let floor = |active: &BinaryHeap<Reverse<(i64, usize)>>, waiting: &BinaryHeap<Reverse<(i64, usize)>>| {
        [active.peek(), waiting.peek()]
            .into_iter()
            .flatten()
            .map(|Reverse((time, _))| *time)
            .min()
            .unwrap_or(i64::MAX)
    };
    send(ChunkBatch {
        floors: vec![(0, floor(&active, &waiting))],
        ..ChunkBatch::default()
    })?;
    // Streams' batches are small (see `REPLAY_BATCH_RECORDS`); what goes
    // down the pipeline gathers several of them, so its stages hand over
    // full batches (small ones doubled the context switches between them).
    let mut outgoing = Outgoing::default();
    loop {
        let next_active = active.peek().map(|Reverse(key)| *key);
        let next_waiting = waiting.peek().map(|Reverse(key)| *key);
        // Open the next waiting file once the merge has reached its first record.
        if let Some((first, index)) = next_waiting
            && active.len() < max_open
            && next_active.is_none_or(|reached| (first, index) < reached)
        {
            waiting.pop();
            if let Input::File { path, start } = &inputs[index] {
                match OpenFile::open(path, *start, &read) {
                    Ok(file) => {
                        open[index] = Some(Opened::File(file));
                        active.push(Reverse((first, index)));
                    }
                    Err(error) => on_finished(Finished {
                        input: index,
                        result: Err(error),
                    }),
                }
            }
            continue;
        }
        let Some(Reverse((reached, index))) = active.pop() else {
            break;
        };
        let Some(stream) = open[index].as_mut() else {
            continue;
        };
        let Some(batch) = stream.next_batch(&mut buffer, &read, options.with_checkpoints) else {
            continue;
        };
        // Where the stream now stands: the time of the last record it handed
        // out. Not needed once it is done, nor when it is the only stream
        // left (then the floor is lifted), which spares a replay of one
        // file the peek altogether.
        let alone = active.is_empty() && waiting.is_empty();
        let mut reached = reached;
        if !stream.stream().is_done()
            && !alone
            && let Some(last) = batch.chunks.last()
            && let Some(newest) = peek.newest(last, batch.ingest_time)
        {
            reached = reached.max(newest);
        }
        if stream.stream().is_done() {
            let summary = stream.stream().summary();
            let (size, mtime_ms) = stream.identity();
            open[index] = None;
            on_finished(Finished {
                input: index,
                result: Ok((summary, size, mtime_ms)),
            });
        } else {
            active.push(Reverse((reached, index)));
        }
        // No stream will hand out anything older than where the slowest
        // one stands (give or take the lateness inside a file). A stream
        // read alone needs no floor: its own order is the order.
        let floor = if alone { i64::MAX } else { floor(&active, &waiting) };
        if outgoing.add(batch, floor, &options.read) {
            send(outgoing.take())?;
        }
    }
    if !outgoing.is_empty() {
        send(outgoing.take())?;
    }
    Ok(())
}

/// Batches of several streams gathered into one.
#[derive(Default)]
struct Outgoing {
    batch: Option<ChunkBatch>,
    bytes: usize,
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.batch.is_none()
    }

    /// Add a stream's batch, after which the merge's floor is `floor`;
    /// true when the gathered batch is full.
    fn add(&mut self, mut batch: ChunkBatch, floor: i64, options: &ReadOptions) -> bool {
        // Each chunk keeps its own file's last-resort time.
        for chunk in &mut batch.chunks {
            chunk.ingest_time = Some(batch.ingest_time);
            self.bytes += chunk.bytes.len();
        }
        let gathered = self.batch.get_or_insert_with(ChunkBatch::default);
        gathered.chunks.append(&mut batch.chunks);
        gathered.checkpoints.append(&mut batch.checkpoints);
        gathered.source_errors.append(&mut batch.source_errors);
        // The floor holds once this part is in, not before.
        gathered
            .floors
            .push((u32::try_from(gathered.chunks.len()).unwrap_or(u32::MAX), floor));
        self.batch
            .as_ref()
            .is_some_and(|gathered| gathered.chunks.len() >= options.batch_chunks)
            || self.bytes >= options.batch_bytes
    }

    fn take(&mut self) -> ChunkBatch {
        self.bytes = 0;
        self.batch.take().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(id: &str, time: &str) -> String {
        format!(
            r#"{{"eventVersion":"1.08","eventID":"{id}","eventTime":"{time}","eventName":"ListUsers","eventSource":"iam.amazonaws.com","awsRegion":"us-east-1","userIdentity":{{"type":"IAMUser","accessKeyId":"AKIAEXAMPLE"}}}}"#
        )
    }

    fn options(max_open_files: usize) -> MergeOptions {
        MergeOptions {
            read: ReadOptions {
                batch_chunks: 2,
                ..ReadOptions::default()
            },
            max_open_files,
            naive_time_offset: FixedOffset::east_opt(8 * 3600).unwrap(),
            time_window: TimeWindow::default(),
            with_checkpoints: true,
            batch_records: STREAM_BATCH_RECORDS,
        }
    }

    /// Event ids in the order batches were sent, and the floors sent.
    fn merged(inputs: &[Input], options: &MergeOptions) -> (Vec<String>, Vec<i64>, usize) {
        let mut ids = Vec::new();
        let mut floors = Vec::new();
        let mut finished = 0;
        read_merged(
            inputs,
            options,
            &mut |batch| {
                for chunk in &batch.chunks {
                    let text = String::from_utf8_lossy(&chunk.bytes);
                    let id = text.split("\"eventID\":\"").nth(1).unwrap().split('"').next().unwrap();
                    ids.push(id.to_string());
                }
                floors.extend(batch.floors.iter().map(|(_, floor)| *floor));
                Ok(())
            },
            &mut |done| {
                assert!(done.result.is_ok());
                finished += 1;
            },
        )
        .unwrap();
        (ids, floors, finished)
    }

    #[test]
    fn files_are_merged_by_event_time_not_by_path() {
        let dir = tempfile::tempdir().unwrap();
        // Region first: "ap-…" sorts before "us-…", but us-east-1 starts earlier.
        let later = dir.path().join("ap-northeast-1.json");
        let earlier = dir.path().join("us-east-1.json.gz");
        let records = |ids: &[(&str, &str)]| -> String {
            let list: Vec<String> = ids.iter().map(|(id, time)| record(id, time)).collect();
            format!("{{\"Records\":[{}]}}", list.join(","))
        };
        std::fs::write(
            &later,
            records(&[
                ("b1", "2026-03-02T01:00:00Z"),
                ("b2", "2026-03-02T03:00:00Z"),
                ("b3", "2026-03-02T05:00:00Z"),
            ]),
        )
        .unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(
            records(&[
                ("a1", "2026-03-02T00:00:00Z"),
                ("a2", "2026-03-02T02:00:00Z"),
                ("a3", "2026-03-02T04:00:00Z"),
                ("a4", "2026-03-02T06:00:00Z"),
            ])
            .as_bytes(),
        )
        .unwrap();
        std::fs::write(&earlier, gzip.finish().unwrap()).unwrap();
        let inputs: Vec<Input> = [&later, &earlier]
            .into_iter()
            .map(|path| Input::File {
                path: path.clone(),
                start: StartAt::default(),
            })
            .collect();
        for max_open in [16, 1] {
            let (ids, floors, finished) = merged(&inputs, &options(max_open));
            assert_eq!(finished, 2);
            if max_open == 16 {
                // Two records per batch, always from the stream furthest behind.
                assert_eq!(ids, ["a1", "a2", "b1", "b2", "a3", "a4", "b3"]);
            } else {
                // One open file at a time: files in order of their first record.
                assert_eq!(ids, ["a1", "a2", "a3", "a4", "b1", "b2", "b3"]);
            }
            assert!(floors.windows(2).all(|pair| pair[0] <= pair[1]), "{floors:?}");
            assert_eq!(*floors.last().unwrap(), i64::MAX, "nothing left at the end");
        }
    }

    #[test]
    fn batches_of_several_files_keep_each_files_checkpoint_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = Vec::new();
        for (name, hour) in [("a.jsonl", 0), ("b.jsonl", 1)] {
            let lines: Vec<String> = (0..3)
                .map(|n| record(&format!("{name}{n}"), &format!("2026-03-02T0{hour}:0{n}:00Z")))
                .collect();
            let path = dir.path().join(name);
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            inputs.push(Input::File {
                path,
                start: StartAt::default(),
            });
        }
        let options = MergeOptions {
            read: ReadOptions {
                batch_chunks: 8,
                ..ReadOptions::default()
            },
            batch_records: 2,
            ..options(4)
        };
        let mut batches = Vec::new();
        read_merged(
            &inputs,
            &options,
            &mut |batch| {
                batches.push(batch);
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap();
        // The floor-only batch, then one batch gathering both files' records.
        assert_eq!(batches.len(), 2);
        let gathered = &batches[1];
        assert_eq!(gathered.chunks.len(), 6);
        assert!(gathered.chunks.iter().all(|chunk| chunk.ingest_time.is_some()));
        let mut files: Vec<(String, bool)> = gathered
            .checkpoints
            .iter()
            .map(|checkpoint| {
                (
                    checkpoint.path.rsplit('/').next().unwrap().to_string(),
                    checkpoint.completed,
                )
            })
            .collect();
        files.dedup();
        assert!(files.contains(&("a.jsonl".to_string(), true)), "{files:?}");
        assert!(files.contains(&("b.jsonl".to_string(), true)), "{files:?}");
        // One floor per part: gathering does not change when events are released.
        assert!(gathered.floors.len() >= 3, "{:?}", gathered.floors);
        assert_eq!(
            gathered.floors.last().map(|(end, floor)| (*end, *floor)),
            Some((6, i64::MAX))
        );
    }

    #[test]
    fn unreadable_files_are_reported_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.jsonl");
        std::fs::write(&good, record("g1", "2026-03-02T00:00:00Z") + "\n{broken\n").unwrap();
        let inputs = [
            Input::File {
                path: dir.path().join("missing.json"),
                start: StartAt::default(),
            },
            Input::File {
                path: good,
                start: StartAt::default(),
            },
        ];
        let mut errors = Vec::new();
        let mut chunks = 0;
        read_merged(
            &inputs,
            &options(4),
            &mut |batch| {
                chunks += batch.chunks.len();
                Ok(())
            },
            &mut |done| {
                if let Err(error) = done.result {
                    errors.push((done.input, error));
                }
            },
        )
        .unwrap();
        assert_eq!(chunks, 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 0);
        assert!(errors[0].1.contains("missing.json"), "{}", errors[0].1);
    }
}

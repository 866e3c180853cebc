//! The event store's blocks: written, searched page by page, pruned.

use std::time::Duration;

use rusqlite::Connection;

use crate::db::SqliteDb;

use super::codec::tests::events_of;
use super::*;
use crate::event::model::OutcomeResult;

fn store() -> Connection {
    let mut connection = Connection::open_in_memory().unwrap();
    crate::alarm::schema::migrate(&mut connection).unwrap();
    connection
}

/// An AWS call at `at` (Unix seconds).
fn call(id: usize, at: i64, key: &str, ip: &str, action: &str, failed: bool) -> String {
    let error = if failed {
        r#","errorCode":"AccessDenied","errorMessage":"no""#
    } else {
        ""
    };
    format!(
        r#"{{"eventVersion":"1.09","eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"{action}","awsRegion":"us-east-1","sourceIPAddress":"{ip}","eventID":"ev-{id}","requestID":"req-{id}","eventType":"AwsApiCall","recipientAccountId":"493817265041","userIdentity":{{"type":"IAMUser","principalId":"AIDA{id}","arn":"arn:aws:iam::493817265041:user/u{}","accountId":"493817265041","accessKeyId":"{key}","userName":"u{}"}},"requestParameters":{{"instanceId":"i-{id}"}}{error}}}"#,
        chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339(),
        id % 3,
        id % 3,
    )
}

const START: i64 = 1_767_578_400;
const KEYS: [&str; 3] = ["AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2", "AKIAAAAAAAAAAAAAAAA3"];

/// The `index`th call of a stream: a minute apart, the keys in turn.
fn nth_call(index: usize, ip: &str, action: &str, failed: bool) -> String {
    call(index, START + 60 * index as i64, KEYS[index % 3], ip, action, failed)
}

/// 300 calls a minute apart, written in blocks of 40 (every other one
/// sealed beforehand, as the pipeline's sealing stage does).
fn filled() -> (Connection, Vec<String>) {
    let records: Vec<String> = (0..300)
        .map(|index| {
            nth_call(
                index,
                &format!("10.0.{}.{}", index % 4, index % 7),
                if index % 5 == 0 {
                    "TerminateInstances"
                } else {
                    "DescribeInstances"
                },
                index % 11 == 0,
            )
        })
        .collect();
    let events = events_of(records.iter().cloned());
    let mut connection = store();
    let mut builder = BlockBuilder::new(&EventStoreOptions::default());
    let mut sealer = Sealer::default();
    for (index, chunk) in events.chunks(40).enumerate() {
        for event in chunk {
            builder.add(event);
        }
        let mut blocks = builder.take();
        if index % 2 == 0 {
            for block in &mut blocks {
                sealer.seal(block).unwrap();
            }
        }
        let transaction = connection.transaction().unwrap();
        for block in &blocks {
            write(&mut SqliteDb(&transaction), block).unwrap();
        }
        transaction.commit().unwrap();
        builder.recycle(blocks);
    }
    (connection, records)
}

fn ids(page: &EventPage) -> Vec<String> {
    page.events.iter().map(|event| event.event_id.clone()).collect()
}

/// The ids of the calls `keep` selects, newest first.
fn expected(keep: impl Fn(usize) -> bool) -> Vec<String> {
    (0..300)
        .rev()
        .filter(|index| keep(*index))
        .map(|index| format!("ev-{index}"))
        .collect()
}

#[test]
fn every_filter_finds_exactly_its_events_newest_first() {
    let (connection, _) = filled();
    let all = |filter: EventFilter| search(&mut SqliteDb(&connection), &EventFilter { limit: 1000, ..filter }).unwrap();
    let page = all(EventFilter {
        key: Some(KEYS[1].to_lowercase()),
        ..EventFilter::default()
    });
    assert_eq!(ids(&page), expected(|index| index % 3 == 1));
    assert_eq!(page.next, None);
    let page = all(EventFilter {
        ip: Some(IpMatch::parse("10.0.2.0/24")),
        outcome: Some(OutcomeResult::Failure),
        ..EventFilter::default()
    });
    assert_eq!(ids(&page), expected(|index| index % 4 == 2 && index % 11 == 0));
    let page = all(EventFilter {
        ip: Some(IpMatch::parse("10.0.3.5")),
        ..EventFilter::default()
    });
    assert_eq!(ids(&page), expected(|index| index % 4 == 3 && index % 7 == 5));
    let page = all(EventFilter {
        action: Some("terminateinstances".into()),
        principal: Some("u2".into()),
        ..EventFilter::default()
    });
    assert_eq!(ids(&page), expected(|index| index % 5 == 0 && index % 3 == 2));
    let page = all(EventFilter {
        id: Some("req-77".into()),
        ..EventFilter::default()
    });
    assert_eq!(ids(&page), ["ev-77"]);
    assert_eq!(page.events[0].raw["requestParameters"]["instanceId"], "i-77");
    let page = all(EventFilter {
        since: chrono::DateTime::from_timestamp(START + 60 * 100, 0),
        until: chrono::DateTime::from_timestamp(START + 60 * 110, 0),
        account: Some("493817265041".into()),
        ..EventFilter::default()
    });
    assert_eq!(ids(&page), expected(|index| (100..110).contains(&index)));
    // A key nobody used: the filters keep every block shut.
    let page = all(EventFilter {
        key: Some("AKIANOBODYUSEDTHIS00".into()),
        ..EventFilter::default()
    });
    assert!(page.events.is_empty());
    assert_eq!(page.blocks_checked, 8);
    assert!(page.blocks_opened <= 1, "{} blocks opened", page.blocks_opened);
}

#[test]
fn pages_follow_their_cursors_to_the_same_results() {
    let (connection, _) = filled();
    let filter = EventFilter {
        key: Some(KEYS[0].into()),
        ..EventFilter::default()
    };
    let whole = search(
        &mut SqliteDb(&connection),
        &EventFilter {
            limit: 1000,
            ..filter.clone()
        },
    )
    .unwrap();
    let mut paged = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = search(
            &mut SqliteDb(&connection),
            &EventFilter {
                limit: 7,
                cursor,
                ..filter.clone()
            },
        )
        .unwrap();
        pages += 1;
        assert!(page.events.len() <= 7);
        paged.extend(ids(&page));
        match page.next {
            Some(next) => cursor = Some(next.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(paged, ids(&whole));
    assert_eq!(pages, 100usize.div_ceil(7));
    // A budget of one block per page still gets there, a block at a time.
    let mut budgeted = Vec::new();
    let mut cursor = None;
    loop {
        let page = search(
            &mut SqliteDb(&connection),
            &EventFilter {
                limit: 1000,
                max_blocks: 1,
                cursor,
                ..filter.clone()
            },
        )
        .unwrap();
        assert!(page.blocks_opened <= 1);
        budgeted.extend(ids(&page));
        match page.next {
            Some(next) => cursor = Some(next.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(budgeted, ids(&whole));
    assert!(matches!("12".parse::<Cursor>(), Err(SearchError::BadCursor(_))));
    assert!(matches!("a.b".parse::<Cursor>(), Err(SearchError::BadCursor(_))));
}

#[test]
fn pruning_deletes_whole_blocks_past_the_cutoff() {
    let (mut connection, _) = filled();
    let before = size(&mut SqliteDb(&connection)).unwrap();
    assert_eq!((before.blocks, before.events), (8, 300));
    assert!(before.stored_bytes < before.raw_bytes / 3, "{before:?}");
    // Blocks end at minutes 39, 79, 119 …: a cutoff at minute 100 drops two.
    let transaction = connection.transaction().unwrap();
    prune(&mut SqliteDb(&transaction), (START + 60 * 100) * 1000).unwrap();
    transaction.commit().unwrap();
    let after = size(&mut SqliteDb(&connection)).unwrap();
    assert_eq!((after.blocks, after.events), (6, 220));
    assert_eq!(after.oldest_ms, Some((START + 60 * 80) * 1000));
    let left: i64 = connection
        .query_row("SELECT COUNT(*) FROM event_block_data", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 6, "the data goes with its block");
}

#[test]
fn a_damaged_block_is_an_error_naming_it() {
    let (connection, _) = filled();
    connection
        .execute("UPDATE event_block_data SET data = x'00112233' WHERE id = 3", [])
        .unwrap();
    let error = search(
        &mut SqliteDb(&connection),
        &EventFilter {
            limit: 1000,
            ..EventFilter::default()
        },
    )
    .unwrap_err();
    assert!(matches!(error, SearchError::Damaged { block: 3, .. }), "{error}");
}

/// Five calls of one key, a second apart.
fn five_calls() -> Vec<AuditEvent> {
    events_of((0..5).map(|index| {
        call(
            index,
            START + index as i64,
            KEYS[0],
            "1.2.3.4",
            "DescribeInstances",
            false,
        )
    }))
}

#[test]
fn the_accumulator_keeps_a_block_per_take_and_none_when_off() {
    let events = five_calls();
    let mut builder = BlockBuilder::new(&EventStoreOptions {
        compression_level: 3,
        retention: Duration::from_secs(3600),
        enabled: true,
        block_events: 2000,
    });
    for event in &events {
        builder.add(event);
    }
    let mut blocks = builder.take();
    assert_eq!(blocks.len(), 1);
    let block = blocks.remove(0);
    assert_eq!(block.count, 5);
    assert_eq!((block.min_ms, block.max_ms), (START * 1000, (START + 4) * 1000));
    assert_eq!(block.level, 3);
    assert!(builder.take().is_empty());

    // A transaction of more than `block_events` events writes several
    // blocks, in order, so searches read blocks of about the same size
    // whatever the transaction size.
    let mut builder = BlockBuilder::new(&EventStoreOptions {
        block_events: 2,
        ..EventStoreOptions::default()
    });
    for event in &events {
        builder.add(event);
    }
    let blocks = builder.take();
    assert_eq!(builder.take_sent(), 0, "no outlet: the transaction keeps its blocks");
    let counts: Vec<u32> = blocks.iter().map(|block| block.count).collect();
    assert_eq!(counts, [2, 2, 1]);
    let spans: Vec<(i64, i64)> = blocks.iter().map(|block| (block.min_ms, block.max_ms)).collect();
    assert_eq!(
        spans,
        [
            (START * 1000, (START + 1) * 1000),
            ((START + 2) * 1000, (START + 3) * 1000),
            ((START + 4) * 1000, (START + 4) * 1000)
        ]
    );
    assert!(builder.take().is_empty());
}

#[test]
fn a_block_sealed_off_the_store_thread_is_written_as_the_store_would_write_it() {
    let records: Vec<String> = (0..50)
        .map(|index| {
            call(
                index,
                START + index as i64,
                KEYS[index % 3],
                "10.0.0.1",
                "DescribeInstances",
                false,
            )
        })
        .collect();
    let events = events_of(records.into_iter());
    let mut builder = BlockBuilder::new(&EventStoreOptions::default());
    let rows = |sealed: bool, builder: &mut BlockBuilder| {
        for event in &events {
            builder.add(event);
        }
        let mut blocks = builder.take();
        assert_eq!(blocks.len(), 1);
        let mut block = blocks.remove(0);
        if sealed {
            Sealer::default().seal(&mut block).unwrap();
            assert!(block.sealed.is_some());
            // Only the compressed block goes on to the store.
            assert_eq!((block.bytes.capacity(), block.terms.capacity()), (0, 0));
        }
        let mut connection = store();
        let transaction = connection.transaction().unwrap();
        write(&mut SqliteDb(&transaction), &block).unwrap();
        transaction.commit().unwrap();
        builder.recycle(vec![block]);
        connection
            .query_row(
                "SELECT b.events, b.raw_bytes, b.stored_bytes, b.bloom, d.data FROM event_blocks b JOIN event_block_data d ON d.id = b.id",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Vec<u8>>(3)?,
                        row.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .unwrap()
    };
    let plain = rows(false, &mut builder);
    let sealed = rows(true, &mut builder);
    assert_eq!(plain.0, 50);
    assert_eq!(plain, sealed);
    // A recycled block forgets its seal: the next one is compressed anew.
    builder.add(&events[0]);
    let block = builder.take().remove(0);
    assert!(block.sealed.is_none() && block.count == 1);
}

/// Block filters are read 64 blocks at a time, newest first: a search
/// reaches past the first query's blocks to the oldest one, and a page
/// filled by the newest blocks reads no further.
#[test]
fn a_search_reads_block_filters_a_query_at_a_time_down_to_the_oldest() {
    let records: Vec<String> = (0..300)
        .map(|index| nth_call(index, "10.0.0.1", "DescribeInstances", false))
        .collect();
    let mut connection = store();
    let mut builder = BlockBuilder::new(&EventStoreOptions::default());
    for pair in events_of(records.iter().cloned()).chunks(2) {
        for event in pair {
            builder.add(event);
        }
        let transaction = connection.transaction().unwrap();
        for block in &builder.take() {
            write(&mut SqliteDb(&transaction), block).unwrap();
        }
        transaction.commit().unwrap();
    }
    let page = |filter: EventFilter| search(&mut SqliteDb(&connection), &filter).unwrap();
    let oldest = page(EventFilter {
        id: Some("ev-0".to_string()),
        limit: 10,
        ..EventFilter::default()
    });
    assert_eq!(ids(&oldest), ["ev-0"]);
    assert_eq!(oldest.blocks_checked, 150, "every block's filter was read");
    assert!(oldest.blocks_opened < 10, "{} blocks opened", oldest.blocks_opened);
    assert_eq!(oldest.next, None);
    let newest = page(EventFilter {
        limit: 3,
        ..EventFilter::default()
    });
    assert_eq!(ids(&newest), ["ev-299", "ev-298", "ev-297"]);
    assert_eq!(newest.blocks_checked, 2, "the page filled from the two newest blocks");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let next = page(EventFilter {
            limit: 7,
            cursor,
            ..EventFilter::default()
        });
        seen.extend(ids(&next));
        match next.next {
            Some(next) => cursor = Some(next.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, expected(|_| true), "paging visits every event once, newest first");
}

#[test]
fn with_an_outlet_each_block_leaves_as_soon_as_it_is_full() {
    let events = five_calls();
    let shipped = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let mut builder = BlockBuilder::new(&EventStoreOptions {
        block_events: 2,
        ..EventStoreOptions::default()
    });
    let outlet = shipped.clone();
    builder.set_outlet(Box::new(move |block: EventBlock| {
        outlet.lock().unwrap().push(block.count)
    }));
    builder.add(&events[0]);
    assert!(shipped.lock().unwrap().is_empty(), "a block still filling stays");
    builder.add(&events[1]);
    assert_eq!(*shipped.lock().unwrap(), [2], "a full block leaves at once");
    for event in &events[2..] {
        builder.add(event);
    }
    assert_eq!(*shipped.lock().unwrap(), [2, 2]);
    assert!(builder.take().is_empty(), "the transaction keeps none");
    assert_eq!(
        *shipped.lock().unwrap(),
        [2, 2, 1],
        "the last, partial block leaves at the end"
    );
    assert_eq!(
        builder.take_sent(),
        3,
        "and the transaction is told how many went ahead"
    );
    assert_eq!(builder.take_sent(), 0);
    assert!(builder.take().is_empty());
    assert_eq!(builder.take_sent(), 0, "an empty transaction sends nothing");
}

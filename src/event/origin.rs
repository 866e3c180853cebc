//! Where a record came from: enough to find it again by hand.
//!
//! Every event, dead letter and log line carries an `Origin`, printed as
//! `path:line`, `path@byte` or `path:line[index]` for the n-th record of a
//! container (a CloudTrail `Records` array, a JSON array …), and
//! `kafka:topic/partition#offset` for a Kafka message.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// The position of a record inside its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Nothing more precise than the source (e.g. an in-memory test event).
    #[default]
    Whole,
    /// 1-based line of a JSON-lines input.
    Line(u64),
    /// Byte offset of the start of a document in a multi-line input.
    Byte(u64),
    /// A Kafka message: the source is the topic. `appended_ms` is the
    /// message's timestamp (set by the producer, or by the broker for a topic
    /// with `LogAppendTime`), for the append-to-commit latency.
    Message {
        partition: i32,
        offset: i64,
        #[serde(skip)]
        appended_ms: Option<i64>,
    },
}

/// A record's source and position, plus its index inside a container when the
/// document held several records.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    /// File path, `stdin`, or a Kafka topic.
    pub source: Arc<str>,
    pub position: Position,
    /// 0-based index inside an array / `Records` / `traces` container.
    pub index: Option<u32>,
}

impl Origin {
    pub fn new(source: Arc<str>, position: Position) -> Origin {
        Origin {
            source,
            position,
            index: None,
        }
    }

    pub fn with_index(&self, index: usize) -> Origin {
        Origin {
            source: self.source.clone(),
            position: self.position,
            index: Some(u32::try_from(index).unwrap_or(u32::MAX)),
        }
    }

    /// An origin read back from its text (a buffered event's row): a Kafka
    /// message's comes back with its topic, partition and offset; any
    /// other is kept whole as the source, and displays as it was.
    pub fn from_display(text: &str) -> Origin {
        Origin::parse_message(text).unwrap_or_else(|| Origin::new(Arc::from(text), Position::Whole))
    }

    /// `kafka:TOPIC/PARTITION#OFFSET` with an optional `[INDEX]`.
    fn parse_message(text: &str) -> Option<Origin> {
        let rest = text.strip_prefix("kafka:")?;
        let (rest, index) = match rest.strip_suffix(']') {
            Some(inner) => {
                let (rest, index) = inner.rsplit_once('[')?;
                (rest, Some(index.parse::<u32>().ok()?))
            }
            None => (rest, None),
        };
        let (rest, offset) = rest.rsplit_once('#')?;
        let (topic, partition) = rest.rsplit_once('/')?;
        if topic.is_empty() {
            return None;
        }
        Some(Origin {
            source: Arc::from(topic),
            position: Position::Message {
                partition: partition.parse().ok()?,
                offset: offset.parse().ok()?,
                appended_ms: None,
            },
            index,
        })
    }

    /// The 1-based line, when the record came from a JSON-lines input.
    pub fn line(&self) -> Option<u64> {
        match self.position {
            Position::Line(line) => Some(line),
            _ => None,
        }
    }

    /// The byte offset, when the record came from a multi-line document.
    pub fn byte_offset(&self) -> Option<u64> {
        match self.position {
            Position::Byte(offset) => Some(offset),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Position::Whole => f.write_str(&self.source)?,
            Position::Line(line) => write!(f, "{}:{line}", self.source)?,
            Position::Byte(offset) => write!(f, "{}@{offset}", self.source)?,
            Position::Message { partition, offset, .. } => write!(f, "kafka:{}/{partition}#{offset}", self.source)?,
        }
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        Ok(())
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_origin_reads_back_from_its_text_and_others_stay_whole() {
        let message = Origin::new(
            Arc::from("cloud.audit-1"),
            Position::Message {
                partition: 4,
                offset: 1207,
                appended_ms: None,
            },
        )
        .with_index(3);
        let back = Origin::from_display(&message.to_string());
        assert_eq!(back, message);
        let plain = Origin::new(
            Arc::from("cloud.audit-1"),
            Position::Message {
                partition: 0,
                offset: 9,
                appended_ms: None,
            },
        );
        assert_eq!(Origin::from_display(&plain.to_string()), plain);
        for text in ["logs/a.jsonl:17", "kafka:/1#2", "kafka:t/x#2", "stdin"] {
            let kept = Origin::from_display(text);
            assert_eq!(kept.position, Position::Whole, "{text}");
            assert_eq!(kept.to_string(), text);
        }
    }
}

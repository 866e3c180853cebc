//! A read-only view of a JSON value, the same for the two places a record
//! can live: a `serde_json::Value` tree (containers, envelopes, restored
//! events, tests) or a simd-json tape of the record's own bytes (the common
//! path, which builds no tree: strings are borrowed from the parse buffer).
//! The normalizers read records only through this view.

use serde_json::{Map, Value};
use simd_json::{Node, StaticNode};

/// One JSON value, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum Json<'a> {
    Tree(&'a Value),
    /// A tape slice that starts at the value's node and spans exactly it.
    Tape(&'a [Node<'a>]),
}

/// One JSON object, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum JsonObject<'a> {
    Tree(&'a Map<String, Value>),
    Tape(&'a [Node<'a>]),
    /// A tape object with an index of its members (`index_object`), for
    /// objects read many times (a record's top level).
    Indexed {
        nodes: &'a [Node<'a>],
        index: &'a [(u64, u32)],
    },
}

/// How many tape nodes a value spans, its own node included.
pub(crate) fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

impl<'a> From<&'a Value> for Json<'a> {
    fn from(value: &'a Value) -> Json<'a> {
        Json::Tree(value)
    }
}

impl<'a> Json<'a> {
    pub fn is_null(self) -> bool {
        match self {
            Json::Tree(value) => value.is_null(),
            Json::Tape(nodes) => matches!(nodes.first(), Some(Node::Static(StaticNode::Null)) | None),
        }
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Json::Tree(value) => value.as_str(),
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::String(text)) => Some(text),
                _ => None,
            },
        }
    }

    pub fn as_bool(self) -> Option<bool> {
        match self {
            Json::Tree(value) => value.as_bool(),
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::Static(StaticNode::Bool(flag))) => Some(*flag),
                _ => None,
            },
        }
    }

    pub fn is_number(self) -> bool {
        match self {
            Json::Tree(value) => value.is_number(),
            Json::Tape(nodes) => matches!(
                nodes.first(),
                Some(Node::Static(
                    StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)
                ))
            ),
        }
    }

    pub fn as_f64(self) -> Option<f64> {
        match self {
            Json::Tree(value) => value.as_f64(),
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::Static(StaticNode::I64(n))) => Some(*n as f64),
                Some(Node::Static(StaticNode::U64(n))) => Some(*n as f64),
                Some(Node::Static(StaticNode::F64(n))) => Some(*n),
                _ => None,
            },
        }
    }

    /// An integer number as `i64`, when it is one that fits.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Json::Tree(value) => value.as_i64(),
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::Static(StaticNode::I64(n))) => Some(*n),
                Some(Node::Static(StaticNode::U64(n))) => i64::try_from(*n).ok(),
                _ => None,
            },
        }
    }

    /// A number printed the way `serde_json` prints it.
    pub fn number_text(self) -> Option<String> {
        match self {
            Json::Tree(Value::Number(number)) => Some(number.to_string()),
            Json::Tree(_) => None,
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::Static(StaticNode::I64(n))) => Some(n.to_string()),
                Some(Node::Static(StaticNode::U64(n))) => Some(n.to_string()),
                Some(Node::Static(StaticNode::F64(n))) => serde_json::Number::from_f64(*n).map(|n| n.to_string()),
                _ => None,
            },
        }
    }

    pub fn as_object(self) -> Option<JsonObject<'a>> {
        match self {
            Json::Tree(Value::Object(map)) => Some(JsonObject::Tree(map)),
            Json::Tape(nodes @ [Node::Object { .. }, ..]) => Some(JsonObject::Tape(nodes)),
            _ => None,
        }
    }

    /// The items of an array; `None` for anything else.
    pub fn as_array(self) -> Option<JsonItems<'a>> {
        match self {
            Json::Tree(Value::Array(items)) => Some(JsonItems::Tree(items.iter())),
            Json::Tape(nodes @ [Node::Array { .. }, ..]) => Some(JsonItems::Tape(&nodes[1..])),
            _ => None,
        }
    }

    /// The value as a tree of its own (what parsing its text gives).
    pub fn to_value(self) -> Value {
        match self {
            Json::Tree(value) => value.clone(),
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::String(text)) => Value::String((*text).to_owned()),
                Some(Node::Static(StaticNode::Bool(flag))) => Value::Bool(*flag),
                Some(Node::Static(StaticNode::I64(n))) => Value::from(*n),
                Some(Node::Static(StaticNode::U64(n))) => Value::from(*n),
                Some(Node::Static(StaticNode::F64(n))) => {
                    serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }
                Some(Node::Object { .. }) => match self.as_object() {
                    Some(object) => Value::Object(
                        object
                            .members()
                            .map(|(key, value)| (key.to_owned(), value.to_value()))
                            .collect(),
                    ),
                    None => Value::Null,
                },
                Some(Node::Array { .. }) => match self.as_array() {
                    Some(items) => Value::Array(items.map(Json::to_value).collect()),
                    None => Value::Null,
                },
                Some(Node::Static(StaticNode::Null)) | None => Value::Null,
            },
        }
    }

    /// The JSON type's name, for error messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Json::Tree(value) => crate::event::decode::json_type_name(value),
            Json::Tape(nodes) => match nodes.first() {
                Some(Node::String(_)) => "string",
                Some(Node::Object { .. }) => "object",
                Some(Node::Array { .. }) => "array",
                Some(Node::Static(StaticNode::Bool(_))) => "boolean",
                Some(Node::Static(StaticNode::Null)) | None => "null",
                Some(Node::Static(_)) => "number",
            },
        }
    }
}

/// The items of an array.
#[derive(Clone, Debug)]
pub enum JsonItems<'a> {
    Tree(std::slice::Iter<'a, Value>),
    /// The nodes after the array's own, up to its end.
    Tape(&'a [Node<'a>]),
}

impl<'a> Iterator for JsonItems<'a> {
    type Item = Json<'a>;

    fn next(&mut self) -> Option<Json<'a>> {
        match self {
            JsonItems::Tree(items) => items.next().map(Json::Tree),
            JsonItems::Tape(nodes) => {
                let first = nodes.first()?;
                let (head, tail) = nodes.split_at(span(first).min(nodes.len()));
                *nodes = tail;
                Some(Json::Tape(head))
            }
        }
    }
}

/// The members of an object, in order.
#[derive(Clone, Debug)]
pub enum JsonMembers<'a> {
    Tree(serde_json::map::Iter<'a>),
    Tape(&'a [Node<'a>]),
}

impl<'a> Iterator for JsonMembers<'a> {
    type Item = (&'a str, Json<'a>);

    fn next(&mut self) -> Option<(&'a str, Json<'a>)> {
        match self {
            JsonMembers::Tree(members) => members.next().map(|(key, value)| (key.as_str(), Json::Tree(value))),
            JsonMembers::Tape(nodes) => {
                let (key, rest) = nodes.split_first()?;
                let Node::String(key) = key else {
                    *nodes = &[];
                    return None;
                };
                let first = rest.first()?;
                let (value, tail) = rest.split_at(span(first).min(rest.len()));
                *nodes = tail;
                Some((key, Json::Tape(value)))
            }
        }
    }
}

impl<'a> JsonObject<'a> {
    pub fn members(self) -> JsonMembers<'a> {
        match self {
            JsonObject::Tree(map) => JsonMembers::Tree(map.iter()),
            JsonObject::Tape(nodes) | JsonObject::Indexed { nodes, .. } => {
                JsonMembers::Tape(nodes.get(1..).unwrap_or(&[]))
            }
        }
    }

    /// The value under exactly `key`. A key given twice reads as its last
    /// value, as in a parsed tree.
    pub fn get(self, key: &str) -> Option<Json<'a>> {
        match self {
            JsonObject::Tree(map) => map.get(key).map(Json::Tree),
            JsonObject::Tape(nodes) => {
                let len = match nodes.first() {
                    Some(Node::Object { len, .. }) => *len,
                    _ => return None,
                };
                let mut at = 1;
                let mut found = None;
                for _ in 0..len {
                    let (Some(Node::String(candidate)), Some(value)) = (nodes.get(at), nodes.get(at + 1)) else {
                        break;
                    };
                    let end = at + 1 + span(value);
                    if candidate.len() == key.len() && *candidate == key {
                        found = Some(at + 1..end);
                    }
                    at = end;
                }
                nodes.get(found?).map(Json::Tape)
            }
            JsonObject::Indexed { nodes, index } => {
                let position = indexed_position(nodes, index, key)?;
                let first = nodes.get(position)?;
                nodes.get(position..position + span(first)).map(Json::Tape)
            }
        }
    }

    /// The values under each of `keys`, as `get` reads them one by one; a
    /// tape object's members are walked once for all of them (`get` walks
    /// them all for each key, since the last of equal keys wins).
    pub fn pick<const N: usize>(self, keys: [&str; N]) -> [Option<Json<'a>>; N] {
        let mut found: [Option<Json<'a>>; N] = [None; N];
        match self {
            JsonObject::Tape(nodes) => {
                let len = match nodes.first() {
                    Some(Node::Object { len, .. }) => *len,
                    _ => return found,
                };
                let mut at = 1;
                for _ in 0..len {
                    let (Some(Node::String(candidate)), Some(value)) = (nodes.get(at), nodes.get(at + 1)) else {
                        break;
                    };
                    let end = at + 1 + span(value);
                    if let Some(slot) = keys
                        .iter()
                        .position(|key| key.len() == candidate.len() && key == candidate)
                    {
                        found[slot] = nodes.get(at + 1..end).map(Json::Tape);
                    }
                    at = end;
                }
            }
            JsonObject::Tree(_) | JsonObject::Indexed { .. } => {
                for (slot, key) in found.iter_mut().zip(keys) {
                    *slot = self.get(key);
                }
            }
        }
        found
    }

    /// The value under `key` in any letter case (the first such key).
    pub fn get_ignore_case(self, key: &str) -> Option<Json<'a>> {
        self.members()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    }

    pub fn contains_key(self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(self) -> usize {
        match self {
            JsonObject::Tree(map) => map.len(),
            JsonObject::Tape(nodes) | JsonObject::Indexed { nodes, .. } => match nodes.first() {
                Some(Node::Object { len, .. }) => *len,
                _ => 0,
            },
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The key of the member whose value is at `position`.
fn key_before<'a>(nodes: &[Node<'a>], position: u32) -> &'a str {
    match (position as usize).checked_sub(1).and_then(|at| nodes.get(at)) {
        Some(Node::String(key)) => key,
        _ => "",
    }
}

/// A key's length and first seven bytes: equal for equal keys, and for
/// different keys nearly always different.
fn fingerprint(key: &str) -> u64 {
    let bytes = key.as_bytes();
    // One load for a key of eight bytes or more; shorter keys byte by byte
    // (a copy of a variable length was a call to `memcpy` per lookup).
    let head = match bytes.first_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word) & 0x00ff_ffff_ffff_ffff,
        None => bytes
            .iter()
            .enumerate()
            .fold(0u64, |word, (at, byte)| word | (u64::from(*byte) << (8 * at))),
    };
    head | ((bytes.len().min(255) as u64) << 56)
}

/// Index the members of the object at the start of `nodes` (see
/// `JsonObject::Indexed`) into `index`: an open-addressing hash table of a
/// power-of-two size at least twice the members, each slot a key's
/// fingerprint and where its value is (0: empty). A key given twice keeps
/// the position of its last value, as a parsed tree does.
pub(crate) fn index_object(nodes: &[Node<'_>], index: &mut Vec<(u64, u32)>) {
    index.clear();
    let len = match nodes.first() {
        Some(Node::Object { len, .. }) => *len,
        _ => return,
    };
    let size = (len.max(4) * 2).next_power_of_two();
    index.resize(size, (0, 0));
    let mask = size - 1;
    let mut at = 1;
    for _ in 0..len {
        let (Some(Node::String(key)), Some(node)) = (nodes.get(at), nodes.get(at + 1)) else {
            break;
        };
        let print = fingerprint(key);
        let mut slot = slot_of(print, mask);
        loop {
            let (known, position) = index[slot];
            if position == 0 {
                index[slot] = (print, (at + 1) as u32);
                break;
            }
            if known == print && key_before(nodes, position) == *key {
                index[slot].1 = (at + 1) as u32;
                break;
            }
            slot = (slot + 1) & mask;
        }
        at += 1 + span(node);
    }
}

fn slot_of(print: u64, mask: usize) -> usize {
    (print.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

/// Where the value of `key` is in an object indexed by `index_object`.
fn indexed_position(nodes: &[Node<'_>], index: &[(u64, u32)], key: &str) -> Option<usize> {
    if index.is_empty() {
        return None;
    }
    let mask = index.len() - 1;
    let print = fingerprint(key);
    let mut slot = slot_of(print, mask);
    // The table is at most half full, so a probe always meets an empty slot.
    for _ in 0..index.len() {
        let (known, position) = *index.get(slot)?;
        if position == 0 {
            return None;
        }
        if known == print && key_before(nodes, position) == key {
            return Some(position as usize);
        }
        slot = (slot + 1) & mask;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tape_of(text: &str) -> simd_json::Tape<'static> {
        let bytes: &'static mut [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
        simd_json::to_tape(bytes).expect("valid JSON")
    }

    #[test]
    fn a_fingerprint_is_the_length_and_the_first_seven_bytes() {
        for key in [
            "",
            "a",
            "type",
            "eventID",
            "eventNam",
            "eventName",
            "userIdentity",
            "é€x",
        ] {
            let bytes = key.as_bytes();
            let mut word = [0u8; 8];
            word[..bytes.len().min(7)].copy_from_slice(&bytes[..bytes.len().min(7)]);
            let expected = u64::from_le_bytes(word) | ((bytes.len() as u64) << 56);
            assert_eq!(fingerprint(key), expected, "{key}");
        }
        assert_ne!(fingerprint("eventNamX"), fingerprint("eventNameX"));
    }

    #[test]
    fn tape_and_tree_read_the_same() {
        let text = r#"{"a":1,"b":{"c":"x","d":[1,2.5,true,null]},"e":"q","a":18446744073709551615,"f":-3}"#;
        let tape = tape_of(text);
        let tree: Value = serde_json::from_str(text).unwrap();
        let mut index = Vec::new();
        index_object(&tape.0, &mut index);
        let indexed = JsonObject::Indexed {
            nodes: &tape.0,
            index: &index,
        };
        let objects = [
            Json::Tape(&tape.0).as_object().unwrap(),
            JsonObject::Tree(tree.as_object().unwrap()),
            indexed,
        ];
        for object in objects {
            assert_eq!(object.get("e").and_then(Json::as_str), Some("q"));
            // The last of two equal keys, as a tree keeps it.
            assert_eq!(
                object.get("a").and_then(Json::number_text).as_deref(),
                Some("18446744073709551615")
            );
            assert_eq!(object.get("f").and_then(Json::as_i64), Some(-3));
            let inner = object.get("b").and_then(Json::as_object).unwrap();
            assert_eq!(inner.get("c").and_then(Json::as_str), Some("x"));
            let items: Vec<&str> = inner
                .get("d")
                .unwrap()
                .as_array()
                .unwrap()
                .map(Json::type_name)
                .collect();
            assert_eq!(items, ["number", "number", "boolean", "null"]);
            let numbers: Vec<String> = inner
                .get("d")
                .unwrap()
                .as_array()
                .unwrap()
                .filter_map(Json::number_text)
                .collect();
            assert_eq!(numbers, ["1", "2.5"]);
            assert!(object.get("missing").is_none());
            assert_eq!(object.get_ignore_case("E").and_then(Json::as_str), Some("q"));
        }
    }
}

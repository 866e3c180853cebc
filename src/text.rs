//! Small text helpers for the hot path: case-insensitive lookups without
//! allocating a lower-cased copy of every field value.

/// The hasher of the hot path's maps and sets (rule indexes, state, the
/// aggregator): foldhash, seeded per process, several times faster than the
/// standard library's SipHash on the short keys these hold.
pub type FastState = foldhash::fast::RandomState;
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;
pub type FastSet<T> = std::collections::HashSet<T, FastState>;

/// Longest text lower-cased on the stack; longer text is lower-cased on the heap.
const STACK_LOWERCASE: usize = 128;

/// Call `f` with the ASCII-lower-cased `text`, without allocating for text up
/// to 128 bytes (lower-casing ASCII keeps UTF-8 valid).
pub fn with_ascii_lowercase<R>(text: &str, f: impl FnOnce(&str) -> R) -> R {
    if !text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return f(text);
    }
    if text.len() <= STACK_LOWERCASE {
        let mut buffer = [0u8; STACK_LOWERCASE];
        let slot = &mut buffer[..text.len()];
        slot.copy_from_slice(text.as_bytes());
        slot.make_ascii_lowercase();
        match std::str::from_utf8(slot) {
            Ok(lower) => f(lower),
            Err(_) => f(&text.to_ascii_lowercase()),
        }
    } else {
        f(&text.to_ascii_lowercase())
    }
}

/// A set of strings compared ASCII-case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct CaseInsensitiveSet {
    lower: FastSet<String>,
}

impl CaseInsensitiveSet {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> CaseInsensitiveSet {
        CaseInsensitiveSet {
            lower: items
                .into_iter()
                .map(|item| item.as_ref().to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn contains(&self, text: &str) -> bool {
        with_ascii_lowercase(text, |lower| self.lower.contains(lower))
    }

    pub fn len(&self) -> usize {
        self.lower.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.lower.iter().map(String::as_str)
    }
}

/// ASCII-case-insensitive `starts_with`.
pub fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// ASCII-case-insensitive `ends_with`.
pub fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len() && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_lookup_without_allocation_matches_any_case() {
        let set = CaseInsensitiveSet::new(["DeleteUser", "createServer"]);
        assert!(set.contains("deleteuser"));
        assert!(set.contains("CREATESERVER"));
        assert!(!set.contains("CreateUser"));
        let long = "A".repeat(300);
        assert_eq!(with_ascii_lowercase(&long, |lower| lower.len()), 300);
        assert!(with_ascii_lowercase("ÄBC", |lower| lower == "Äbc"));
    }

    #[test]
    fn affixes_ignore_case() {
        assert!(starts_with_ignore_case("DeleteBucket", "delete"));
        assert!(!starts_with_ignore_case("Del", "delete"));
        assert!(ends_with_ignore_case("aws-cli/2 kali", "KALI"));
    }
}

/// An AWS action without the API version Lambda appends
/// (`UpdateFunctionCode20150331v2` → `UpdateFunctionCode`), if it has one.
pub fn strip_api_version(action: &str) -> Option<&str> {
    let trimmed = action.trim_end_matches(|c: char| c.is_ascii_digit());
    let trimmed = trimmed.strip_suffix('v').unwrap_or(trimmed);
    let base = trimmed.trim_end_matches(|c: char| c.is_ascii_digit());
    (base.len() + 8 <= action.len() && !base.is_empty()).then_some(base)
}

/// Append `text` as a JSON string, exactly as `serde_json` writes it. Text
/// with nothing to escape (nearly all, found eight bytes at a time by
/// `needs_json_escape`) is copied whole; the rest is left to `serde_json`.
pub fn push_json_str(out: &mut String, text: &str) {
    if !needs_json_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        // Serializing a `&str` cannot fail.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
}

/// Whether `bytes` hold a control character, `"` or `\`, eight bytes at a
/// time: the classic word trick sets a lane's high bit for a byte below
/// 0x20 and for a byte equal to either (a zero after the XOR); a lane whose
/// own high bit is set (non-ASCII) is masked out of all three.
fn needs_json_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let special = |word: u64| {
        let below_space = word.wrapping_sub(ONES * 0x20);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let hits = below_space | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES);
        hits & !word & HIGHS != 0
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(word);
        if special(u64::from_le_bytes(lanes)) {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|byte| *byte < 0x20 || *byte == b'"' || *byte == b'\\')
}

/// `push_json_str` for a value that may be missing (`null`).
pub fn push_json_opt_str(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_str(out, text),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod json_text_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn push_json_str_writes_what_serde_json_writes(text in "\\PC*|[\"\\\\\\x00-\\x1f a-z\u{7f}\u{2028}é]{0,80}") {
            let mut out = String::from("x");
            push_json_str(&mut out, &text);
            prop_assert_eq!(&out[1..], serde_json::to_string(&text).unwrap());
        }
    }
}

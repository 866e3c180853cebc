//! Masking of access keys wherever they leave the store.
//!
//! The store keeps every key in full (allowlists and rules match on it); CLI
//! tables, JSON output, `replay` match lines and log lines show it masked.
//! The rule (seeds/003 keeps "the first 6 and last 11" of Tencent's 36-char
//! `AKID…` keys) is: **at least half of a key is always hidden**.
//!
//! - 34 characters or more: the first 6 and the last 11 are kept (17 kept, at
//!   least 17 hidden), as in the seed;
//! - 8 to 33 characters: at most a quarter of the key at each end, and never
//!   more than 6 at the start or 11 at the end (a 20-character AWS / Huawei
//!   key keeps 5 + 5 and hides 10);
//! - fewer than 8 characters: nothing is kept (`****`);
//! - the empty string stays empty.
//!
//! The hidden middle is always written `****`, whatever its length, so the
//! mask does not reveal the key's length. Counting is by characters, never
//! bytes, so no key, however odd, can make it panic.

/// The marker written in place of the hidden middle.
pub const MASK: &str = "****";

/// Keys at least this long keep the seed's 6 + 11 characters.
const FULL_RULE_LENGTH: usize = 34;
/// Keys shorter than this are hidden completely.
const SHORTEST_PARTIAL: usize = 8;

/// Mask every AWS (`AKIA…`, `ASIA…`) and Tencent (`AKID…`) access key found
/// in free text — dead-letter excerpts, whose JSON could not be read, so the
/// key's field is unknown. Huawei keys have no prefix to recognise them by
/// and are left as they are.
pub fn mask_recognisable_keys(text: &str) -> String {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b|\bAKID[A-Za-z0-9]{32}\b").ok());
    match PATTERN.as_ref() {
        Some(pattern) => pattern
            .replace_all(text, |found: &regex::Captures<'_>| mask_access_key(&found[0]))
            .into_owned(),
        None => text.to_string(),
    }
}

/// The masked form of an access key (see the module documentation for the rule).
pub fn mask_access_key(key: &str) -> String {
    let length = key.chars().count();
    if length == 0 {
        return String::new();
    }
    if length < SHORTEST_PARTIAL {
        return MASK.to_string();
    }
    let (head, tail) = if length >= FULL_RULE_LENGTH {
        (6, 11)
    } else {
        ((length / 4).min(6), (length / 4).min(11))
    };
    // Cut at character boundaries: for an ASCII key (every real one) these
    // are byte positions, found without collecting the characters.
    let byte_at = |count: usize| key.char_indices().nth(count).map_or(key.len(), |(at, _)| at);
    let (head_end, tail_start) = if key.is_ascii() {
        (head, key.len() - tail)
    } else {
        (byte_at(head), byte_at(length - tail))
    };
    let mut out = String::with_capacity(head_end + MASK.len() + key.len() - tail_start);
    out.push_str(&key[..head_end]);
    out.push_str(MASK);
    out.push_str(&key[tail_start..]);
    out
}

/// `text` with every occurrence of `key` replaced by its masked form (output
/// templates and raw records quote the key). Keys shorter than 4 characters
/// are left alone: replacing them would mangle ordinary words.
pub fn mask_key_in_text(text: &str, key: &str) -> String {
    if key.chars().count() < 4 {
        return text.to_string();
    }
    let Some(mut at) = find(text, key, 0) else {
        return text.to_string();
    };
    let masked = mask_access_key(key);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    loop {
        out.push_str(&text[copied..at]);
        out.push_str(&masked);
        copied = at + key.len();
        match find(text, key, copied) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `needle` (at least one byte long) next occurs in `text` from byte
/// `from` on: texts here are a line or two, so candidates found by the first
/// byte are compared, with nothing built per call as a substring searcher
/// (`str::replace`, `str::find`) would.
fn find(text: &str, needle: &str, from: usize) -> Option<usize> {
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    let first = *needle.first()?;
    memchr::memchr_iter(first, text.get(from..)?)
        .map(|at| from + at)
        .find(|at| text[*at..].starts_with(needle))
}

/// A group key (`field=v1,v2|field=…`) with the values of its
/// `access_key.id` field masked (values masked already are left as they are).
pub fn mask_group_key(group_key: &str) -> String {
    if !group_key.contains("access_key.id=") {
        return group_key.to_string();
    }
    // The default group key, one key: masked without splitting.
    if let Some(value) = group_key.strip_prefix("access_key.id=")
        && !value.contains(['|', ','])
    {
        return if value == "-" || value.contains(MASK) {
            group_key.to_string()
        } else {
            format!("access_key.id={}", mask_access_key(value))
        };
    }
    group_key
        .split('|')
        .map(|part| match part.strip_prefix("access_key.id=") {
            Some(values) => {
                let masked: Vec<String> = values
                    .split(',')
                    .map(|value| {
                        // `-` is "no value"; a value with the marker is masked already.
                        if value == "-" || value.contains(MASK) {
                            value.to_string()
                        } else {
                            mask_access_key(value)
                        }
                    })
                    .collect();
                format!("access_key.id={}", masked.join(","))
            }
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Mask every occurrence of each key in `keys` inside every string of a JSON value.
pub fn mask_keys_in_json(value: &mut serde_json::Value, keys: &[&str]) {
    match value {
        serde_json::Value::String(text) => {
            for key in keys {
                if text.contains(key) {
                    *text = mask_key_in_text(text, key);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                mask_keys_in_json(item, keys);
            }
        }
        serde_json::Value::Object(map) => {
            for item in map.values_mut() {
                mask_keys_in_json(item, keys);
            }
        }
        _ => {}
    }
}

/// Names of JSON fields that hold an access key in the clouds' records
/// (compared lower-case, without `_` and `-`): `accessKeyId` (CloudTrail,
/// CloudAudit), `access_key_id`, `ak` and `access` (CTS), `SecretId` (Tencent).
const KEY_FIELD_NAMES: &[&str] = &["accesskeyid", "accesskey", "ak", "access", "secretid"];

/// Words shaped like a 20-character AWS or Huawei access key: upper-case
/// letters and digits (the Huawei AK has no fixed prefix; CTS records name a
/// credential they create as its `resource_id`).
fn mask_key_shaped_words(text: &str) -> String {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\b[A-Z0-9]{20}\b").ok());
    match PATTERN.as_ref() {
        Some(pattern) => pattern
            .replace_all(text, |found: &regex::Captures<'_>| {
                let word = &found[0];
                let has_digit = word.bytes().any(|byte| byte.is_ascii_digit());
                let has_letter = word.bytes().any(|byte| byte.is_ascii_uppercase());
                if has_digit && has_letter {
                    mask_access_key(word)
                } else {
                    word.to_string()
                }
            })
            .into_owned(),
        None => text.to_string(),
    }
}

/// Mask, anywhere in a JSON value, the keys it quotes that are not known in
/// advance: values of fields named like an access key (a key created by the
/// recorded call, in its response), AWS / Tencent keys recognisable by their
/// prefix, and words shaped like a 20-character AWS / Huawei key, in any
/// string. Values already masked stay as they are.
pub fn mask_unknown_keys_in_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if text.contains("AKIA") || text.contains("ASIA") || text.contains("AKID") {
                *text = mask_recognisable_keys(text);
            }
            if text.len() >= 20 {
                *text = mask_key_shaped_words(text);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_unknown_keys_in_json),
        serde_json::Value::Object(map) => {
            for (name, item) in map.iter_mut() {
                let normalized: String = name
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .flat_map(char::to_lowercase)
                    .collect();
                if let serde_json::Value::String(text) = item
                    && KEY_FIELD_NAMES.contains(&normalized.as_str())
                    && text.chars().count() >= 16
                    && !text.contains(MASK)
                {
                    *text = mask_access_key(text);
                    continue;
                }
                mask_unknown_keys_in_json(item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_created_by_a_recorded_call_are_masked_too() {
        let mut value = serde_json::json!({
            "responseElements": {"accessKey": {"accessKeyId": "AKIASIXR5TEOOEMPZK5U", "status": "Active"}},
            "response": {"credential": {"access": "HPUAMZ2KXQ7VLTYGCWPN", "status": "active"}},
            "note": "made AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA today",
            "userName": "support-tmp91",
            "resource_id": "HPUAGD41G8OO7BSVC28F",
            "request_id": "44fd39eef30c04d4e9318a4c0daeacac",
            "words": "DESCRIBEINSTANCESNOW and 2026030208",
            "masked": {"accessKeyId": "AKIAS****PZK5U"}
        });
        mask_unknown_keys_in_json(&mut value);
        let text = value.to_string();
        for key in [
            "AKIASIXR5TEOOEMPZK5U",
            "HPUAMZ2KXQ7VLTYGCWPN",
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA",
            "HPUAGD41G8OO7BSVC28F",
        ] {
            assert!(!text.contains(key), "{text}");
        }
        for kept in [
            "support-tmp91",
            "AKIAS****PZK5U",
            "44fd39eef30c04d4e9318a4c0daeacac",
            "DESCRIBEINSTANCESNOW",
        ] {
            assert!(text.contains(kept), "{kept}: {text}");
        }
    }

    #[test]
    fn tencent_keys_keep_the_first_6_and_last_11() {
        let key = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA";
        assert_eq!(key.len(), 36);
        assert_eq!(mask_access_key(key), "AKIDz8****LPx3gnPhESA");
    }

    #[test]
    fn twenty_character_keys_hide_half() {
        // AWS long-term key and a Huawei AK: 20 characters each.
        assert_eq!(mask_access_key("AKIAIOSFODNN7EXAMPLE"), "AKIAI****AMPLE");
        assert_eq!(mask_access_key("HPUA9RTE2N6KXQ4ZMV8C"), "HPUA9****ZMV8C");
    }

    #[test]
    fn at_least_half_is_hidden_at_every_length() {
        for length in 0..80 {
            let key: String = std::iter::repeat_n('k', length).collect();
            let masked = mask_access_key(&key);
            let kept = masked.chars().filter(|c| *c == 'k').count();
            assert!(kept * 2 <= length, "length {length}: {masked}");
            assert!(kept <= 17, "length {length}: {masked}");
            if length > 0 {
                assert!(masked.contains(MASK), "length {length}: {masked}");
            }
        }
    }

    #[test]
    fn short_and_empty_keys() {
        assert_eq!(mask_access_key(""), "");
        assert_eq!(mask_access_key("A"), "****");
        assert_eq!(mask_access_key("AKID123"), "****");
        assert_eq!(mask_access_key("AKID1234"), "AK****34");
    }

    #[test]
    fn non_ascii_does_not_panic() {
        let masked = mask_access_key("密钥密钥密钥密钥密钥密钥");
        assert_eq!(masked, "密钥密****钥密钥");
        assert_eq!(mask_access_key("ééééééééé"), "éé****éé");
        assert_eq!(mask_access_key("🔑"), "****");
    }

    proptest::proptest! {
        /// The hand-written search replaces exactly what `str::replace`
        /// would: every non-overlapping occurrence, left to right, also in
        /// texts with multi-byte characters and repeated prefixes.
        #[test]
        fn masking_in_text_replaces_what_str_replace_would(
            text in "[AKé1x]{0,40}",
            key in "[AKé1]{4,8}",
        ) {
            let expected = text.replace(&key, &mask_access_key(&key));
            proptest::prop_assert_eq!(mask_key_in_text(&text, &key), expected);
        }
    }

    #[test]
    fn keys_inside_text_group_keys_and_json() {
        let key = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA";
        assert_eq!(
            mask_key_in_text(&format!("Root key {key} called cam.AddUser"), key),
            "Root key AKIDz8****LPx3gnPhESA called cam.AddUser"
        );
        assert_eq!(mask_key_in_text("nothing here", key), "nothing here");
        assert_eq!(
            mask_group_key(&format!("access_key.id={key}")),
            "access_key.id=AKIDz8****LPx3gnPhESA"
        );
        assert_eq!(
            mask_group_key("principal.name=alice|access_key.id=AKIAIOSFODNN7EXAMPLE,-"),
            "principal.name=alice|access_key.id=AKIAI****AMPLE,-"
        );
        assert_eq!(mask_group_key("principal=123/alice"), "principal=123/alice");
        assert_eq!(mask_group_key("access_key.id=-"), "access_key.id=-");
        assert_eq!(
            mask_key_in_text("AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPLE"),
            "AKIAIOSFODNN7EXAMPL"
        );
        assert_eq!(
            mask_key_in_text("AAKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
            format!("A{}", mask_access_key("AKIAIOSFODNN7EXAMPLE"))
        );
        let once = mask_group_key(&format!("access_key.id={key}"));
        assert_eq!(mask_group_key(&once), once);
        let mut value = serde_json::json!({"a": [format!("x{key}y")], "b": {"c": key}, "d": 1});
        mask_keys_in_json(&mut value, &[key]);
        assert_eq!(
            value,
            serde_json::json!({"a": ["xAKIDz8****LPx3gnPhESAy"], "b": {"c": "AKIDz8****LPx3gnPhESA"}, "d": 1})
        );
    }

    #[test]
    fn keys_in_free_text_are_masked_by_their_prefix() {
        let text =
            r#"{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretId": "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA", "x": "AKIA"#;
        let masked = mask_recognisable_keys(text);
        assert!(!masked.contains("AKIAIOSFODNN7EXAMPLE") && !masked.contains("AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA"));
        assert!(masked.contains(&mask_access_key("AKIAIOSFODNN7EXAMPLE")));
        assert!(masked.contains(&mask_access_key("AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA")));
        assert!(
            masked.ends_with(r#""x": "AKIA"#),
            "a truncated prefix is left alone: {masked}"
        );
    }
}

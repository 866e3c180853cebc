//! Sigma detection items, compiled, and evaluated with Sigma's semantics:
//! strings match case-insensitively unless `cased`, numbers and booleans
//! match as their text, `*` and `?` are wildcards, a list of values is any
//! of them (all of them with `all`), and a field that is absent matches
//! only `null`.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use ipnet::IpNet;
use regex::Regex;

use crate::event::model::AuditEvent;
use crate::rules::field::{Field, Val};
use crate::text::{ends_with_ignore_case, starts_with_ignore_case};

/// How a string test compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    Exact,
    Contains,
    StartsWith,
    EndsWith,
}

/// A test on one value.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// `needle` is lower-cased unless `cased`.
    Str {
        op: StrOp,
        needle: String,
        cased: bool,
    },
    /// Wildcards, or `re`.
    Pattern(Arc<Regex>),
    Cidr(IpNet),
    Number(NumOp, f64),
    Bool(bool),
    Any(Vec<Matcher>),
    All(Vec<Matcher>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One detection item: a field and what its values must be.
#[derive(Clone, Debug)]
pub enum Item {
    /// Any value of the field passes `matcher` (for `Matcher::All`, each
    /// of its parts is passed by some value).
    Field { field: Field, matcher: Matcher },
    /// `field: null`: the field is absent or null.
    Null(Field),
    /// `field|exists: true/false`.
    Exists(Field, bool),
    /// `field|fieldref: other`: a value of `field` equals (contains, starts
    /// or ends with) a value of `other`.
    FieldRef {
        field: Field,
        other: Field,
        op: StrOp,
        cased: bool,
    },
    /// Keywords: any string value anywhere in the record passes.
    Keywords(Matcher),
}

/// Call `test` on each value of `field` until one passes. A path into the
/// record is walked as Sigma engines walk one: keys exactly as written
/// (native rules also accept them in another letter case), arrays fanned
/// out, strings never parsed as JSON.
fn any_value(field: &Field, event: &AuditEvent, test: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
    match field {
        Field::Raw(path) => exact_any(event.raw.for_path(path), path, test),
        other => other.any_value(event, test),
    }
}

fn exact_any(value: &serde_json::Value, path: &[String], test: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
    use serde_json::Value;
    match (value, path.split_first()) {
        (Value::Object(map), Some((head, rest))) => {
            map.get(head.as_str()).is_some_and(|child| exact_any(child, rest, test))
        }
        (Value::Array(items), _) => items.iter().any(|item| exact_any(item, path, test)),
        (_, Some(_)) | (Value::Null, None) => false,
        (Value::Bool(flag), None) => test(Val::Bool(*flag)),
        (Value::Number(number), None) => number.as_f64().is_some_and(|number| test(Val::Num(number))),
        (Value::String(text), None) => test(Val::Str(text)),
        (Value::Object(map), None) => !map.is_empty() && test(Val::Composite),
    }
}

impl Item {
    pub fn evaluate(&self, event: &AuditEvent) -> bool {
        match self {
            Item::Field {
                field,
                matcher: Matcher::All(parts),
            } => parts
                .iter()
                .all(|part| any_value(field, event, &mut |value| part.check(value))),
            Item::Field { field, matcher } => any_value(field, event, &mut |value| matcher.check(value)),
            Item::Null(field) => !any_value(field, event, &mut |_| true),
            Item::Exists(field, expected) => any_value(field, event, &mut |_| true) == *expected,
            Item::FieldRef {
                field,
                other,
                op,
                cased,
            } => {
                let mut wanted = Vec::new();
                any_value(other, event, &mut |value| {
                    if let Some(text) = text_of(value) {
                        wanted.push(if *cased { text.into_owned() } else { lower(&text) });
                    }
                    false
                });
                !wanted.is_empty()
                    && any_value(field, event, &mut |value| {
                        wanted.iter().any(|needle| {
                            Matcher::Str {
                                op: *op,
                                needle: needle.clone(),
                                cased: *cased,
                            }
                            .check(value)
                        })
                    })
            }
            Item::Keywords(matcher) => any_string(event.raw.value(), &mut |text| matcher.check(Val::Str(text))),
        }
    }
}

/// Every string (and number, as text) in a JSON value.
fn any_string(value: &serde_json::Value, test: &mut dyn FnMut(&str) -> bool) -> bool {
    match value {
        serde_json::Value::String(text) => test(text),
        serde_json::Value::Number(number) => test(&number.to_string()),
        serde_json::Value::Array(items) => items.iter().any(|item| any_string(item, test)),
        serde_json::Value::Object(map) => map.values().any(|item| any_string(item, test)),
        _ => false,
    }
}

/// A value as Sigma's string tests see it: text, numbers as their text,
/// booleans as `true` / `false`.
fn text_of(value: Val<'_>) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Val::Str(text) | Val::Addr { text, .. } => Some(text.into()),
        Val::Bool(flag) => Some(if flag { "true" } else { "false" }.into()),
        Val::Num(number) if number.fract() == 0.0 && number.abs() < 1e15 => Some((number as i64).to_string().into()),
        Val::Num(number) => Some(number.to_string().into()),
        Val::Operation(_) | Val::Composite => None,
    }
}

fn lower(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

impl Matcher {
    /// Whether one value passes.
    pub fn check(&self, value: Val<'_>) -> bool {
        match self {
            Matcher::Str { op, needle, cased } => {
                let Some(text) = text_of(value) else { return false };
                if *cased || !text.is_ascii() {
                    let owned;
                    let text: &str = if *cased {
                        &text
                    } else {
                        owned = text.to_lowercase();
                        &owned
                    };
                    return match op {
                        StrOp::Exact => text == needle,
                        StrOp::Contains => text.contains(needle.as_str()),
                        StrOp::StartsWith => text.starts_with(needle.as_str()),
                        StrOp::EndsWith => text.ends_with(needle.as_str()),
                    };
                }
                match op {
                    StrOp::Exact => text.eq_ignore_ascii_case(needle),
                    StrOp::Contains => contains_ignore_ascii_case(&text, needle),
                    StrOp::StartsWith => starts_with_ignore_case(&text, needle),
                    StrOp::EndsWith => ends_with_ignore_case(&text, needle),
                }
            }
            Matcher::Pattern(regex) => text_of(value).is_some_and(|text| regex.is_match(&text)),
            Matcher::Cidr(network) => ip_of(value).is_some_and(|ip| network.contains(&ip)),
            Matcher::Number(op, bound) => number_of(value).is_some_and(|number| match op {
                NumOp::Eq => number == *bound,
                NumOp::Gt => number > *bound,
                NumOp::Gte => number >= *bound,
                NumOp::Lt => number < *bound,
                NumOp::Lte => number <= *bound,
            }),
            Matcher::Bool(expected) => match value {
                Val::Bool(flag) => flag == *expected,
                Val::Num(1.0) => *expected,
                Val::Num(0.0) => !*expected,
                Val::Str(text) => match text.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => *expected,
                    "false" | "0" | "no" => !*expected,
                    _ => false,
                },
                _ => false,
            },
            Matcher::Any(parts) => parts.iter().any(|part| part.check(value)),
            Matcher::All(parts) => parts.iter().all(|part| part.check(value)),
        }
    }
}

/// `needle` is lower-case ASCII.
fn contains_ignore_ascii_case(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    text.windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

fn number_of(value: Val<'_>) -> Option<f64> {
    match value {
        Val::Num(number) => Some(number),
        Val::Str(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn ip_of(value: Val<'_>) -> Option<IpAddr> {
    match value {
        Val::Addr { ip, .. } => ip,
        Val::Str(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The modifiers of one item, read from `field|mod|mod`.
#[derive(Clone, Debug, Default)]
pub struct Modifiers {
    pub op: Option<StrOp>,
    pub all: bool,
    pub cased: bool,
    pub re: bool,
    pub re_flags: String,
    pub cidr: bool,
    pub exists: bool,
    pub number: Option<NumOp>,
    pub fieldref: bool,
    pub expand: bool,
    pub windash: bool,
    pub base64: bool,
    pub base64offset: bool,
    /// `utf16le` / `utf16be` / `utf16` (with BOM) / `wide` before base64.
    pub encoding: Option<&'static str>,
}

/// Modifiers this engine knows, for the refusal message.
pub const MODIFIERS: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "all",
    "cased",
    "re",
    "i",
    "m",
    "s",
    "cidr",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "fieldref",
    "expand",
    "windash",
    "base64",
    "base64offset",
    "utf16le",
    "utf16be",
    "utf16",
    "wide",
];

impl Modifiers {
    /// Read modifier names; the unknown one is the error.
    pub fn parse<'a>(names: impl Iterator<Item = &'a str>) -> Result<Modifiers, String> {
        let mut modifiers = Modifiers::default();
        for name in names {
            let set_op = |modifiers: &mut Modifiers, op| {
                if modifiers.op.is_some_and(|existing| existing != op) {
                    return Err(format!("modifier `{name}` conflicts with another string modifier"));
                }
                modifiers.op = Some(op);
                Ok(())
            };
            match name {
                "contains" => set_op(&mut modifiers, StrOp::Contains)?,
                "startswith" => set_op(&mut modifiers, StrOp::StartsWith)?,
                "endswith" => set_op(&mut modifiers, StrOp::EndsWith)?,
                "all" => modifiers.all = true,
                "cased" => modifiers.cased = true,
                "re" => modifiers.re = true,
                "i" | "m" | "s" => modifiers.re_flags.push_str(name),
                "cidr" => modifiers.cidr = true,
                "exists" => modifiers.exists = true,
                "gt" => modifiers.number = Some(NumOp::Gt),
                "gte" => modifiers.number = Some(NumOp::Gte),
                "lt" => modifiers.number = Some(NumOp::Lt),
                "lte" => modifiers.number = Some(NumOp::Lte),
                "fieldref" => modifiers.fieldref = true,
                "expand" => modifiers.expand = true,
                "windash" => modifiers.windash = true,
                "base64" => modifiers.base64 = true,
                "base64offset" => modifiers.base64offset = true,
                "utf16le" | "wide" => modifiers.encoding = Some("utf16le"),
                "utf16be" => modifiers.encoding = Some("utf16be"),
                "utf16" => modifiers.encoding = Some("utf16"),
                other => {
                    return Err(format!(
                        "modifier `{other}` is not supported (supported: {})",
                        MODIFIERS.join(", ")
                    ));
                }
            }
        }
        if !modifiers.re_flags.is_empty() && !modifiers.re {
            return Err("the regex flags `i`, `m` and `s` need the `re` modifier".into());
        }
        if modifiers.encoding.is_some() && !(modifiers.base64 || modifiers.base64offset) {
            return Err("`utf16le`, `utf16be`, `utf16` and `wide` need `base64` or `base64offset`".into());
        }
        Ok(modifiers)
    }
}

/// A YAML scalar of a detection value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// One value under the item's modifiers (`placeholders` for `expand`).
/// The matchers it yields are alternatives (any of them passes).
pub fn value_matchers(
    value: &Scalar,
    modifiers: &Modifiers,
    placeholders: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<Vec<Matcher>, String> {
    if let Some(op) = modifiers.number {
        let number = match value {
            Scalar::Int(number) => *number as f64,
            Scalar::Float(number) => *number,
            Scalar::Str(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a number, which the comparison needs"))?,
            other => return Err(format!("{other:?} is not a number, which the comparison needs")),
        };
        return Ok(vec![Matcher::Number(op, number)]);
    }
    let text = match value {
        Scalar::Str(text) => text.clone(),
        Scalar::Int(number) if modifiers.op.is_none() && !modifiers.re => {
            return Ok(vec![Matcher::Number(NumOp::Eq, *number as f64)]);
        }
        Scalar::Float(number) if modifiers.op.is_none() && !modifiers.re => {
            return Ok(vec![Matcher::Number(NumOp::Eq, *number)]);
        }
        Scalar::Int(number) => number.to_string(),
        Scalar::Float(number) => number.to_string(),
        Scalar::Bool(flag) => return Ok(vec![Matcher::Bool(*flag)]),
        Scalar::Null => return Err("null cannot take modifiers".into()),
    };
    if modifiers.re {
        let mut flags = String::new();
        for flag in ['i', 'm', 's'] {
            if modifiers.re_flags.contains(flag) {
                flags.push(flag);
            }
        }
        let pattern = if flags.is_empty() {
            text.clone()
        } else {
            format!("(?{flags}){text}")
        };
        let regex = Regex::new(&pattern).map_err(|error| format!("bad regex `{text}`: {error}"))?;
        return Ok(vec![Matcher::Pattern(Arc::new(regex))]);
    }
    if modifiers.cidr {
        let network = crate::rules::condition::parse_network(&text).ok_or_else(|| format!("`{text}` is not a CIDR"))?;
        return Ok(vec![Matcher::Cidr(network)]);
    }
    // Text variants: expanded placeholders, then dash variants, then encodings.
    let mut texts = vec![text];
    if modifiers.expand {
        texts = expand(&texts[0], placeholders)?;
    }
    if modifiers.windash {
        texts = texts.iter().flat_map(|text| windash(text)).collect();
    }
    let op = modifiers.op.unwrap_or(StrOp::Exact);
    if modifiers.base64 || modifiers.base64offset {
        let mut matchers = Vec::new();
        for text in &texts {
            let bytes = encode_text(text, modifiers.encoding);
            let encoded = if modifiers.base64offset {
                base64_offsets(&bytes)
            } else {
                vec![base64::engine::general_purpose::STANDARD.encode(&bytes)]
            };
            for encoded in encoded {
                // Base64 text is compared as it is: its case carries data.
                matchers.push(Matcher::Str {
                    op: if modifiers.base64offset { StrOp::Contains } else { op },
                    needle: encoded,
                    cased: true,
                });
            }
        }
        return Ok(matchers);
    }
    texts
        .iter()
        .map(|text| string_matcher(text, op, modifiers.cased))
        .collect()
}

/// A Sigma string (with `*`, `?` and `\` escapes) under a string operation.
pub fn string_matcher(text: &str, op: StrOp, cased: bool) -> Result<Matcher, String> {
    let pieces = wildcard_pieces(text);
    let has_wildcards = pieces.iter().any(|piece| !matches!(piece, Piece::Text(_)));
    if !has_wildcards {
        let literal: String = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_str(),
                _ => "",
            })
            .collect();
        return Ok(Matcher::Str {
            op,
            needle: if cased { literal } else { lower(&literal) },
            cased,
        });
    }
    let mut pattern = String::from(if cased { "(?s)" } else { "(?si)" });
    if matches!(op, StrOp::Exact | StrOp::StartsWith) {
        pattern.push('^');
    }
    for piece in &pieces {
        match piece {
            Piece::Text(text) => pattern.push_str(&regex::escape(text)),
            Piece::Star => pattern.push_str(".*"),
            Piece::Question => pattern.push('.'),
        }
    }
    if matches!(op, StrOp::Exact | StrOp::EndsWith) {
        pattern.push('$');
    }
    Regex::new(&pattern)
        .map(|regex| Matcher::Pattern(Arc::new(regex)))
        .map_err(|error| format!("cannot compile the wildcard value `{text}`: {error}"))
}

enum Piece {
    Text(String),
    Star,
    Question,
}

/// Split a Sigma string at its wildcards: `\*`, `\?` and `\\` are the
/// characters themselves, any other backslash is a backslash.
fn wildcard_pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(char) = chars.next() {
        match char {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                current.extend(chars.next());
            }
            '*' | '?' => {
                if !current.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut current)));
                }
                pieces.push(if char == '*' { Piece::Star } else { Piece::Question });
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        pieces.push(Piece::Text(current));
    }
    pieces
}

/// `%name%` placeholders replaced by each of their configured values.
fn expand(text: &str, placeholders: &dyn Fn(&str) -> Option<Vec<String>>) -> Result<Vec<String>, String> {
    let Some(start) = text.find('%') else {
        return Ok(vec![text.to_string()]);
    };
    let Some(length) = text[start + 1..].find('%') else {
        return Ok(vec![text.to_string()]);
    };
    let name = &text[start + 1..start + 1 + length];
    let values = placeholders(name)
        .ok_or_else(|| format!("placeholder `%{name}%` has no values (set it under `[rules.sigma_placeholders]`)"))?;
    let rest = expand(&text[start + 2 + length..], placeholders)?;
    let mut out = Vec::new();
    for value in &values {
        for tail in &rest {
            out.push(format!("{}{value}{tail}", &text[..start]));
        }
    }
    Ok(out)
}

/// The dash characters `windash` tries in place of a leading `-` or `/`.
const DASHES: [char; 5] = ['-', '/', '–', '—', '―'];

/// Every spelling of `text` with each option dash (a `-` or `/` at the
/// start of a word) replaced by each of `DASHES`; at most 4 such dashes
/// vary, the rest stay as written.
fn windash(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let positions: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(at, char)| matches!(char, '-' | '/') && (*at == 0 || chars[*at - 1].is_whitespace()))
        .map(|(at, _)| at)
        .take(4)
        .collect();
    let mut out = vec![chars.clone()];
    for position in positions {
        out = out
            .into_iter()
            .flat_map(|variant| {
                DASHES.iter().map(move |dash| {
                    let mut variant = variant.clone();
                    variant[position] = *dash;
                    variant
                })
            })
            .collect();
    }
    out.into_iter().map(|chars| chars.into_iter().collect()).collect()
}

fn encode_text(text: &str, encoding: Option<&str>) -> Vec<u8> {
    match encoding {
        Some("utf16le") => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Some("utf16be") => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Some("utf16") => [0xff, 0xfe]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        _ => text.as_bytes().to_vec(),
    }
}

/// The three base64 spellings of `bytes` at offsets 0, 1 and 2 of a longer
/// encoded text, without the characters its neighbours change.
fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|shift| {
            let mut padded = vec![b' '; shift];
            padded.extend_from_slice(bytes);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&padded);
            let end = encoded.len().saturating_sub(END[(bytes.len() + shift) % 3]);
            encoded.get(START[shift]..end).unwrap_or("").to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(matcher: &Matcher, text: &str) -> bool {
        matcher.check(Val::Str(text))
    }

    #[test]
    fn plain_strings_match_whole_values_in_any_case() {
        let matcher = string_matcher("DeleteTrail", StrOp::Exact, false).unwrap();
        assert!(check(&matcher, "deletetrail"));
        assert!(!check(&matcher, "DeleteTrails"));
        let cased = string_matcher("DeleteTrail", StrOp::Exact, true).unwrap();
        assert!(!check(&cased, "deletetrail"));
    }

    #[test]
    fn wildcards_and_their_escapes() {
        let matcher = string_matcher("arn:aws:iam::*:role/?dmin", StrOp::Exact, false).unwrap();
        assert!(check(&matcher, "arn:aws:iam::123:role/Admin"));
        assert!(!check(&matcher, "arn:aws:iam::123:role/Admin2"));
        let literal = string_matcher(r"a\*b", StrOp::Exact, false).unwrap();
        assert!(check(&literal, "a*b"));
        assert!(!check(&literal, "axxb"));
        let contains = string_matcher("ad*in", StrOp::Contains, false).unwrap();
        assert!(check(&contains, "the ADMIN user"));
    }

    #[test]
    fn numbers_match_numbers_and_their_text() {
        let matchers = value_matchers(&Scalar::Int(443), &Modifiers::default(), &|_| None).unwrap();
        assert!(matchers[0].check(Val::Num(443.0)));
        assert!(matchers[0].check(Val::Str("443")));
        let contains = Modifiers {
            op: Some(StrOp::Contains),
            ..Modifiers::default()
        };
        let matchers = value_matchers(&Scalar::Str("44".into()), &contains, &|_| None).unwrap();
        assert!(matchers[0].check(Val::Num(443.0)));
    }

    #[test]
    fn base64offset_finds_the_text_at_any_alignment() {
        let modifiers = Modifiers::parse(["base64offset", "contains"].into_iter()).unwrap();
        let matchers = value_matchers(&Scalar::Str("http://".into()), &modifiers, &|_| None).unwrap();
        for prefix in ["", "a", "ab"] {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}http://x.example"));
            assert!(
                matchers.iter().any(|matcher| check(matcher, &encoded)),
                "{prefix:?}: {encoded}"
            );
        }
    }

    #[test]
    fn windash_tries_every_dash() {
        let variants = windash("-enc /c x-y");
        assert_eq!(variants.len(), 25);
        assert!(variants.contains(&"/enc -c x-y".to_string()));
        assert!(variants.contains(&"—enc –c x-y".to_string()));
    }

    #[test]
    fn expand_fills_placeholders_and_refuses_unknown_ones() {
        let values = |name: &str| (name == "admins").then(|| vec!["alice".to_string(), "bob".to_string()]);
        assert_eq!(expand("user/%admins%", &values).unwrap(), ["user/alice", "user/bob"]);
        assert!(expand("%nobody%", &values).unwrap_err().contains("nobody"));
    }

    #[test]
    fn unknown_modifiers_are_refused_by_name() {
        let error = Modifiers::parse(["contains", "sounds_like"].into_iter()).unwrap_err();
        assert!(error.contains("sounds_like"), "{error}");
        assert!(Modifiers::parse(["i"].into_iter()).is_err());
    }
}

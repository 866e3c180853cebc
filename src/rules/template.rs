//! Output templates: `"{principal.name} called {action} from {source_ip}"`.
//!
//! Compiled once into literal and field segments; a field with several values
//! renders them comma-separated, a missing one renders `-`.

use super::diag::{FileCtx, Problem, suggest};
use super::field::{FIELD_NAMES, Field};
use super::operations::OperationCatalog;
use super::state::{EngineState, state_key};
use super::yaml::Loc;
use crate::event::model::AuditEvent;

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Literal(String),
    Field(Field),
    /// `{title}`: the rule's title.
    Title,
    /// `{time}`: the event time, RFC 3339 UTC.
    Time,
    /// `{key_idle}`: how long the access key had been unused and who says so
    /// ("idle 46 days (from the key inventory)", "idle 46 days (last seen by
    /// trailwarden)", "first seen by trailwarden").
    KeyIdle,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Used when a rule has no `output`.
pub const DEFAULT_OUTPUT: &str =
    "{title}: {principal.name} ({principal.kind}, account {account_id}) called {service}.{action} from {source_ip}";

impl Template {
    /// Whether rendering it reads a `raw.` path.
    pub fn reads_raw(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Field(field) if field.is_raw()))
    }

    pub fn compile(ctx: &mut FileCtx<'_>, text: &str, loc: Loc) -> Template {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            // `{{` is a literal brace.
            if let Some(stripped) = after.strip_prefix('{') {
                literal.push('{');
                rest = stripped;
                continue;
            }
            let Some(close) = after.find('}') else {
                ctx.error(loc, Problem::BadValue, "unclosed `{` in output template");
                literal.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let name = after[..close].trim();
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            if name == "title" {
                segments.push(Segment::Title);
            } else if name == "time" {
                segments.push(Segment::Time);
            } else if name == "key_idle" {
                segments.push(Segment::KeyIdle);
            } else {
                match Field::parse(name) {
                    Some(field) => segments.push(Segment::Field(field)),
                    None => {
                        let hint = suggest(name, FIELD_NAMES.iter().copied())
                            .map(|best| format!(" (did you mean `{best}`?)"))
                            .unwrap_or_default();
                        ctx.error(
                            loc,
                            Problem::UnknownField,
                            format!("unknown field `{{{name}}}` in output template{hint}"),
                        );
                    }
                }
            }
            rest = &after[close + 1..];
        }
        literal.push_str(&rest.replace("}}", "}"));
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Template { segments }
    }

    pub fn render(
        &self,
        title: &str,
        event: &AuditEvent,
        state: Option<&EngineState>,
        catalog: &OperationCatalog,
        scratch: &mut Vec<String>,
    ) -> String {
        let mut out = String::with_capacity(128);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Title => out.push_str(title),
                Segment::Time => out.push_str(&crate::time::timestamp(event.time)),
                Segment::KeyIdle => key_idle(event, state, &mut out),
                Segment::Field(field) => {
                    field.collect_text(event, catalog, scratch);
                    if scratch.is_empty() {
                        out.push('-');
                    } else {
                        out.push_str(&scratch.join(","));
                    }
                }
            }
        }
        out
    }
}

/// `{key_idle}` as the engine knows it before this event: the key's last
/// use and whether that came from the key inventory or an event.
fn key_idle(event: &AuditEvent, state: Option<&EngineState>, out: &mut String) {
    use std::fmt::Write;
    let Some(key) = event.access_key.as_ref().filter(|key| !key.temporary) else {
        out.push('-');
        return;
    };
    let Some(state) = state else {
        out.push('-');
        return;
    };
    match state.keys.get(state_key(&[event.provider.as_str(), &key.id])) {
        None => out.push_str("first seen by trailwarden"),
        Some(seen) => {
            let days = (event.time.timestamp_millis() - seen.last_ms).max(0) / 86_400_000;
            let unit = if days == 1 { "day" } else { "days" };
            let source = if seen.from_inventory {
                "from the key inventory"
            } else {
                "last seen by trailwarden"
            };
            let _ = write!(out, "idle {days} {unit} ({source})");
        }
    }
}

//! Output templates: `"{principal.name} called {action} from {source_ip}"`.
//!
//! Compiled once into literal and field segments; a field with several values
//! renders them comma-separated, a missing one renders `-`.

use super::diag::{FileCtx, Problem, suggest};
use super::field::{FIELD_NAMES, Field};
use super::operations::OperationCatalog;
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
        catalog: &OperationCatalog,
        scratch: &mut Vec<String>,
    ) -> String {
        let mut out = String::with_capacity(128);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Title => out.push_str(title),
                Segment::Time => out.push_str(&crate::time::timestamp(event.time)),
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

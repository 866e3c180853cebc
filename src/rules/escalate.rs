//! `escalate:`: a rule's alarm rises in level as its count grows.
//!
//! ```yaml
//!     level: low
//!     escalate: [{count: 30, level: medium}, {count: 300, level: high}]
//! ```
//! The store applies the marks (`alarm::store::write`), on the alarm's total
//! count, and a rise is notified as an escalation.

use super::Level;
use super::diag::{FileCtx, Problem};
use super::yaml::{Node, NodeValue};

/// `escalate: [{count: 10, level: medium}, {count: 100, level: high}]`: each
/// mark's count above the last, each level above the rule's and the last.
pub(super) fn compile(ctx: &mut FileCtx<'_>, node: &Node, floor: Option<Level>) -> Vec<(u64, Level)> {
    let mut marks: Vec<(u64, Level)> = Vec::new();
    let items: &[Node] = match &node.value {
        NodeValue::Seq(items) => items,
        _ => {
            ctx.error(
                node.loc,
                Problem::WrongType,
                format!("`escalate` must be a list, found {}", node.kind_name()),
            );
            return marks;
        }
    };
    for item in items {
        let Some(mut map) = ctx.map(item, "an `escalate` mark") else {
            continue;
        };
        let count = map.required(ctx, "count").and_then(|value| {
            match value.scalar_text().and_then(|text| text.trim().parse::<u64>().ok()) {
                Some(count) if count >= 2 => Some(count),
                _ => {
                    ctx.error(
                        value.loc,
                        Problem::BadValue,
                        "`escalate.count` takes a whole number of matches, 2 or more",
                    );
                    None
                }
            }
        });
        let level = map
            .required(ctx, "level")
            .and_then(|value| super::load::parse_level(ctx, value, "`escalate.level`"));
        map.finish(ctx, &["count", "level"]);
        let (Some(count), Some(level)) = (count, level) else {
            continue;
        };
        let (last_count, last_level) = marks.last().copied().unwrap_or((1, floor.unwrap_or(Level::Info)));
        if count <= last_count || level <= last_level {
            ctx.error(
                item.loc,
                Problem::BadValue,
                format!(
                    "`escalate` marks must rise in count and level (above {last_count} matches and level {last_level})"
                ),
            );
            continue;
        }
        marks.push((count, level));
    }
    marks
}

/// The level of an alarm of a rule at `level` with these marks, once its
/// count is `total`.
pub fn level_at(marks: &[(u64, Level)], level: Level, total: u64) -> Level {
    marks
        .iter()
        .rev()
        .find(|(mark, _)| total >= *mark)
        .map_or(level, |(_, raised)| (*raised).max(level))
}

/// A rule's marks as the API and `rules list` show them.
pub fn to_json(marks: &[(u64, Level)]) -> serde_json::Value {
    marks
        .iter()
        .map(|(count, level)| serde_json::json!({"count": count, "level": level}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mark_reached_sets_the_level() {
        let marks = [(30, Level::Medium), (300, Level::High)];
        assert_eq!(level_at(&marks, Level::Low, 1), Level::Low);
        assert_eq!(level_at(&marks, Level::Low, 29), Level::Low);
        assert_eq!(level_at(&marks, Level::Low, 30), Level::Medium);
        assert_eq!(level_at(&marks, Level::Low, 1000), Level::High);
        assert_eq!(level_at(&[], Level::Medium, 1000), Level::Medium);
    }
}

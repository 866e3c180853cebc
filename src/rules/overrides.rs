//! Operator overrides of compiled rules: `rule:` entries of override files
//! (level, title, output, tags, enabled, exceptions) and the configuration's
//! switches (`rules.disabled`, `disabled_tags`, `enabled`). They apply to
//! native and Sigma rules alike, by id.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::condition::CompileEnv;
use super::diag::{Diagnostics, FileCtx, Problem};
use super::load::RuleOptions;
use super::template::Template;
use super::yaml::{Loc, Node};
use super::{Level, Rule};

const OVERRIDE_KEYS: &[&str] = &["rule", "level", "enabled", "title", "output", "tags", "exceptions"];

/// Apply one `rule:` override to a compiled rule.
pub(super) fn apply_rule_override(ctx: &mut FileCtx<'_>, env: &mut CompileEnv<'_>, node: &Node, rules: &mut [Rule]) {
    let Some(mut map) = ctx.map(node, "a rule override") else {
        return;
    };
    let id_node = map.required(ctx, "rule");
    let id = id_node.and_then(|value| ctx.text(value, "`rule`"));
    let level = map.get("level");
    let enabled = map.get("enabled");
    let title = map.get("title");
    let output = map.get("output");
    let tags = map.get("tags");
    let exceptions = map.get("exceptions");
    map.finish(ctx, OVERRIDE_KEYS);
    let (Some(id), Some(id_node)) = (id, id_node) else {
        return;
    };
    let Some(rule) = rules.iter_mut().find(|rule| rule.id == id) else {
        let known: Vec<&str> = rules.iter().map(|rule| rule.id.as_str()).collect();
        let hint = super::diag::suggest(&id, known)
            .map(|best| format!(" (did you mean `{best}`?)"))
            .unwrap_or_default();
        ctx.error(
            id_node.loc,
            Problem::UnknownRule,
            format!("override of unknown rule `{id}`{hint}"),
        );
        return;
    };
    if let Some(level) = level
        && let Some(text) = ctx.text(level, "`level`")
    {
        match Level::parse(&text) {
            Some(parsed) => rule.level = parsed,
            None => ctx.error(
                level.loc,
                Problem::BadValue,
                format!("level `{text}` is not one of info, low, medium, high"),
            ),
        }
    }
    if let Some(flag) = enabled.and_then(|value| ctx.boolean(value, "`enabled`")) {
        rule.enabled = flag;
    }
    if let Some(text) = title.and_then(|value| ctx.text(value, "`title`")) {
        rule.title = text;
    }
    if let Some(value) = output
        && let Some(text) = ctx.text(value, "`output`")
    {
        rule.output = Template::compile(ctx, &text, value.loc);
    }
    if let Some(value) = tags {
        rule.tags = ctx.text_list(value, "`tags`").into_iter().map(|(tag, _)| tag).collect();
    }
    if let Some(value) = exceptions {
        let added = super::exceptions::compile_exceptions(ctx, env, value);
        rule.exceptions.extend(added);
    }
    // The override is part of the rule's effective version.
    let mut hasher = Sha256::new();
    hasher.update(rule.hash.as_bytes());
    hasher.update(node.to_json().to_string().as_bytes());
    rule.hash = hex::encode(&hasher.finalize()[..8]);
}

/// Config switches: `disabled` ids and tags off, `enabled` ids on.
pub(super) fn apply_switches(rules: &mut [Rule], options: &RuleOptions, diagnostics: &mut Diagnostics) {
    let known = |id: &String| rules.iter().any(|rule| &rule.id == id);
    for id in options.disabled.iter().chain(&options.enabled) {
        if !known(id) {
            diagnostics.push(
                &Arc::from("config rules.disabled / rules.enabled"),
                Loc::default(),
                Problem::UnknownRule,
                format!("no rule has the id `{id}`"),
            );
        }
    }
    for rule in rules.iter_mut() {
        if options.disabled.contains(&rule.id) || rule.tags.iter().any(|tag| options.disabled_tags.contains(tag)) {
            rule.enabled = false;
        }
        if options.enabled.contains(&rule.id) || options.enable_all {
            rule.enabled = true;
        }
    }
}

//! Reading rule files: reader → collector → compiler.
//!
//! A rules directory holds `operations.yaml` (the catalog) and any number of
//! `*.yaml` / `*.yml` files with `lists`, `macros` and `rules` sections. Lists
//! and macros are shared across files. Every problem is collected with its
//! location; the set is only returned when there are none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::condition::{CompileEnv, Cond, ListDef, MacroDef};
use super::diag::{Diagnostics, FileCtx, Problem};
use super::engine::RuleIndex;
use super::field::Field;
use super::operations::{OperationCatalog, load_catalog};
use super::template::{DEFAULT_OUTPUT, Template};
use super::yaml::{self, Loc, Node};
use super::{Level, Rule, RuleSet};
use crate::event::model::Provider;

/// The catalog's file name inside a rules directory.
pub const OPERATIONS_FILE: &str = "operations.yaml";

/// Settings that shape a compile.
#[derive(Clone, Debug)]
pub struct RuleOptions {
    /// Zone of `time` windows that name none (config `rules.timezone`).
    pub default_timezone: Tz,
    /// Rule ids switched off (config `rules.disabled`).
    pub disabled: Vec<String>,
    /// Rules with any of these tags switched off.
    pub disabled_tags: Vec<String>,
    /// Rule ids switched on whatever else says (config `rules.enabled`).
    pub enabled: Vec<String>,
    /// Operator override files, applied in order after the rule directory.
    pub overrides: Vec<PathBuf>,
    /// Enable every rule (for running embedded tests of disabled rules too).
    pub enable_all: bool,
    /// Directories of Sigma rules (config `rules.sigma_dirs`), loaded beside the pack.
    pub sigma_dirs: Vec<PathBuf>,
    /// Logsource mappings and `expand` placeholders for Sigma rules.
    pub sigma: super::sigma::SigmaSettings,
}

impl Default for RuleOptions {
    fn default() -> RuleOptions {
        RuleOptions {
            default_timezone: chrono_tz::Asia::Shanghai,
            disabled: Vec::new(),
            disabled_tags: Vec::new(),
            enabled: Vec::new(),
            overrides: Vec::new(),
            enable_all: false,
            sigma_dirs: Vec::new(),
            sigma: super::sigma::SigmaSettings {
                logsources: super::sigma::mapping::builtin_logsources(),
                placeholders: Vec::new(),
                cross_cloud_dirs: Vec::new(),
            },
        }
    }
}

const FILE_KEYS: &[&str] = &["lists", "macros", "rules"];
const RULE_KEYS: &[&str] = &[
    "id",
    "title",
    "level",
    "description",
    "rationale",
    "remediation",
    "false_positives",
    "mitre",
    "references",
    "tags",
    "enabled",
    "match",
    "state",
    "group_by",
    "escalate",
    "output",
    "exceptions",
    "tests",
];

/// A level (`info`, `low`, `medium`, `high`), or a located error.
pub(super) fn parse_level(ctx: &mut FileCtx<'_>, value: &Node, what: &str) -> Option<Level> {
    let text = ctx.text(value, what)?;
    let level = Level::parse(&text);
    if level.is_none() {
        ctx.error(
            value.loc,
            Problem::BadValue,
            format!("level `{text}` is not one of info, low, medium, high"),
        );
    }
    level
}

/// A rule's node, waiting for compilation once every file is read.
struct PendingRule {
    file: Arc<str>,
    node: Node,
}

/// Load and compile every rule file under `dir`.
pub fn load_rules(dir: &Path, options: &RuleOptions) -> Result<RuleSet, Diagnostics> {
    match load_rules_partial(dir, options) {
        (Some(set), diagnostics) if diagnostics.is_empty() => Ok(set),
        (_, diagnostics) => Err(diagnostics),
    }
}

/// Like `load_rules`, but also returns the rules that did compile when
/// others did not (for reporting every problem, failing tests included).
pub fn load_rules_partial(dir: &Path, options: &RuleOptions) -> (Option<RuleSet>, Diagnostics) {
    let mut diagnostics = Diagnostics::default();
    let files = match rule_files(dir) {
        Ok(files) => files,
        Err(error) => {
            diagnostics.push(
                &Arc::from(dir.display().to_string()),
                Loc::default(),
                Problem::Io,
                error,
            );
            return (None, diagnostics);
        }
    };
    let catalog_path = dir.join(OPERATIONS_FILE);
    let catalog = match std::fs::read_to_string(&catalog_path) {
        Ok(text) => load_catalog(&catalog_path.display().to_string(), &text, &mut diagnostics),
        Err(error) => {
            diagnostics.push(
                &Arc::from(catalog_path.display().to_string()),
                Loc::default(),
                Problem::Io,
                format!(
                    "cannot read the operations catalog {}: {error}",
                    std::path::absolute(&catalog_path)
                        .unwrap_or_else(|_| catalog_path.clone())
                        .display()
                ),
            );
            OperationCatalog::default()
        }
    };
    let sources = read_sources(&files, "cannot read", &mut diagnostics);
    let override_sources = read_sources(&options.overrides, "cannot read override file", &mut diagnostics);
    let mut sigma_sources = Vec::new();
    for dir in &options.sigma_dirs {
        let files = match sigma_files(dir) {
            Ok(files) => files,
            Err(error) => {
                diagnostics.push(
                    &Arc::from(dir.display().to_string()),
                    Loc::default(),
                    Problem::Io,
                    error,
                );
                continue;
            }
        };
        sigma_sources.extend(read_sources(&files, "cannot read", &mut diagnostics));
    }
    let result = compile_sources(
        &sources,
        &override_sources,
        &sigma_sources,
        catalog,
        options,
        &mut diagnostics,
    );
    (result, diagnostics)
}

/// The text of each file (named by its path); a file that cannot be read
/// is a located problem (`what`: "cannot read …").
fn read_sources(paths: &[PathBuf], what: &str, diagnostics: &mut Diagnostics) -> Vec<(Arc<str>, String)> {
    let mut sources = Vec::new();
    for path in paths {
        let name: Arc<str> = Arc::from(path.display().to_string());
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push((name, text)),
            Err(error) => diagnostics.push(&name, Loc::default(), Problem::Io, format!("{what}: {error}")),
        }
    }
    sources
}

/// Rule files under `dir`, recursively, sorted, without the catalog.
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let accept = |path: &Path| {
        matches!(path.extension().and_then(|ext| ext.to_str()), Some("yaml" | "yml"))
            && path.file_name().and_then(|name| name.to_str()) != Some(OPERATIONS_FILE)
    };
    // The absolute path: a relative `rules.dir` is resolved against the working
    // directory, which is what a "not found" usually gets wrong.
    crate::source::file::walk_files(dir, &accept).map_err(|error| {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        format!(
            "cannot read rules directory {}: {error} (set `rules.dir`, or pass the directory)",
            absolute.display()
        )
    })
}

/// Sigma rule files under `dir`, recursively, sorted.
pub fn sigma_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let accept = |path: &Path| matches!(path.extension().and_then(|ext| ext.to_str()), Some("yaml" | "yml"));
    crate::source::file::walk_files(dir, &accept).map_err(|error| {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        format!(
            "cannot read Sigma rules directory {}: {error} (set `rules.sigma_dirs`)",
            absolute.display()
        )
    })
}

/// Compile rule sources (name, text) and Sigma rule sources against a catalog. Returns `None` only
/// when nothing could be compiled at all; check `diagnostics` either way.
pub fn compile_sources(
    sources: &[(Arc<str>, String)],
    overrides: &[(Arc<str>, String)],
    sigma_sources: &[(Arc<str>, String)],
    catalog: OperationCatalog,
    options: &RuleOptions,
    diagnostics: &mut Diagnostics,
) -> Option<RuleSet> {
    let mut lists: HashMap<String, ListDef> = HashMap::new();
    let mut macros: HashMap<String, MacroDef> = HashMap::new();
    let mut pending: Vec<PendingRule> = Vec::new();
    let mut trees = Vec::new();

    // Reader: parse every file, the files on threads of their own (parsing
    // is most of loading a pack, and the daemon waits for it at start and
    // at every reload).
    for (name, parsed) in sources.iter().zip(yaml::parse_sources(sources)) {
        match parsed {
            Ok(tree) => trees.push((name.0.clone(), tree)),
            Err(error) => diagnostics.push(
                &name.0,
                error.loc,
                Problem::Syntax,
                format!("YAML syntax: {}", error.message),
            ),
        }
    }
    // Collector: lists, macros and rule nodes from every file.
    let mut rule_overrides: Vec<(Arc<str>, Node)> = Vec::new();
    for (name, tree) in &trees {
        let mut ctx = FileCtx {
            file: name.clone(),
            diagnostics: &mut *diagnostics,
        };
        collect_file(
            &mut ctx,
            tree,
            FileKind::Pack,
            &mut lists,
            &mut macros,
            &mut pending,
            &mut rule_overrides,
        );
    }
    // Override files: replace or extend lists and macros, add rules, and
    // collect changes to existing rules (applied once they are compiled).
    for (name, text) in overrides {
        let tree = match yaml::parse(text) {
            Ok(tree) => tree,
            Err(error) => {
                diagnostics.push(
                    name,
                    error.loc,
                    Problem::Syntax,
                    format!("YAML syntax: {}", error.message),
                );
                continue;
            }
        };
        let mut ctx = FileCtx {
            file: name.clone(),
            diagnostics: &mut *diagnostics,
        };
        collect_file(
            &mut ctx,
            &tree,
            FileKind::Override,
            &mut lists,
            &mut macros,
            &mut pending,
            &mut rule_overrides,
        );
    }
    // Compiler.
    let mut env = CompileEnv {
        lists: &lists,
        macros: &macros,
        catalog: &catalog,
        default_timezone: options.default_timezone,
        compiled_macros: HashMap::new(),
        used: Vec::new(),
    };
    let mut rules = Vec::new();
    let mut seen_ids: HashMap<String, (Arc<str>, Loc)> = HashMap::new();
    for pending_rule in &pending {
        let mut ctx = FileCtx {
            file: pending_rule.file.clone(),
            diagnostics: &mut *diagnostics,
        };
        if let Some(rule) = compile_rule(&mut ctx, &mut env, &pending_rule.node) {
            admit(&mut ctx, &mut seen_ids, &mut rules, rule);
        }
    }
    // Sigma rules, before the overrides, which may change them too.
    for rule in super::sigma::load::compile_sigma_sources(sigma_sources, &options.sigma, &catalog, diagnostics) {
        let mut ctx = FileCtx {
            file: rule.file.clone(),
            diagnostics: &mut *diagnostics,
        };
        admit(&mut ctx, &mut seen_ids, &mut rules, rule);
    }
    for (file, node) in &rule_overrides {
        let mut ctx = FileCtx {
            file: file.clone(),
            diagnostics: &mut *diagnostics,
        };
        super::overrides::apply_rule_override(&mut ctx, &mut env, node, &mut rules);
    }
    super::overrides::apply_switches(&mut rules, options, diagnostics);
    // Report problems in macros no rule used.
    let mut unused: Vec<&MacroDef> = macros
        .values()
        .filter(|definition| !env.compiled_macros.contains_key(&definition.name))
        .collect();
    unused.sort_by_key(|definition| (definition.file.clone(), definition.loc));
    for definition in unused {
        let mut ctx = FileCtx {
            file: definition.file.clone(),
            diagnostics: &mut *diagnostics,
        };
        env.compile(
            &mut ctx,
            &Node {
                value: yaml::NodeValue::Map(vec![(
                    Node {
                        value: yaml::NodeValue::Str("macro".into()),
                        loc: definition.loc,
                    },
                    Node {
                        value: yaml::NodeValue::Str(definition.name.clone()),
                        loc: definition.loc,
                    },
                )]),
                loc: definition.loc,
            },
        );
    }
    let index = RuleIndex::build(&rules, catalog.len());
    let (every, actions) = RuleIndex::raw_readers(&rules, &catalog);
    crate::event::raw_paths::register_raw_actions(&every, &actions);
    let version = {
        let mut hasher = Sha256::new();
        hasher.update(catalog.digest.as_bytes());
        for rule in &rules {
            hasher.update(rule.id.as_bytes());
            hasher.update(rule.hash.as_bytes());
            hasher.update([u8::from(rule.enabled)]);
        }
        hex::encode(&hasher.finalize()[..8])
    };
    let user_create_operation = catalog.index_of("iam.user.create");
    let tracks_addresses = rules
        .iter()
        .any(|rule| rule.enabled && rule.state.as_ref().is_some_and(|spec| spec.new_address.is_some()));
    Some(RuleSet {
        rules,
        catalog,
        index,
        version,
        user_create_operation,
        tracks_addresses,
    })
}

/// Add a compiled rule unless its id is taken (then say where it was first defined).
fn admit(ctx: &mut FileCtx<'_>, seen_ids: &mut HashMap<String, (Arc<str>, Loc)>, rules: &mut Vec<Rule>, rule: Rule) {
    if let Some((first_file, first_loc)) = seen_ids.get(&rule.id) {
        ctx.error(
            rule.loc,
            Problem::Duplicate,
            format!("rule id `{}` is already defined at {first_file}:{first_loc}", rule.id),
        );
        return;
    }
    seen_ids.insert(rule.id.clone(), (rule.file.clone(), rule.loc));
    rules.push(rule);
}

/// Whether a file is part of the pack or an operator's override file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// Lists, macros and rules; a name defined twice is an error.
    Pack,
    /// Lists may be replaced (`items`) or extended (`append`), macros
    /// replaced, rules added (`id:`) or changed (`rule:`).
    Override,
}

/// Read one file's lists, macros and rules into the shared definitions.
fn collect_file(
    ctx: &mut FileCtx<'_>,
    tree: &Node,
    kind: FileKind,
    lists: &mut HashMap<String, ListDef>,
    macros: &mut HashMap<String, MacroDef>,
    pending: &mut Vec<PendingRule>,
    rule_overrides: &mut Vec<(Arc<str>, Node)>,
) {
    if matches!(tree.value, yaml::NodeValue::Null) {
        return;
    }
    let what = if kind == FileKind::Pack {
        "a rules file"
    } else {
        "an override file"
    };
    let Some(mut top) = ctx.map(tree, what) else { return };
    let list_nodes = top.get("lists");
    let macro_nodes = top.get("macros");
    let rule_nodes = top.get("rules");
    top.finish(ctx, FILE_KEYS);

    for node in section(ctx, list_nodes, "lists") {
        let Some(mut map) = ctx.map(node, "a list") else {
            continue;
        };
        let name = map.required(ctx, "list").and_then(|value| ctx.text(value, "`list`"));
        let (items, append) = match kind {
            FileKind::Pack => (map.required(ctx, "items"), None),
            FileKind::Override => (map.get("items"), map.get("append")),
        };
        let items = items.map(|value| ctx.text_list(value, "`items`"));
        let append = append.map(|value| ctx.text_list(value, "`append`"));
        map.finish(
            ctx,
            if kind == FileKind::Pack {
                &["list", "items"]
            } else {
                &["list", "items", "append"]
            },
        );
        let Some(name) = name else { continue };
        match (items, append) {
            (Some(_), None) if kind == FileKind::Pack && lists.contains_key(&name) => {
                let existing = &lists[&name];
                ctx.error(
                    node.loc,
                    Problem::Duplicate,
                    format!("list `{name}` is already defined at {}:{}", existing.file, existing.loc),
                );
            }
            (Some(items), None) => {
                let file = ctx.file.clone();
                lists.insert(
                    name.clone(),
                    ListDef {
                        name,
                        items,
                        file,
                        loc: node.loc,
                    },
                );
            }
            (None, Some(extra)) => match lists.get_mut(&name) {
                Some(list) => list.items.extend(extra),
                None => ctx.error(
                    node.loc,
                    Problem::UnknownList,
                    format!("cannot append to unknown list `{name}`"),
                ),
            },
            (None, None) if kind == FileKind::Pack => {}
            _ => ctx.error(
                node.loc,
                Problem::BadValue,
                "a list override needs exactly one of `items` (replace) or `append`",
            ),
        }
    }
    for node in section(ctx, macro_nodes, "macros") {
        let Some(mut map) = ctx.map(node, "a macro") else {
            continue;
        };
        let name = map.required(ctx, "macro").and_then(|value| ctx.text(value, "`macro`"));
        let condition = map.required(ctx, "condition");
        map.finish(ctx, &["macro", "condition"]);
        let (Some(name), Some(condition)) = (name, condition) else {
            continue;
        };
        if kind == FileKind::Pack
            && let Some(existing) = macros.get(&name)
        {
            ctx.error(
                node.loc,
                Problem::Duplicate,
                format!(
                    "macro `{name}` is already defined at {}:{}",
                    existing.file, existing.loc
                ),
            );
            continue;
        }
        let file = ctx.file.clone();
        let condition = condition.clone();
        macros.insert(
            name.clone(),
            MacroDef {
                name,
                condition,
                file,
                loc: node.loc,
            },
        );
    }
    for node in section(ctx, rule_nodes, "rules") {
        let changes_a_rule = kind == FileKind::Override
            && node
                .as_map()
                .is_some_and(|entries| entries.iter().any(|(key, _)| key.as_str() == Some("rule")));
        if changes_a_rule {
            rule_overrides.push((ctx.file.clone(), node.clone()));
        } else {
            pending.push(PendingRule {
                file: ctx.file.clone(),
                node: node.clone(),
            });
        }
    }
}

fn section<'n>(ctx: &mut FileCtx<'_>, node: Option<&'n Node>, name: &str) -> &'n [Node] {
    match node {
        None => &[],
        Some(node) => match &node.value {
            yaml::NodeValue::Seq(items) => items,
            yaml::NodeValue::Null => &[],
            _ => {
                ctx.error(
                    node.loc,
                    Problem::WrongType,
                    format!("`{name}` must be a list, found {}", node.kind_name()),
                );
                &[]
            }
        },
    }
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'-' | b'_' | b'.'))
        && id.as_bytes()[0].is_ascii_alphanumeric()
}

fn compile_rule(ctx: &mut FileCtx<'_>, env: &mut CompileEnv<'_>, node: &Node) -> Option<Rule> {
    let mut map = ctx.map(node, "a rule")?;
    let id = map.required(ctx, "id").and_then(|value| {
        let id = ctx.text(value, "`id`")?;
        if !is_valid_id(&id) {
            ctx.error(
                value.loc,
                Problem::BadValue,
                format!("rule id `{id}` must be lower-case letters, digits, `-`, `_` or `.`"),
            );
        }
        Some(id)
    });
    let title = map.required(ctx, "title").and_then(|value| ctx.text(value, "`title`"));
    let level = map
        .required(ctx, "level")
        .and_then(|value| parse_level(ctx, value, "`level`"));
    let description = map
        .required(ctx, "description")
        .and_then(|value| ctx.text(value, "`description`"));
    let rationale = map.get("rationale").and_then(|value| ctx.text(value, "`rationale`"));
    let remediation = map
        .get("remediation")
        .and_then(|value| ctx.text(value, "`remediation`"));
    let false_positives = map
        .get("false_positives")
        .and_then(|value| ctx.text(value, "`false_positives`"));
    let mitre: Vec<String> = map
        .get("mitre")
        .map(|value| ctx.text_list(value, "`mitre`"))
        .unwrap_or_default()
        .into_iter()
        .map(|(technique, loc)| {
            let valid = technique.starts_with('T')
                && technique[1..]
                    .split('.')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                ctx.error(
                    loc,
                    Problem::BadValue,
                    format!("`{technique}` is not a MITRE ATT&CK technique id (T1078 or T1078.004)"),
                );
            }
            technique
        })
        .collect();
    let references: Vec<String> = map
        .get("references")
        .map(|value| ctx.text_list(value, "`references`"))
        .unwrap_or_default()
        .into_iter()
        .map(|(reference, _)| reference)
        .collect();
    let tags: Vec<String> = map
        .get("tags")
        .map(|value| ctx.text_list(value, "`tags`"))
        .unwrap_or_default()
        .into_iter()
        .map(|(tag, _)| tag)
        .collect();
    let enabled = map
        .get("enabled")
        .and_then(|value| ctx.boolean(value, "`enabled`"))
        .unwrap_or(true);
    env.used.clear();
    let condition = map
        .required(ctx, "match")
        .map(|value| env.compile(ctx, value).cheapest_first());
    let state = map
        .get("state")
        .and_then(|value| super::stateful::compile_state(ctx, value));
    let group_by: Vec<Field> = map
        .get("group_by")
        .map(|value| ctx.text_list(value, "`group_by`"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, loc)| {
            let field = Field::parse(&name);
            if field.is_none() {
                ctx.error(
                    loc,
                    Problem::UnknownField,
                    format!("unknown field `{name}` in group_by"),
                );
            }
            field
        })
        .collect();
    let escalate = map
        .get("escalate")
        .map(|value| super::escalate::compile(ctx, value, level))
        .unwrap_or_default();
    let exceptions = map
        .get("exceptions")
        .map(|value| super::exceptions::compile_exceptions(ctx, env, value))
        .unwrap_or_default();
    let tests = map
        .get("tests")
        .map(|value| super::testing::compile_tests(ctx, value))
        .unwrap_or_default();
    let output = match map.get("output") {
        Some(value) => ctx
            .text(value, "`output`")
            .map(|text| Template::compile(ctx, &text, value.loc)),
        None => Some(Template::compile(ctx, DEFAULT_OUTPUT, node.loc)),
    };
    map.finish(ctx, RULE_KEYS);

    let (id, title, level, description, condition, output) = (id?, title?, level?, description?, condition?, output?);
    let clouds = clouds_of(&condition, &env.catalog_coverage());
    let hash = {
        let mut used = env.used.clone();
        used.sort();
        used.dedup();
        let mut hasher = Sha256::new();
        // Tests document the rule; they are not part of its behaviour.
        let mut source = node.to_json();
        if let serde_json::Value::Object(map) = &mut source {
            map.remove("tests");
        }
        hasher.update(source.to_string().as_bytes());
        for name in &used {
            let definition = if let Some(list) = name.strip_prefix("list:") {
                env.lists.get(list).map(|list| {
                    list.items
                        .iter()
                        .map(|(item, _)| item.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            } else if let Some(name) = name.strip_prefix("macro:") {
                env.macros
                    .get(name)
                    .map(|definition| definition.condition.to_json().to_string())
            } else {
                None
            };
            hasher.update(name.as_bytes());
            hasher.update(definition.unwrap_or_default().as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    };
    Some(Rule {
        id,
        title,
        level,
        description,
        rationale,
        remediation,
        false_positives,
        mitre,
        tags,
        references,
        sigma: None,
        enabled,
        condition,
        state,
        exceptions,
        tests,
        group_by,
        escalate,
        output,
        clouds,
        file: ctx.file.clone(),
        loc: node.loc,
        hash,
    })
}

impl CompileEnv<'_> {
    /// Per operation, the clouds that have a mapping.
    fn catalog_coverage(&self) -> Vec<Vec<Provider>> {
        self.catalog
            .operations()
            .iter()
            .map(|info| info.coverage.iter().map(|(provider, _)| *provider).collect())
            .collect()
    }
}

/// Clouds a rule can fire on: its `provider` constraint, intersected with
/// the clouds covered by the operations it requires.
fn clouds_of(condition: &Cond, coverage: &[Vec<Provider>]) -> Vec<Provider> {
    let mut clouds: Vec<Provider> = match condition.providers() {
        Some(names) => names.iter().filter_map(|name| Provider::parse(name)).collect(),
        None => Provider::ALL.to_vec(),
    };
    // In the clouds' usual order whatever order the rule named them in (the
    // `in` list of a condition is a set): listings must not change between runs.
    clouds.sort_by_key(|provider| Provider::ALL.iter().position(|each| each == provider));
    clouds.dedup();
    if let Some(keys) = condition.index_keys()
        && keys.actions.is_empty()
    {
        clouds.retain(|provider| {
            keys.operations.iter().any(|operation| {
                coverage
                    .get(usize::from(*operation))
                    .is_some_and(|clouds| clouds.contains(provider))
            })
        });
    }
    clouds
}

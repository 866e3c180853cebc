//! `TRAILWARDEN__<SECTION>__<KEY>` environment overrides, merged into the
//! file's TOML before it is read, and blamed by name when they are wrong.

use super::ConfigError;
use super::raw::RawConfig;

/// Prefix of environment overrides (matched ignoring case, like the `config` crate does).
const ENVIRONMENT_PREFIX: &str = "trailwarden__";

/// The `TRAILWARDEN__*` variables of the process, sorted by name. A value that
/// is not UTF-8 is refused here, by name.
pub(super) fn environment_overrides(
    variables: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut found = Vec::new();
    for (name, value) in variables {
        let Some(name) = name.to_str() else { continue };
        if !name.to_ascii_lowercase().starts_with(ENVIRONMENT_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            message: "the value is not valid UTF-8".into(),
        })?;
        found.push((name.to_string(), value));
    }
    found.sort();
    Ok(found)
}

/// The dotted key a `TRAILWARDEN__SECTION__KEY` variable sets (`section.key`).
fn variable_key(name: &str) -> String {
    name.to_ascii_lowercase()
        .get(ENVIRONMENT_PREFIX.len()..)
        .unwrap_or_default()
        .replace("__", ".")
}

/// Deserialize the file text with `variables` over it.
pub(super) fn raw_config(text: &str, variables: &[(String, String)]) -> Result<RawConfig, String> {
    let mut builder = config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml));
    if !variables.is_empty() {
        builder = builder.add_source(
            config::Environment::with_prefix("TRAILWARDEN")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("source.files.paths")
                .with_list_parse_key("source.kafka.topics")
                .with_list_parse_key("rules.disabled")
                .with_list_parse_key("rules.disabled_tags")
                .with_list_parse_key("rules.enabled")
                .with_list_parse_key("rules.overrides")
                .try_parsing(true)
                .source(Some(variables.iter().cloned().collect())),
        );
    }
    builder
        .build()
        .and_then(|built| built.try_deserialize())
        .map_err(|error| error.to_string())
}

/// The variable that set the key a validation message names in backquotes
/// (`pipeline.batch_events`, or a section such as `source.kafka.properties`).
pub(super) fn blamed_variable<'v>(variables: &'v [(String, String)], message: &str) -> Option<&'v str> {
    let named: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let sets = |key: &str, name: &str| key == name || key.starts_with(&format!("{name}."));
    variables
        .iter()
        .find(|(variable, _)| named.iter().any(|name| sets(&variable_key(variable), name)))
        .map(|(variable, _)| variable.as_str())
}

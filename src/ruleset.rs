//! The rule set as the daemon, reloads and the command line load it: rule
//! options from the settings, loading, a complete check (every load problem
//! and every failing embedded test) before a set is installed, and running
//! the embedded tests.

use std::path::Path;

use crate::config::Settings;
use crate::error::AppError;
use crate::rules::load::load_rules_partial;
use crate::rules::testing::run_tests;
use crate::rules::{RuleOptions, RuleSet, load_rules};

/// Rule options from the settings (zone, switches, overrides).
pub fn rule_options(settings: &Settings) -> RuleOptions {
    RuleOptions {
        default_timezone: settings.rules.timezone,
        disabled: settings.rules.disabled.clone(),
        disabled_tags: settings.rules.disabled_tags.clone(),
        enabled: settings.rules.enabled.clone(),
        overrides: settings.rules.overrides.clone(),
        enable_all: false,
        sigma_dirs: settings.rules.sigma_dirs.clone(),
        sigma: settings.rules.sigma.clone(),
    }
}

/// Load the configured rule set (or the one in `dir`).
pub fn load_rule_set(settings: &Settings, dir: Option<&Path>) -> Result<RuleSet, AppError> {
    let dir = dir.unwrap_or(&settings.rules.dir);
    load_rules(dir, &rule_options(settings)).map_err(|diagnostics| AppError::Rules {
        dir: dir.display().to_string(),
        diagnostics,
    })
}

/// Load a rule set and check it completely: every load problem, and every
/// embedded test (run with all rules enabled). Returns the set to install
/// only when there are no problems.
pub fn check_rule_set(settings: &Settings, dir: Option<&Path>) -> Result<RuleSet, AppError> {
    let dir_path = dir.unwrap_or(&settings.rules.dir);
    let (rules, mut diagnostics) = load_rules_partial(dir_path, &rule_options(settings));
    // Tests run with every rule enabled, and also when other rules failed to
    // load, so one pass reports every problem.
    let mut test_options = rule_options(settings);
    test_options.enable_all = true;
    if let (Some(test_set), _) = load_rules_partial(dir_path, &test_options) {
        for outcome in run_tests(&test_set, settings.naive_time_offset, None) {
            if !outcome.passed {
                diagnostics.push(
                    &outcome.file,
                    outcome.loc,
                    crate::rules::diag::Problem::FailingTest,
                    format!(
                        "test `{}` of rule `{}` fails: {}",
                        outcome.name, outcome.rule, outcome.detail
                    ),
                );
            }
        }
    }
    match rules {
        Some(rules) if diagnostics.is_empty() => Ok(rules),
        _ => Err(AppError::Rules {
            dir: dir_path.display().to_string(),
            diagnostics,
        }),
    }
}

/// Run embedded rule tests (all rules enabled).
pub fn test_rules(
    settings: &Settings,
    dir: Option<&Path>,
    filter: Option<&str>,
) -> Result<Vec<crate::rules::testing::TestOutcome>, AppError> {
    let dir = dir.unwrap_or(&settings.rules.dir);
    let mut options = rule_options(settings);
    options.enable_all = true;
    let set = load_rules(dir, &options).map_err(|diagnostics| AppError::Rules {
        dir: dir.display().to_string(),
        diagnostics,
    })?;
    Ok(run_tests(&set, settings.naive_time_offset, filter))
}

//! Fuzzing harnesses. Each takes arbitrary bytes through one input path the
//! way the program does and must answer — a value or an error, never a
//! panic, a hang or unbounded memory. `fuzz/` runs them under libFuzzer
//! (`scripts/fuzz`); `tests/fuzz_corpus.rs` replays the seed corpus and
//! every input a campaign found (`fuzz/regressions/`) through them on stable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::event::decode::{Decoded, decode_chunk};
use crate::event::normalize::{NormalizeContext, normalize};
use crate::event::origin::{Origin, Position};
use crate::event::tape::{TapeScratch, read_record};
use crate::rules::diag::Diagnostics;
use crate::rules::load::compile_sources;
use crate::rules::operations::{OperationCatalog, load_catalog};
use crate::rules::{EvalScratch, RuleOptions, RuleSet, load_rules};
use crate::source::framer::Framer;

/// A harness: bytes in, nothing out but a panic on a bug.
pub type Harness = fn(&[u8]);

/// Every harness, by the name of its `fuzz/fuzz_targets/NAME.rs`, its
/// corpus and its regression directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("framer", framer),
    ("records", records),
    ("rules", rules),
    ("sigma", sigma),
    ("config", config),
    ("api_params", api_params),
    ("templates", templates),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped pack, loaded once.
fn pack() -> &'static RuleSet {
    static PACK: OnceLock<RuleSet> = OnceLock::new();
    PACK.get_or_init(|| load_rules(&repo().join("rules"), &RuleOptions::default()).expect("the shipped pack loads"))
}

/// The shipped operation catalog, loaded once.
fn catalog() -> &'static OperationCatalog {
    static CATALOG: OnceLock<OperationCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let path = repo().join("rules").join(crate::rules::load::OPERATIONS_FILE);
        let text = std::fs::read_to_string(&path).expect("the operation catalog is readable");
        let mut diagnostics = Diagnostics::default();
        load_catalog(&path.display().to_string(), &text, &mut diagnostics)
    })
}

/// Frames of `data`, fed in pieces whose sizes the first byte chooses (a
/// record split across reads is where framers go wrong).
fn frames(data: &[u8]) -> Vec<crate::source::framer::Frame> {
    let piece = usize::from(data.first().copied().unwrap_or(0)).max(1) * 7;
    let mut framer = Framer::new(64 << 10);
    let mut frames = Vec::new();
    for chunk in data.chunks(piece) {
        framer.feed(chunk, &mut frames);
    }
    framer.finish(&mut frames);
    frames
}

/// The framer alone: every byte of input is in a frame or a dead letter.
pub fn framer(data: &[u8]) {
    let _ = frames(data);
}

/// Frames through both decoding paths (the simd-json tape and the tree),
/// the normalizers and the shipped pack.
pub fn records(data: &[u8]) {
    let context = NormalizeContext::new(chrono::Utc::now());
    let mut decoded = Decoded::default();
    let mut scratch = EvalScratch::default();
    let mut tape = TapeScratch::default();
    let mut matches = Vec::new();
    let name: Arc<str> = Arc::from("fuzz");
    for frame in frames(data) {
        let origin = Origin::new(name.clone(), Position::Line(frame.line));
        if let Some((_, Ok(mut event))) = read_record(&frame.bytes, &origin, &context, None, &mut tape) {
            pack().evaluate(&mut event, &mut scratch, &mut matches);
            matches.clear();
        }
        decode_chunk(&frame.bytes, &origin, &mut decoded);
        decoded.dead_letters.clear();
        for candidate in decoded.candidates.drain(..) {
            if let Ok(mut event) = normalize(candidate, &context) {
                pack().evaluate(&mut event, &mut scratch, &mut matches);
                matches.clear();
            }
        }
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A rule file, compiled against the shipped catalog.
pub fn rules(data: &[u8]) {
    let sources = [(Arc::<str>::from("fuzz.yaml"), text(data))];
    let mut diagnostics = Diagnostics::default();
    let _ = compile_sources(
        &sources,
        &[],
        &[],
        catalog().clone(),
        &RuleOptions::default(),
        &mut diagnostics,
    );
}

/// A Sigma rule file.
pub fn sigma(data: &[u8]) {
    let sources = [(Arc::<str>::from("fuzz.yml"), text(data))];
    let mut diagnostics = Diagnostics::default();
    let _ = compile_sources(
        &[],
        &[],
        &sources,
        catalog().clone(),
        &RuleOptions::default(),
        &mut diagnostics,
    );
}

/// A configuration file; after a line `---`, `NAME=VALUE` lines as
/// `TRAILWARDEN__*` variables.
pub fn config(data: &[u8]) {
    let text = text(data);
    let (file, variables) = text.split_once("\n---\n").unwrap_or((&text, ""));
    let variables: Vec<(String, String)> = variables
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (format!("TRAILWARDEN__{name}"), value.to_string()))
        .collect();
    let _ = crate::config::Settings::from_sources("fuzz.toml", file, &variables);
}

/// An API request's query string and JSON body (split at the first NUL),
/// read the way the handlers read them.
pub fn api_params(data: &[u8]) {
    use axum::extract::{FromRequest, FromRequestParts};
    let (query, body) = match data.iter().position(|byte| *byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(request) = axum::http::Request::builder()
        .uri(format!("/api/v1/alarms?{}", String::from_utf8_lossy(query)))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return;
    };
    let (mut parts, body) = request.into_parts();
    futures_util::FutureExt::now_or_never(async {
        if let Ok(params) = crate::api::error::Params::from_request_parts(&mut parts, &()).await {
            let _ = params.only(&["status", "level", "limit", "since", "cursor"]);
            let _ = params.integer("limit", 50, 1..=500);
            let _ = params.time("since");
            let _ = params.choice("status", &["unprocessed", "processed", "ignored"]);
        }
        let request = axum::http::Request::from_parts(parts, body);
        if let Ok(json) = crate::api::error::JsonBody::from_request(request, &()).await {
            let _ = json.only(&["status", "reason", "broad", "alarm"]);
            let _ = json.string("reason");
            let _ = json.boolean("broad");
            let _ = json.id("alarm");
        }
    });
}

/// A notification template (the first byte picks which one it replaces),
/// compiled and rendered against the samples, as `[notify] templates_dir`
/// overrides are at start.
pub fn templates(data: &[u8]) {
    static SETTINGS: OnceLock<crate::notify::NotifySettings> = OnceLock::new();
    let Some((&which, source)) = data.split_first() else {
        return;
    };
    let names = crate::notify::render::TEMPLATE_NAMES;
    let name = names[usize::from(which) % names.len()];
    let settings = SETTINGS.get_or_init(crate::notify::NotifySettings::default);
    let _ = crate::notify::render::Templates::with_overrides(settings, &[(name, text(source))]);
}

/// The seed corpus of `target`: the repository's own records, rules and
/// configuration (what `scripts/fuzz` copies into `fuzz/corpus/TARGET`).
pub fn seeds(target: &str) -> Vec<PathBuf> {
    let root = repo();
    let dirs: &[&str] = match target {
        "framer" | "records" => &[
            "tests/fixtures/records",
            "tests/fixtures/golden",
            "tests/fixtures/published",
            "examples",
        ],
        "rules" => &["rules"],
        "sigma" => &["../shared/peers/sigma-cloudtrail"],
        "config" => &["config"],
        "templates" => &["src/notify/templates"],
        _ => &[],
    };
    let mut files = Vec::new();
    for dir in dirs {
        collect(&root.join(dir), &mut files);
    }
    collect(&root.join("fuzz/seeds").join(target), &mut files);
    files.sort();
    files
}

/// A seed's bytes: gzip files as the sources read them, decompressed (at
/// most 4 MiB).
pub fn seed_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let bytes = std::fs::read(path)?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    // A damaged stream (a fixture is truncated on purpose) gives what it has.
    let mut out = Vec::new();
    let _ = flate2::read::MultiGzDecoder::new(&bytes[..])
        .take(4 << 20)
        .read_to_end(&mut out);
    Ok(out)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.metadata().is_ok_and(|meta| meta.len() <= 1 << 20) {
            files.push(path);
        }
    }
}

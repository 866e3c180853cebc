//! The fuzzing harnesses (`trailwarden::fuzz`, run under libFuzzer by
//! `scripts/fuzz`) on stable Rust: every seed of every target and every
//! input a campaign found (`fuzz/regressions/TARGET/`) goes through its
//! harness without a panic. `write_seed_corpora` (ignored here) is how
//! `scripts/fuzz` fills `fuzz/corpus/`.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_seed_and_every_found_input_runs_through_its_harness() {
    for (target, harness) in trailwarden::fuzz::TARGETS {
        let seeds = trailwarden::fuzz::seeds(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        let found = files_in(&repo().join("fuzz/regressions").join(target));
        for path in seeds.iter().chain(&found) {
            let data =
                trailwarden::fuzz::seed_bytes(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            harness(&data);
        }
        eprintln!("{target}: {} seeds, {} found inputs", seeds.len(), found.len());
    }
}

#[test]
fn every_harness_has_a_libfuzzer_target() {
    let manifest = std::fs::read_to_string(repo().join("fuzz/Cargo.toml")).unwrap();
    for (target, _) in trailwarden::fuzz::TARGETS {
        let source = std::fs::read_to_string(repo().join(format!("fuzz/fuzz_targets/{target}.rs")))
            .unwrap_or_else(|error| panic!("fuzz/fuzz_targets/{target}.rs: {error}"));
        assert!(
            source.contains(&format!("trailwarden::fuzz::{target}(data)")),
            "{source}"
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} is not a [[bin]] of fuzz/Cargo.toml"
        );
    }
}

/// `scripts/fuzz` runs this to seed `fuzz/corpus/TARGET/` from the repository.
#[test]
#[ignore]
fn write_seed_corpora() {
    for (target, _) in trailwarden::fuzz::TARGETS {
        let dir = repo().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (index, path) in trailwarden::fuzz::seeds(target).iter().enumerate() {
            let data = trailwarden::fuzz::seed_bytes(path).unwrap();
            std::fs::write(dir.join(format!("seed-{index:04}")), data).unwrap();
        }
    }
}

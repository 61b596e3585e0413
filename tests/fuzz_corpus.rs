//! Replays the committed corpus (and any crash input found) of the fuzz targets beyond the
//! native decoder's (`engine/tests/fuzz_corpus.rs`) through their oracles, on stable: a
//! regression a fuzzer once found fails `cargo test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::Path;

/// Every input of `target`'s corpus and artifacts, through `oracle`; how many.
fn replay(target: &str, oracle: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("corpus files are readable");
            oracle(&bytes);
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn the_tutorial_corpus_replays() {
    let n = replay("tutorial", umpire_ws::fuzz_tutorial);
    assert!(
        n >= 3,
        "the committed corpus is missing: replayed {n} inputs"
    );
}

#[test]
fn the_ws4redis_corpus_replays() {
    let n = replay("ws4redis", umpire_ws::fuzz_ws4redis);
    assert!(
        n >= 4,
        "the committed corpus is missing: replayed {n} inputs"
    );
}

#[test]
fn the_record_corpus_replays() {
    let n = replay("record", |bytes| {
        umpire_store::fuzz_record(bytes);
        umpire_games::fuzz::record(bytes);
    });
    assert!(
        n >= 10,
        "the committed corpus is missing: replayed {n} inputs"
    );
}

#[test]
fn the_matches_corpus_replays() {
    let n = replay("matches", umpire_games::fuzz::matches);
    assert!(
        n >= 6,
        "the committed corpus is missing: replayed {n} inputs"
    );
}

//! Replays the fuzz corpus and any crash artifacts through the fuzzing oracle on stable, so a
//! regression the fuzzer once found fails `cargo test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::Path;

use umpire_engine::protocol::{decode_json, encode_msgpack, fuzz_decode};

#[test]
fn the_decode_corpus_round_trips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for dir in ["corpus/decode", "artifacts/decode"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("corpus files are readable");
            fuzz_decode(&bytes);
            replayed += 1;
        }
    }
    assert!(
        replayed >= 9,
        "the committed corpus is missing: replayed {replayed} inputs"
    );
}

#[test]
fn the_oracle_accepts_valid_messages_in_both_codecs() {
    fuzz_decode(
        br#"{"type":"command","game":1,"cmd":{"column":2.5e3,"x":[null,true,-1]},"ref":{"a":"b"}}"#,
    );
    let msg = decode_json(r#"{"type":"ping","ref":1}"#).unwrap();
    fuzz_decode(&encode_msgpack(&msg));
}

//! umpire against a real Python `websockets` client, the kind the tutorial server had.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::process::Command;

use support::Server;

/// Whether `python3` with `websockets` is here (scripts/install-test-deps.sh installs it).
fn python_websockets() -> bool {
    Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A client flooding from a loop that never yields reads nothing until its sends block. The
/// server's close handshake reads slowly enough to make them block, so even such a client
/// reads 1008 and the reason instead of a reset (before: 1006 for 60 of 60).
#[test]
fn python_clients_flooding_without_yielding_see_1008_and_why() {
    if !python_websockets() {
        eprintln!(
            "SKIPPED: python3 with websockets is not installed (scripts/install-test-deps.sh)"
        );
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/flood.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(server.ws())
        .arg("3")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Vec<(u16, String)> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen.len(), 3);
    for (code, reason) in seen {
        assert_eq!(code, 1008, "{reason:?}");
        assert!(reason.contains("rate limit"), "{reason}");
    }
}

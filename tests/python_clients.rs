//! umpire against a real Python `websockets` client, the kind the tutorial server had.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::process::Command;

use support::Server;

/// Whether `python3` with `websockets` is here (scripts/install-test-deps.sh installs it);
/// says so when it is not.
fn python_websockets() -> bool {
    let here = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !here {
        eprintln!(
            "SKIPPED: python3 with websockets is not installed (scripts/install-test-deps.sh)"
        );
    }
    here
}

/// A client flooding from a loop that never yields reads nothing until its sends block. The
/// server's close handshake reads slowly enough to make them block, so even such a client
/// reads 1008 and the reason instead of a reset (before: 1006 for 60 of 60).
#[test]
fn python_clients_flooding_without_yielding_see_1008_and_why() {
    if !python_websockets() {
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

/// The probe of issue 16 as a test: a real `websockets` client sends a message over the
/// limit, a text frame that is not UTF-8, and a flood (reading all the while); each sees its
/// close code and reason, and the end of the connection, long before the server's ten-minute
/// drain could end (before: each came only when the drain ended).
#[test]
fn python_clients_see_every_close_at_once_though_the_drain_is_ten_minutes() {
    if !python_websockets() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), &["--close-drain-secs", "600"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/probes/closes.py");
    let output = Command::new("timeout")
        .args(["120", "python3", script])
        .arg(server.ws())
        .args(["2", "--json", "--skip-no-yield"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: std::collections::BTreeMap<String, Vec<(u16, String, f64)>> =
        serde_json::from_slice(&output.stdout).unwrap();
    let expected = [
        ("1 MiB message", 1009),
        ("70 KiB message", 1009),
        ("invalid UTF-8", 1007),
        ("flood", 1008),
    ];
    for (case, code) in expected {
        for (got, reason, took) in &seen[case] {
            assert_eq!(*got, code, "{case}: {reason}");
            assert!(*took < 10.0, "{case}: the close took {took} s");
        }
    }
}

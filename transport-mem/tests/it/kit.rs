//! The testing kit finds what it promises to find: games with a flaw each fail it, shrunk to a
//! few steps, with a printed test that fails the same way on its own.

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use umpire_mem::testing::Check;

use crate::flawed::*;

fn commands() -> impl Strategy<Value = Cmd> {
    prop_oneof![4 => (0i64..20).prop_map(Cmd::Add), 1 => Just(Cmd::Later)]
}

/// The kit's report on `flaw`, or `None` if the game passed.
fn report(flaw: Flaw) -> Option<String> {
    let check = Check::new(Flawed(flaw)).cases(64);
    let failed = catch_unwind(AssertUnwindSafe(|| check.run(commands()))).err()?;
    Some(
        failed
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a panic without a message".into()),
    )
}

/// The numbered steps of a report.
fn steps(report: &str) -> usize {
    report
        .lines()
        .filter(|l| {
            l.trim_start()
                .split_once(". ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .count()
}

#[track_caller]
fn assert_found(report: &str, what: &str, most_steps: usize) {
    assert!(
        report.contains(what),
        "the report does not say {what:?}:\n{report}"
    );
    assert!(
        steps(report) <= most_steps,
        "not shrunk to {most_steps} steps or fewer:\n{report}"
    );
    assert!(
        report.contains("It fails on its own too"),
        "the printed test does not fail:\n{report}"
    );
}

#[test]
fn a_sound_game_passes() {
    assert_eq!(report(Sound), None);
}

#[test]
fn a_panic_in_decide_is_found_and_printed_as_a_test() {
    let report = report(PanicsOn13).expect("the kit finds the panic");
    assert_found(&report, "`decide` panicked: thirteen!", 1);
    // What it prints is a test that compiles and fails: the one below, pasted.
    let printed = include_str!("kit.rs");
    let marker = "#[should_panic(expected = \"thirteen!\")]\n";
    let start = printed.find(marker).expect("pasted below") + marker.len();
    let pasted = &printed[start..];
    let pasted = &pasted[..pasted.find("\n}\n").expect("its end") + 2];
    assert!(
        report.contains(pasted),
        "the report prints another test than the one pasted here:\n{report}"
    );
}

#[test]
#[should_panic(expected = "thirteen!")]
fn flawed_found_by_check() {
    use umpire_engine::{testing::GameTest, Seat};

    GameTest::new(Flawed(PanicsOn13))
        .with_config_json(r#"null"#)
        .with_seed(10451216379200822465)
        .at(1700000000000)
        .at_seq(6)
        .when_json(Seat(0), r#"{"add":13}"#)
        .then_consistent();
}

#[test]
fn an_event_that_loses_a_field_in_the_log_is_found() {
    let report = report(EventForgets).expect("the kit finds the lost field");
    assert_found(
        &report,
        "the server logged other events than the rules decided",
        1,
    );
    assert!(report.contains("reads back different"), "{report}");
}

#[test]
fn a_state_that_loses_a_field_in_a_snapshot_is_found() {
    let report = report(StateForgets).expect("the kit finds the lost field");
    assert_found(
        &report,
        "and the log's tail give another match than the whole log",
        2,
    );
    assert!(report.contains("snapshot"), "{report}");
}

#[test]
fn rules_that_read_a_global_are_found() {
    let report = report(Fickle).expect("the kit finds the global");
    assert!(
        report.contains("the same steps played twice logged different records"),
        "{report}"
    );
    assert_eq!(steps(&report), 1, "{report}");
    assert!(
        report.contains("Look for it in the code of this decision"),
        "{report}"
    );
}

#[test]
fn a_panicking_timer_is_found_and_printed_as_the_system_s_command() {
    let report = report(TimerPanics).expect("the kit finds the panic");
    assert_found(&report, "the server lost the game", 2);
    assert!(
        report.contains(r##".when_json(Actor::System, r#""later""#)"##),
        "{report}"
    );
}

#[test]
fn a_panic_when_a_player_goes_is_found_and_printed_as_presence() {
    let report = report(PresencePanics).expect("the kit finds the panic");
    assert_found(&report, "the server lost the game", 1);
    assert!(report.contains(".when_presence(Seat("), "{report}");
}

//! Structure-aware: the bytes become a sequence of commands, joins, leaves, presence changes,
//! timers and expiry through one of the bundled games; decide never panics, refusals change
//! nothing, and the log replays to the live match.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    umpire_games::fuzz::matches(data);
});

//! Untrusted lines from a tutorial browser client, and stored records translated for one: the
//! translation never panics, and what it makes of a line round-trips as a native message.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    umpire_ws::fuzz_tutorial(data);
});

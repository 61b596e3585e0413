//! Bytes from a damaged disk, read as any stored value or any bundled game's envelope: an
//! error or a value, never a panic; what decodes round-trips.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    umpire_store::fuzz_record(data);
    umpire_games::fuzz::record(data);
});

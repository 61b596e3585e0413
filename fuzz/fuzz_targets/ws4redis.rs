//! Untrusted paths and queries of ws4redis clients (`/ws/<facility>?subscribe-...`), and
//! stored records translated for them: never a panic, and every channel a query makes is a
//! channel of that facility.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    umpire_ws::fuzz_ws4redis(data);
});

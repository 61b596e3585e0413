//! Untrusted bytes from a connection: decoding a client message must never panic, and what
//! decodes must round-trip through both wire codecs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    umpire_engine::protocol::fuzz_decode(data);
});

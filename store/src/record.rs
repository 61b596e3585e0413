//! Every value the store writes starts with one format-version byte, so a later umpire can
//! read old data and an older umpire refuses newer data with a clear error instead of
//! misreading it.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Result, StoreError};

/// The format of everything this build writes.
pub const FORMAT_VERSION: u8 = 1;

/// `payload` with the version byte in front.
pub(crate) fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(payload);
    out
}

/// The payload behind the version byte.
pub(crate) fn unwrap<'a>(what: &'static str, stored: &'a [u8]) -> Result<&'a [u8]> {
    match stored.split_first() {
        Some((&FORMAT_VERSION, payload)) => Ok(payload),
        Some((&found, _)) => Err(StoreError::UnknownVersion { what, found }),
        None => Err(StoreError::Corrupt {
            what,
            detail: "empty value".into(),
        }),
    }
}

/// A store-owned value, versioned and MessagePack-encoded.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The store's own types always serialise: plain structs with string keys.
    wrap(&rmp_serde::to_vec_named(value).unwrap_or_default())
}

/// Decode a value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, stored: &[u8]) -> Result<T> {
    rmp_serde::from_slice(unwrap(what, stored)?).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// The fuzzing oracle for stored values: whatever bytes a damaged disk holds, decoding them as
/// any of the store's values answers with an error or a value, never a panic, and a value that
/// decodes encodes back to bytes that decode to it again.
#[doc(hidden)]
pub fn fuzz_record(stored: &[u8]) {
    use crate::log::{KeyEntry, StreamMeta};
    if let Ok(meta) = decode::<StreamMeta>("meta", stored) {
        assert_eq!(
            decode::<StreamMeta>("meta", &encode(&meta)).ok(),
            Some(meta)
        );
    }
    if let Ok(key) = decode::<KeyEntry>("key", stored) {
        assert_eq!(decode::<KeyEntry>("key", &encode(&key)).ok(), Some(key));
    }
    if let Ok(session) = crate::sled_log::decode_session(stored) {
        let again = crate::sled_log::encode_session(&session);
        assert_eq!(crate::sled_log::decode_session(&again).ok(), Some(session));
    }
    let _ = unwrap("event", stored);
}

//! Typed records over the byte-level store: corrupt data is absence.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Store;
use crate::error::StoreResult;

/// Encodes a record for the store.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serialising plain data structs to JSON cannot fail; an empty value would read as corrupt.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Decodes a JSON record read from `key`. A value that does not decode is deleted and reported
/// as absent — never a panic, never an error for the caller.
pub async fn decode_or_discard<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
    value: Option<Bytes>,
) -> StoreResult<Option<T>> {
    // A closure, not `serde_json::from_slice` itself: that function's lifetime is bound to
    // `T: Deserialize<'a>`, so the bare item is not the `for<'b> FnOnce(&'b [u8])` asked for.
    decode_with_or_discard(store, key, value, |bytes| serde_json::from_slice(bytes)).await
}

/// Decodes a record read from `key` with `decode` (for records with an encoding of their own).
/// A value that does not decode is deleted and reported as absent.
pub async fn decode_with_or_discard<T, E: std::fmt::Display>(
    store: &dyn Store,
    key: &str,
    value: Option<Bytes>,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> StoreResult<Option<T>> {
    let Some(bytes) = value else { return Ok(None) };
    match decode(&bytes) {
        Ok(record) => Ok(Some(record)),
        Err(error) => {
            tracing::warn!(key = %key_kind(key), %error, "discarding a stored record that does not decode");
            store.delete(key).await?;
            Ok(None)
        }
    }
}

/// The kind prefix of a key (`s`, `t:verify`, …), for logs that must not show secrets.
fn key_kind(key: &str) -> &str {
    key.rsplit_once(':').map_or("", |(kind, _)| kind)
}

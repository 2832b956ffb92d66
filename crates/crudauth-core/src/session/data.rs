//! The application's data in a session: typed values under string keys, and flash messages
//! read once. It is kept in the session record itself, so reading it costs no store operation
//! beyond the one that loads the session, and it is bounded in size.
//!
//! ```
//! use crudauth_core::session::{Flash, SessionData};
//!
//! let mut data = SessionData::decode(b"", 4096);
//! data.insert("cart", &vec![3, 5]).unwrap();
//! data.flash("success", "Added to your cart.").unwrap();
//! let stored = data.encode();
//!
//! let mut read = SessionData::decode(&stored, 4096);
//! assert_eq!(read.get::<Vec<u32>>("cart").unwrap(), Some(vec![3, 5]));
//! assert_eq!(read.take_flashes(), vec![Flash::new("success", "Added to your cart.")]);
//! assert!(read.take_flashes().is_empty(), "a flash is read once");
//! assert!(read.is_changed(), "taking the flashes is a change to write back");
//! ```

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The key flash messages live under; applications cannot use it for their own values.
pub const FLASH_KEY: &str = "_flash";

/// The default bound on a session's data, encoded: 4 KiB.
pub const DEFAULT_MAX_DATA_BYTES: usize = 4096;

/// Why a session data operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The data would exceed its bound once encoded.
    #[error("session data would take {size} bytes, over its limit of {limit}")]
    TooLarge {
        /// The encoded size it would have had.
        size: usize,
        /// The bound ([`SessionConfig::max_data_bytes`](super::SessionConfig::max_data_bytes)).
        limit: usize,
    },
    /// The key is crudauth's own ([`FLASH_KEY`]) or empty.
    #[error("session data key {0:?} is reserved")]
    ReservedKey(String),
    /// The value could not be turned into JSON, or the stored one into the type asked for.
    #[error("session data value for {key:?}: {reason}")]
    Serde {
        /// The key.
        key: String,
        /// serde's message.
        reason: String,
    },
}

/// A message shown once, on the next page the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info`, `warning`, `error`, or the application's own.
    pub level: String,
    /// The text.
    pub message: String,
}

impl Flash {
    /// A message of `level`.
    pub fn new(level: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            level: level.into(),
            message: message.into(),
        }
    }
}

/// A session's application data, decoded from its record and encoded back when it changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionData {
    map: Map<String, Value>,
    limit: usize,
    changed: bool,
}

impl SessionData {
    /// The data stored as `bytes` (empty: none), bounded by `limit` encoded bytes. Bytes that
    /// are not a JSON object (written by something else) read as no data, and the next write
    /// replaces them.
    pub fn decode(bytes: &[u8], limit: usize) -> Self {
        let map = if bytes.is_empty() {
            Map::new()
        } else {
            serde_json::from_slice(bytes).unwrap_or_else(|_| {
                tracing::warn!("session data is not a JSON object; reading it as empty");
                Map::new()
            })
        };
        Self {
            map,
            limit,
            changed: false,
        }
    }

    /// The stored form: empty when there is no data, else a JSON object.
    pub fn encode(&self) -> Bytes {
        if self.map.is_empty() {
            return Bytes::new();
        }
        // A map of JSON values always serialises.
        Bytes::from(serde_json::to_vec(&self.map).unwrap_or_default())
    }

    /// Whether anything was inserted, removed or taken since it was decoded.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Whether there is no data at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value under `key`, as `T`; `Ok(None)` when there is none.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, DataError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|e| DataError::Serde {
                    key: key.to_owned(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Puts `value` under `key`, replacing what was there; refused, with nothing changed, for a
    /// reserved key or when the data would outgrow its bound.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), DataError> {
        if key.is_empty() || key == FLASH_KEY {
            return Err(DataError::ReservedKey(key.to_owned()));
        }
        let value = serde_json::to_value(value).map_err(|e| DataError::Serde {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.put(key, value)
    }

    /// Removes the value under `key`, returning it.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        if key == FLASH_KEY {
            return None;
        }
        let removed = self.map.remove(key);
        self.changed |= removed.is_some();
        removed
    }

    /// Adds a flash message, shown once by whoever takes the flashes next.
    pub fn flash(
        &mut self,
        level: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<(), DataError> {
        let mut flashes = self.peek_flashes();
        flashes.push(Flash::new(level, message));
        let value = serde_json::to_value(flashes).unwrap_or(Value::Null);
        self.put(FLASH_KEY, value)
    }

    /// The pending flash messages, oldest first, without taking them.
    pub fn peek_flashes(&self) -> Vec<Flash> {
        self.map
            .get(FLASH_KEY)
            .and_then(|v| Vec::<Flash>::deserialize(v).ok())
            .unwrap_or_default()
    }

    /// Takes the pending flash messages: they are gone once the change is written.
    pub fn take_flashes(&mut self) -> Vec<Flash> {
        let flashes = self.peek_flashes();
        if self.map.remove(FLASH_KEY).is_some() {
            self.changed = true;
        }
        flashes
    }

    /// Puts `value` under `key` if the data stays within its bound.
    fn put(&mut self, key: &str, value: Value) -> Result<(), DataError> {
        let previous = self.map.insert(key.to_owned(), value);
        let size = serde_json::to_vec(&self.map).map_or(usize::MAX, |v| v.len());
        let limit = self.limit.min(super::record::MAX_DATA);
        if size > limit {
            match previous {
                Some(old) => self.map.insert(key.to_owned(), old),
                None => self.map.remove(key),
            };
            return Err(DataError::TooLarge { size, limit });
        }
        self.changed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_round_trip_typed() {
        let mut data = SessionData::decode(b"", 4096);
        assert!(!data.is_changed());
        data.insert("theme", "dark").unwrap();
        data.insert("visits", &3u32).unwrap();
        let read = SessionData::decode(&data.encode(), 4096);
        assert_eq!(
            read.get::<String>("theme").unwrap().as_deref(),
            Some("dark")
        );
        assert_eq!(read.get::<u32>("visits").unwrap(), Some(3));
        assert_eq!(read.get::<u32>("absent").unwrap(), None);
        assert!(matches!(
            read.get::<u32>("theme"),
            Err(DataError::Serde { .. })
        ));
    }

    #[test]
    fn the_bound_refuses_and_changes_nothing() {
        let mut data = SessionData::decode(b"", 64);
        data.insert("a", "x").unwrap();
        let before = data.clone();
        let err = data.insert("b", &"y".repeat(100)).unwrap_err();
        assert!(
            matches!(err, DataError::TooLarge { limit: 64, .. }),
            "{err}"
        );
        assert_eq!(data.encode(), before.encode());
        // Replacing a value with one too large keeps the old one.
        assert!(data.insert("a", &"z".repeat(100)).is_err());
        assert_eq!(data.get::<String>("a").unwrap().as_deref(), Some("x"));
        assert!(data.flash("info", "m".repeat(100)).is_err());
        assert!(data.peek_flashes().is_empty());
    }

    #[test]
    fn reserved_keys_and_empty_data() {
        let mut data = SessionData::decode(b"", 4096);
        assert!(matches!(
            data.insert(FLASH_KEY, &1),
            Err(DataError::ReservedKey(_))
        ));
        assert!(matches!(
            data.insert("", &1),
            Err(DataError::ReservedKey(_))
        ));
        assert!(data.remove(FLASH_KEY).is_none());
        assert!(data.encode().is_empty(), "no data, no bytes");
        data.insert("k", &1).unwrap();
        assert_eq!(data.remove("k"), Some(Value::from(1)));
        assert!(data.encode().is_empty());
        assert!(!SessionData::decode(b"[1,2]", 4096).is_changed());
        assert!(SessionData::decode(b"not json", 4096).is_empty());
    }

    #[test]
    fn flashes_are_read_once() {
        let mut data = SessionData::decode(b"", 4096);
        data.flash("success", "Saved.").unwrap();
        data.flash("info", "Welcome back.").unwrap();
        let mut read = SessionData::decode(&data.encode(), 4096);
        assert!(!read.is_changed());
        assert_eq!(read.peek_flashes().len(), 2);
        assert_eq!(
            read.take_flashes(),
            vec![
                Flash::new("success", "Saved."),
                Flash::new("info", "Welcome back.")
            ]
        );
        assert!(read.is_changed());
        assert!(read.take_flashes().is_empty());
        assert!(read.encode().is_empty());
    }
}

//! The session record and its compact binary encoding.
//!
//! Reading a session is the hot path of every authenticated request, so the record is not
//! JSON: a fixed layout decodes in a fraction of the time. Layout (little-endian):
//!
//! ```text
//! version u8 (=1) | user id: tag u8 (0 int: i64 | 1 text: str) | token_version i64
//! | created_at u64 | last_activity u64 | flags u8 (1 remember_me, 2 sudo_until, 4 login_type)
//! | [sudo_until u64] | ip str | user_agent str | csrf_nonce str | [login_type str]
//! ```
//!
//! where `str` is a u16 length and UTF-8 bytes. Anything else — a short read, trailing bytes,
//! an unknown version, bad UTF-8 — is corrupt, and corrupt records read as absent.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::user::UserId;

/// What the store keeps for a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The owner.
    pub user_id: UserId,
    /// The owner's credential epoch when the session was made; a session from another epoch is
    /// dead.
    pub token_version: i64,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Last recorded activity, ms since the epoch (rewritten at most once per write interval).
    pub last_activity: u64,
    /// Whether this is a remember-me session.
    pub remember_me: bool,
    /// Client address at creation.
    pub ip: String,
    /// User agent at creation (at most 512 bytes).
    pub user_agent: String,
    /// The CSRF nonce: the client's token is derived from it (see [`crate::csrf`]).
    pub csrf_nonce: String,
    /// Sudo mode until this time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_until: Option<u64>,
    /// How the session was made (`password`, `oauth`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_type: Option<String>,
}

const VERSION: u8 = 1;
const REMEMBER_ME: u8 = 1;
const HAS_SUDO: u8 = 2;
const HAS_LOGIN_TYPE: u8 = 4;

impl SessionRecord {
    /// The record's stored form.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            64 + self.ip.len() + self.user_agent.len() + self.csrf_nonce.len(),
        );
        out.put_u8(VERSION);
        match &self.user_id {
            UserId::Int(n) => {
                out.put_u8(0);
                out.put_i64_le(*n);
            }
            UserId::Text(s) => {
                out.put_u8(1);
                put_str(&mut out, s);
            }
        }
        out.put_i64_le(self.token_version);
        out.put_u64_le(self.created_at);
        out.put_u64_le(self.last_activity);
        let mut flags = 0;
        if self.remember_me {
            flags |= REMEMBER_ME;
        }
        if self.sudo_until.is_some() {
            flags |= HAS_SUDO;
        }
        if self.login_type.is_some() {
            flags |= HAS_LOGIN_TYPE;
        }
        out.put_u8(flags);
        if let Some(t) = self.sudo_until {
            out.put_u64_le(t);
        }
        put_str(&mut out, &self.ip);
        put_str(&mut out, &self.user_agent);
        put_str(&mut out, &self.csrf_nonce);
        if let Some(l) = &self.login_type {
            put_str(&mut out, l);
        }
        out.freeze()
    }

    /// Reads a stored record; `Err` says why it is corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err("unknown session record version".into());
        }
        let user_id = match r.u8()? {
            0 => UserId::Int(r.i64()?),
            1 => UserId::Text(r.str()?),
            _ => return Err("unknown user id tag".into()),
        };
        let token_version = r.i64()?;
        let created_at = r.u64()?;
        let last_activity = r.u64()?;
        let flags = r.u8()?;
        let sudo_until = if flags & HAS_SUDO != 0 {
            Some(r.u64()?)
        } else {
            None
        };
        let ip = r.str()?;
        let user_agent = r.str()?;
        let csrf_nonce = r.str()?;
        let login_type = if flags & HAS_LOGIN_TYPE != 0 {
            Some(r.str()?)
        } else {
            None
        };
        if !r.0.is_empty() {
            return Err("trailing bytes after a session record".into());
        }
        Ok(Self {
            user_id,
            token_version,
            created_at,
            last_activity,
            remember_me: flags & REMEMBER_ME != 0,
            ip,
            user_agent,
            csrf_nonce,
            sudo_until,
            login_type,
        })
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    // Every string we store is bounded far below 64 KiB (the user agent is cut at 512 bytes).
    let len = s.len().min(usize::from(u16::MAX));
    out.put_u16_le(len as u16);
    out.put_slice(&s.as_bytes()[..len]);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("session record is truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn str(&mut self) -> Result<String, String> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "session record holds invalid UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionRecord {
        SessionRecord {
            user_id: UserId::Int(42),
            token_version: 3,
            created_at: 1_700_000_000_000,
            last_activity: 1_700_000_060_000,
            remember_me: true,
            ip: "2001:db8::1".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 — ü".into(),
            csrf_nonce: "nonce".into(),
            sudo_until: Some(1_700_000_600_000),
            login_type: Some("password".into()),
        }
    }

    #[test]
    fn round_trips() {
        let record = sample();
        assert_eq!(
            SessionRecord::from_bytes(&record.to_bytes()).unwrap(),
            record
        );
        let plain = SessionRecord {
            user_id: UserId::Text("0b9c-uuid".into()),
            remember_me: false,
            sudo_until: None,
            login_type: None,
            ..sample()
        };
        assert_eq!(SessionRecord::from_bytes(&plain.to_bytes()).unwrap(), plain);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                SessionRecord::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(SessionRecord::from_bytes(&extra).is_err());
        let mut version = bytes.to_vec();
        version[0] = 9;
        assert!(SessionRecord::from_bytes(&version).is_err());
        assert!(
            SessionRecord::from_bytes(br#"{"user_id": 1}"#).is_err(),
            "JSON is not a session record"
        );
    }
}

//! The session record and its compact binary encoding.
//!
//! Reading a session is the hot path of every authenticated request, so the record is not
//! JSON: a fixed layout decodes in a fraction of the time, and its text fields share one
//! buffer, so a read makes one allocation and one UTF-8 check whatever the record holds.
//! Layout (little-endian):
//!
//! ```text
//! version u8 (=3) | user id: tag u8 (0 int: i64 | 1 text: u16 length) | token_version i64
//! | created_at u64 | last_activity u64 | flags u8 (1 remember_me, 2 sudo_until, 4 login_type,
//! 8 data) | [sudo_until u64] | lengths u16 × 4 (ip, device, csrf_nonce, login_type)
//! | [data length u32] | text: [user id] ip device csrf_nonce [login_type], UTF-8 | [data]
//! ```
//!
//! The device is the User-Agent as `GET /sessions` shows it, parsed once at sign-in and kept in
//! [`DeviceInfo::encode`]'s form (about 30 bytes where the header is about 130). Version 2
//! records, which kept the raw User-Agent there, still read: their header is parsed on reading,
//! and the next write stores version 3.
//!
//! The application's session data (see `SessionData`) rides at the end as opaque bytes, so a
//! record without any costs nothing more, and reading one decodes none of it until asked.
//!
//! Anything else — a short read, trailing bytes, an unknown version, bad UTF-8 — is corrupt,
//! and corrupt records read as absent.
//!
//! ```
//! use crudauth_core::session::{NewSession, SessionRecord};
//! use crudauth_core::user::UserId;
//!
//! let client = NewSession { ip: "203.0.113.9".into(), user_agent: "curl/8.5".into(), ..Default::default() };
//! let record = SessionRecord::new(UserId::Int(7), 0, 1_700_000_000_000, &client, "nonce");
//! let read = SessionRecord::from_bytes(&record.to_bytes()).unwrap();
//! assert_eq!((read.ip(), read.device().browser.as_str(), read.login_type()), ("203.0.113.9", "curl", None));
//! assert_eq!(read, record);
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::NewSession;
use crate::device::{cut, DeviceInfo};
use crate::user::UserId;

/// What the store keeps for a session. The text fields are read through accessors; they live
/// in one buffer. `Debug` shows everything but the CSRF nonce.
#[derive(Clone, PartialEq)]
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
    /// Sudo mode until this time, ms since the epoch.
    pub sudo_until: Option<u64>,
    /// ip ‖ device ‖ csrf_nonce ‖ login_type.
    text: String,
    /// The application's data, as [`SessionData`](super::SessionData) encodes it; empty: none.
    data: Bytes,
    /// Where ip, device and csrf_nonce end in `text`; login_type is the rest.
    ends: [usize; 3],
    has_login_type: bool,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user_id", &self.user_id)
            .field("token_version", &self.token_version)
            .field("created_at", &self.created_at)
            .field("last_activity", &self.last_activity)
            .field("remember_me", &self.remember_me)
            .field("sudo_until", &self.sudo_until)
            .field("ip", &self.ip())
            .field("device", &self.device())
            .field("csrf_nonce", &"***")
            .field("login_type", &self.login_type())
            .field("data_bytes", &self.data.len())
            .finish()
    }
}

const VERSION: u8 = 3;
/// The version that kept the raw User-Agent where the device is now.
const WITH_USER_AGENT: u8 = 2;
const REMEMBER_ME: u8 = 1;
const HAS_SUDO: u8 = 2;
const HAS_LOGIN_TYPE: u8 = 4;
const HAS_DATA: u8 = 8;
/// The most application data a record can carry (its length is a u32; the configured bound,
/// [`SessionConfig::max_data_bytes`](super::SessionConfig::max_data_bytes), is far below).
pub const MAX_DATA: usize = 1 << 20;

impl SessionRecord {
    /// A new record for `user_id` at credential epoch `token_version`, created at `now` (ms)
    /// by `client`, with CSRF nonce `csrf_nonce`. The user agent is parsed into the device
    /// (from its first 512 bytes) and every text field is cut to 64 KiB.
    pub fn new(
        user_id: UserId,
        token_version: i64,
        now: u64,
        client: &NewSession,
        csrf_nonce: &str,
    ) -> Self {
        let mut record = Self {
            user_id,
            token_version,
            created_at: now,
            last_activity: now,
            remember_me: client.remember_me,
            sudo_until: None,
            text: String::new(),
            data: Bytes::new(),
            ends: [0; 3],
            has_login_type: false,
        };
        record.set_text(
            &client.ip,
            &DeviceInfo::parse(&client.user_agent).encode(),
            csrf_nonce,
            client.login_type.as_deref(),
        );
        record
    }

    /// Client address at creation.
    pub fn ip(&self) -> &str {
        &self.text[..self.ends[0]]
    }

    /// The device, as the User-Agent at sign-in named it.
    pub fn device(&self) -> DeviceInfo {
        DeviceInfo::decode(&self.text[self.ends[0]..self.ends[1]])
    }

    /// The CSRF nonce: the client's token is derived from it (see [`crate::csrf`]).
    pub fn csrf_nonce(&self) -> &str {
        &self.text[self.ends[1]..self.ends[2]]
    }

    /// How the session was made (`password`, `oauth`, …).
    pub fn login_type(&self) -> Option<&str> {
        self.stored_login_type()
            .map(|t| t.split_once(':').map_or(t, |(kind, _)| kind))
    }

    /// The provider of an OAuth sign-in (`NewSession::login_type` `oauth:{provider}`).
    pub fn oauth_provider(&self) -> Option<&str> {
        self.stored_login_type()
            .and_then(|t| t.split_once(':'))
            .map(|(_, provider)| provider)
    }

    /// The application's data as stored (empty when there is none).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Replaces the application's data; `Err` (and nothing changed) over [`MAX_DATA`].
    pub fn set_data(&mut self, data: Bytes) -> Result<(), &'static str> {
        if data.len() > MAX_DATA {
            return Err("session data too large");
        }
        self.data = data;
        Ok(())
    }

    fn stored_login_type(&self) -> Option<&str> {
        self.has_login_type.then(|| &self.text[self.ends[2]..])
    }

    /// Replaces the CSRF nonce (rotation).
    pub fn set_csrf_nonce(&mut self, nonce: &str) {
        let old = std::mem::take(&mut self.text);
        let [ip_end, device_end, nonce_end] = self.ends;
        let login_type = self.has_login_type.then(|| &old[nonce_end..]);
        self.set_text(&old[..ip_end], &old[ip_end..device_end], nonce, login_type);
    }

    fn set_text(&mut self, ip: &str, device: &str, nonce: &str, login_type: Option<&str>) {
        let fields = [ip, device, nonce, login_type.unwrap_or("")].map(|f| cut(f, MAX_TEXT));
        self.text = String::with_capacity(fields.iter().map(|f| f.len()).sum());
        for (i, field) in fields.iter().enumerate() {
            self.text.push_str(field);
            if let Some(end) = self.ends.get_mut(i) {
                *end = self.text.len();
            }
        }
        self.has_login_type = login_type.is_some();
    }

    /// The record's stored form.
    pub fn to_bytes(&self) -> Bytes {
        let user_text = match &self.user_id {
            UserId::Int(_) => "",
            UserId::Text(s) => cut(s, MAX_TEXT),
        };
        let mut out =
            BytesMut::with_capacity(68 + user_text.len() + self.text.len() + self.data.len());
        out.put_u8(VERSION);
        match &self.user_id {
            UserId::Int(n) => {
                out.put_u8(0);
                out.put_i64_le(*n);
            }
            UserId::Text(_) => {
                out.put_u8(1);
                out.put_u16_le(user_text.len() as u16);
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
        if self.has_login_type {
            flags |= HAS_LOGIN_TYPE;
        }
        if !self.data.is_empty() {
            flags |= HAS_DATA;
        }
        out.put_u8(flags);
        if let Some(t) = self.sudo_until {
            out.put_u64_le(t);
        }
        let mut start = 0;
        for end in self.ends.into_iter().chain([self.text.len()]) {
            // Every field was cut to MAX_TEXT, which fits a u16.
            out.put_u16_le((end - start) as u16);
            start = end;
        }
        if !self.data.is_empty() {
            // set_data keeps it within MAX_DATA, which fits a u32.
            out.put_u32_le(self.data.len() as u32);
        }
        out.put_slice(user_text.as_bytes());
        out.put_slice(self.text.as_bytes());
        out.put_slice(&self.data);
        out.freeze()
    }

    /// Reads a stored record; `Err` says why it is corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION && version != WITH_USER_AGENT {
            return Err("unknown session record version");
        }
        let (int_id, user_len) = match r.u8()? {
            0 => (Some(r.i64()?), 0),
            1 => (None, r.u16()?),
            _ => return Err("unknown user id tag"),
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
        let lengths = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
        let has_login_type = flags & HAS_LOGIN_TYPE != 0;
        if !has_login_type && lengths[3] != 0 {
            return Err("session record has a login type it does not flag");
        }
        let data_len = if flags & HAS_DATA != 0 {
            let len = u32::from_le_bytes(r.array()?) as usize;
            if len == 0 || len > MAX_DATA {
                return Err("session record data has an impossible length");
            }
            len
        } else {
            0
        };
        let user_id = match int_id {
            Some(n) => UserId::Int(n),
            None => UserId::Text(text(r.take(user_len)?)?.to_owned()),
        };
        let total = lengths.iter().sum();
        let all = text(r.take(total)?)?;
        let data = Bytes::copy_from_slice(r.take(data_len)?);
        if !r.0.is_empty() {
            return Err("trailing bytes after a session record");
        }
        let mut ends = [0; 3];
        let mut end = 0;
        for (slot, len) in ends.iter_mut().zip(lengths) {
            end += len;
            *slot = end;
        }
        // Each field must end on a character boundary to be sliced out.
        if !ends.iter().all(|e| all.is_char_boundary(*e)) {
            return Err("session record splits a character");
        }
        let mut record = Self {
            user_id,
            token_version,
            created_at,
            last_activity,
            remember_me: flags & REMEMBER_ME != 0,
            sudo_until,
            text: all.to_owned(),
            data,
            ends,
            has_login_type,
        };
        if version == WITH_USER_AGENT {
            let [ip_end, ua_end, nonce_end] = ends;
            let device = DeviceInfo::parse(&all[ip_end..ua_end]).encode();
            let login_type = has_login_type.then(|| &all[nonce_end..]);
            record.set_text(&all[..ip_end], &device, &all[ua_end..nonce_end], login_type);
        }
        Ok(record)
    }
}

/// The longest text field stored (its length is a u16).
const MAX_TEXT: usize = u16::MAX as usize;

fn text(bytes: &[u8]) -> Result<&str, &'static str> {
    std::str::from_utf8(bytes).map_err(|_| "session record holds invalid UTF-8")
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("session record is truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<usize, &'static str> {
        Ok(usize::from(u16::from_le_bytes(self.array()?)))
    }

    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionRecord {
        let client = NewSession {
            ip: "2001:db8::1".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 — ü".into(),
            remember_me: true,
            login_type: Some("password".into()),
        };
        let mut record =
            SessionRecord::new(UserId::Int(42), 3, 1_700_000_000_000, &client, "nonce");
        record.last_activity = 1_700_000_060_000;
        record.sudo_until = Some(1_700_000_600_000);
        record
    }

    #[test]
    fn round_trips() {
        let record = sample();
        assert_eq!(record.ip(), "2001:db8::1");
        let device = record.device();
        assert_eq!(
            (device.browser.as_str(), device.os.as_str()),
            ("Firefox", "Linux")
        );
        assert!(device.is_pc);
        assert_eq!(record.csrf_nonce(), "nonce");
        assert_eq!(record.login_type(), Some("password"));
        assert_eq!(
            SessionRecord::from_bytes(&record.to_bytes()).unwrap(),
            record
        );
        let plain = SessionRecord {
            user_id: UserId::Text("0b9c-uuid".into()),
            remember_me: false,
            sudo_until: None,
            ..SessionRecord::new(UserId::Int(0), 3, 5, &NewSession::default(), "n2")
        };
        let read = SessionRecord::from_bytes(&plain.to_bytes()).unwrap();
        assert_eq!(read, plain);
        assert_eq!(
            (read.ip(), read.device(), read.login_type()),
            ("", DeviceInfo::unknown(), None)
        );
        assert_eq!(read.user_id, UserId::Text("0b9c-uuid".into()));
        assert_eq!(record.oauth_provider(), None);
    }

    #[test]
    fn application_data_rides_along_and_survives_a_nonce_rotation() {
        let mut record = sample();
        let before = record.to_bytes().len();
        record
            .set_data(Bytes::from_static(br#"{"cart":[1,2]}"#))
            .unwrap();
        record.set_csrf_nonce("rotated");
        let read = SessionRecord::from_bytes(&record.to_bytes()).unwrap();
        assert_eq!(read.data(), br#"{"cart":[1,2]}"#);
        assert_eq!(read, record);
        assert_eq!(
            record.to_bytes().len(),
            before + 4 + 14 + "rotated".len() - 5
        );
        record.set_data(Bytes::new()).unwrap();
        assert_eq!(
            record.to_bytes().len(),
            before + 2,
            "no data, no length field"
        );
        assert!(record
            .set_data(Bytes::from(vec![b' '; MAX_DATA + 1]))
            .is_err());
        assert!(record.data().is_empty(), "a refused write changes nothing");
        // A length that runs past the end, or a flagged length of zero, is corrupt.
        let mut bytes = read.to_bytes().to_vec();
        bytes.pop();
        assert!(SessionRecord::from_bytes(&bytes).is_err());
    }

    #[test]
    fn an_oauth_sign_in_keeps_its_provider() {
        let client = NewSession {
            login_type: Some("oauth:github".into()),
            ..NewSession::default()
        };
        let mut record = SessionRecord::new(UserId::Int(1), 0, 5, &client, "n");
        record.set_csrf_nonce("m");
        let read = SessionRecord::from_bytes(&record.to_bytes()).unwrap();
        assert_eq!(read.login_type(), Some("oauth"));
        assert_eq!(read.oauth_provider(), Some("github"));
    }

    #[test]
    fn the_nonce_rotates_alone() {
        let mut record = sample();
        record.set_csrf_nonce("a-longer-nonce-than-before");
        assert_eq!(record.csrf_nonce(), "a-longer-nonce-than-before");
        assert_eq!(record.ip(), "2001:db8::1");
        assert_eq!(record.login_type(), Some("password"));
        assert_eq!(record.device(), sample().device());
        assert_eq!(
            SessionRecord::from_bytes(&record.to_bytes()).unwrap(),
            record
        );
    }

    #[test]
    fn the_device_is_kept_instead_of_the_user_agent() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let client = NewSession {
            user_agent: ua.into(),
            ..Default::default()
        };
        let record = SessionRecord::new(UserId::Int(1), 0, 0, &client, "n");
        assert_eq!(record.device(), DeviceInfo::parse(ua));
        assert!(!record.to_bytes().windows(7).any(|w| w == b"Mozilla"));
        // Even a 64 KiB header leaves a short record.
        let huge = NewSession {
            user_agent: format!("{}{}", "é".repeat(400), "x".repeat(65_000)),
            ..Default::default()
        };
        let record = SessionRecord::new(UserId::Int(1), 0, 0, &huge, "n");
        assert!(record.to_bytes().len() < 200);
        assert_eq!(
            SessionRecord::from_bytes(&record.to_bytes()).unwrap(),
            record
        );
    }

    #[test]
    fn a_version_2_record_reads_with_its_user_agent_parsed() {
        // Version 2 kept the raw header where the device is now; sessions made before the
        // change stay signed in.
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) Version/17.1.2 Mobile/15E148 Safari/604.1";
        let mut old = sample();
        old.set_text("2001:db8::1", ua, "nonce", Some("password"));
        let mut bytes = old.to_bytes().to_vec();
        bytes[0] = 2;
        let read = SessionRecord::from_bytes(&bytes).unwrap();
        assert_eq!(read.device(), DeviceInfo::parse(ua));
        assert_eq!(
            (read.ip(), read.csrf_nonce(), read.login_type()),
            ("2001:db8::1", "nonce", Some("password"))
        );
        assert_eq!(
            (read.user_id.clone(), read.sudo_until),
            (UserId::Int(42), old.sudo_until)
        );
        assert_eq!(read.to_bytes()[0], 3, "written back in the new layout");
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
        version[0] = 1;
        assert!(
            SessionRecord::from_bytes(&version).is_err(),
            "the old layout"
        );
        assert!(
            SessionRecord::from_bytes(br#"{"user_id": 1}"#).is_err(),
            "JSON is not a session record"
        );
        // Moving a length so a field would end inside "ü" is refused, not a panic.
        let mut record = sample();
        record.set_text("2001:db8::1", "0\u{1f}Bü", "nonce", Some("password"));
        let mut split = record.to_bytes().to_vec();
        let lengths_at = split.len() - record.text.len() - 8;
        let ua = u16::from_le_bytes([split[lengths_at + 2], split[lengths_at + 3]]);
        let ip = u16::from_le_bytes([split[lengths_at], split[lengths_at + 1]]);
        split[lengths_at + 2..lengths_at + 4].copy_from_slice(&(ua - 1).to_le_bytes());
        split[lengths_at + 4..lengths_at + 6].copy_from_slice(&(5u16 + 1).to_le_bytes());
        assert_eq!(ip, 11);
        assert!(SessionRecord::from_bytes(&split).is_err());
    }
}

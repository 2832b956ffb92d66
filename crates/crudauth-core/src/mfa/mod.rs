//! Two-factor authentication (TOTP): secrets sealed at rest, replay-proof codes, recovery codes.

pub mod fernet;

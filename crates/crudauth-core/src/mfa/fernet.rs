//! Fernet tokens (placeholder).

//! The UserStore conformance suite (filled in by the sqlx work).

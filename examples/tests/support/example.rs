//! Building an example binary for a test that runs it (shared by the binary and browser tests).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Builds `cargo build --example <name>` (a stale binary would be tested otherwise: `cargo
/// test` alone does not rebuild examples) and answers the executable's path.
pub fn example_binary(name: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    // Without the variables cargo set for this test (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`,
    // …): build scripts that watch them would rebuild, and the next `cargo test` after them.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let ours = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY",
        ];
        if ours.iter().any(|p| key.starts_with(p)) || key == "OUT_DIR" {
            cargo.env_remove(&*key);
        }
    }
    cargo.args(["build", "--example", name, "--message-format=json"]);
    cargo.arg("--manifest-path");
    cargo.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let out = cargo.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "cargo build --example {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for example {name}"))
}

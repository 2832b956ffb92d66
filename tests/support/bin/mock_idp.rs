//! `mock-idp`: the tests' mock OpenID Connect provider, and its GitHub-like sibling, as a
//! program to try the demo app against by hand.
//!
//! ```text
//! MOCK_IDP_BIND=127.0.0.1:9100 cargo run -p crudauth-tests --bin mock-idp
//! ```
//!
//! It approves every authorization at once, for a default user that a script can change:
//! `curl -X POST -H 'content-type: application/json' -d '{"sub":"u-2","email":"bob@example.com"}'
//! http://127.0.0.1:9100/admin/user`, and it misbehaves on demand:
//! `curl -X POST -d wrong_nonce http://127.0.0.1:9100/admin/defect` (`/admin/clear` undoes).

use std::process::ExitCode;

use crudauth_tests::mock_idp::{IdpOptions, MockIdp};

/// Where it listens unless `MOCK_IDP_BIND` says otherwise.
const DEFAULT_BIND: &str = "127.0.0.1:9100";

#[tokio::main]
async fn main() -> ExitCode {
    let bind = std::env::var("MOCK_IDP_BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let idp = match MockIdp::bind(&bind, IdpOptions::default()).await {
        Ok(idp) => idp,
        Err(e) => {
            eprintln!(
                "mock-idp: cannot listen on {bind}: {e} (set MOCK_IDP_BIND to a free host:port)"
            );
            return ExitCode::FAILURE;
        }
    };
    let base = idp.base_url();
    println!("mock-idp: a mock OpenID Connect provider (test-only keys; do not trust its tokens)");
    println!("  issuer         {}", idp.issuer());
    println!("  discovery      {}", idp.discovery_url());
    println!("  client id      {}", idp.client_id());
    println!("  client secret  {}", idp.client_secret());
    println!("  GitHub-like    {}", idp.github_base());
    println!("  admin          POST {base}/admin/user (JSON claims of the next user)");
    println!("                 POST {base}/admin/defect (a defect by name, e.g. wrong_nonce)");
    println!("                 POST {base}/admin/clear, POST {base}/admin/rotate-keys");
    println!("Ctrl-C stops it.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("mock-idp: cannot wait for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

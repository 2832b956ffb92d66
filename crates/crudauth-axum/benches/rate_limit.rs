//! What `RateLimitLayer` costs on a trivial route: the same handler with and without it, on
//! the memory limiter.
//!
//! - `rate_limit_layer`: in-process through the whole router (`tower::ServiceExt::oneshot`),
//!   with the client address attached as `axum::serve` attaches it, beside the same route under
//!   a layer that does nothing (what any `route_layer` costs). Two loads: one client under a
//!   budget it never exhausts, and 4096 clients (one counter each) under 1000 per second each.
//! - `rate_limit_layer_http`: the same routes served by `axum::serve` on loopback, one
//!   keep-alive client, request after request: what a caller sees.
//!
//! `cargo bench -p crudauth-axum --bench rate_limit -- --warm-up-time 1 --measurement-time 5`

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use criterion::{Criterion, Throughput};
use crudauth_axum::{CrudAuth, RateLimit, SessionTransport};
use crudauth_core::user::MemoryUsers;
use tower::ServiceExt;

fn request(path: &'static str, peer: SocketAddr) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).expect("a request");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// `/plain`, `/noop` (a layer that does nothing), `/limited` (one client, a budget never
/// exhausted) and `/limited-many` (1000 per second per client).
fn app() -> Router {
    let auth = CrudAuth::builder()
        .secret_key([7u8; 32])
        .users(MemoryUsers::new())
        .session_transport(SessionTransport::default())
        .warn_on_memory_backend(false)
        .build()
        .expect("a configuration");
    let endless = RateLimit::new(1_000_000_000, Duration::from_secs(3600));
    let per_second = RateLimit::new(1000, Duration::from_secs(1));
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route(
            "/noop",
            get(|| async { "ok" })
                .route_layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
        )
        .route(
            "/limited",
            get(|| async { "ok" }).route_layer(auth.rate_limit("one", endless)),
        )
        .route(
            "/limited-many",
            get(|| async { "ok" }).route_layer(auth.rate_limit("many", per_second)),
        )
        .layer(auth.layer())
}

fn in_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let app = app();
    let one: SocketAddr = "203.0.113.7:50000".parse().expect("an address");
    let many: Vec<SocketAddr> = (0..4096u32)
        .map(|i| SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 50000)))
        .collect();

    let mut group = c.benchmark_group("rate_limit_layer");
    group.throughput(Throughput::Elements(1));
    for (name, path, peers) in [
        ("plain", "/plain", &many),
        ("noop_layer", "/noop", &many),
        ("limited_one_client", "/limited", &vec![one]),
        ("limited_4096_clients", "/limited-many", &many),
    ] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % peers.len();
                let (app, peer) = (app.clone(), peers[i]);
                async move {
                    let response = app.oneshot(request(path, peer)).await.expect("a response");
                    assert_eq!(response.status(), 200);
                    response
                }
            })
        });
    }
    group.finish();
}

fn over_http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let base = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("its address");
        let service = app().into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await });
        format!("http://{addr}")
    });
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("rate_limit_layer_http");
    group.throughput(Throughput::Elements(1));
    for (name, path) in [("plain", "/plain"), ("limited", "/limited")] {
        let url = format!("{base}{path}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let response = client.get(url).send().await.expect("a response");
                    assert_eq!(response.status(), 200);
                    response.bytes().await.expect("a body")
                }
            })
        });
    }
    group.finish();
}

// Written out rather than through criterion_group!, whose generated pub fn has no doc.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    in_process(&mut criterion);
    over_http(&mut criterion);
    criterion.final_summary();
}

//! The baseline: a bare axum server that answers each benchmarked request with a body read from a
//! file at start (the bytes the real server sends for it), chosen by method, path and
//! `X-Environment-Key`; no key checks, no routing normalisation, no middleware. Whatever the real
//! server costs above this is its own work.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8100")]
    bind: SocketAddr,
    /// `METHOD,PATH,ENVIRONMENT_KEY,FILE`: answer that request with the file's bytes.
    #[arg(long = "route", required = true)]
    routes: Vec<String>,
}

type Routes = HashMap<(Method, String, String), Bytes>;

async fn answer(routes: Arc<Routes>, request: Request) -> Response {
    let key = request
        .headers()
        .get("x-environment-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let lookup = (
        request.method().clone(),
        request.uri().path().to_owned(),
        key,
    );
    // Read (and drop) the request body, as a real handler would.
    let _ = axum::body::to_bytes(request.into_body(), 1 << 20).await;
    match routes.get(&lookup) {
        Some(body) => ([(CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut routes = Routes::new();
    for route in &args.routes {
        let parts: Vec<&str> = route.splitn(4, ',').collect();
        anyhow::ensure!(
            parts.len() == 4,
            "--route METHOD,PATH,KEY,FILE, not {route:?}"
        );
        let method: Method = parts[0].parse()?;
        let body = Bytes::from(std::fs::read(parts[3])?);
        routes.insert((method, parts[1].to_owned(), parts[2].to_owned()), body);
    }
    let routes = Arc::new(routes);
    let app = Router::new().fallback(move |request: Request| answer(routes.clone(), request));
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

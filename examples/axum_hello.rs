//! An axum `Router` on every core, served through hyper over
//! `corering::compat::PollIo` (HTTP/1.1 and HTTP/2 on one port):
//!
//! - `GET /` answers `Hello World!`;
//! - `GET /json` answers `{"message":"Hello World!","core":N}`;
//! - `POST /sum` takes `{"values":[..]}` and answers
//!   `{"count":N,"sum":S}`; a body that is not that JSON gets axum's 4xx.
//!
//! It drains on `SIGINT` or `SIGTERM` as the other example servers do.
//!
//! ```sh
//! cargo run --release --features hyper --example axum_hello            # port 8080, every core
//! cargo run --release --features hyper --example axum_hello -- 9000 2  # port, cores
//! curl http://127.0.0.1:8080/json
//! curl -H 'content-type: application/json' -d '{"values":[1,2,3.5]}' http://127.0.0.1:8080/sum
//! ```

#[path = "common/hyper_server.rs"]
mod hyper_server;

use axum::routing::{get, post};
use axum::{Json, Router};
use corering::compat::PollIo;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Message {
    message: &'static str,
    core: usize,
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f64>,
}

#[derive(Serialize)]
struct Sum {
    count: usize,
    sum: f64,
}

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello World!" }))
        .route(
            "/json",
            get(|| async {
                Json(Message {
                    message: "Hello World!",
                    core: corering::current_core().index(),
                })
            }),
        )
        .route(
            "/sum",
            post(|Json(input): Json<Values>| async move {
                Json(Sum {
                    count: input.values.len(),
                    sum: input.values.iter().sum(),
                })
            }),
        )
}

fn main() {
    let args = std::env::args().skip(1).collect();
    let args =
        hyper_server::Args::parse("axum_hello", args, "[port] [cores] [--drain SECONDS]", 8080);
    hyper_server::run("axum_hello", "http", &args, |stream, conn| async move {
        match PollIo::new(stream) {
            Ok(io) => {
                // One router per connection: building it is cheap, and a
                // `Router` clone per request is what axum does anyway.
                let service = TowerToHyperService::new(router());
                hyper_server::serve_http(io, service, &conn).await;
            }
            Err(error) => eprintln!("axum_hello: {error}"),
        }
    });
}

//! The HTTP/1.1 "Hello World!" server, on every core.
//!
//! Each core runs its own runtime and binds its own `SO_REUSEPORT` listener
//! on the same port; the kernel spreads connections across them. Keep-alive
//! and pipelining are supported; a malformed or ambiguously framed request
//! gets 400 (an oversized head 431, a body over 64 KiB 413) and its
//! connection closes; an idle connection closes after the idle timeout.
//!
//! ```sh
//! cargo run --release --example hello                 # port 8080, every core
//! cargo run --release --example hello -- 9000 2 10    # port, cores, idle seconds
//! curl -i http://127.0.0.1:8080/
//! ```

#[path = "../common/accept.rs"]
mod accept;
mod http;

use std::time::Duration;

use corering::buf::BufRing;
use corering::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = parse_arg(args.next(), "port", 8080);
    let cores: usize = parse_arg(
        args.next(),
        "cores",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let idle = Duration::from_secs(parse_arg(args.next(), "idle seconds", 60));

    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .run_on_cores(|core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            async move {
                let listener = match listener {
                    Ok(listener) => listener,
                    Err(error) => {
                        return Err::<(), _>(format!(
                            "{core}: cannot listen on port {port}: {error}"
                        ))
                    }
                };
                let _ = listener.set_nodelay(true);
                // The buffers every connection of this core receives into.
                let ring = match BufRing::new(http::RING_BUFFERS, http::READ_SIZE) {
                    Ok(ring) => ring,
                    Err(error) => {
                        return Err(format!("{core}: cannot register a buffer ring: {error}"))
                    }
                };
                if core.index() == 0 {
                    println!("hello: serving http://127.0.0.1:{port}/ on {cores} cores");
                }
                // Direct descriptors while the ring's table has room;
                // TCP_NODELAY comes from the listener.
                let serve = |stream| {
                    corering::spawn(http::serve(stream, ring.clone(), idle));
                };
                let label = format!("hello: {core}");
                match accept::accept_loop(label, || listener.accept_direct(), serve).await {}
            }
        });
    match launched {
        Ok(results) => {
            for result in results {
                if let Err(error) = result {
                    eprintln!("hello: {error}");
                    std::process::exit(1);
                }
            }
        }
        Err(error) => {
            eprintln!("hello: {error}");
            std::process::exit(1);
        }
    }
}

/// The argument, parsed, or `default` when absent; exits with a message
/// when it does not parse.
fn parse_arg<T: std::str::FromStr>(arg: Option<String>, what: &str, default: T) -> T {
    match arg {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("hello: bad {what}: {text:?}\nusage: hello [port] [cores] [idle seconds]");
            std::process::exit(2);
        }),
    }
}

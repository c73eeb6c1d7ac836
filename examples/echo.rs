//! A TCP echo server on every core: each core binds its own `SO_REUSEPORT`
//! listener on the same port and echoes every byte back until the client
//! closes.
//!
//! ```sh
//! cargo run --release --example echo               # port 7878, every core
//! cargo run --release --example echo -- 9000 2     # port, cores
//! cargo run --release --example echo_client -- 127.0.0.1:7878 64 1024 5
//! ```

#[path = "common/accept.rs"]
mod accept;

use corering::net::{TcpListener, TcpStream};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = arg(args.next(), "port", 7878);
    let cores: usize = arg(
        args.next(),
        "cores",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .run_on_cores(|core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            async move {
                let listener = match listener {
                    Ok(listener) => listener,
                    Err(error) => return Err::<(), _>(format!("{core}: port {port}: {error}")),
                };
                let _ = listener.set_nodelay(true);
                if core.index() == 0 {
                    println!("echo: listening on port {port} on {cores} cores");
                }
                // Direct descriptors while the ring's table has room;
                // TCP_NODELAY comes from the listener.
                let serve = |stream| {
                    corering::spawn(echo(stream));
                };
                let label = format!("echo: {core}");
                match accept::accept_loop(label, || listener.accept_direct(), serve).await {}
            }
        });
    let failed = match launched {
        Ok(results) => results.into_iter().filter_map(Result::err).collect(),
        Err(error) => vec![error.to_string()],
    };
    for error in &failed {
        eprintln!("echo: {error}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// Echoes until the peer closes or the connection fails.
async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (read, returned) = stream.read(buf).await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let (written, returned) = stream.write_all(returned).await;
                if written.is_err() {
                    return;
                }
                buf = returned;
            }
        }
    }
}

fn arg<T: std::str::FromStr>(arg: Option<String>, what: &str, default: T) -> T {
    match arg {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("echo: bad {what}: {text:?}\nusage: echo [port] [cores]");
            std::process::exit(2);
        }),
    }
}

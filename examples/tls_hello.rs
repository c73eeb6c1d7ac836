//! HTTPS "Hello World!" on every core: rustls through tokio-rustls over
//! `corering::compat::PollIo`, then hyper (HTTP/2 or HTTP/1.1, as ALPN
//! agreed), TLS 1.2 and 1.3.
//!
//! The certificate chain and key come from PEM files given with
//! `--cert PATH --key PATH`; without them a self-signed pair for
//! `localhost` and `127.0.0.1` is generated on the first run (rcgen) into
//! the system's temporary directory, reused after, and its path printed.
//! It drains on `SIGINT` or `SIGTERM` as the other example servers do.
//!
//! ```sh
//! cargo run --release --features hyper,tokio-io --example tls_hello            # port 8443, every core
//! cargo run --release --features hyper,tokio-io --example tls_hello -- 9443 2 --cert cert.pem --key key.pem
//! curl -k --http2 https://127.0.0.1:8443/
//! curl -k --http1.1 --tlsv1.2 --tls-max 1.2 https://127.0.0.1:8443/
//! ```

#[path = "common/hyper_server.rs"]
mod hyper_server;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corering::compat::PollIo;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("Hello World! ({:?} over TLS)", request.version());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cert = take_flag(&mut args, "--cert");
    let key = take_flag(&mut args, "--key");
    let args = hyper_server::Args::parse(
        "tls_hello",
        args,
        "[port] [cores] [--cert PATH --key PATH] [--drain SECONDS]",
        8443,
    );
    let (cert, key) = match (cert, key) {
        (Some(cert), Some(key)) => (PathBuf::from(cert), PathBuf::from(key)),
        (None, None) => self_signed().unwrap_or_else(|error| fail(&error)),
        _ => fail("--cert and --key go together"),
    };
    let config = server_config(&cert, &key).unwrap_or_else(|error| fail(&error));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    hyper_server::run("tls_hello", "https", &args, move |stream, conn| {
        let acceptor = acceptor.clone();
        async move {
            let io = match PollIo::new(stream) {
                Ok(io) => io,
                Err(error) => return eprintln!("tls_hello: {error}"),
            };
            // A failed or slow handshake (a plain-HTTP client, a wrong
            // certificate, a scanner) ends only this connection.
            let handshake = corering::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io));
            let Some(Ok(Ok(tls))) = conn.until(handshake).await else {
                return;
            };
            let service = hyper::service::service_fn(hello);
            hyper_server::serve_http(TokioIo::new(tls), service, &conn).await;
        }
    });
}

/// The rustls configuration: the chain and key from the PEM files, ALPN
/// h2 then http/1.1, TLS 1.2 and 1.3.
fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("cannot read certificates from {}: {error}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| format!("cannot read a private key from {}: {error}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key do not go together: {error}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The self-signed pair of earlier runs, or a new one: its paths.
fn self_signed() -> Result<(PathBuf, PathBuf), String> {
    let dir = std::env::temp_dir().join("corering-tls-hello");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !(cert.exists() && key.exists()) {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let pair = rcgen::generate_simple_self_signed(names)
            .map_err(|error| format!("cannot generate a certificate: {error}"))?;
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&cert, pair.cert.pem()))
            .and_then(|()| write_private(&key, pair.key_pair.serialize_pem().as_bytes()));
        written.map_err(|error| format!("cannot write {}: {error}", dir.display()))?;
        println!("tls_hello: generated a self-signed certificate for localhost and 127.0.0.1");
    }
    println!(
        "tls_hello: certificate {}, key {}",
        cert.display(),
        key.display()
    );
    Ok((cert, key))
}

/// Writes `bytes` to a new file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// Removes `--name VALUE` from `args`, giving `VALUE`.
fn take_flag(args: &mut Vec<String>, name: &str) -> Option<String> {
    let at = args.iter().position(|arg| arg == name)?;
    args.remove(at);
    if at < args.len() {
        Some(args.remove(at))
    } else {
        fail(&format!("{name} needs a path"))
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tls_hello: {message}");
    std::process::exit(2);
}

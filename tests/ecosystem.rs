//! The hyper, axum and TLS examples as real binaries, driven by real
//! clients: curl over HTTP/1.1, HTTP/2 with prior knowledge and HTTPS
//! (ALPN h2 and http/1.1, TLS 1.2 and 1.3), h2load with 100 streams per
//! connection; each server then stops on SIGTERM, exits 0 and frees its
//! port.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::server::{free_port, Server};

/// curl's body and `--write-out` line for `url` (the last line), failing
/// the test when curl fails.
fn curl(args: &[&str], url: &str) -> (String, String) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed (ci/setup installs it)");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "curl {args:?} {url}: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, written) = stdout.rsplit_once('\n').unwrap();
    (body.to_owned(), written.to_owned())
}

/// Runs h2load for `requests` requests on `clients` connections of 100
/// streams each; asserts every one succeeded with a 2xx.
fn h2load(url: &str, requests: usize, clients: usize) {
    let output = Command::new("h2load")
        .args([
            "-n",
            &requests.to_string(),
            "-c",
            &clients.to_string(),
            "-m",
            "100",
        ])
        .arg(url)
        .output()
        .expect("h2load is installed (ci/setup installs nghttp2-client)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "h2load: {text}");
    let expected = format!(
        "requests: {requests} total, {requests} started, {requests} done, {requests} succeeded, 0 failed, 0 errored, 0 timeout"
    );
    assert!(text.contains(&expected), "h2load: {text}");
    assert!(
        text.contains(&format!(
            "status codes: {requests} 2xx, 0 3xx, 0 4xx, 0 5xx"
        )),
        "h2load: {text}"
    );
}

/// Stops `server` with SIGTERM: it exits 0 within its drain deadline and
/// prints one line per core.
fn stop(server: Server, program: &str) {
    let (took, lines) = server.terminate(Duration::from_secs(5));
    assert!(
        took < Duration::from_secs(6),
        "{program} took {took:?} to stop"
    );
    let cores: Vec<_> = lines
        .iter()
        .filter(|line| line.starts_with(&format!("{program}: core ")))
        .collect();
    assert_eq!(cores.len(), 2, "{lines:?}");
}

#[test]
fn hyper_hello_answers_curl_over_http1_and_h2c_and_h2load_without_errors() {
    let port = free_port();
    let server = Server::start("hyper_hello", &[&port.to_string(), "2"], port);
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        curl(&["--http1.1"], &url),
        ("Hello World!".into(), "200 1.1".into())
    );
    assert_eq!(
        curl(&["--http2-prior-knowledge"], &url),
        ("Hello World!".into(), "200 2".into())
    );
    h2load(&url, 4000, 4);
    stop(server, "hyper_hello");
}

#[test]
fn axum_hello_routes_json_in_and_out_and_refuses_bad_json() {
    let port = free_port();
    let server = Server::start("axum_hello", &[&port.to_string(), "2"], port);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        curl(&[], &format!("{base}/")),
        ("Hello World!".into(), "200 1.1".into())
    );
    let (json, status) = curl(&["--http2-prior-knowledge"], &format!("{base}/json"));
    assert_eq!(status, "200 2");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["message"], "Hello World!");
    assert!(json["core"] == 0 || json["core"] == 1, "{json}");
    let post = ["-H", "content-type: application/json", "-d"];
    let sum = [&post[..], &[r#"{"values":[1,2,3.5,-0.5]}"#]].concat();
    assert_eq!(
        curl(&sum, &format!("{base}/sum")),
        (r#"{"count":4,"sum":6.0}"#.into(), "200 1.1".into())
    );
    let bad = [&post[..], &[r#"{"values":"#]].concat();
    let (_, status) = curl(&bad, &format!("{base}/sum"));
    assert_eq!(status, "400 1.1");
    let wrong = [&post[..], &[r#"{"values":["one"]}"#]].concat();
    let (_, status) = curl(&wrong, &format!("{base}/sum"));
    assert_eq!(status, "422 1.1");
    stop(server, "axum_hello");
}

/// A certificate for localhost and its key, written as PEM into `dir`.
fn certificate(dir: &Path) -> (String, String) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

/// A fresh directory under the target directory's temporary space.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("corering-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tls_hello_serves_h2_and_http1_over_tls_1_2_and_1_3_with_the_given_certificate() {
    let dir = scratch("tls");
    let (cert, key) = certificate(&dir);
    let port = free_port();
    let port_arg = port.to_string();
    let args = [port_arg.as_str(), "2", "--cert", &cert, "--key", &key];
    let server = Server::start("tls_hello", &args, port);
    // Verified against the certificate given, not only with -k.
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    let verified = ["--cacert", &cert, "--resolve", &resolve];
    let cases: [(&[&str], &str); 4] = [
        (&["--http2"], "200 2"),
        (&["--http1.1"], "200 1.1"),
        (&["--http2", "--tlsv1.3"], "200 2"),
        (&["--http2", "--tlsv1.2", "--tls-max", "1.2"], "200 2"),
    ];
    for (extra, expected) in cases {
        let args = [&verified[..], extra].concat();
        let (body, status) = curl(&args, &url);
        assert_eq!(status, expected, "curl {args:?}");
        let version = if expected.ends_with(" 2") {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(body, format!("Hello World! ({version} over TLS)"));
    }
    let (body, status) = curl(&["-k", "--http2"], &format!("https://127.0.0.1:{port}/"));
    assert_eq!(
        (body.as_str(), status.as_str()),
        ("Hello World! (HTTP/2.0 over TLS)", "200 2")
    );
    // Plain HTTP to the TLS port fails the handshake, and the server goes on.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    h2load(&format!("https://127.0.0.1:{port}/"), 2000, 2);
    stop(server, "tls_hello");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tls_hello_generates_a_self_signed_pair_once_and_says_where() {
    let dir = scratch("tls-self-signed");
    let port = free_port();
    let start = || {
        let mut command = Command::new(common::example_binary("tls_hello"));
        command.env("TMPDIR", &dir).args([&port.to_string(), "1"]);
        command
    };
    let pair = dir.join("corering-tls-hello");
    let (cert, key) = (pair.join("cert.pem"), pair.join("key.pem"));
    for run in 0..2 {
        let server = Server::spawn(start(), port);
        let said = server.said().join("");
        assert_eq!(
            said.contains("generated a self-signed certificate"),
            run == 0,
            "run {run}: {said}"
        );
        assert!(said.contains(&cert.display().to_string()), "{said}");
        let (body, _) = curl(
            &[
                "--cacert",
                &cert.display().to_string(),
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
            ],
            &format!("https://localhost:{port}/"),
        );
        assert_eq!(body, "Hello World! (HTTP/2.0 over TLS)");
        drop(server);
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is for its owner only");
    std::fs::remove_dir_all(dir).unwrap();
}

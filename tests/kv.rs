//! The kv example run as its own binary on one core, driven by
//! `redis-cli` for every command, by raw sockets for pipelines, inline
//! commands, commands split across sends and malformed input, and by
//! `redis-benchmark` for a short pipelined run with every key it wrote
//! checked afterwards.
//!
//! The binary is built first, by the cargo that runs this test, with this
//! test's profile and target: `cargo test` builds the examples before it
//! runs any test, but `cargo test --test kv` does not.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The kv example's binary, built on first use.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| common::example_binary("kv"))
}

/// A kv server, on a port the kernel picked; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    /// Kept open so that the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// On one core.
    fn start() -> Server {
        Server::on_cores(1)
    }

    fn on_cores(cores: usize) -> Server {
        let mut child = Command::new(binary())
            .args(["0", &cores.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the kv example starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("kv: listening on port ")
            .and_then(|rest| rest.split_once(&format!(" on {cores} cores (")))
            .map(|(port, _backend)| port)
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the server did not say its port: {line:?}")
            });
        Server {
            child,
            port,
            _stdout: stdout,
        }
    }

    /// What `redis-cli` prints for the command of `args`, in the form it
    /// gives a terminal (`--no-raw`): `"bulk"`, `(integer) 1`, `(nil)`,
    /// `(error) ...`, numbered array elements.
    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["--no-raw", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed (ci/setup installs redis-tools)");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// A raw connection, reads timing out after 10 s.
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Sends `request` on a new connection and reads until the server
    /// closes it; closes our side first when `then_close`.
    fn exchange(&self, request: &[u8], then_close: bool) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        if then_close {
            stream.shutdown(Shutdown::Write).unwrap();
        }
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `words` as redis-cli sends them: an array of bulk strings.
fn resp(words: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        out.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
        out.extend_from_slice(word);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn redis_cli_gets_the_exact_reply_to_every_command() {
    let server = Server::start();
    let cases: &[(&[&str], &str)] = &[
        (&["PING"], "PONG\n"),
        (&["PING", "hello"], "\"hello\"\n"),
        (&["COMMAND", "DOCS"], "(empty array)\n"),
        (&["SET", "greeting", "hello world"], "OK\n"),
        (&["GET", "greeting"], "\"hello world\"\n"),
        (&["get", "missing"], "(nil)\n"),
        (&["SET", "greeting", "other", "NX"], "(nil)\n"),
        (&["SET", "fresh", "1", "XX"], "(nil)\n"),
        (&["SET", "fresh", "1", "NX"], "OK\n"),
        (&["SET", "greeting", "hi", "GET"], "\"hello world\"\n"),
        (&["INCR", "counter"], "(integer) 1\n"),
        (&["INCR", "counter"], "(integer) 2\n"),
        (
            &["INCR", "greeting"],
            "(error) ERR value is not an integer or out of range\n",
        ),
        (&["MSET", "a", "1", "b", "2"], "OK\n"),
        (
            &["MGET", "a", "missing", "b"],
            "1) \"1\"\n2) (nil)\n3) \"2\"\n",
        ),
        (&["EXISTS", "a", "b", "missing", "a"], "(integer) 3\n"),
        (&["DBSIZE"], "(integer) 5\n"),
        (&["DEL", "a", "b", "missing"], "(integer) 2\n"),
        (&["DBSIZE"], "(integer) 3\n"),
        (&["CONFIG", "GET", "save"], "1) \"save\"\n2) \"\"\n"),
        (
            &["FOO", "bar"],
            "(error) ERR unknown command 'FOO', with args beginning with: 'bar' \n",
        ),
        (
            &["GET"],
            "(error) ERR wrong number of arguments for 'get' command\n",
        ),
        (
            &["MSET", "a", "1", "b"],
            "(error) ERR wrong number of arguments for 'mset' command\n",
        ),
        (
            &["SET", "k", "v", "EX", "0"],
            "(error) ERR invalid expire time in 'set' command\n",
        ),
        (&["SET", "k", "v", "NX", "XX"], "(error) ERR syntax error\n"),
        (&["FLUSHALL"], "OK\n"),
        (&["DBSIZE"], "(integer) 0\n"),
        (&["GET", "greeting"], "(nil)\n"),
    ];
    for (args, expected) in cases {
        assert_eq!(server.cli(args), *expected, "{args:?}");
    }
    // INFO's text, which redis-cli prints as it is.
    server.cli(&["SET", "a", "1"]);
    assert_eq!(
        server.cli(&["INFO"]),
        "# Server\r\nserver_name:corering-kv\r\nredis_mode:standalone\r\n\
         multiplexing_api:io_uring\r\ncore:0\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
    );
}

#[test]
fn keys_expire_when_read_and_by_the_sweep_when_not() {
    let server = Server::start();
    assert_eq!(server.cli(&["SET", "read", "v", "PX", "300"]), "OK\n");
    assert_eq!(server.cli(&["SET", "unread", "v", "PX", "300"]), "OK\n");
    assert_eq!(server.cli(&["SET", "kept", "v", "EX", "100"]), "OK\n");
    assert_eq!(server.cli(&["GET", "read"]), "\"v\"\n");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(server.cli(&["GET", "read"]), "(nil)\n");
    // DBSIZE counts expired keys not yet removed, so 1 means the sweep
    // (every 100 ms) removed the key nobody read. A loaded machine may
    // run the sweep late.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut dbsize = server.cli(&["DBSIZE"]);
    while dbsize != "(integer) 1\n" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        dbsize = server.cli(&["DBSIZE"]);
    }
    assert_eq!(dbsize, "(integer) 1\n");
    assert_eq!(server.cli(&["GET", "kept"]), "\"v\"\n");
}

#[test]
fn pipelined_commands_get_their_replies_in_order() {
    let server = Server::start();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for n in 0..100 {
        let key = format!("key{n}");
        request.extend(resp(&[b"SET", key.as_bytes(), n.to_string().as_bytes()]));
        request.extend(resp(&[b"INCR", key.as_bytes()]));
        request.extend(resp(&[b"GET", key.as_bytes()]));
        let value = (n + 1).to_string();
        expected.extend(format!("+OK\r\n:{value}\r\n${}\r\n{value}\r\n", value.len()).bytes());
    }
    // Longer than a batch (1,024 commands): answered a batch at a time.
    for n in 1..=3000 {
        request.extend(resp(&[b"INCR", b"counter"]));
        expected.extend(format!(":{n}\r\n").bytes());
    }
    request.extend(resp(&[b"DBSIZE"]));
    expected.extend(b":101\r\n");
    assert_eq!(
        String::from_utf8(server.exchange(&request, true)).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}

#[test]
fn inline_commands_work_as_telnet_sends_them() {
    let server = Server::start();
    let request =
        b"PING\r\nSET name \"two words\"\r\nGET name\r\nget  name\n\r\nEXISTS name nope\r\n";
    assert_eq!(
        String::from_utf8(server.exchange(request, true)).unwrap(),
        "+PONG\r\n+OK\r\n$9\r\ntwo words\r\n$9\r\ntwo words\r\n:1\r\n"
    );
}

#[test]
fn a_command_split_across_sends_is_answered_once_it_is_whole() {
    let server = Server::start();
    let mut stream = server.connect();
    let request = resp(&[b"SET", b"k", b"hello"]);
    let (first, rest) = request.split_at(request.len() - 4);
    stream.write_all(first).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut reply = [0u8; 64];
    let early = stream.read(&mut reply).unwrap_err();
    assert!(
        matches!(early.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{early}"
    );
    stream.write_all(rest).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
    // A value of 1 MiB arrives over many receives and comes back whole.
    let value: Vec<u8> = (0..1 << 20).map(|n: u32| (n % 251) as u8).collect();
    let mut request = resp(&[b"SET", b"big", &value]);
    request.extend(resp(&[b"GET", b"big"]));
    let mut expected = format!("+OK\r\n${}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\n");
    for chunk in request.chunks(100_000) {
        stream.write_all(chunk).unwrap();
    }
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).unwrap();
    assert!(reply == expected, "the 1 MiB value came back changed");
}

#[test]
fn malformed_input_gets_a_protocol_error_and_the_connection_closes() {
    let server = Server::start();
    let cases: &[(&[u8], &str)] = &[
        (
            b"PING\r\n*x\r\nPING\r\n",
            "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nGET\r\n",
            "-ERR Protocol error: expected '$', got 'G'\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$99999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$4\r\nPINGxx",
            "-ERR Protocol error: expected CRLF after bulk string\r\n",
        ),
        (
            b"SET k \"open\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (request, expected) in cases {
        let response = server.exchange(request, false);
        assert_eq!(
            String::from_utf8(response).unwrap(),
            *expected,
            "{}",
            request.escape_ascii()
        );
    }
    // An inline line over 64 KiB, still without its end, is refused while
    // the client is still sending.
    let long = vec![b'a'; 100 * 1024];
    assert_eq!(
        String::from_utf8(server.exchange(&long, false)).unwrap(),
        "-ERR Protocol error: too big inline request\r\n"
    );
    // The server goes on serving, other connections and new ones.
    assert_eq!(server.cli(&["PING"]), "PONG\n");
}

#[test]
fn redis_benchmark_pipelined_run_leaves_every_key_set() {
    let server = Server::start();
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-t", "set,get", "-n", "20000", "-P", "16", "-c", "20", "-q"])
        // Keys key:000000000000 to key:000000000099.
        .args(["-r", "100"])
        .output()
        .expect("redis-benchmark is installed (ci/setup installs redis-tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // No warning (it asks CONFIG GET as it starts), no error.
    assert_eq!(stderr, "");
    assert!(
        stdout.contains("SET: ") && stdout.contains("GET: "),
        "{stdout}"
    );
    // 20,000 SETs of 100 keys chosen at random leave none unset (the
    // chance of one is below 1e-85). Each value is redis-benchmark's
    // 3 bytes of data: from its generator, seeded with 1234, "VXK".
    assert_eq!(server.cli(&["DBSIZE"]), "(integer) 100\n");
    let keys: Vec<String> = (0..100).map(|n| format!("key:{n:012}")).collect();
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    // redis-cli aligns the numbers of the elements.
    let expected: String = (1..=100).map(|n| format!("{n:>3}) \"VXK\"\n")).collect();
    assert_eq!(server.cli(&mget), expected);
}

/// Two cores, each owning half the keys: a pipelined redis-benchmark run
/// through connections on both leaves every key set once, and commands
/// that span both shards (MSET, MGET, DEL, EXISTS, DBSIZE, FLUSHALL) give
/// exactly redis's replies from either core.
#[test]
fn two_cores_share_one_keyspace() {
    let server = Server::on_cores(2);
    // Connections land on both cores (SO_REUSEPORT spreads them): with 32
    // of them, the chance that all land on one is 2^-31.
    let cores: std::collections::BTreeSet<String> = (0..32)
        .map(|_| {
            let info = server.cli(&["INFO"]);
            info.lines()
                .find(|line| line.starts_with("core:"))
                .unwrap_or_else(|| panic!("INFO names its core: {info}"))
                .to_owned()
        })
        .collect();
    assert_eq!(cores.len(), 2, "{cores:?}");
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-t", "set", "-n", "20000", "-P", "16", "-c", "20", "-q"])
        .args(["-r", "100"])
        .output()
        .expect("redis-benchmark is installed (ci/setup installs redis-tools)");
    assert!(output.status.success(), "{output:?}");
    for _ in 0..8 {
        assert_eq!(server.cli(&["DBSIZE"]), "(integer) 100\n");
        let mut mget = vec!["MGET"];
        let keys: Vec<String> = (0..100).map(|n| format!("key:{n:012}")).collect();
        mget.extend(keys.iter().map(String::as_str));
        let expected: String = (1..=100).map(|n| format!("{n:>3}) \"VXK\"\n")).collect();
        assert_eq!(server.cli(&mget), expected);
    }
    let pairs: Vec<String> = (0..16)
        .flat_map(|n| [format!("k{n}"), n.to_string()])
        .collect();
    let mut mset = vec!["MSET"];
    mset.extend(pairs.iter().map(String::as_str));
    assert_eq!(server.cli(&mset), "OK\n");
    for _ in 0..4 {
        assert_eq!(
            server.cli(&["MGET", "k3", "nope", "k15", "k0"]),
            "1) \"3\"\n2) (nil)\n3) \"15\"\n4) \"0\"\n"
        );
        assert_eq!(
            server.cli(&["EXISTS", "k1", "k2", "k2", "nope"]),
            "(integer) 3\n"
        );
    }
    assert_eq!(
        server.cli(&["DEL", "k1", "k2", "k3", "nope"]),
        "(integer) 3\n"
    );
    assert_eq!(server.cli(&["DBSIZE"]), "(integer) 113\n");
    assert_eq!(server.cli(&["FLUSHALL"]), "OK\n");
    for _ in 0..4 {
        assert_eq!(server.cli(&["DBSIZE"]), "(integer) 0\n");
    }
}

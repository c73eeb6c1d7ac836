//! The epoll backend's own guarantees, on epoll whatever
//! `CORERING_BACKEND` says: a dropped operation leaves its descriptor's
//! waiters and frees its buffer at once; no descriptor is closed while
//! another operation waits on it; a file job dropped on the pool frees its
//! state (and closes what it opened) once done; the runtime's drop takes
//! what waits with it; a hang-up seen once is never waited out. And the
//! examples, under a seccomp filter that refuses `io_uring_setup` (a
//! container runtime's default profile), serve real clients on epoll.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use common::server::{free_port, Server};
use common::{open_fds, pipe, poll_once, settle, DropBuf};
use corering::net::{TcpListener, TcpStream};
use corering::{Backend, Runtime};

fn epoll() -> Runtime {
    let runtime = Runtime::builder().backend(Backend::Epoll).build().unwrap();
    assert_eq!(runtime.backend(), Backend::Epoll);
    runtime
}

/// A read waiting on an empty pipe, dropped: its buffer is freed in the
/// drop (nothing of it is left to the kernel), the wait is counted as
/// cancelled, and a later write wakes nobody.
#[test]
fn a_dropped_wait_frees_its_buffer_at_once() {
    let _serial = common::serial();
    epoll().block_on(async {
        let (reader, writer) = pipe();
        let (buf, drops, at_drop) = DropBuf::new(64);
        let mut read = Box::pin(reader.read(buf));
        assert!(poll_once(&mut read).await.is_pending());
        assert_eq!(corering::stats().in_flight, 1);
        drop(read);
        assert_eq!(drops.get(), 1, "freed in the drop");
        let stats = at_drop.take().expect("dropped once");
        assert_eq!((stats.cancelled, stats.in_flight), (1, 0));
        writer.write(b"late".as_slice()).await.0.unwrap();
        // The bytes are still in the pipe for the next read.
        let (read, buf) = reader.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (4, &b"late"[..]));
        let stats = corering::stats();
        assert_eq!(
            (stats.submitted, stats.completed, stats.cancelled),
            (3, 2, 1)
        );
    });
}

/// Two tasks share one stream: one waits to read while the other drops
/// its handle. The descriptor stays open until the waiting read is done,
/// and closes after.
#[test]
fn no_descriptor_closes_while_another_operation_waits_on_it() {
    let _serial = common::serial();
    let before = open_fds();
    epoll().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let server = Rc::new(server);
        let raw = server.as_fd().unwrap().as_raw_fd();
        let reading = {
            let server = server.clone();
            corering::spawn(async move { server.read(Vec::with_capacity(16)).await })
        };
        settle(|| corering::stats().in_flight == 1, 1000).await;
        drop(server);
        corering::time::sleep(Duration::from_millis(10)).await;
        // SAFETY: F_GETFD on a number we only look at.
        assert_ne!(unsafe { libc::fcntl(raw, libc::F_GETFD) }, -1, "still open");
        client.write_all(b"hello".to_vec()).await.0.unwrap();
        let (read, buf) = reading.await.unwrap();
        assert_eq!((read.unwrap(), &buf[..]), (5, &b"hello"[..]));
        drop((client, listener));
        settle(|| open_fds() == before, 1000).await;
    });
    assert_eq!(open_fds(), before, "every descriptor closed");
}

/// An open that blocks on the pool (a FIFO with no writer), dropped: its
/// state waits in the driver until the job is done, then the descriptor
/// it opened is closed. Nothing leaks.
#[test]
fn a_file_job_dropped_on_the_pool_closes_what_it_opened() {
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("corering-epoll-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let before = open_fds();
    let runtime = epoll();
    runtime.block_on(async {
        let mut open = Box::pin(corering::fs::File::open(&fifo));
        assert!(poll_once(&mut open).await.is_pending());
        corering::time::sleep(Duration::from_millis(20)).await;
        assert!(poll_once(&mut open).await.is_pending(), "blocked in open");
        drop(open);
        assert_eq!(corering::stats().cancelled, 1);
        // A writer lets the blocked open finish on the pool.
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
        });
        let writer = writer.join().unwrap();
        // The orphan is counted in use until its job is done and its
        // late descriptor closed.
        settle(|| corering::stats().slots_in_use == 0, 2000).await;
        assert_eq!(corering::stats().slots_in_use, 0);
        drop(writer);
    });
    drop(runtime);
    assert_eq!(open_fds(), before, "the late descriptor was closed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A peer's data and its hang-up can come in one edge: the read after the
/// short one must see the end of the stream, not wait for an edge that
/// never comes.
#[test]
fn a_hang_up_is_never_waited_out() {
    let _serial = common::serial();
    epoll().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(&[7; 100]).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        corering::time::sleep(Duration::from_millis(20)).await;
        let mut total = 0;
        loop {
            let (read, _) = server.read(Vec::with_capacity(64)).await;
            match read.unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert_eq!(total, 100);
    });
}

/// Dropping the runtime with a thousand reads waiting frees every buffer,
/// leaves nothing in flight and closes every descriptor.
#[test]
fn runtime_drop_takes_what_waits_with_it() {
    let _serial = common::serial();
    let before = open_fds();
    let runtime = epoll();
    let drops = runtime.block_on(async {
        let (reader, _writer) = pipe();
        let reader = Rc::new(reader);
        let mut drops = Vec::new();
        for _ in 0..1000 {
            let (buf, dropped, _) = DropBuf::new(8);
            let reader = reader.clone();
            drop(corering::spawn(async move { reader.read(buf).await }));
            drops.push(dropped);
        }
        settle(|| corering::stats().in_flight == 1000, 1000).await;
        assert_eq!(corering::stats().in_flight, 1000);
        drops
    });
    let stats = runtime.shutdown();
    assert_eq!((stats.in_flight, stats.cancelled), (0, 1000));
    assert!(drops.iter().all(|dropped| dropped.get() == 1));
    assert_eq!(open_fds(), before);
}

/// `command`, run under a seccomp filter that refuses `io_uring_setup`,
/// waited for until it says it serves on `port`, on epoll.
fn serve_without_io_uring(example: &str, args: &[&str], port: u16) -> Server {
    let mut command = Command::new(common::example_binary(example));
    command.args(args).env_remove("CORERING_BACKEND");
    // SAFETY: between fork and exec the child only installs the filter
    // (two prctl calls), which a forked child may.
    unsafe {
        command.pre_exec(|| {
            common::seccomp::refuse(libc::SYS_io_uring_setup);
            Ok(())
        });
    }
    let server = Server::spawn(command, port);
    let said = server.said().join("");
    assert!(said.contains("(epoll)"), "{example} said {said:?}");
    server
}

fn curl(url: &str) -> String {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "10", url])
        .output()
        .expect("curl is installed (ci/setup installs it)");
    assert!(output.status.success(), "curl failed: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn hello_serves_curl_where_io_uring_is_refused() {
    let _serial = common::serial();
    let port = free_port();
    let server = serve_without_io_uring("hello", &[&port.to_string(), "2"], port);
    for _ in 0..3 {
        assert_eq!(curl(&format!("http://127.0.0.1:{port}/")), "Hello World!");
    }
    let (_, said) = server.terminate(Duration::from_secs(5));
    // Each core reports its own: "hello: core 0: 2 connections, 2 responses; ...".
    let responses: usize = said
        .iter()
        .filter_map(|line| {
            line.split(" responses")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(responses, 3, "{said:?}");
}

#[test]
fn echo_echoes_where_io_uring_is_refused() {
    let _serial = common::serial();
    let port = free_port();
    let server = serve_without_io_uring("echo", &[&port.to_string(), "2"], port);
    let mut streams: Vec<_> = (0..4).map(|_| server.connect()).collect();
    for (id, stream) in streams.iter_mut().enumerate() {
        let message: Vec<u8> = (0..100_000).map(|i| (i * 7 + id) as u8).collect();
        stream.write_all(&message).unwrap();
        let mut echoed = vec![0; message.len()];
        stream.read_exact(&mut echoed).unwrap();
        assert!(echoed == message, "connection {id} got its bytes back");
    }
    drop(streams);
    server.terminate(Duration::from_secs(5));
}

#[test]
fn file_server_serves_files_where_io_uring_is_refused() {
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("corering-epoll-site-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    std::fs::write(dir.join("big.txt"), &body).unwrap();
    let port = free_port();
    let root = dir.to_str().unwrap();
    let server = serve_without_io_uring("file_server", &[root, &port.to_string(), "2"], port);
    assert!(
        curl(&format!("http://127.0.0.1:{port}/big.txt")) == body,
        "the whole file"
    );
    let missing = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg(format!("http://127.0.0.1:{port}/missing.txt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");
    server.terminate(Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An open moved out of its runtime while its job runs, and dropped after
/// the runtime is gone and the job done: the descriptor the job opened is
/// closed, not leaked.
#[test]
// The future is handed out of `block_on` unfinished, on purpose.
#[allow(clippy::async_yields_async)]
fn an_open_dropped_after_its_runtime_closes_what_it_opened() {
    let _serial = common::serial();
    let path = std::env::temp_dir().join(format!("corering-epoll-open-{}", std::process::id()));
    std::fs::write(&path, b"x").unwrap();
    let before = open_fds();
    let runtime = epoll();
    let open = runtime.block_on(async {
        let mut open = Box::pin(corering::fs::File::open(path.clone()));
        assert!(poll_once(&mut open).await.is_pending(), "on the pool");
        open
    });
    drop(runtime);
    // The job finishes on the pool meanwhile; its descriptor is open.
    std::thread::sleep(Duration::from_millis(50));
    drop(open);
    assert_eq!(common::steady_fds_for(Duration::from_millis(50)), before);
    std::fs::remove_file(&path).unwrap();
}

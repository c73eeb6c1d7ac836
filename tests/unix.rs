//! Unix stream sockets: echo through a path and through an abstract name,
//! every stream method, the addresses `accept` reports, and conversions
//! from std and from `OwnedFd`. Every test takes the descriptor-counting
//! lock, since they all open sockets.

mod common;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr as UnixAddr;
use std::rc::Rc;
use std::time::Duration;

use common::{open_fds, settle, ZeroPages, PAST_I32_MAX};
use corering::buf::{BufRing, IoBuf};
use corering::net::{UnixListener, UnixStream};
use corering::time::timeout;

/// Sends `data` through `stream` to an echo server and returns what came back.
async fn round_trip(stream: UnixStream, data: Vec<u8>) -> Vec<u8> {
    let stream = Rc::new(stream);
    let writer = {
        let stream = stream.clone();
        corering::spawn(async move {
            stream.write_all(data).await.0.unwrap();
            stream.shutdown(Shutdown::Write).await.unwrap();
        })
    };
    let mut received = Vec::new();
    loop {
        let (read, buf) = stream.read(Vec::with_capacity(8192)).await;
        if read.unwrap() == 0 {
            break;
        }
        received.extend_from_slice(&buf);
    }
    writer.await.unwrap();
    received
}

async fn echo(stream: UnixStream) {
    loop {
        let (read, buf) = stream.read(Vec::with_capacity(4096)).await;
        if read.unwrap() == 0 {
            return;
        }
        stream.write_all(buf).await.0.unwrap();
    }
}

#[test]
fn unix_stream_echo_by_path_abstract_name_and_pair() {
    let _serial = common::serial();
    corering::start(async {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

        let path = std::env::temp_dir().join(format!("corering-unix-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let client = UnixStream::connect(&path).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert!(peer.is_unnamed(), "the client never bound");
        assert!(server.peer_addr().unwrap().is_unnamed());
        corering::spawn(echo(server));
        assert_eq!(round_trip(client, data.clone()).await, data);
        std::fs::remove_file(&path).unwrap();

        let name = format!("corering-unix-test-{}", std::process::id());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let client = UnixStream::connect_addr(&addr).await.unwrap();
        let peer = client.peer_addr().unwrap();
        assert_eq!(peer.as_abstract_name(), Some(name.as_bytes()));
        corering::spawn(echo(listener.accept().await.unwrap().0));
        assert_eq!(round_trip(client, data.clone()).await, data);

        let (left, right) = UnixStream::pair().unwrap();
        corering::spawn(echo(right));
        assert_eq!(round_trip(left, data.clone()).await, data);

        let missing = std::env::temp_dir().join("corering-no-such-socket");
        let error = UnixStream::connect(&missing).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    });
}

/// Receives from `stream` until the peer closes; returns the count, after
/// checking every byte is zero (against a zero block: a memcmp, fast in
/// debug builds too).
async fn count_zeros(stream: &UnixStream) -> usize {
    const BLOCK: usize = 4 << 20;
    let zeros = vec![0u8; BLOCK];
    let mut buf = Vec::with_capacity(BLOCK);
    let mut received = 0;
    loop {
        buf.clear();
        let (read, returned) = stream.read(buf).await;
        buf = returned;
        let read = read.unwrap();
        if read == 0 {
            return received;
        }
        assert!(buf[..] == zeros[..read], "byte {received}.. not zero");
        received += read;
    }
}

#[test]
fn sends_and_receives_longer_than_i32_max_go_through() {
    let _serial = common::serial();
    corering::start(async {
        let (writer, reader) = UnixStream::pair().unwrap();
        let counter = corering::spawn(async move { count_zeros(&reader).await });
        let sent = timeout(
            Duration::from_secs(120),
            writer.write_all(ZeroPages::new(PAST_I32_MAX)),
        );
        let (sent, buf) = sent.await.expect("2.5 GiB in two minutes");
        sent.unwrap();
        assert_eq!(buf.bytes_init(), PAST_I32_MAX);
        drop(writer);
        assert_eq!(counter.await.unwrap(), PAST_I32_MAX);

        // A receive into 3 GiB (not touched: the kernel fills 3 bytes).
        let (a, b) = UnixStream::pair().unwrap();
        a.write_all(b"abc".as_slice()).await.0.unwrap();
        let (read, buf) = b.read(Vec::with_capacity(3 << 30)).await;
        assert_eq!(read.unwrap(), 3);
        assert_eq!(buf, b"abc");
    });
}

/// Every stream method on a Unix stream, each with the exact bytes it
/// moved: the stream core is the same as TCP's, so a Unix stream lacks none.
#[test]
fn unix_streams_go_through_every_stream_method() {
    let _serial = common::serial();
    let fds_before = open_fds();
    corering::start(async {
        let (a, b) = UnixStream::pair().unwrap();

        // write and read.
        let (written, buf) = a.write(b"hello".as_slice()).await;
        assert_eq!((written.unwrap(), buf), (5, &b"hello"[..]));
        let (read, buf) = b.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (5, &b"hello"[..]));

        // write_all of more than the socket buffer holds, read concurrently.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let (a, b) = (Rc::new(a), Rc::new(b));
        let writer = {
            let (a, data) = (a.clone(), data.clone());
            corering::spawn(async move { a.write_all(data).await })
        };
        let mut received = Vec::new();
        while received.len() < data.len() {
            let (read, buf) = b.read(Vec::with_capacity(64 << 10)).await;
            assert!(read.unwrap() > 0);
            received.extend_from_slice(&buf);
        }
        let (written, returned) = writer.await.unwrap();
        written.unwrap();
        assert_eq!(returned, data, "the buffer comes back as it was");
        assert_eq!(received, data);

        // writev and readv, buffers in order (an empty one included).
        let out = vec![b"ab".to_vec(), Vec::new(), b"cde".to_vec()];
        let (written, out) = a.writev(out).await;
        assert_eq!(written.unwrap(), 5);
        assert_eq!(out, [&b"ab"[..], b"", b"cde"]);
        let into = vec![
            Vec::with_capacity(1),
            Vec::with_capacity(3),
            Vec::with_capacity(8),
        ];
        let (read, into) = b.readv(into).await;
        assert_eq!(read.unwrap(), 5);
        assert_eq!(into, [&b"a"[..], b"bcd", b"e"]);

        // send_zc: Linux (6.18 included) has no zero-copy send for Unix
        // sockets (SOCK_SUPPORT_ZC is TCP's and UDP's) and says so; the
        // buffer comes back whole and no byte moves (the next receive
        // gets exactly the next send's bytes).
        let (sent, buf) = a.send_zc(b"zero-copy".to_vec()).await;
        assert_eq!(buf, b"zero-copy");
        match sent {
            Ok(sent) => {
                assert_eq!(sent, 9);
                let (read, buf) = b.read(Vec::with_capacity(16)).await;
                assert_eq!((read.unwrap(), &buf[..]), (9, &b"zero-copy"[..]));
            }
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EOPNOTSUPP));
                assert_eq!(error.kind(), ErrorKind::Unsupported);
            }
        }

        // recv_buf: one receive into a ring's buffer.
        let ring = BufRing::new(4, 64).unwrap();
        a.write_all(b"ring".as_slice()).await.0.unwrap();
        let buf = b.recv_buf(&ring).await.unwrap().unwrap();
        assert_eq!(&buf[..], b"ring");
        drop(buf);
        assert_eq!(ring.available(), 4, "the buffer went back");

        // recv_multi: one multishot receive, buffers as data arrives.
        let mut stream = b.recv_multi(&ring);
        let mut multi = Vec::new();
        for chunk in [&b"one "[..], b"two ", b"three"] {
            a.write_all(chunk).await.0.unwrap();
            let buf = stream.next().await.unwrap().unwrap();
            multi.extend_from_slice(&buf);
        }
        assert_eq!(multi, b"one two three");
        drop(stream);
        settle(|| ring.available() == 4, 1000).await;
        assert_eq!(ring.available(), 4);

        // The two linked turns, against a peer that answers each request.
        let peer = {
            let b = b.clone();
            corering::spawn(async move {
                for reply in [&b"pong"[..], b"PONG"] {
                    let (read, request) = b.read(Vec::with_capacity(16)).await;
                    read.unwrap();
                    b.write_all(reply).await.0.unwrap();
                    assert!(request == b"ping" || request == b"PING", "{request:?}");
                }
            })
        };
        let (received, out, into) = a
            .write_all_then_read(b"ping".to_vec(), Vec::with_capacity(16))
            .await;
        assert_eq!(
            (received.unwrap(), &out[..], &into[..]),
            (4, &b"ping"[..], &b"pong"[..])
        );
        let (received, out) = a.write_all_then_recv_buf(b"PING".to_vec(), &ring).await;
        assert_eq!(&received.unwrap().unwrap()[..], b"PONG");
        assert_eq!(out, b"PING");
        peer.await.unwrap();

        // shutdown: the write side ends, the peer reads the end and can
        // still answer.
        a.shutdown(Shutdown::Write).await.unwrap();
        let (read, _) = b.read(Vec::with_capacity(8)).await;
        assert_eq!(read.unwrap(), 0, "end of stream after shutdown");
        b.write_all(b"after".as_slice()).await.0.unwrap();
        let (read, buf) = a.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &buf[..]), (5, &b"after"[..]));

        // close: reported, and the peer sees the end.
        let a = Rc::try_unwrap(a).unwrap();
        a.close().await.unwrap();
        let (read, _) = b.read(Vec::with_capacity(8)).await;
        assert_eq!(read.unwrap(), 0);
        let (written, _) = b.write(b"gone".as_slice()).await;
        assert_eq!(written.unwrap_err().kind(), ErrorKind::BrokenPipe);
        Rc::try_unwrap(b).unwrap().close().await.unwrap();
        let stats = corering::stats();
        assert_eq!((stats.in_flight, stats.slots_in_use), (0, 0));
    });
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn vectored_calls_with_more_buffers_than_one_call_takes_hand_them_back_untouched() {
    let _serial = common::serial();
    corering::start(async {
        let (a, b) = UnixStream::pair().unwrap();
        let submitted = corering::stats().submitted;
        let out: Vec<Vec<u8>> = (0..1025u32)
            .map(|i| vec![(i % 251) as u8; 1 + i as usize % 3])
            .collect();
        let (sent, returned) = a.writev(out.clone()).await;
        let error = sent.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(error.to_string().contains("1025 buffers"), "{error}");
        assert_eq!(returned, out, "every buffer back, in order, as it was");

        // Buffers with bytes already in them and room for more: none is
        // written into.
        let into: Vec<Vec<u8>> = (0..1025u32)
            .map(|i| {
                let mut buf = Vec::with_capacity(8);
                buf.push((i % 251) as u8);
                buf
            })
            .collect();
        let expected = into.clone();
        let (received, returned) = b.readv(into).await;
        assert_eq!(received.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(returned, expected);
        assert!(returned.iter().all(|buf| buf.capacity() == 8));
        assert_eq!(corering::stats().submitted, submitted, "nothing submitted");

        // The stream still works: 1,024 buffers are one call's worth.
        let (sent, _) = a.writev(vec![b"x".as_slice(); 1024]).await;
        assert_eq!(sent.unwrap(), 1024);
        let (read, buf) = b.read(Vec::with_capacity(2048)).await;
        assert_eq!((read.unwrap(), buf), (1024, vec![b'x'; 1024]));
    });
}

/// The peer address `accept` returns: unnamed for a client that never
/// bound, the client's own path or abstract name for one that did.
#[test]
fn accept_returns_the_peers_address() {
    let _serial = common::serial();
    corering::start(async {
        let dir = std::env::temp_dir().join(format!("corering-unix-accept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let server_path = dir.join("server.sock");
        let listener = UnixListener::bind(&server_path).unwrap();

        let anonymous = UnixStream::connect(&server_path).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert!(peer.is_unnamed());
        assert!(anonymous.local_addr().unwrap().is_unnamed());
        assert_eq!(
            server.local_addr().unwrap().as_pathname(),
            Some(server_path.as_path())
        );

        // A client bound to a path before it connects (std cannot do
        // that: a raw socket, then `From<OwnedFd>`).
        let client_path = dir.join("client.sock");
        let bound = UnixStream::from(bound_unix_stream(
            &UnixAddr::from_pathname(&client_path).unwrap(),
            &server_path,
        ));
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.as_pathname(), Some(client_path.as_path()));
        assert_eq!(
            server.peer_addr().unwrap().as_pathname(),
            Some(client_path.as_path())
        );
        bound.write_all(b"bound".as_slice()).await.0.unwrap();
        let (read, buf) = server.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &buf[..]), (5, &b"bound"[..]));

        // And one bound to an abstract name.
        let name = format!("corering-accept-{}", std::process::id());
        let _named = UnixStream::from(bound_unix_stream(
            &UnixAddr::from_abstract_name(name.as_bytes()).unwrap(),
            &server_path,
        ));
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.as_abstract_name(), Some(name.as_bytes()));

        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// A Unix stream socket bound to `local`, then connected (blocking: a
/// listening Unix socket completes the connection before any accept) to
/// `server`.
fn bound_unix_stream(local: &UnixAddr, server: &std::path::Path) -> OwnedFd {
    let (local, local_len) = raw_unix_addr(local);
    let (server, server_len) = raw_unix_addr(&UnixAddr::from_pathname(server).unwrap());
    // SAFETY: socket takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the pointers and lengths describe live `sockaddr_un`s.
    unsafe {
        let bound = libc::bind(
            fd.as_raw_fd(),
            (&local as *const libc::sockaddr_un).cast(),
            local_len,
        );
        assert_eq!(bound, 0, "{}", std::io::Error::last_os_error());
        let connected = libc::connect(
            fd.as_raw_fd(),
            (&server as *const libc::sockaddr_un).cast(),
            server_len,
        );
        assert_eq!(connected, 0, "{}", std::io::Error::last_os_error());
    }
    fd
}

/// The kernel form of a path or abstract Unix address.
fn raw_unix_addr(addr: &UnixAddr) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid `sockaddr_un`.
    let mut raw: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes: Vec<u8> = match (addr.as_pathname(), addr.as_abstract_name()) {
        (Some(path), _) => {
            let mut bytes = path.as_os_str().as_encoded_bytes().to_vec();
            bytes.push(0);
            bytes
        }
        (None, Some(name)) => [&[0u8][..], name].concat(),
        (None, None) => Vec::new(),
    };
    for (slot, &byte) in raw.sun_path.iter_mut().zip(&bytes) {
        *slot = byte as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len();
    (raw, len as libc::socklen_t)
}

/// Each conversion from std and from `OwnedFd`, used for a round trip.
#[test]
fn std_unix_sockets_and_owned_fds_convert_and_work_through_the_ring() {
    let _serial = common::serial();
    corering::start(async {
        let dir = std::env::temp_dir().join(format!("corering-unix-from-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        // From<std UnixListener>: accepts through the ring.
        let path = dir.join("std-listener.sock");
        let listener = UnixListener::from(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        // From<std UnixStream>: a std client (its connect completes at
        // once against a listening Unix socket).
        let client = UnixStream::from(std::os::unix::net::UnixStream::connect(&path).unwrap());
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"from std".as_slice()).await.0.unwrap();
        let (read, buf) = server.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (8, &b"from std"[..]));
        server.write_all(b"and back".as_slice()).await.0.unwrap();
        let (read, buf) = client.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (8, &b"and back"[..]));
        // AsFd lends the same descriptor the std socket had.
        let raw = client.as_fd().as_raw_fd();
        assert_eq!(client.as_raw_fd(), raw);
        assert!(raw >= 0);

        // From<OwnedFd> for both.
        let path = dir.join("owned-listener.sock");
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let listener = UnixListener::from(OwnedFd::from(std_listener));
        let std_client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let client = UnixStream::from(OwnedFd::from(std_client));
        let (server, _) = listener.accept().await.unwrap();
        let (received, _, reply) = {
            let echo = corering::spawn(async move {
                let (_, request) = server.read(Vec::with_capacity(8)).await;
                server.write_all(request).await.0.unwrap();
            });
            let turn = client
                .write_all_then_read(b"owned".to_vec(), Vec::with_capacity(8))
                .await;
            echo.await.unwrap();
            turn
        };
        assert_eq!((received.unwrap(), &reply[..]), (5, &b"owned"[..]));
        listener.close().await.unwrap();

        std::fs::remove_dir_all(&dir).unwrap();
    });
}

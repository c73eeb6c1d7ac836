//! Unix stream sockets: echo through a path and through an abstract name.

mod common;

use std::net::Shutdown;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr as UnixAddr;
use std::rc::Rc;
use std::time::Duration;

use common::{ZeroPages, PAST_I32_MAX};
use corering::buf::IoBuf;
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

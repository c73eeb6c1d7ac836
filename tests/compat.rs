//! The ecosystem on `compat::PollIo`: tokio's and futures' I/O traits
//! through split streams and codecs, hyper's HTTP/1.1 and HTTP/2 client
//! and server with `HyperExecutor` and `HyperTimer`, exact write
//! semantics, and what a dropped armed wait leaves behind. Each test
//! holds `common::serial()`: one of them counts the process's descriptors.

mod common;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use corering::compat::{HyperExecutor, HyperTimer, PollIo};
use corering::net::{TcpListener, TcpStream, UnixStream};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// A listener on a free loopback port.
fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// `len` bytes of a pattern that shows any byte lost, repeated or moved.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7 + i / 251) % 256) as u8)
        .collect()
}

async fn connect(addr: SocketAddr) -> PollIo<TcpStream> {
    PollIo::new(TcpStream::connect(addr).await.unwrap()).unwrap()
}

#[test]
fn tokio_io_echoes_3_mb_exactly_through_split_streams() {
    let _serial = common::serial();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    corering::start(async {
        let (listener, addr) = listen();
        let server = corering::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut rd, mut wr) = tokio::io::split(PollIo::new(stream).unwrap());
            let copied = tokio::io::copy(&mut rd, &mut wr).await.unwrap();
            wr.shutdown().await.unwrap();
            copied
        });
        let data = pattern(3 << 20, 1);
        let (mut rd, mut wr) = tokio::io::split(connect(addr).await);
        let sent = data.clone();
        let writer = corering::spawn(async move {
            for chunk in sent.chunks(100_003) {
                wr.write_all(chunk).await.unwrap();
            }
            wr.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        rd.read_to_end(&mut echoed).await.unwrap();
        writer.await.unwrap();
        assert_eq!(server.await.unwrap(), 3 << 20);
        assert_eq!(echoed.len(), data.len());
        assert!(echoed == data, "the echo differs from what was sent");
    });
}

#[test]
fn a_lines_codec_round_trips_10_000_lines() {
    let _serial = common::serial();
    use tokio_util::codec::{Framed, FramedRead, FramedWrite, LinesCodec};
    corering::start(async {
        let (listener, addr) = listen();
        let server = corering::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut lines = Framed::new(PollIo::new(stream).unwrap(), LinesCodec::new());
            let mut echoed = 0;
            while let Some(line) = lines.next().await {
                lines.send(line.unwrap()).await.unwrap();
                echoed += 1;
            }
            echoed
        });
        let (rd, wr) = tokio::io::split(connect(addr).await);
        let writer = corering::spawn(async move {
            let mut sink = FramedWrite::new(wr, LinesCodec::new());
            for i in 0..10_000 {
                sink.feed(format!("line {i} {}", "x".repeat(i % 97)))
                    .await
                    .unwrap();
            }
            SinkExt::<String>::flush(&mut sink).await.unwrap();
            tokio::io::AsyncWriteExt::shutdown(sink.get_mut())
                .await
                .unwrap();
        });
        let mut lines = FramedRead::new(rd, LinesCodec::new());
        for i in 0..10_000 {
            let line = lines.next().await.unwrap().unwrap();
            assert_eq!(line, format!("line {i} {}", "x".repeat(i % 97)));
        }
        assert!(lines.next().await.is_none());
        writer.await.unwrap();
        assert_eq!(server.await.unwrap(), 10_000);
    });
}

#[test]
fn futures_io_copies_3_mb_exactly_over_a_unix_stream() {
    let _serial = common::serial();
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    corering::start(async {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let server = corering::spawn(async move {
            let (rd, mut wr) = PollIo::new(theirs).unwrap().split();
            let copied = futures::io::copy(rd, &mut wr).await.unwrap();
            wr.close().await.unwrap();
            copied
        });
        let data = pattern(3 << 20, 2);
        let (mut rd, mut wr) = PollIo::new(ours).unwrap().split();
        let sent = data.clone();
        let writer = corering::spawn(async move {
            wr.write_all(&sent).await.unwrap();
            wr.close().await.unwrap();
        });
        let mut echoed = Vec::new();
        rd.read_to_end(&mut echoed).await.unwrap();
        writer.await.unwrap();
        assert_eq!(server.await.unwrap(), 3 << 20);
        assert!(echoed == data, "the echo differs from what was sent");
    });
}

#[test]
fn a_ready_write_handed_exactly_its_bytes_to_the_kernel_and_pending_none() {
    let _serial = common::serial();
    use tokio::io::{AsyncReadExt, AsyncWrite};
    corering::start(async {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut ours = PollIo::new(ours).unwrap();
        // Write until the socket is full: every Ready(n) counts, the first
        // Pending ends it. The peer reads nothing meanwhile.
        let data = pattern(1 << 16, 3);
        let mut sent = Vec::new();
        let pending = poll_fn(|cx| loop {
            let offset = sent.len() % data.len();
            match Pin::new(&mut ours).poll_write(cx, &data[offset..]) {
                Poll::Ready(Ok(n)) => {
                    assert!(n > 0);
                    sent.extend_from_slice(&data[offset..offset + n]);
                }
                Poll::Ready(Err(error)) => panic!("{error}"),
                Poll::Pending => return Poll::Ready(()),
            }
        });
        pending.await;
        assert!(
            sent.len() >= 1 << 16,
            "a Unix socket holds more than {} bytes",
            sent.len()
        );
        drop(ours);
        let mut got = Vec::new();
        PollIo::new(theirs)
            .unwrap()
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(
            got == sent,
            "the peer read other bytes than the writes reported"
        );
    });
}

#[test]
fn a_vectored_write_past_iov_max_is_not_taken_for_a_full_socket() {
    let _serial = common::serial();
    use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
    corering::start(async {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut ours = PollIo::new(ours).unwrap();
        let mut theirs = PollIo::new(theirs).unwrap();
        // Fill the socket until a write would block (that arms the write
        // side's readiness stream), then let the peer take it all.
        let block = pattern(1 << 16, 5);
        let mut sent = 0;
        poll_fn(|cx| loop {
            match Pin::new(&mut ours).poll_write(cx, &block) {
                Poll::Ready(written) => sent += written.unwrap(),
                Poll::Pending => return Poll::Ready(()),
            }
        })
        .await;
        let mut drained = vec![0; sent];
        theirs.read_exact(&mut drained).await.unwrap();
        // 1,500 buffers: one sendmsg takes the first 1,024, with room to
        // spare. That is not a full socket: the next write goes out at
        // once instead of waiting for room that never runs out.
        let bufs: Vec<_> = (0..1500)
            .map(|_| std::io::IoSlice::new(b"0123456789"))
            .collect();
        let written = ours.write_vectored(&bufs).await.unwrap();
        assert_eq!(written, 10_240);
        let next = corering::time::timeout(Duration::from_secs(2), ours.write_all(b"next"));
        next.await
            .expect("the write after goes out at once")
            .unwrap();
        let mut got = vec![0; 10_244];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[10_240..], b"next");
    });
}

#[test]
fn dropping_a_poll_io_with_a_wait_armed_leaks_no_slot_and_no_descriptor() {
    let _serial = common::serial();
    use tokio::io::AsyncReadExt;
    let before = common::steady_fds();
    corering::start(async {
        let (listener, addr) = listen();
        let client = connect(addr).await;
        let (server, _) = listener.accept().await.unwrap();
        let mut server = PollIo::new(server).unwrap();
        let idle = corering::stats();
        let mut buf = [0; 16];
        // Nothing to read: the read arms a POLL_ADD and waits.
        let read = corering::time::timeout(Duration::from_millis(20), server.read(&mut buf)).await;
        assert!(read.is_err(), "nothing was sent, so the read must wait");
        let armed = corering::stats();
        assert_eq!(
            armed.in_flight,
            idle.in_flight + 1,
            "the readiness wait is armed"
        );
        drop(server);
        drop(client);
        drop(listener);
        // The cancel's CQE and the closes go through the ring.
        for _ in 0..2000 {
            let now = corering::stats();
            if now.in_flight == 0 && now.slots_in_use == 0 {
                break;
            }
            corering::time::sleep(Duration::from_millis(1)).await;
        }
        let after = corering::stats();
        assert_eq!((after.in_flight, after.slots_in_use), (0, 0));
        assert_eq!(after.cancelled, armed.cancelled + 1);
    });
    assert_eq!(common::steady_fds(), before);
}

#[test]
fn a_short_read_then_the_end_of_stream_is_read_not_waited_for() {
    let _serial = common::serial();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    corering::start(async {
        let (listener, addr) = listen();
        let mut client = connect(addr).await;
        let (server, _) = listener.accept().await.unwrap();
        let mut server = PollIo::new(server).unwrap();
        let mut buf = [0; 4096];
        // Nothing yet: the read arms its readiness stream and waits.
        let early = corering::time::timeout(Duration::from_millis(10), server.read(&mut buf));
        assert!(early.await.is_err());
        // The bytes and the FIN arrive together: one event for both, then
        // a short read takes the bytes. The end of stream comes with no
        // event of its own, and must still be read.
        client.write_all(&pattern(100, 4)).await.unwrap();
        client.shutdown().await.unwrap();
        corering::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(server.read(&mut buf).await.unwrap(), 100);
        assert_eq!(&buf[..100], &pattern(100, 4)[..]);
        let end = corering::time::timeout(Duration::from_secs(5), server.read(&mut buf)).await;
        assert_eq!(end.expect("the end of stream is read at once").unwrap(), 0);
    });
}

/// On io_uring in both runs: direct descriptors are the ring's table.
#[test]
fn a_direct_descriptor_is_refused_with_a_clear_error() {
    let _serial = common::serial();
    common::ring_start(async {
        let (listener, addr) = listen();
        let client = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
        let (direct, _) = listener.accept_direct().await.unwrap();
        let error = PollIo::new(direct).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("accept_direct"), "{error}");
        drop(client.join().unwrap());
    });
}

/// A service that answers each request with its own body.
async fn echo_body(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    Ok(Response::new(Full::new(body)))
}

#[test]
fn hyper_http1_echoes_200_keep_alive_requests_up_to_70_kb() {
    let _serial = common::serial();
    corering::start(async {
        let (listener, addr) = listen();
        let server = corering::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(
                    PollIo::new(stream).unwrap(),
                    hyper::service::service_fn(echo_body),
                )
                .await
                .unwrap();
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake(connect(addr).await)
            .await
            .unwrap();
        let conn = corering::spawn(conn);
        for i in 0..200 {
            let body = pattern(i * 353 % (70 << 10) + i, i);
            let request = Request::post("/echo")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let got = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(got.len(), body.len(), "request {i}");
            assert!(got == body, "request {i}: the echo differs");
        }
        drop(sender);
        conn.await.unwrap().unwrap();
        server.await.unwrap();
    });
}

#[test]
fn hyper_http2_runs_100_concurrent_streams_up_to_300_kb_on_one_connection() {
    let _serial = common::serial();
    corering::start(async {
        let (listener, addr) = listen();
        let server = corering::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http2::Builder::new(HyperExecutor::new())
                .timer(HyperTimer::new())
                .max_concurrent_streams(200)
                .serve_connection(
                    PollIo::new(stream).unwrap(),
                    hyper::service::service_fn(echo_body),
                )
                .await
                .unwrap();
        });
        let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor::new())
            .timer(HyperTimer::new())
            .handshake(connect(addr).await)
            .await
            .unwrap();
        let conn = corering::spawn(conn);
        let streams: Vec<_> = (0..100)
            .map(|i| {
                let mut sender = sender.clone();
                corering::spawn(async move {
                    let body = pattern(i * 3011 % (300 << 10) + 1, i);
                    let request = Request::post(format!("http://{addr}/echo/{i}"))
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap();
                    let response = sender.send_request(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    let got = response.into_body().collect().await.unwrap().to_bytes();
                    assert!(got == body, "stream {i}: the echo differs");
                    got.len()
                })
            })
            .collect();
        let mut total = 0;
        for stream in streams {
            total += stream.await.unwrap();
        }
        let expected: usize = (0..100).map(|i| i * 3011 % (300 << 10) + 1).sum();
        assert_eq!(total, expected);
        drop(sender);
        conn.await.unwrap().unwrap();
        server.await.unwrap();
    });
}

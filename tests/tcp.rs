//! TCP over loopback: echo under load, closed and reset peers, and futures
//! dropped in flight. Every test takes the descriptor-counting lock, since
//! they all open sockets.

mod common;

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use common::{open_fds, poll_once, settle, ZeroPages, MAX_RW_COUNT, PAST_I32_MAX};
use corering::buf::BufRing;
use corering::net::{TcpListener, TcpStream};

/// The byte at `offset` of connection `id`'s stream: distinct per
/// connection and position, so misordered or mixed-up bytes show.
fn pattern(id: usize, offset: usize) -> u8 {
    (offset.wrapping_mul(31) ^ id.wrapping_mul(131) ^ (offset >> 11)) as u8
}

/// Echoes everything read back to the peer until it closes its side.
async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (read, returned) = stream.read(buf).await;
        match read.expect("server read") {
            0 => break,
            _ => {
                let (written, returned) = stream.write_all(returned).await;
                written.expect("server write");
                buf = returned;
            }
        }
    }
}

#[test]
fn echo_one_mebibyte_through_a_hundred_connections() {
    let _serial = common::serial();
    const CONNECTIONS: usize = 100;
    const BYTES: usize = 1 << 20;
    let checked = corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corering::spawn(async move {
            for _ in 0..CONNECTIONS {
                let (stream, _) = listener.accept().await.unwrap();
                corering::spawn(echo(stream));
            }
        });
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|id| {
                corering::spawn(async move {
                    let stream = Rc::new(TcpStream::connect(addr).await.unwrap());
                    stream.set_nodelay(true).unwrap();
                    assert!(stream.nodelay().unwrap());
                    assert_eq!(stream.peer_addr().unwrap(), addr);
                    let writer = {
                        let stream = stream.clone();
                        corering::spawn(async move {
                            // Uneven chunk sizes, so writes and reads never
                            // line up.
                            let mut sent = 0;
                            while sent < BYTES {
                                let len =
                                    (7_919 * (sent / 7_919 + 1) % 65_521 + 1).min(BYTES - sent);
                                let chunk: Vec<u8> =
                                    (sent..sent + len).map(|i| pattern(id, i)).collect();
                                stream.write_all(chunk).await.0.unwrap();
                                sent += len;
                            }
                            stream.shutdown(Shutdown::Write).await.unwrap();
                        })
                    };
                    let mut received = 0;
                    let mut buf = Vec::with_capacity(10_007);
                    loop {
                        buf.clear();
                        let (read, returned) = stream.read(buf).await;
                        let read = read.unwrap();
                        if read == 0 {
                            break;
                        }
                        for (i, &byte) in returned.iter().enumerate() {
                            assert_eq!(
                                byte,
                                pattern(id, received + i),
                                "connection {id}, byte {}",
                                received + i
                            );
                        }
                        received += read;
                        buf = returned;
                    }
                    writer.await.unwrap();
                    received
                })
            })
            .collect();
        let mut checked = 0;
        for client in clients {
            assert_eq!(client.await.unwrap(), BYTES);
            checked += 1;
        }
        server.await.unwrap();
        checked
    });
    assert_eq!(checked, CONNECTIONS);
}

#[test]
fn closed_peer_reads_zero_and_writes_fail_cleanly() {
    let _serial = common::serial();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        client.close().await.unwrap();

        let (read, _) = server.read(Vec::with_capacity(64)).await;
        assert_eq!(read.unwrap(), 0, "a closed peer reads as end of stream");
        // The first send may still be accepted; once the peer's reset comes
        // back, sends fail with an error instead of raising SIGPIPE.
        let mut error = None;
        for _ in 0..100 {
            if let (Err(e), _) = server.write(vec![1u8; 1024]).await {
                error = Some(e);
                break;
            }
            corering::time::sleep(Duration::from_millis(1)).await;
        }
        let kind = error.expect("sending to a closed peer fails").kind();
        assert!(
            matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{kind:?}"
        );
    });
}

#[test]
fn reset_peer_gives_connection_reset_on_read_and_on_a_linked_turn() {
    let _serial = common::serial();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        reset_on_close(client.as_fd().unwrap().as_raw_fd());
        client.close().await.unwrap();
        let (read, _) = server.read(Vec::with_capacity(64)).await;
        assert_eq!(read.unwrap_err().kind(), ErrorKind::ConnectionReset);

        // A linked turn fails on its send and gives back both buffers.
        let (result, sent, into) = server
            .write_all_then_read(vec![7u8; 64 << 10], Vec::with_capacity(64))
            .await;
        // The send's own error, not the receive's cancellation.
        let kind = result.unwrap_err().kind();
        assert!(
            matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{kind:?}"
        );
        assert_eq!((sent.len(), into.len()), (64 << 10, 0));
        // And so does a linked turn receiving into a ring.
        let ring = BufRing::new(2, 64).unwrap();
        let (result, sent) = server
            .write_all_then_recv_buf(vec![7u8; 64 << 10], &ring)
            .await;
        let kind = result.unwrap_err().kind();
        assert!(
            matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{kind:?}"
        );
        assert_eq!((sent.len(), ring.available()), (64 << 10, 2));
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

/// Sets SO_LINGER with a zero timeout on `fd`, which turns its close into
/// a reset.
fn reset_on_close(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the pointer and length describe `linger` for the call.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
}

/// On io_uring in both runs: it counts one linked turn as one submission.
#[test]
fn write_all_then_read_sends_everything_and_completes_once_per_turn() {
    let _serial = common::serial();
    // A blocking server: reads a length-prefixed request whole, answers
    // with the sum of its bytes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut len = [0u8; 8];
        while stream.read_exact(&mut len).is_ok() {
            let mut body = vec![0u8; u64::from_le_bytes(len) as usize];
            stream.read_exact(&mut body).unwrap();
            let sum: u64 = body.iter().map(|&byte| u64::from(byte)).sum();
            stream.write_all(&sum.to_le_bytes()).unwrap();
        }
    });
    common::ring_start(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        // From one byte to 4 MiB, far more than the socket buffers hold:
        // the kernel retries the short sends itself.
        for (turn, size) in [1usize, 100, 64 << 10, 4 << 20, 3].into_iter().enumerate() {
            let mut request = (size as u64).to_le_bytes().to_vec();
            request.extend((0..size).map(|offset| pattern(turn, offset)));
            let expected: u64 = request[8..].iter().map(|&byte| u64::from(byte)).sum();
            let before = corering::stats();
            let (received, sent, reply) = stream
                .write_all_then_read(request, Vec::with_capacity(8))
                .await;
            assert_eq!(received.unwrap(), 8);
            assert_eq!(u64::from_le_bytes(reply[..].try_into().unwrap()), expected);
            assert_eq!(sent.len(), size + 8, "the request comes back whole");
            // One operation of two SQEs, one completion, nothing left in
            // flight.
            let after = corering::stats();
            assert_eq!(after.submitted - before.submitted, 1);
            assert_eq!(after.completed - before.completed, 1);
            assert_eq!(after.slots_in_use, 0);
        }
        // Nothing to send: a plain read, here of the end of the stream.
        stream.shutdown(Shutdown::Write).await.unwrap();
        let (received, _, _) = stream
            .write_all_then_read(Vec::new(), Vec::with_capacity(8))
            .await;
        assert_eq!(received.unwrap(), 0);
    });
    server.join().unwrap();
}

#[test]
fn dropped_write_all_then_read_leaks_no_slot_or_descriptor() {
    let _serial = common::serial();
    corering::start(async {
        let fds_before = open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = TcpStream::connect(addr).await.unwrap();
        let (not_reading, _) = listener.accept().await.unwrap();

        // Dropped while the send waits for a peer that does not read.
        let cancelled = corering::stats().cancelled;
        let mut turn = Box::pin(sender.write_all_then_read(vec![1u8; 32 << 20], Vec::new()));
        assert!(poll_once(&mut turn).await.is_pending());
        corering::time::sleep(Duration::from_millis(20)).await;
        assert!(poll_once(&mut turn).await.is_pending());
        assert_eq!(corering::stats().slots_in_use, 1);
        drop(turn);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().cancelled, cancelled + 1);

        // Dropped while the receive waits, the send done (a new pair: the
        // first has unread bytes).
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut turn = Box::pin(server.write_all_then_read(b"hi".to_vec(), Vec::with_capacity(8)));
        assert!(poll_once(&mut turn).await.is_pending());
        let (read, hi) = client.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &hi[..]), (2, &b"hi"[..]));
        assert!(poll_once(&mut turn).await.is_pending());
        drop(turn);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().cancelled, cancelled + 2);
        assert_eq!(corering::stats().in_flight, 0);
        drop((sender, not_reading, client, server, listener));
        settle(|| open_fds() == fds_before, 1000).await;
        assert_eq!(open_fds(), fds_before);
    });
}

/// On io_uring in both runs: it counts one linked turn as one submission.
#[test]
fn ring_receives_hold_no_buffer_while_waiting_and_wait_out_an_empty_ring() {
    let _serial = common::serial();
    common::ring_start(async {
        let ring = BufRing::new(2, 64).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Small writes go out at once, not held back for an ACK.
        server.set_nodelay(true).unwrap();

        // A turn waiting for its answer holds no buffer.
        let mut turn = Box::pin(client.write_all_then_recv_buf(b"ping".to_vec(), &ring));
        assert!(poll_once(&mut turn).await.is_pending());
        let (read, ping) = server.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &ping[..]), (4, &b"ping"[..]));
        assert!(poll_once(&mut turn).await.is_pending());
        assert_eq!(ring.available(), 2);
        server.write_all(b"pong".as_slice()).await.0.unwrap();
        let (received, sent) = turn.await;
        let pong = received.unwrap().unwrap();
        assert_eq!((&pong[..], &sent[..]), (&b"pong"[..], &b"ping"[..]));
        assert_eq!(ring.available(), 1);

        // With the answer already waiting: one submission, one completion.
        server.write_all(b"ready".as_slice()).await.0.unwrap();
        let before = corering::stats();
        let (received, _) = client.write_all_then_recv_buf(b"go".to_vec(), &ring).await;
        let ready = received.unwrap().unwrap();
        let after = corering::stats();
        assert_eq!(&ready[..], b"ready");
        assert_eq!(after.submitted - before.submitted, 1);
        assert_eq!(after.completed - before.completed, 1);
        assert_eq!(ring.available(), 0);

        // The ring is empty: the receive waits for a buffer to come back,
        // and the data waits in the socket.
        server.write_all(b"waited".as_slice()).await.0.unwrap();
        let exhausted = ring.exhausted();
        let mut next = Box::pin(client.recv_buf(&ring));
        assert!(poll_once(&mut next).await.is_pending());
        corering::time::sleep(Duration::from_millis(5)).await;
        assert!(poll_once(&mut next).await.is_pending());
        assert_eq!(ring.exhausted(), exhausted + 1);
        drop((pong, ready));
        let waited = next.await.unwrap().unwrap();
        assert_eq!(&waited[..], b"waited");
        drop(waited);

        // Dropped after its data arrived: the buffer still goes back.
        let mut next = Box::pin(client.recv_buf(&ring));
        assert!(poll_once(&mut next).await.is_pending());
        server.write_all(b"dropped".as_slice()).await.0.unwrap();
        corering::time::sleep(Duration::from_millis(5)).await;
        drop(next);
        // (Given back at the run loop's next turn, outside the driver.)
        settle(|| ring.available() == 2, 1000).await;
        assert_eq!((ring.available(), corering::stats().slots_in_use), (2, 0));

        // The peer closed (after reading all it was sent, or its close
        // would be a reset): the end of the stream, no buffer out.
        let (read, go) = server.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &go[..]), (2, &b"go"[..]));
        server.close().await.unwrap();
        assert!(client.recv_buf(&ring).await.unwrap().is_none());
        assert_eq!(ring.available(), 2);
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let _serial = common::serial();
    corering::start(async {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            listener.close().await.unwrap();
            addr
        };
        let error = TcpStream::connect(port).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
        let ipv6 = TcpListener::bind("[::1]:0").unwrap();
        let addr = ipv6.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
    });
}

#[test]
fn dropped_accept_and_connect_leak_no_descriptor_or_slot() {
    let _serial = common::serial();
    corering::start(async {
        let fds_before = open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut accept = Box::pin(listener.accept());
        assert!(poll_once(&mut accept).await.is_pending());
        assert_eq!(corering::stats().slots_in_use, 1);
        drop(accept);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().cancelled, 1);

        // A listener whose backlog is full and that never accepts: the
        // kernel drops further SYNs, so a connect to it stays in flight.
        let full = full_listener();
        let mut connect = Box::pin(TcpStream::connect(full.1));
        let mut pending = false;
        for _ in 0..50 {
            if poll_once(&mut connect).await.is_pending() {
                pending = true;
                break;
            }
        }
        assert!(pending, "connect to a full backlog stays in flight");
        drop(connect);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().in_flight, 0);
        drop((full, listener));
        settle(|| open_fds() == fds_before, 1000).await;
        assert_eq!(open_fds(), fds_before);
    });
}

#[test]
fn accept_and_connect_time_out() {
    let _serial = common::serial();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let error = listener
            .accept_timeout(Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut);
        let full = full_listener();
        let error = TcpStream::connect_timeout(full.1, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut);
        // The timed-out connect was cancelled; its CQE comes back shortly.
        settle(|| corering::stats().in_flight == 0, 1000).await;
        assert_eq!(corering::stats().in_flight, 0);
    });
}

/// A listening socket with a backlog of one, already full (two blocking
/// clients connected, never accepted), and its address. Returns the
/// descriptors to keep alive.
fn full_listener() -> ((OwnedFd, Vec<std::net::TcpStream>), SocketAddr) {
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // pointers describe `addr` and `len` for each call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_in).cast(),
                len
            ),
            0
        );
        assert_eq!(libc::listen(fd.as_raw_fd(), 0), 0);
        let mut len = len;
        assert_eq!(
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_in).cast(),
                &mut len
            ),
            0
        );
        let port = u16::from_be(addr.sin_port);
        let local = SocketAddr::from(([127, 0, 0, 1], port));
        let fillers = (0..2)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&local, Duration::from_millis(100)).ok()
            })
            .collect();
        ((fd, fillers), local)
    }
}

#[test]
fn incoming_serves_many_connections_from_one_submission_and_drops_cleanly() {
    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_core::Stream;

    let _serial = common::serial();
    corering::start(async {
        let fds_before = open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = listener.incoming();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..20 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let next = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx)).await;
            servers.push(next.unwrap().unwrap());
        }
        let stats = corering::stats();
        // One multishot accept for all twenty, plus one connect each.
        assert_eq!(stats.submitted, 1 + 20);
        assert_eq!(stats.slots_in_use, 1);
        for (client, server) in clients.iter().zip(&servers) {
            assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        }
        // Connections that arrive while nobody takes them, then the drop:
        // whatever the kernel accepted is closed, nothing is leaked.
        let late: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        corering::time::sleep(Duration::from_millis(10)).await;
        drop(incoming);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().in_flight, 0);
        drop((clients, servers, late, listener));
        settle(|| open_fds() == fds_before, 1000).await;
        assert_eq!(open_fds(), fds_before);
    });
}

#[test]
fn multishot_receive_survives_a_buffer_ring_too_small_for_the_load() {
    use std::collections::VecDeque;
    use std::future::poll_fn;
    use std::pin::Pin;

    use corering::buf::BufRing;
    use futures_core::Stream;

    const BYTES: usize = 1 << 20;
    let _serial = common::serial();
    corering::start(async {
        let ring = BufRing::new(4, 1024).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = corering::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let data: Vec<u8> = (0..BYTES).map(|i| pattern(7, i)).collect();
            stream.write_all(data).await.0.unwrap();
            stream.shutdown(Shutdown::Write).await.unwrap();
            stream
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut received = stream.recv_multi(&ring);
        let mut held = VecDeque::new();
        let mut checked = 0;
        let mut check = |buf: corering::buf::RingBuf| {
            for (i, &byte) in buf.iter().enumerate() {
                assert_eq!(byte, pattern(7, checked + i), "byte {}", checked + i);
            }
            checked += buf.len();
        };
        while let Some(buf) = poll_fn(|cx| Pin::new(&mut received).poll_next(cx)).await {
            held.push_back(buf.unwrap());
            if held.len() == usize::from(ring.entries()) {
                // Every buffer is out: let data arrive to an empty ring.
                corering::time::sleep(Duration::from_millis(1)).await;
                while held.len() > 1 {
                    check(held.pop_front().unwrap());
                }
            }
        }
        held.drain(..).for_each(&mut check);
        assert_eq!(checked, BYTES, "every byte, in order");
        // The kernel fills buffers as data comes; epoll's receive picks
        // one only when the stream is polled, so there it need not run dry.
        assert!(
            common::on_epoll() || ring.exhausted() > 0,
            "the ring ran dry at least once"
        );
        assert_eq!(ring.available(), ring.entries());
        drop(received);
        let _client = sender.await.unwrap();
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().in_flight, 0);
    });
}

#[test]
fn dropped_multishot_receive_gives_every_buffer_back() {
    use std::future::poll_fn;
    use std::pin::Pin;

    use corering::buf::BufRing;
    use futures_core::Stream;

    let _serial = common::serial();
    corering::start(async {
        let ring = BufRing::new(8, 64).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut received = server.recv_multi(&ring);
        // Idle: armed, but no buffer taken.
        assert!(poll_once(&mut received_next(&mut received))
            .await
            .is_pending());
        assert_eq!(ring.available(), 8);
        client.write_all(vec![1u8; 300]).await.0.unwrap();
        let first = poll_fn(|cx| Pin::new(&mut received).poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&first[..], &[1u8; 64][..]);
        // More CQEs (with buffers) are queued when the stream is dropped.
        corering::time::sleep(Duration::from_millis(5)).await;
        drop(received);
        drop(first);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(ring.available(), 8, "every buffer is back in the ring");
    });

    fn received_next(
        stream: &mut corering::net::RecvStream,
    ) -> impl std::future::Future<Output = ()> + Unpin + '_ {
        poll_fn(move |cx| Pin::new(&mut *stream).poll_next(cx).map(drop))
    }
}

#[test]
fn zero_copy_send_delivers_every_byte_and_returns_the_buffer() {
    let _serial = common::serial();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let data: Vec<u8> = (0..256 * 1024).map(|i| pattern(3, i)).collect();
        let receiver = corering::spawn(async move {
            let mut received = Vec::new();
            loop {
                let (read, buf) = server.read(Vec::with_capacity(65_536)).await;
                if read.unwrap() == 0 {
                    return received;
                }
                received.extend_from_slice(&buf);
            }
        });
        let mut buf = data.clone();
        let mut offset = 0;
        while offset < data.len() {
            let (sent, returned) = client.send_zc(std::mem::take(&mut buf)).await;
            let sent = sent.unwrap();
            assert!(sent > 0);
            offset += sent;
            buf = returned;
            buf.drain(..sent);
        }
        assert!(buf.is_empty());
        client.shutdown(Shutdown::Write).await.unwrap();
        assert_eq!(receiver.await.unwrap(), data);
        let stats = corering::stats();
        assert_eq!((stats.in_flight, stats.slots_in_use), (0, 0));
    });
}

/// On io_uring in both runs: direct descriptors are the ring's table.
#[test]
fn direct_accepts_fill_the_table_then_fall_back() {
    let _serial = common::serial();
    let fds_before = open_fds();
    let runtime = common::ring_builder().direct_fds(2).build().unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nodelay(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            servers.push(listener.accept_direct().await.unwrap().0);
        }
        // Two fit the table: no file descriptor, ring-only operations.
        for server in &servers[..2] {
            assert!(server.as_fd().is_none());
            assert_eq!(
                server.set_nodelay(false).unwrap_err().kind(),
                ErrorKind::Unsupported
            );
        }
        // The third falls back to a plain descriptor, with the listener's
        // TCP_NODELAY inherited.
        assert!(servers[2].as_fd().is_some());
        assert!(servers[2].nodelay().unwrap());
        // Every one echoes through the ring.
        for (client, server) in clients.iter().zip(&servers) {
            client.write_all(b"direct?".as_slice()).await.0.unwrap();
            let (read, buf) = server.read(Vec::with_capacity(16)).await;
            assert_eq!(&buf[..read.unwrap()], b"direct?");
            server.write_all(buf).await.0.unwrap();
            let (read, buf) = client.read(Vec::with_capacity(16)).await;
            assert_eq!(&buf[..read.unwrap()], b"direct?");
        }
        // Closing a direct connection frees its table entry for the next.
        servers.remove(0).close().await.unwrap();
        clients.push(TcpStream::connect(addr).await.unwrap());
        let (again, _) = listener.accept_direct().await.unwrap();
        assert!(again.as_fd().is_none());
        drop(again);
    });
    drop(runtime);
    assert_eq!(open_fds(), fds_before);
}

/// On io_uring in both runs: direct descriptors are the ring's table.
#[test]
fn a_dropped_direct_accept_frees_its_table_entry() {
    let _serial = common::serial();
    let runtime = common::ring_builder().direct_fds(1).build().unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The only entry is reserved by an accept that is then dropped.
        let mut pending = Box::pin(listener.accept_direct());
        assert!(poll_once(&mut pending).await.is_pending());
        drop(pending);
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        // The entry is free again: the next accept is direct.
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept_direct().await.unwrap();
        assert!(server.as_fd().is_none());
    });
}

/// A `close` of a direct connection dropped in flight frees its table entry
/// all the same: after more such closes than the table has entries, accepts
/// are still direct.
/// On io_uring in both runs: direct descriptors are the ring's table.
#[test]
fn a_dropped_direct_close_frees_its_table_entry() {
    let _serial = common::serial();
    let runtime = common::ring_builder().direct_fds(2).build().unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for round in 0..6 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (server, _) = listener.accept_direct().await.unwrap();
            assert!(server.as_fd().is_none(), "round {round}: direct");
            let mut closing = Box::pin(server.close());
            assert!(poll_once(&mut closing).await.is_pending());
            drop(closing);
            settle(|| corering::stats().slots_in_use == 0, 1000).await;
        }
    });
}

/// A linked turn dropped after its first poll but before the tick that
/// submits it: the pair and its cancellations go out in one submission,
/// where the cancellations can find nothing yet. The receive must still be
/// cancelled: it swallows none of the peer's later messages, and its slot,
/// buffer and socket are released, so `close` returns.
#[test]
fn linked_turn_dropped_before_its_submission_is_still_cancelled() {
    let _serial = common::serial();
    corering::start(async {
        let fds_before = open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let ring = BufRing::new(4, 64).unwrap();
        for round in 0..200u32 {
            let mut turn =
                Box::pin(server.write_all_then_read(b"ping".to_vec(), Vec::with_capacity(64)));
            assert!(poll_once(&mut turn).await.is_pending());
            drop(turn);
            let mut turn = Box::pin(server.write_all_then_recv_buf(b"ping".to_vec(), &ring));
            assert!(poll_once(&mut turn).await.is_pending());
            drop(turn);
            settle(|| corering::stats().slots_in_use == 0, 1000).await;
            assert_eq!(corering::stats().slots_in_use, 0, "round {round}");
        }
        // Every ping went out (the sends ran before the cancellations).
        let mut pings = Vec::new();
        while pings.len() < 200 * 2 * 4 {
            let (read, buf) = client.read(Vec::with_capacity(4096)).await;
            assert!(read.unwrap() > 0);
            pings.extend_from_slice(&buf);
        }
        assert_eq!(pings, b"ping".repeat(400));
        drop(ring);
        let stats = corering::stats();
        assert_eq!((stats.in_flight, stats.slots_in_use), (0, 0));
        client.write_all(b"hello".to_vec()).await.0.unwrap();
        let (read, hello) = server.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &hello[..]), (5, &b"hello"[..]));
        corering::time::timeout(Duration::from_secs(5), server.close())
            .await
            .expect("close does not hang")
            .unwrap();
        drop((client, listener));
        settle(|| open_fds() == fds_before, 1000).await;
        assert_eq!(open_fds(), fds_before);
    });
}

#[test]
fn vectored_sends_and_receives_with_more_buffers_than_one_call_takes_are_invalid() {
    let _serial = common::serial();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let submitted = corering::stats().submitted;
        let (sent, bufs) = client.writev(vec![b"x".as_slice(); 1025]).await;
        assert_eq!(sent.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(bufs.len(), 1025, "every buffer handed back");
        let empty: Vec<Vec<u8>> = (0..1025).map(|_| Vec::with_capacity(1)).collect();
        let (received, bufs) = server.readv(empty).await;
        assert_eq!(received.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(bufs.len(), 1025);
        assert_eq!(corering::stats().submitted, submitted, "nothing submitted");

        // 1,024 is one call's worth.
        let (sent, _) = client.writev(vec![b"x".as_slice(); 1024]).await;
        assert_eq!(sent.unwrap(), 1024);
        let mut bufs = bufs;
        bufs.pop();
        let mut received = 0;
        while received < 1024 {
            let (read, returned) = server.readv(bufs).await;
            received += read.unwrap();
            assert!(returned.iter().flatten().all(|&byte| byte == b'x'));
            bufs = returned
                .into_iter()
                .map(|_| Vec::with_capacity(1))
                .collect();
        }
        assert_eq!(received, 1024);
    });
}

#[test]
fn sends_and_receives_longer_than_i32_max_move_what_one_call_can() {
    let _serial = common::serial();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Sends as much as the socket takes, as for any long send.
        let (sent, _) = client.write(ZeroPages::new(PAST_I32_MAX)).await;
        let sent = sent.unwrap();
        assert!(sent > 0 && sent <= MAX_RW_COUNT, "sent {sent}");
        // Received into 3 GiB (the kernel touches only what it fills).
        let mut buf = Vec::with_capacity(3 << 30);
        let mut received = 0;
        while received < sent {
            buf.clear();
            let (read, returned) = server.read(buf).await;
            buf = returned;
            let read = read.unwrap();
            assert!(read > 0 && buf.iter().all(|&byte| byte == 0));
            received += read;
        }
        assert_eq!(received, sent);
        client.write_all(b"abc".as_slice()).await.0.unwrap();
        buf.clear();
        let (read, buf) = server.read(buf).await;
        assert_eq!((read.unwrap(), &buf[..]), (3, &b"abc"[..]));
    });
}

/// Each conversion from std and from `OwnedFd`, used for a round trip; a
/// std socket set non-blocking works the same (io_uring waits for data
/// whatever `O_NONBLOCK` says, and the flag is left as it was).
#[test]
fn std_tcp_sockets_and_owned_fds_convert_and_work_through_the_ring() {
    let _serial = common::serial();
    let fds_before = open_fds();
    corering::start(async {
        // From<std::net::TcpListener>: accepts through the ring.
        let listener = TcpListener::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        assert_eq!(listener.as_fd().as_raw_fd(), listener.as_raw_fd());
        // From<std::net::TcpStream>: a std client, its blocking connect
        // completed by the kernel's backlog before any accept.
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        let client_addr = std_client.local_addr().unwrap();
        let client = TcpStream::from(std_client);
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client_addr);
        assert_eq!(client.local_addr().unwrap(), client_addr);
        client.write_all(b"from std".as_slice()).await.0.unwrap();
        let (read, buf) = server.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (8, &b"from std"[..]));
        server.write_all(b"and back".as_slice()).await.0.unwrap();
        let (read, buf) = client.read(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (8, &b"and back"[..]));

        // A non-blocking std stream: a read that finds nothing waits for
        // the data instead of failing with EAGAIN.
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        std_client.set_nonblocking(true).unwrap();
        let client = Rc::new(TcpStream::from(std_client));
        let (server, _) = listener.accept().await.unwrap();
        let reader = {
            let client = client.clone();
            corering::spawn(async move { client.read(Vec::with_capacity(16)).await })
        };
        corering::time::sleep(Duration::from_millis(20)).await;
        server.write_all(b"later".as_slice()).await.0.unwrap();
        let (read, buf) = reader.await.unwrap();
        assert_eq!((read.unwrap(), &buf[..]), (5, &b"later"[..]));
        let raw = client.as_fd().unwrap().as_raw_fd();
        // SAFETY: F_GETFL on a descriptor the client keeps open.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0, "the flag is left as it was");

        // From<OwnedFd> for both.
        let listener = TcpListener::from(OwnedFd::from(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        ));
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::from(OwnedFd::from(std::net::TcpStream::connect(addr).unwrap()));
        let (server, _) = listener.accept().await.unwrap();
        let echo = corering::spawn(async move {
            let (_, request) = server.read(Vec::with_capacity(8)).await;
            server.write_all(request).await.0.unwrap();
        });
        let (received, _, reply) = client
            .write_all_then_read(b"owned".to_vec(), Vec::with_capacity(8))
            .await;
        assert_eq!((received.unwrap(), &reply[..]), (5, &b"owned"[..]));
        echo.await.unwrap();
        client.close().await.unwrap();
        listener.close().await.unwrap();
    });
    assert_eq!(open_fds(), fds_before);
}

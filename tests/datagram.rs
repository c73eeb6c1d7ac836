//! Datagram sockets: UDP and Unix datagram round trips, connected and not.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr as UnixAddr;

use corering::net::{UdpSocket, UnixDatagram};

#[test]
fn udp_round_trips_keep_datagram_boundaries() {
    corering::start(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        for size in [0usize, 1, 512, 8192] {
            let datagram: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let (sent, _) = a.send_to(datagram.clone(), b_addr).await;
            assert_eq!(sent.unwrap(), size);
            let (received, buf) = b.recv_from(Vec::with_capacity(16 * 1024)).await;
            assert_eq!(received.unwrap(), (size, a_addr));
            assert_eq!(buf, datagram);
        }
        // A datagram longer than the buffer is truncated to it.
        a.send_to(vec![9u8; 100], b_addr).await.0.unwrap();
        let (received, buf) = b.recv_from(Vec::with_capacity(10)).await;
        assert_eq!(received.unwrap().0, 10);
        assert_eq!(buf, [9u8; 10]);

        // Connected: send and recv go to and come from the peer.
        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        a.send(b"one".as_slice()).await.0.unwrap();
        a.send(b"two".as_slice()).await.0.unwrap();
        let (first, buf) = b.recv(Vec::with_capacity(64)).await;
        assert_eq!(&buf[..first.unwrap()], b"one");
        let (second, buf) = b.recv(Vec::with_capacity(64)).await;
        assert_eq!(&buf[..second.unwrap()], b"two");

        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        let v6_addr = v6.local_addr().unwrap();
        let other = UdpSocket::bind("[::1]:0").unwrap();
        other.send_to(b"six".as_slice(), v6_addr).await.0.unwrap();
        let (received, buf) = v6.recv_from(Vec::with_capacity(8)).await;
        assert_eq!(received.unwrap(), (3, other.local_addr().unwrap()));
        assert_eq!(buf, b"six");
    });
}

#[test]
fn unix_datagram_round_trips_by_path_and_abstract_name() {
    corering::start(async {
        let dir = std::env::temp_dir().join(format!("corering-dgram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server_path = dir.join("server.sock");
        let client_path = dir.join("client.sock");
        for path in [&server_path, &client_path] {
            let _ = std::fs::remove_file(path);
        }
        let server = UnixDatagram::bind(&server_path).unwrap();
        let client = UnixDatagram::bind(&client_path).unwrap();
        client
            .send_to(b"request".as_slice(), &server_path)
            .await
            .0
            .unwrap();
        let (received, buf) = server.recv_from(Vec::with_capacity(64)).await;
        let (len, from) = received.unwrap();
        assert_eq!(&buf[..len], b"request");
        assert_eq!(from.as_pathname(), Some(client_path.as_path()));
        server
            .send_to_addr(b"reply".as_slice(), &from)
            .await
            .0
            .unwrap();
        let (received, buf) = client.recv_from(Vec::with_capacity(64)).await;
        assert_eq!(&buf[..received.unwrap().0], b"reply");

        // An unbound sender has no address; an abstract name needs no file.
        let name = format!("corering-test-{}", std::process::id());
        let abstract_addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let named = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        let anonymous = UnixDatagram::unbound().unwrap();
        anonymous
            .send_to_addr(b"anon".as_slice(), &abstract_addr)
            .await
            .0
            .unwrap();
        let (received, buf) = named.recv_from(Vec::with_capacity(8)).await;
        let (len, from) = received.unwrap();
        assert_eq!(len, 4);
        assert!(from.is_unnamed(), "an unbound sender has no address");
        assert_eq!(buf, b"anon");
        let local = named.local_addr().unwrap();
        assert_eq!(local.as_abstract_name(), Some(name.as_bytes()));

        let (left, right) = UnixDatagram::pair().unwrap();
        left.send(b"paired".as_slice()).await.0.unwrap();
        let (read, buf) = right.recv(Vec::with_capacity(8)).await;
        assert_eq!(&buf[..read.unwrap()], b"paired");

        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn datagram_receives_into_buffers_longer_than_i32_max() {
    corering::start(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        // 3 GiB of capacity, never touched beyond the datagram.
        let mut buf = Vec::with_capacity(3 << 30);
        for round in 0..2 {
            a.send(b"hello".as_slice()).await.0.unwrap();
            buf.clear();
            let (received, returned) = if round == 0 {
                b.recv(buf).await
            } else {
                let (received, returned) = b.recv_from(buf).await;
                (received.map(|(len, _)| len), returned)
            };
            buf = returned;
            assert_eq!((received.unwrap(), &buf[..]), (5, &b"hello"[..]));
        }

        let (c, d) = UnixDatagram::pair().unwrap();
        c.send(b"ping".as_slice()).await.0.unwrap();
        buf.clear();
        let (received, buf) = d.recv(buf).await;
        assert_eq!((received.unwrap(), &buf[..]), (4, &b"ping"[..]));
    });
}

/// Each conversion from std and from `OwnedFd`, used for a round trip, and
/// tokio's naming for Unix datagrams: `send_to` and `connect` take a path.
#[test]
fn std_datagram_sockets_and_owned_fds_convert_and_work_through_the_ring() {
    corering::start(async {
        // From<std::net::UdpSocket> and From<OwnedFd>.
        let a = UdpSocket::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let b = UdpSocket::from(OwnedFd::from(
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        ));
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(a.as_fd().as_raw_fd(), a.as_raw_fd());
        a.send_to(b"to b".as_slice(), b_addr).await.0.unwrap();
        let (received, buf) = b.recv_from(Vec::with_capacity(16)).await;
        assert_eq!(received.unwrap(), (4, a_addr));
        assert_eq!(buf, b"to b");
        b.connect(a_addr).await.unwrap();
        b.send(b"to a".as_slice()).await.0.unwrap();
        let (received, buf) = a.recv_from(Vec::with_capacity(16)).await;
        assert_eq!((received.unwrap(), &buf[..]), ((4, b_addr), &b"to a"[..]));
        assert_eq!(b.peer_addr().unwrap(), a_addr);

        // From<std UnixDatagram> and From<OwnedFd>; send_to and connect by
        // path.
        let dir = std::env::temp_dir().join(format!("corering-dgram-from-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (left_path, right_path) = (dir.join("left.sock"), dir.join("right.sock"));
        let left = UnixDatagram::from(std::os::unix::net::UnixDatagram::bind(&left_path).unwrap());
        let right = UnixDatagram::from(OwnedFd::from(
            std::os::unix::net::UnixDatagram::bind(&right_path).unwrap(),
        ));
        left.send_to(b"by path".as_slice(), &right_path)
            .await
            .0
            .unwrap();
        let (received, buf) = right.recv_from(Vec::with_capacity(16)).await;
        let (len, from) = received.unwrap();
        assert_eq!((len, &buf[..]), (7, &b"by path"[..]));
        assert_eq!(from.as_pathname(), Some(left_path.as_path()));
        right.connect(&left_path).unwrap();
        assert_eq!(
            right.peer_addr().unwrap().as_pathname(),
            Some(left_path.as_path())
        );
        right.send(b"connected".as_slice()).await.0.unwrap();
        let (read, buf) = left.recv(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (9, &b"connected"[..]));
        // The _addr forms take a SocketAddr: the one recv_from reported.
        let reply_to = UnixAddr::from_pathname(&right_path).unwrap();
        left.connect_addr(&reply_to).unwrap();
        left.send_to_addr(b"addr".as_slice(), &reply_to)
            .await
            .0
            .unwrap();
        let (read, buf) = right.recv(Vec::with_capacity(16)).await;
        assert_eq!((read.unwrap(), &buf[..]), (4, &b"addr"[..]));
        // An unnamed address cannot be sent to; the buffer comes back.
        let unnamed = UnixDatagram::unbound().unwrap().local_addr().unwrap();
        assert!(unnamed.is_unnamed());
        let (sent, buf) = left.send_to_addr(b"nowhere".as_slice(), &unnamed).await;
        assert_eq!(sent.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(buf, b"nowhere");
        left.close().await.unwrap();
        right.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

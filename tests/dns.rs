//! Names off the core: `lookup_host`, and connecting and sending by name,
//! with names resolved on the blocking pool and literals never going there.

use std::cell::Cell;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use corering::net::{lookup_host, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use corering::time::{sleep, timeout};

/// Serializes the tests that configure the process-wide blocking pool or
/// depend on it being free.
fn pool_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A name no resolver knows: `.invalid` is reserved never to resolve
/// (RFC 6761).
const NOWHERE: &str = "nowhere.invalid";

/// An address on 127.0.0.1 where nothing listens: a connect there is
/// refused.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.close().await.unwrap();
    addr
}

/// The addresses `lookup_host` gives for `addr`, which must come within a
/// second (they do not wait for the pool).
async fn at_once<A: ToSocketAddrs>(addr: A) -> Vec<SocketAddr> {
    let found = timeout(Duration::from_secs(1), lookup_host(addr)).await;
    let addrs = found.expect("a literal does not wait for the pool");
    addrs.unwrap().collect()
}

#[test]
fn lookup_host_resolves_localhost_to_loopback_addresses_with_the_port() {
    corering::start(async {
        for addrs in [
            lookup_host("localhost:80")
                .await
                .unwrap()
                .collect::<Vec<_>>(),
            lookup_host(String::from("localhost:80"))
                .await
                .unwrap()
                .collect(),
            lookup_host(("localhost", 80)).await.unwrap().collect(),
            lookup_host(("localhost".to_owned(), 80))
                .await
                .unwrap()
                .collect(),
        ] {
            assert!(!addrs.is_empty(), "localhost resolves to something");
            for addr in &addrs {
                assert!(addr.ip().is_loopback(), "{addr} is a loopback address");
                assert_eq!(addr.port(), 80);
            }
        }
        let literal: Vec<_> = lookup_host("[::1]:443").await.unwrap().collect();
        assert_eq!(literal, ["[::1]:443".parse::<SocketAddr>().unwrap()]);
        let tuple: Vec<_> = lookup_host((Ipv4Addr::LOCALHOST, 7))
            .await
            .unwrap()
            .collect();
        assert_eq!(tuple, [SocketAddr::from(([127, 0, 0, 1], 7))]);
    });
}

/// With the pool's one thread held by a job, a literal resolves at once (it
/// never queues there) while a name waits for the thread, and the core goes
/// on serving its timers meanwhile.
#[test]
fn a_literal_skips_the_pool_and_a_name_waits_for_it() {
    let _pool = pool_lock();
    let runtime = corering::Runtime::builder()
        .blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (release, released) = mpsc::channel::<()>();
        let holding = Arc::new(AtomicBool::new(false));
        let blocker = corering::spawn_blocking({
            let holding = holding.clone();
            move || {
                holding.store(true, Ordering::SeqCst);
                released.recv().unwrap();
            }
        });
        while !holding.load(Ordering::SeqCst) {
            sleep(Duration::from_millis(1)).await;
        }

        let v4 = SocketAddr::from(([127, 0, 0, 1], 80));
        assert_eq!(at_once("127.0.0.1:80").await, [v4]);
        assert_eq!(at_once(("127.0.0.1", 80)).await, [v4]);
        assert_eq!(at_once(v4).await, [v4]);
        assert_eq!(at_once(&[v4][..]).await, [v4]);

        let done = Rc::new(Cell::new(false));
        let name = corering::spawn({
            let done = done.clone();
            async move {
                let addrs: Vec<_> = lookup_host("localhost:80").await.unwrap().collect();
                done.set(true);
                addrs
            }
        });
        let mut ticks = 0;
        while ticks < 10 {
            sleep(Duration::from_millis(10)).await;
            ticks += 1;
        }
        assert!(!done.get(), "the name waits for the pool's one thread");
        release.send(()).unwrap();
        blocker.await.unwrap();
        let addrs = name.await.unwrap();
        assert!(addrs
            .iter()
            .all(|addr| addr.ip().is_loopback() && addr.port() == 80));
        assert!(!addrs.is_empty());
    });
    // Put the default cap back for the other tests of this binary.
    drop(
        corering::Runtime::builder()
            .blocking_threads(512)
            .build()
            .unwrap(),
    );
}

#[test]
fn connect_by_name_reaches_a_listener_on_loopback() {
    let _pool = pool_lock();
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let by_string = TcpStream::connect(format!("localhost:{}", addr.port()))
            .await
            .unwrap();
        let by_tuple = TcpStream::connect(("localhost", addr.port()))
            .await
            .unwrap();
        let by_timeout = TcpStream::connect_timeout(
            &format!("localhost:{}", addr.port()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        for client in [&by_string, &by_tuple, &by_timeout] {
            assert_eq!(client.peer_addr().unwrap(), addr);
            let (server, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(server.local_addr().unwrap(), addr);
        }
    });
}

/// Every address is tried in order: a refused first address is followed
/// by the next, which connects; when all refuse, the last error comes back.
#[test]
fn connect_falls_back_to_the_next_address_when_the_first_refuses() {
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let (closed, also_closed) = (closed_port().await, closed_port().await);

        let client = TcpStream::connect(&[closed, open][..]).await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), open);
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());

        let error = TcpStream::connect(&[closed, also_closed][..])
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
        let error = TcpStream::connect(&[][..]).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    });
}

#[test]
fn a_name_that_does_not_resolve_or_has_no_port_is_an_error() {
    let _pool = pool_lock();
    corering::start(async {
        let error = lookup_host(format!("{NOWHERE}:80")).await.err().unwrap();
        assert_ne!(error.kind(), ErrorKind::InvalidInput, "{error}");
        let error = TcpStream::connect((NOWHERE, 80)).await.unwrap_err();
        assert_ne!(error.kind(), ErrorKind::InvalidInput, "{error}");
        for no_port in ["localhost", "localhost:http", "127.0.0.1"] {
            let error = lookup_host(no_port).await.err().unwrap();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{no_port}");
        }
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (sent, buf) = socket.send_to(b"lost".as_slice(), (NOWHERE, 9)).await;
        assert!(sent.is_err());
        assert_eq!(buf, b"lost");
        assert!(socket.connect((NOWHERE, 9)).await.is_err());
    });
}

#[test]
fn udp_connects_and_sends_to_a_name() {
    let _pool = pool_lock();
    corering::start(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());

        a.send_to(b"by name".as_slice(), ("localhost", b_addr.port()))
            .await
            .0
            .unwrap();
        let (received, buf) = b.recv_from(Vec::with_capacity(16)).await;
        assert_eq!(
            (received.unwrap(), &buf[..]),
            ((7, a_addr), &b"by name"[..])
        );

        b.connect(format!("localhost:{}", a_addr.port()))
            .await
            .unwrap();
        assert_eq!(b.peer_addr().unwrap(), a_addr);
        b.send(b"back".as_slice()).await.0.unwrap();
        let (received, buf) = a.recv_from(Vec::with_capacity(16)).await;
        assert_eq!((received.unwrap(), &buf[..]), ((4, b_addr), &b"back"[..]));
    });
}

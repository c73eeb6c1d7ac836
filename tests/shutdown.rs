//! Graceful shutdown: the launch's token, triggered from a plain thread or
//! by a signal; trackers that close idle connections, let busy ones
//! finish and abort what outlives the deadline; a runtime dropped with
//! operations of every kind pending returns at once.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corering::buf::BufRing;
use corering::net::{TcpListener, TcpStream};
use corering::shutdown::{self, Drained, Shutdown, Tracker};

#[test]
fn a_plain_thread_triggers_every_core_of_a_launch() {
    let token = Shutdown::new();
    let trigger = token.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        trigger.trigger();
    });
    let seen = corering::Runtime::builder()
        .cores(2)
        .shutdown(token.clone())
        .run_on_cores(|core| async move {
            let token = shutdown::token();
            assert!(!token.is_triggered());
            token.triggered().await;
            core.index()
        })
        .unwrap();
    thread.join().unwrap();
    assert_eq!(seen, [0, 1]);
    assert!(token.is_triggered() && !token.is_forced());
}

#[test]
fn sigterm_triggers_the_launch_and_a_second_forces_it() {
    static SEEN_FIRST: AtomicUsize = AtomicUsize::new(0);
    let states = corering::Runtime::builder()
        .cores(2)
        .shutdown_on_signals(true)
        .run_on_cores(|core| async move {
            let token = shutdown::token();
            if core.index() == 0 {
                corering::time::sleep(Duration::from_millis(10)).await;
                // SAFETY: kill takes no pointers; the launch listens for
                // SIGTERM, so the default action (exit) does not happen.
                assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
            }
            token.triggered().await;
            let first = token.is_forced();
            SEEN_FIRST.fetch_add(1, Ordering::SeqCst);
            if core.index() == 0 {
                // The second signal waits until both cores have read the
                // first state, or a slow core 1 would see it forced.
                while SEEN_FIRST.load(Ordering::SeqCst) < 2 {
                    corering::time::sleep(Duration::from_millis(1)).await;
                }
                // SAFETY: as above.
                assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
            }
            token.forced().await;
            (first, token.is_forced())
        })
        .unwrap();
    assert_eq!(states, [(false, true), (false, true)]);
}

/// Reads what the server sends until it closes.
fn read_to_close(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn a_drain_closes_idle_connections_and_lets_busy_ones_answer() {
    let token = Shutdown::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let trigger = token.clone();
    let clients = std::thread::spawn(move || {
        let addr = addr_rx.recv().unwrap();
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        let mut busy = std::net::TcpStream::connect(addr).unwrap();
        // The busy one's request is read; its answer takes 100 ms.
        busy.write_all(b"slow").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        trigger.trigger();
        let idle_got = read_to_close(&mut idle);
        let busy_got = read_to_close(&mut busy);
        // The listener is gone: the port refuses.
        std::thread::sleep(Duration::from_millis(20));
        let refused = std::net::TcpStream::connect(addr).is_err();
        (idle_got, busy_got, refused)
    });
    let drained = corering::Runtime::builder()
        .shutdown(token)
        .build()
        .unwrap()
        .block_on(async {
            let shutdown = shutdown::token();
            let tracker = Tracker::new(&shutdown);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            while let Some(accepted) = shutdown.until(listener.accept()).await {
                let (stream, _) = accepted.unwrap();
                tracker.spawn(|conn| async move {
                    while let Some((read, buf)) =
                        conn.until(stream.read(Vec::with_capacity(16))).await
                    {
                        if read.unwrap() == 0 {
                            break;
                        }
                        corering::time::sleep(Duration::from_millis(100)).await;
                        let reply = if conn.is_closing() {
                            "done, closing"
                        } else {
                            "done"
                        };
                        assert_eq!(buf, b"slow");
                        stream.write_all(reply.as_bytes().to_vec()).await.0.unwrap();
                        if conn.is_closing() {
                            break;
                        }
                    }
                });
            }
            drop(listener);
            tracker.drain(Duration::from_secs(5)).await
        });
    let (idle_got, busy_got, refused) = clients.join().unwrap();
    assert_eq!(
        idle_got, b"",
        "the idle connection is closed without a word"
    );
    assert_eq!(
        busy_got, b"done, closing",
        "the request in flight is answered"
    );
    assert!(refused, "the port refuses after the shutdown");
    assert_eq!(
        drained,
        Drained {
            served: 2,
            open: 2,
            aborted: 0
        }
    );
}

/// Counts its drops.
struct DropCount(Rc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn what_outlives_the_deadline_is_aborted_and_a_force_ends_the_wait() {
    corering::start(async {
        let token = Shutdown::new();
        let tracker = Tracker::new(&token);
        let drops = Rc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let guard = DropCount(drops.clone());
            // Ignores the close: never finishes on its own.
            tracker.spawn(|_conn| async move {
                let _guard = guard;
                corering::time::sleep(Duration::from_secs(3600)).await;
            });
        }
        tracker.spawn(|conn| async move {
            conn.until(std::future::pending::<()>()).await;
        });
        corering::yield_now().await;
        assert_eq!(tracker.len(), 4);
        token.trigger();
        let started = Instant::now();
        let drained = tracker.drain(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            drained,
            Drained {
                served: 4,
                open: 4,
                aborted: 3
            }
        );
        corering::yield_now().await;
        assert_eq!(
            drops.load(Ordering::SeqCst),
            3,
            "each aborted task dropped once"
        );
        assert_eq!(tracker.len(), 0);

        // Forced: the drain does not wait for its deadline.
        let token = Shutdown::new();
        let tracker = Tracker::new(&token);
        tracker.spawn(|_conn| async {
            corering::time::sleep(Duration::from_secs(3600)).await;
        });
        token.trigger();
        token.trigger();
        assert!(token.is_forced());
        let drained = corering::time::timeout(
            Duration::from_secs(5),
            tracker.drain(Duration::from_secs(3600)),
        )
        .await
        .expect("a forced drain returns at once");
        assert_eq!(drained.aborted, 1);
    });
}

#[test]
fn a_runtime_dropped_with_accept_multishot_and_linked_turn_pending_returns_at_once() {
    let runtime = corering::Runtime::new().unwrap();
    let (_clients, ring) = runtime.block_on(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let a = TcpStream::connect(addr).await.unwrap();
        let (a_server, _) = listener.accept().await.unwrap();
        let b = TcpStream::connect(addr).await.unwrap();
        let (_b_server, _) = listener.accept().await.unwrap();
        let ring = BufRing::new(4, 64).unwrap();
        let accepting = listener.clone();
        corering::spawn(async move { accepting.accept().await });
        let multishot_ring = ring.clone();
        corering::spawn(async move {
            let mut received = a_server.recv_multi(&multishot_ring);
            received.next().await
        });
        corering::spawn(async move { b.write_all_then_read(b"ping".to_vec(), vec![0; 8]).await });
        for _ in 0..4 {
            corering::yield_now().await;
        }
        assert!(corering::stats().in_flight >= 3, "{:?}", corering::stats());
        ((a, listener), ring)
    });
    let started = Instant::now();
    let stats = runtime.shutdown();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "shutdown took {took:?}");
    assert_eq!(
        (stats.in_flight, stats.slots_in_use, stats.abandoned),
        (0, 0, 0)
    );
    assert_eq!(stats.submitted, stats.completed + stats.cancelled);
    drop(ring);
}

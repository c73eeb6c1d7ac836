//! The multi-core launcher: every core runs its own runtime on its own
//! thread, and with `SO_REUSEPORT` listeners the kernel spreads connections
//! across them.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use corering::net::TcpListener;

#[test]
fn cores_run_on_their_own_threads_and_outputs_come_back_in_order() {
    let threads = Mutex::new(HashSet::new());
    let outputs = corering::Runtime::builder()
        .cores(2)
        .pin_cores(true)
        .run_on_cores(|core| {
            threads.lock().unwrap().insert(std::thread::current().id());
            async move {
                corering::spawn(async move { core.index() + 1 })
                    .await
                    .unwrap()
            }
        })
        .unwrap();
    assert_eq!(outputs, [1, 2]);
    let threads = threads.into_inner().unwrap();
    assert_eq!(threads.len(), 2);
    assert!(!threads.contains(&std::thread::current().id()));
}

#[test]
fn both_cores_accept_connections_on_one_port() {
    const CONNECTIONS: usize = 200;
    let port = OnceLock::new();
    let served = AtomicUsize::new(0);
    let per_core = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let port = *port.wait();
            for i in 0..CONNECTIONS {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.write_all(&[i as u8]).unwrap();
                let mut reply = [0u8; 2];
                stream.read_exact(&mut reply).unwrap();
                assert_eq!(reply[0], i as u8, "the reply echoes the request");
                assert!(reply[1] < 2, "served by core 0 or 1");
            }
        });
        let per_core = corering::Runtime::builder()
            .cores(2)
            .run_on_cores(|core| {
                // Core 0 picks the port; core 1 binds the same one.
                let listener = if core.index() == 0 {
                    let listener = TcpListener::bind_reuse_port("127.0.0.1:0").unwrap();
                    port.set(listener.local_addr().unwrap().port()).unwrap();
                    listener
                } else {
                    TcpListener::bind_reuse_port(("127.0.0.1", *port.wait())).unwrap()
                };
                let served = &served;
                async move {
                    let mut mine = 0;
                    while served.load(Ordering::SeqCst) < CONNECTIONS {
                        let Ok((stream, _)) =
                            listener.accept_timeout(Duration::from_millis(20)).await
                        else {
                            continue;
                        };
                        let (read, buf) = stream.read(Vec::with_capacity(1)).await;
                        assert_eq!(read.unwrap(), 1);
                        let reply = vec![buf[0], core.index() as u8];
                        stream.write_all(reply).await.0.unwrap();
                        mine += 1;
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    mine
                }
            })
            .unwrap();
        client.join().unwrap();
        per_core
    });
    assert_eq!(per_core.iter().sum::<usize>(), CONNECTIONS);
    assert!(
        per_core.iter().all(|&count| count > 0),
        "both cores accepted: {per_core:?}"
    );
}

#[test]
fn a_core_that_cannot_start_stops_the_launch() {
    let made = AtomicUsize::new(0);
    let error = corering::Runtime::builder()
        .entries(0)
        .cores(2)
        .run_on_cores(|_| {
            made.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(made.load(Ordering::SeqCst), 0, "no core ran user code");
}

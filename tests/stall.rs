//! Stall reports: a poll that blocks its core past the threshold is
//! reported once, with its core and a duration of at least the
//! threshold; a core that parks, or serves an echo load, is not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use corering::buf::IoBuf;
use corering::net::{TcpListener, TcpStream};
use corering::Stall;

/// A builder that records every stall, and what it records into.
fn recording(threshold: Duration) -> (corering::Builder, Arc<Mutex<Vec<Stall>>>) {
    let stalls = Arc::new(Mutex::new(Vec::new()));
    let recorded = stalls.clone();
    let builder = corering::Runtime::builder().on_stall(threshold, move |stall| {
        recorded.lock().unwrap().push(stall.clone());
    });
    (builder, stalls)
}

#[test]
fn a_poll_that_blocks_its_core_is_reported_once() {
    let threshold = Duration::from_millis(50);
    let (builder, stalls) = recording(threshold);
    builder
        .cores(2)
        .run_on_cores(|core| async move {
            if core.index() == 1 {
                corering::yield_now().await;
                // Blocks the core thread: no await for 150 ms.
                std::thread::sleep(Duration::from_millis(150));
            }
            // Parked, not stalled.
            corering::time::sleep(Duration::from_millis(300)).await;
        })
        .unwrap();
    let stalls = stalls.lock().unwrap();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert_eq!(stalls[0].core().index(), 1);
    assert!(
        stalls[0].duration() >= threshold && stalls[0].duration() < Duration::from_millis(150),
        "{:?}",
        stalls[0].duration()
    );
}

#[test]
fn an_echo_run_reports_nothing() {
    let (builder, stalls) = recording(Duration::from_millis(200));
    let echoed = builder.build().unwrap().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let echo = corering::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            loop {
                buf.clear();
                let (read, back) = server.read(buf).await;
                if read.unwrap() == 0 {
                    return;
                }
                let (written, back) = server.write_all(back).await;
                written.unwrap();
                buf = back;
            }
        });
        let mut echoed = 0;
        let mut buf = vec![7u8; 1024];
        for _ in 0..20_000 {
            let (written, sent) = client.write_all(buf).await;
            written.unwrap();
            let mut back = Vec::with_capacity(1024);
            while back.len() < 1024 {
                let len = back.len();
                let (read, more) = client.read(back.slice(len..)).await;
                read.unwrap();
                back = more.into_inner();
            }
            assert_eq!(back, sent);
            echoed += back.len();
            buf = sent;
        }
        client.shutdown(std::net::Shutdown::Write).await.unwrap();
        echo.await.unwrap();
        echoed
    });
    assert_eq!(echoed, 20_000 * 1024);
    assert!(
        stalls.lock().unwrap().is_empty(),
        "{:?}",
        stalls.lock().unwrap()
    );
}

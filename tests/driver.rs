//! The driver under pressure: a tiny ring, many operations, CQ overflow.

mod common;

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use corering::fd::Fd;

#[test]
fn ten_thousand_operations_on_an_eight_entry_ring() {
    let dir = std::env::temp_dir().join(format!("corering-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let runtime = corering::Runtime::builder()
        .entries(8)
        .tasks_per_tick(1024)
        .build()
        .unwrap();
    let stats = runtime.block_on(async move {
        let file = Rc::new(Fd::from(OwnedFd::from(file)));
        let mut handles = Vec::new();
        for i in 0..10_000u64 {
            let file = file.clone();
            handles.push(corering::spawn(async move {
                corering::op::nop().await.unwrap();
                let value = (i * 2_654_435_761).to_le_bytes().to_vec();
                let (written, _) = file.write_at(value, i * 8).await;
                assert_eq!(written.unwrap(), 8);
                i
            }));
        }
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), i as u64);
        }
        let mut handles = Vec::new();
        for i in 0..10_000u64 {
            let file = file.clone();
            handles.push(corering::spawn(async move {
                let (read, buf) = file.read_at(Vec::with_capacity(8), i * 8).await;
                assert_eq!(read.unwrap(), 8);
                u64::from_le_bytes(buf.try_into().unwrap())
            }));
        }
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), i as u64 * 2_654_435_761);
        }
        corering::stats()
    });
    assert_eq!(stats.submitted, 30_000);
    assert_eq!(stats.completed, 30_000);
    assert_eq!(
        (stats.in_flight, stats.cancelled, stats.stale_completions),
        (0, 0, 0)
    );
    assert!(stats.sq_full > 0, "the 8-entry SQ filled: {stats:?}");
    assert!(stats.cq_overflows > 0, "the CQ overflowed: {stats:?}");
    drop(runtime);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn operations_wait_for_a_free_slot() {
    let runtime = corering::Runtime::builder().slots_max(4).build().unwrap();
    let stats = runtime.block_on(async {
        let handles: Vec<_> = (0..100)
            .map(|_| corering::spawn(corering::op::nop()))
            .collect();
        for handle in handles {
            handle.await.unwrap().unwrap();
        }
        corering::stats()
    });
    assert_eq!(
        (stats.submitted, stats.completed, stats.slots_in_use),
        (100, 100, 0)
    );
}

#[test]
fn builder_rejects_zero_limits() {
    let error = corering::Runtime::builder().entries(0).build().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

/// A one-entry ring can never hold a linked pair (a turn would spin for
/// ever waiting for room for two): refused, and the error says why. Two
/// entries serve a linked turn; slot counts past the id space are refused
/// rather than panicking.
#[test]
fn builder_refuses_a_ring_too_small_for_a_linked_pair() {
    use corering::net::{TcpListener, TcpStream};
    let error = corering::Runtime::builder().entries(1).build().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("linked pair"), "{error}");
    let error = corering::Runtime::builder()
        .slots_max(1 << 30)
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);

    let runtime = corering::Runtime::builder().entries(2).build().unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"ask".to_vec()).await.0.unwrap();
        let (read, _, asked) = server
            .write_all_then_read(b"answer".to_vec(), Vec::with_capacity(8))
            .await;
        assert_eq!((read.unwrap(), &asked[..]), (3, &b"ask"[..]));
        let (read, answer) = client.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &answer[..]), (6, &b"answer"[..]));
    });
}

#[test]
fn slot_waiter_whose_task_is_gone_strands_nobody() {
    let runtime = corering::Runtime::builder().slots_max(1).build().unwrap();
    runtime.block_on(async {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let reader = Fd::from(OwnedFd::from(reader));
        // The one slot: a read that waits for data.
        let holder = corering::spawn(async move { reader.read(Vec::with_capacity(4)).await.0 });
        common::settle(|| corering::stats().slots_in_use == 1, 100).await;
        // Two more operations wait for the slot; the first is aborted.
        let gone = corering::spawn(corering::op::nop());
        let waiting = corering::spawn(corering::op::nop());
        corering::yield_now().await;
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        // Written without the ring: its one slot is taken.
        std::io::Write::write_all(&mut writer, b"go").unwrap();
        assert_eq!(holder.await.unwrap().unwrap(), 2);
        waiting.await.unwrap().unwrap();
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

#[test]
fn sqpoll_ring_with_eight_entries_completes_every_operation() {
    let runtime = corering::Runtime::builder()
        .entries(8)
        .sqpoll(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let (sum, stats) = runtime.block_on(async {
        let (reader, writer) = common::pipe();
        let (reader, writer) = (Rc::new(reader), Rc::new(writer));
        let nops: Vec<_> = (0..1_000u64)
            .map(|i| {
                corering::spawn(async move {
                    corering::op::nop().await.unwrap();
                    i
                })
            })
            .collect();
        let echo = corering::spawn({
            let reader = reader.clone();
            async move {
                let (read, buf) = reader.read(vec![0u8; 5]).await;
                assert_eq!(read.unwrap(), 5);
                buf
            }
        });
        let (written, _) = writer.write_all(b"hello".to_vec()).await;
        written.unwrap();
        assert_eq!(&echo.await.unwrap()[..], b"hello");
        let mut sum = 0;
        for nop in nops {
            sum += nop.await.unwrap();
        }
        (sum, corering::stats())
    });
    assert_eq!(sum, 999 * 1_000 / 2);
    assert_eq!(stats.in_flight, 0);
    assert!(stats.sq_full > 0, "1,000 nops must fill an 8-entry SQ");
    assert_eq!(stats.submitted, stats.completed);
}

#[test]
fn batch_wait_still_completes_lone_operations_timers_and_remote_wakes() {
    // A batch of 8 is asked for, but one operation, one timer or one wake
    // from another thread is all there is: each still completes, at most
    // the batch delay after it arrives.
    let runtime = corering::Runtime::builder()
        .batch_wait(8, std::time::Duration::from_micros(200))
        .build()
        .unwrap();
    let (reads, stats) = runtime.block_on(async {
        let (reader, writer) = common::pipe();
        let mut reads = 0;
        for round in 0..50u8 {
            let (written, _) = writer.write(vec![round]).await;
            assert_eq!(written.unwrap(), 1);
            let (read, buf) = reader.read(Vec::with_capacity(4)).await;
            assert_eq!((read.unwrap(), buf[0]), (1, round));
            reads += 1;
        }
        corering::time::sleep(std::time::Duration::from_millis(2)).await;
        // Parked with nothing but the doorbell in flight, a wake from
        // another thread still ends the park (the timeout only bounds a
        // failure).
        let parked: Arc<Mutex<Option<Waker>>> = Arc::default();
        let woken = Arc::new(AtomicBool::new(false));
        let waiter = corering::spawn({
            let (parked, woken) = (parked.clone(), woken.clone());
            std::future::poll_fn(move |cx| {
                if woken.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                *parked.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            })
        });
        let waker_thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            woken.store(true, Ordering::SeqCst);
            parked
                .lock()
                .unwrap()
                .take()
                .expect("the waiter ran")
                .wake();
        });
        corering::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the remote wake ended the park")
            .unwrap();
        waker_thread.join().unwrap();
        (reads, corering::stats())
    });
    assert_eq!(reads, 50);
    assert_eq!(stats.in_flight, 0);
}

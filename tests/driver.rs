//! The driver under pressure: a tiny ring, many operations, CQ overflow.
//!
//! The ring's own mechanics: these run on io_uring whatever
//! `CORERING_BACKEND` says (tests/epoll.rs checks the epoll backend's).

mod common;

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

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
    let runtime = common::ring_builder()
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
        let stats = corering::stats();
        // Whether the file operations above overflowed the 16-entry CQ
        // depends on when the kernel's workers finish them; this does not:
        // one multishot receive over 1,024 bytes already queued posts a
        // CQE per 16-byte buffer, most of the 64 before the core reaps.
        let (ours, theirs) = corering::net::UnixStream::pair().unwrap();
        let ring = corering::buf::BufRing::new(128, 16).unwrap();
        let sent: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
        theirs.write_all(sent.clone()).await.0.unwrap();
        let mut received = ours.recv_multi(&ring);
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let buf = futures::StreamExt::next(&mut received);
            got.extend_from_slice(&buf.await.unwrap().unwrap());
        }
        assert!(got == sent, "every byte once, in order");
        (stats, corering::stats().cq_overflows)
    });
    let (stats, overflows) = stats;
    assert_eq!(stats.submitted, 30_000);
    assert_eq!(stats.completed, 30_000);
    assert_eq!(
        (stats.in_flight, stats.cancelled, stats.stale_completions),
        (0, 0, 0)
    );
    assert!(stats.sq_full > 0, "the 8-entry SQ filled: {stats:?}");
    assert!(overflows > 0, "the CQ overflowed: {stats:?}");
    drop(runtime);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn operations_wait_for_a_free_slot() {
    let runtime = common::ring_builder().slots_max(4).build().unwrap();
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

/// Asserts that `builder` is refused with `InvalidInput` and an error that
/// names `limit`, both by `build` and by `run_on_cores` (before any core
/// runs).
fn assert_refused(builder: corering::Builder, limit: &str) {
    let error = builder.clone().build().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains(limit), "{error}");
    let ran = AtomicBool::new(false);
    let error = builder
        .cores(1)
        .run_on_cores(|_| async { ran.store(true, Ordering::SeqCst) })
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
    assert!(!ran.load(Ordering::SeqCst), "no core runs");
}

#[test]
fn builder_rejects_zero_limits() {
    assert_refused(common::ring_builder().entries(0), "entries");
}

#[test]
fn builder_rejects_zero_slots_max() {
    assert_refused(common::ring_builder().slots_max(0), "slots_max");
}

#[test]
fn builder_rejects_zero_tasks_per_tick() {
    assert_refused(common::ring_builder().tasks_per_tick(0), "tasks_per_tick");
}

/// A one-entry ring can never hold a linked pair (a turn would spin for
/// ever waiting for room for two): refused, and the error says why. Two
/// entries serve a linked turn; slot counts past the id space are refused
/// rather than panicking.
#[test]
fn builder_refuses_a_ring_too_small_for_a_linked_pair() {
    use corering::net::{TcpListener, TcpStream};
    let error = common::ring_builder().entries(1).build().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("linked pair"), "{error}");
    let error = common::ring_builder()
        .slots_max(1 << 30)
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);

    let runtime = common::ring_builder().entries(2).build().unwrap();
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
    let runtime = common::ring_builder().slots_max(1).build().unwrap();
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
    let runtime = common::ring_builder()
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

/// Whether the kernel has the minimum-wait timeout a batch wait is built on
/// (`IORING_FEAT_MIN_TIMEOUT`, Linux 6.12); without it the runtime ignores
/// `batch_wait`.
fn kernel_has_min_wait() -> bool {
    io_uring::IoUring::new(2)
        .expect("io_uring can be set up")
        .params()
        .is_feature_min_timeout()
}

/// The batch delay the batch-wait test configures.
const BATCH_DELAY: Duration = Duration::from_millis(20);

/// How long anything may take under a batch wait: the delay plus a second,
/// generous so as to catch a completion held back until some other event,
/// not a slow machine.
fn batch_bound() -> Duration {
    BATCH_DELAY + Duration::from_secs(1)
}

#[test]
fn batch_wait_still_completes_lone_operations_timers_and_remote_wakes() {
    // A batch of 8 is asked for, but one operation, one timer or one wake
    // from another thread is all there is: each still completes, at most
    // the batch delay after it arrives.
    if !kernel_has_min_wait() {
        println!(
            "skipped: this kernel lacks IORING_FEAT_MIN_TIMEOUT (Linux 6.12), \
             so batch_wait is ignored and there is no delay to measure"
        );
        return;
    }
    let runtime = common::ring_builder()
        .batch_wait(8, BATCH_DELAY)
        .build()
        .unwrap();
    let stats = runtime.block_on(async {
        lone_reads_and_a_timer().await;
        lone_completion_in_a_batch_of_two().await;
        remote_wake_ends_the_park().await;
        corering::stats()
    });
    assert_eq!(stats.in_flight, 0);
}

/// One operation in flight at a time: each completes within the bound, and
/// so does a short sleep.
async fn lone_reads_and_a_timer() {
    let (reader, writer) = common::pipe();
    for round in 0..50u8 {
        let (written, _) = writer.write(vec![round]).await;
        assert_eq!(written.unwrap(), 1);
        let started = Instant::now();
        let (read, buf) = reader.read(Vec::with_capacity(4)).await;
        assert_eq!((read.unwrap(), buf[0]), (1, round));
        let took = started.elapsed();
        assert!(took < batch_bound(), "round {round} took {took:?}");
    }
    let started = Instant::now();
    corering::time::sleep(Duration::from_millis(2)).await;
    let slept = started.elapsed();
    assert!(
        slept >= Duration::from_millis(2) && slept < Duration::from_millis(2) + batch_bound(),
        "a 2 ms sleep took {slept:?}"
    );
}

/// Two reads in flight, one of which gets data from another thread 5 ms
/// into the park: the park waits for a batch of two, so the lone completion
/// comes once the delay (counted from the park) has passed, and at most the
/// delay after its data.
async fn lone_completion_in_a_batch_of_two() {
    let (idle_reader, mut idle_writer) = std::io::pipe().unwrap();
    let idle_reader = Fd::from(OwnedFd::from(idle_reader));
    let idle = corering::spawn(async move { idle_reader.read(Vec::with_capacity(1)).await.0 });
    let (late_reader, mut late_writer) = std::io::pipe().unwrap();
    let late_reader = Fd::from(OwnedFd::from(late_reader));
    let writer_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        let written_at = Instant::now();
        std::io::Write::write_all(&mut late_writer, b"z").unwrap();
        written_at
    });
    let parked_at = Instant::now();
    let (read, _) = late_reader.read(Vec::with_capacity(1)).await;
    let done = Instant::now();
    assert_eq!(read.unwrap(), 1);
    let written_at = writer_thread.join().unwrap();
    assert!(done >= written_at, "completed before its data was written");
    let (delay, parked) = (done - written_at, done - parked_at);
    println!(
        "batch of two, one completion: {delay:?} after its data, {parked:?} after the park \
         (configured delay {BATCH_DELAY:?})"
    );
    assert!(
        delay < batch_bound(),
        "the lone completion waited {delay:?}"
    );
    // The park waited for the batch rather than waking on the first CQE: no
    // noise can make it end sooner.
    assert!(
        parked >= BATCH_DELAY / 2,
        "the park ended {parked:?} in, before the batch delay"
    );
    std::io::Write::write_all(&mut idle_writer, b"i").unwrap();
    assert_eq!(idle.await.unwrap().unwrap(), 1);
}

/// Parked with nothing but the doorbell in flight, a wake from another
/// thread still ends the park, within the bound (the timeout only bounds a
/// failure).
async fn remote_wake_ends_the_park() {
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
        std::thread::sleep(Duration::from_millis(20));
        let woken_at = Instant::now();
        woken.store(true, Ordering::SeqCst);
        let waker = parked.lock().unwrap().take();
        waker.expect("the waiter ran").wake();
        woken_at
    });
    corering::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the remote wake ended the park")
        .unwrap();
    let done = Instant::now();
    let woken_at = waker_thread.join().unwrap();
    assert!(done >= woken_at, "ended before the wake");
    let took = done - woken_at;
    assert!(took < batch_bound(), "the remote wake took {took:?}");
}

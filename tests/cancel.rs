//! Dropping an in-flight operation: its memory is freed exactly once, only
//! after the kernel's final completion, and nothing leaks.
//!
//! The ring's own mechanics: these run on io_uring whatever
//! `CORERING_BACKEND` says (tests/epoll.rs checks the epoll backend's).

mod common;

use std::time::Duration;

use common::{open_fds, pipe, poll_once, settle, CountBuf, DropBuf};
use corering::time::timeout;

#[test]
fn dropped_read_frees_buffer_once_after_its_completion() {
    let _serial = common::serial();
    let fds_before = common::steady_fds();
    common::ring_start(async {
        let fds_inside = open_fds();
        let (reader, writer) = pipe();
        let (buf, drops, stats_at_drop) = DropBuf::new(64);
        let mut read = Box::pin(reader.read(buf));
        assert!(poll_once(&mut read).await.is_pending());
        let stats = corering::stats();
        assert_eq!(
            (stats.submitted, stats.in_flight, stats.slots_in_use),
            (1, 1, 1)
        );

        drop(read);
        // The kernel may still write into the buffer: it must be alive.
        assert_eq!(drops.get(), 0);
        settle(|| drops.get() > 0, 1000).await;
        assert_eq!(drops.get(), 1, "buffer freed exactly once");
        let at_drop = stats_at_drop.get().expect("dropped inside the runtime");
        assert_eq!(
            at_drop.cancelled, 1,
            "the final CQE was reaped before the free"
        );
        assert_eq!(at_drop.slots_in_use, 0);

        let stats = corering::stats();
        assert_eq!(stats.cancel_requests, 1);
        assert_eq!(stats.in_flight, 0);
        assert_eq!(stats.slots_in_use, 0);
        drop((reader, writer));
        // Both pipe ends are closed through the ring.
        settle(|| open_fds() == fds_inside, 1000).await;
        assert_eq!(open_fds(), fds_inside);
    });
    // The ring's own descriptors are gone too.
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn dropped_timeout_frees_buffer_once_and_its_timer() {
    let _serial = common::serial();
    common::ring_start(async {
        let (reader, _writer) = pipe();
        let (buf, drops, stats_at_drop) = DropBuf::new(64);
        let mut bounded = Box::pin(timeout(Duration::from_secs(60), reader.read(buf)));
        assert!(poll_once(&mut bounded).await.is_pending());
        assert_eq!(corering::stats().timers, 1);
        drop(bounded);
        assert_eq!(corering::stats().timers, 0, "the timer left the wheel");
        assert_eq!(drops.get(), 0);
        settle(|| drops.get() > 0, 1000).await;
        assert_eq!(drops.get(), 1);
        assert_eq!(stats_at_drop.get().unwrap().cancelled, 1);
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

/// A read whose CQE is already reaped when its future is dropped: the slot
/// holds the result, so the drop releases the slot and hands the buffer to
/// be freed without sending an `ASYNC_CANCEL` (nothing is left in the
/// kernel to cancel).
#[test]
fn completed_but_untaken_result_is_freed_when_dropped() {
    let _serial = common::serial();
    common::ring_start(async {
        let (reader, writer) = pipe();
        writer.write_all(b"x".as_slice()).await.0.unwrap();
        let (buf, drops, stats_at_drop) = DropBuf::new(8);
        let mut read = Box::pin(reader.read(buf));
        assert!(poll_once(&mut read).await.is_pending());
        // Let the read complete without polling its future again.
        corering::time::sleep(Duration::from_millis(5)).await;
        let before = corering::stats();
        assert_eq!(
            (before.in_flight, before.cancel_requests),
            (1, 0),
            "the read is reaped but its result untaken"
        );
        drop(read);
        settle(|| drops.get() > 0, 1000).await;
        assert_eq!(drops.get(), 1);
        let at_drop = stats_at_drop.get().unwrap();
        assert_eq!((at_drop.completed, at_drop.cancelled), (1, 1));
        assert_eq!(at_drop.cancel_requests, 0, "no cancel was queued");
        let after = corering::stats();
        assert_eq!(after.cancel_requests, 0, "no cancel was sent: {after:?}");
        assert_eq!(
            (after.submitted, after.in_flight, after.slots_in_use),
            (before.submitted, 0, 0)
        );
    });
}

#[test]
fn runtime_dropped_with_1000_operations_in_flight_drains_them() {
    let _serial = common::serial();
    let fds_before = common::steady_fds();
    let runtime = common::ring_builder().build().unwrap();
    let (drops, writer) = runtime.block_on(async {
        let (reader, writer) = pipe();
        let reader = std::rc::Rc::new(reader);
        let mut counters = Vec::new();
        for _ in 0..1000 {
            let reader = reader.clone();
            let (buf, drops, _) = DropBuf::new(16);
            counters.push(drops);
            corering::spawn(async move { reader.read(buf).await });
        }
        // Let every task submit its read.
        settle(|| corering::stats().in_flight == 1000, 1000).await;
        assert_eq!(corering::stats().in_flight, 1000);
        // Kept open past the shutdown, so the reads are cancelled rather
        // than ended by end of file.
        (counters, writer)
    });
    let started = std::time::Instant::now();
    let stats = runtime.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        stats.submitted,
        1000 + 1,
        "1000 reads and the reader's close"
    );
    assert_eq!(stats.submitted, stats.completed + stats.cancelled);
    assert_eq!(stats.cancelled, 1000);
    assert_eq!(
        (stats.abandoned, stats.in_flight, stats.slots_in_use),
        (0, 0, 0)
    );
    assert!(
        drops.iter().all(|d| d.get() == 1),
        "every buffer freed exactly once"
    );
    // Only the write end is left open; dropped outside any runtime, it is
    // closed with close(2).
    assert_eq!(open_fds(), fds_before + 1);
    drop(writer);
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn operation_moved_out_of_its_runtime_is_cancelled_at_shutdown_and_freed_after_its_cqe() {
    let _serial = common::serial();
    let (reader, _writer) = pipe();
    let runtime = common::ring_builder().build().unwrap();
    let (read, drops) = runtime.block_on(async {
        let (buf, drops, _) = DropBuf::new(8);
        let mut read = Box::pin(reader.read(buf));
        assert!(poll_once(&mut read).await.is_pending());
        (read, drops)
    });
    // Dropped outside any runtime: the kernel may still write into the
    // buffer, so it goes back to its slot rather than being freed.
    drop(read);
    assert_eq!(drops.get(), 0);
    let started = std::time::Instant::now();
    let stats = runtime.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the read was cancelled, not waited out"
    );
    assert_eq!(
        (
            stats.submitted,
            stats.cancelled,
            stats.abandoned,
            stats.in_flight
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(stats.slots_in_use, 0);
    assert_eq!(drops.get(), 1, "freed once, after the cancellation's CQE");
}

/// An operation polled on one runtime and dropped inside another of the
/// same thread goes back to its own slot: its buffer stays alive while the
/// first ring may write into it, and is freed once that ring reaps the
/// cancellation.
#[test]
fn operation_dropped_inside_another_runtime_returns_to_its_own() {
    let _serial = common::serial();
    let fds_before = common::steady_fds();
    let first = common::ring_builder().build().unwrap();
    let second = common::ring_builder().build().unwrap();
    let (reader, writer) = pipe();
    let (buf, drops) = CountBuf::new(64);
    let mut read = Box::pin(async move { reader.read(buf).await });
    first.block_on(async { assert!(poll_once(&mut read).await.is_pending()) });
    second.block_on(async move { drop(read) });
    assert_eq!(drops.get(), 0, "the first ring still owns the buffer");
    assert_eq!(second.stats().submitted, 0);
    let stats = first.stats();
    assert_eq!((stats.cancel_requests, stats.in_flight), (1, 1));
    first.block_on(async {
        settle(|| drops.get() > 0, 1000).await;
    });
    assert_eq!(drops.get(), 1, "freed exactly once, after its CQE");
    let stats = first.stats();
    assert_eq!(
        (stats.cancelled, stats.in_flight, stats.slots_in_use),
        (1, 0, 0)
    );
    drop(writer);
    drop((first, second));
    assert_eq!(open_fds(), fds_before);
}

/// An operation dropped outside any runtime closes its descriptor all the
/// same: while its runtime lives the state goes back to its slot, and once
/// that runtime has drained, the state is simply freed.
#[test]
fn operation_dropped_outside_any_runtime_closes_its_descriptor() {
    let _serial = common::serial();
    let fds_before = common::steady_fds();
    for runtime_first in [false, true] {
        let runtime = common::ring_builder().build().unwrap();
        let (reader, writer) = pipe();
        let (buf, drops) = CountBuf::new(64);
        let mut read = Box::pin(async move { reader.read(buf).await });
        runtime.block_on(async { assert!(poll_once(&mut read).await.is_pending()) });
        if runtime_first {
            let stats = runtime.shutdown();
            assert_eq!((stats.in_flight, stats.abandoned), (0, 0));
            drop(read);
        } else {
            drop(read);
            assert_eq!(drops.get(), 0, "the ring still owns the buffer");
            runtime.block_on(async { settle(|| drops.get() > 0, 1000).await });
            assert_eq!(runtime.stats().cancelled, 1);
            drop(runtime);
        }
        assert_eq!(drops.get(), 1, "runtime first: {runtime_first}");
        drop(writer);
        assert_eq!(open_fds(), fds_before, "runtime first: {runtime_first}");
    }
}

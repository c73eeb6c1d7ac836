//! The one deliberate leak: a runtime whose shutdown deadline passes with
//! operations still in flight leaks their states (the kernel may still
//! write into them) and counts them as `abandoned`, never frees them. A
//! future of that runtime dropped later leaks its state too.
//!
//! `ci/test` runs this file under AddressSanitizer with leak detection off;
//! every other test file runs with it on.
//!
//! The ring's own mechanics: these run on io_uring whatever
//! `CORERING_BACKEND` says (tests/epoll.rs checks the epoll backend's).

mod common;

use std::time::Duration;

use common::{poll_once, CountBuf};
use corering::fd::Fd;
use std::os::fd::OwnedFd;

#[test]
fn past_the_shutdown_deadline_in_flight_states_are_leaked_and_counted() {
    let runtime = common::ring_builder()
        .shutdown_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let (reader, _writer) = std::io::pipe().unwrap();
    let reader = std::rc::Rc::new(Fd::from(OwnedFd::from(reader)));
    // One read owned by a task, one by a future moved out of the runtime.
    let (in_task, task_drops) = CountBuf::new(64);
    let (moved_out, moved_drops) = CountBuf::new(64);
    let task_reader = reader.clone();
    let mut read = Box::pin(async move { reader.read(moved_out).await });
    runtime.block_on(async {
        corering::spawn(async move { task_reader.read(in_task).await });
        assert!(poll_once(&mut read).await.is_pending());
        corering::yield_now().await;
        assert_eq!(corering::stats().in_flight, 2);
    });
    let stats = runtime.shutdown();
    assert_eq!(
        (stats.abandoned, stats.in_flight, stats.slots_in_use),
        (2, 0, 0)
    );
    assert_eq!(
        stats.submitted,
        stats.completed + stats.cancelled + stats.abandoned
    );
    assert_eq!(task_drops.get(), 0, "leaked, not freed under the kernel");
    drop(read);
    assert_eq!(
        moved_drops.get(),
        0,
        "its runtime leaked it: so does its future"
    );
}

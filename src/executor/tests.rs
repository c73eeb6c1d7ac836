//! The executor on its own, with no runtime, ring or thread-local core:
//! what it needs comes through the handles it is built with.

use std::cell::Cell;
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};

use super::Executor;
use crate::sys::eventfd::EventFd;

fn executor() -> Executor {
    Executor::new(EventFd::new().expect("eventfd"), 4096)
}

/// Polls `handle` once with a waker that does nothing.
fn poll_handle<T>(handle: &mut super::JoinHandle<T>) -> Poll<Result<T, super::JoinError>> {
    Pin::new(handle).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn tasks_run_and_join_without_a_runtime() {
    let executor = executor();
    let mut first = executor.spawn(async { 20 });
    let second = executor.spawn(async { 22 });
    // A task awaiting another: its waker is a task's, woken by key.
    let mut sum = executor.spawn(async move { second.await.unwrap() + 100 });
    assert!(poll_handle(&mut first).is_pending(), "nothing ran yet");
    executor.run(16);
    assert!(matches!(poll_handle(&mut first), Poll::Ready(Ok(20))));
    executor.run(16);
    assert!(matches!(poll_handle(&mut sum), Poll::Ready(Ok(122))));
    assert!(!executor.is_ready());
}

#[test]
fn a_wake_from_another_thread_reaches_the_inbox() {
    let executor = executor();
    let polls = Rc::new(Cell::new(0));
    let counted = polls.clone();
    let (send, receive) = mpsc::channel::<Waker>();
    let mut handle = executor.spawn(poll_fn(move |cx| {
        counted.set(counted.get() + 1);
        if counted.get() == 1 {
            send.send(cx.waker().clone()).unwrap();
            return Poll::Pending;
        }
        Poll::Ready(())
    }));
    executor.run(16);
    assert_eq!(polls.get(), 1);
    assert!(!executor.is_ready());
    let waker = receive.recv().unwrap();
    std::thread::spawn(move || waker.wake()).join().unwrap();
    assert!(executor.is_ready(), "the inbox was notified");
    let mut jobs = Vec::new();
    executor.drain_inbox(&mut jobs);
    assert!(jobs.is_empty(), "a wake is a key, not a job");
    executor.run(16);
    assert_eq!(polls.get(), 2);
    assert!(matches!(poll_handle(&mut handle), Poll::Ready(Ok(()))));
}

#[test]
fn shutdown_drops_every_future_and_later_wakes_queue_nothing() {
    let executor = executor();
    let drops = Rc::new(Cell::new(0));
    struct Count(Rc<Cell<usize>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let (send, receive) = mpsc::channel::<Waker>();
    let mut handles: Vec<_> = (0..3)
        .map(|_| {
            let count = Count(drops.clone());
            let send = send.clone();
            executor.spawn(async move {
                let _count = count;
                poll_fn(|cx| {
                    send.send(cx.waker().clone()).unwrap();
                    Poll::Ready(())
                })
                .await;
                pending::<()>().await
            })
        })
        .collect();
    executor.run(16);
    executor.shutdown();
    assert_eq!(drops.get(), 3);
    for waker in receive.try_iter() {
        waker.wake();
    }
    assert!(!executor.is_ready(), "a closed executor queues nothing");
    for handle in &mut handles {
        assert!(matches!(poll_handle(handle), Poll::Ready(Err(error)) if error.is_cancelled()));
    }
}

/// A handle outliving its executor keeps the scheduler its task points to
/// alive, and frees both when it goes (LeakSanitizer checks).
#[test]
fn a_handle_outliving_its_executor_frees_it_last() {
    let executor = executor();
    let mut done = executor.spawn(async { 5 });
    let mut pending = executor.spawn(pending::<u8>());
    executor.run(16);
    drop(executor);
    assert!(matches!(poll_handle(&mut done), Poll::Ready(Ok(5))));
    assert!(matches!(poll_handle(&mut pending), Poll::Ready(Err(error)) if error.is_cancelled()));
    drop(done);
    drop(pending);
}

#[test]
fn a_freed_task_block_serves_the_next_spawn() {
    let executor = executor();
    let cache = &executor.local().cache;
    let first = executor.spawn(async { 1u64 });
    let block = first.task() as *const _ as usize;
    executor.run(16);
    assert_eq!(cache.held_bytes(), 0);
    drop(first);
    // Release builds recycle; debug builds give every block back (see
    // `cache`).
    let recycled = cache.held_bytes();
    assert_eq!(recycled > 0, !cfg!(debug_assertions));
    let second = executor.spawn(async { 2u64 });
    assert_eq!(cache.held_bytes(), 0);
    if recycled > 0 {
        assert_eq!(second.task() as *const _ as usize, block);
    }
    executor.run(16);
    drop(second);
}

#[test]
fn keys_of_finished_tasks_are_reused_and_stale_wakes_are_spurious() {
    let executor = executor();
    let first = executor.spawn(async {});
    let key = first.task().key;
    executor.run(16);
    drop(first);
    // The key is free again: a wake by it (a stale driver token) polls
    // whatever task has it now, or nothing.
    executor.schedule(key);
    executor.run(16);
    let polls = Rc::new(Cell::new(0));
    let counted = polls.clone();
    let second = executor.spawn(poll_fn(move |_| {
        counted.set(counted.get() + 1);
        Poll::<()>::Pending
    }));
    assert_eq!(second.task().key, key);
    executor.run(16);
    executor.schedule(key);
    executor.run(16);
    assert_eq!(polls.get(), 2, "the stale wake polled the new task, once");
    drop(second);
}

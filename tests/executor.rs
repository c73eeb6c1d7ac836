//! Tasks: spawn, join, panics, abort, yield, cross-thread wakes.

mod common;

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::time::Duration;

use common::{pipe, settle};

#[test]
fn spawned_tasks_run_and_join() {
    let total = corering::start(async {
        let handles: Vec<_> = (0..100u64)
            .map(|i| corering::spawn(async move { i * i }))
            .collect();
        let mut total = 0;
        for handle in handles {
            total += handle.await.unwrap();
        }
        total
    });
    assert_eq!(total, (0..100u64).map(|i| i * i).sum());
}

#[test]
fn panicking_task_reports_panic_and_runtime_goes_on() {
    corering::start(async {
        let handle = corering::spawn(async {
            panic!("boom");
        });
        let error = handle.await.unwrap_err();
        assert!(error.is_panic());
        assert!(!error.is_cancelled());
        assert_eq!(error.to_string(), "task panicked: boom");
        assert_eq!(*error.into_panic().downcast::<&str>().unwrap(), "boom");
        // The core keeps serving tasks and I/O.
        assert_eq!(corering::spawn(async { 5 }).await.unwrap(), 5);
        corering::op::nop().await.unwrap();
    });
}

#[test]
fn aborted_task_is_cancelled_with_its_operations() {
    corering::start(async {
        let (reader, _writer) = pipe();
        let dropped = Rc::new(Cell::new(false));
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let flag = Flag(dropped.clone());
        let handle = corering::spawn(async move {
            let _flag = flag;
            reader.read(Vec::with_capacity(16)).await
        });
        settle(|| corering::stats().in_flight == 1, 1000).await;
        assert_eq!(corering::stats().in_flight, 1);
        handle.abort();
        let error = handle.await.unwrap_err();
        assert!(error.is_cancelled());
        assert_eq!(error.to_string(), "task was cancelled");
        assert!(dropped.get(), "the task's future was dropped");
        settle(|| corering::stats().in_flight == 0, 1000).await;
        let stats = corering::stats();
        assert_eq!(
            (stats.cancel_requests, stats.cancelled, stats.in_flight),
            (1, 1, 0)
        );
    });
}

#[test]
fn detached_task_keeps_running() {
    let done = corering::start(async {
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        drop(corering::spawn(async move {
            corering::time::sleep(Duration::from_millis(2)).await;
            flag.set(true);
        }));
        corering::time::sleep(Duration::from_millis(20)).await;
        done.get()
    });
    assert!(done);
}

#[test]
fn yielding_task_does_not_starve_io_or_others() {
    corering::start(async {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u64));
        let (stop2, spins2) = (stop.clone(), spins.clone());
        let spinner = corering::spawn(async move {
            while !stop2.get() {
                spins2.set(spins2.get() + 1);
                corering::yield_now().await;
            }
        });
        // I/O and timers still complete while a task yields in a loop.
        for _ in 0..10 {
            corering::op::nop().await.unwrap();
        }
        corering::time::sleep(Duration::from_millis(5)).await;
        assert!(spins.get() > 0);
        stop.set(true);
        spinner.await.unwrap();
    });
}

#[test]
fn waker_from_another_thread_wakes_a_parked_runtime() {
    let (send, receive) = mpsc::channel();
    let woken = Arc::new(AtomicBool::new(false));
    let woken_by_thread = woken.clone();
    let thread = std::thread::spawn(move || {
        let waker: std::task::Waker = receive.recv().unwrap();
        // Long enough for the core to park with nothing else to do.
        std::thread::sleep(Duration::from_millis(50));
        woken_by_thread.store(true, Ordering::SeqCst);
        waker.wake();
    });
    corering::start(async move {
        let mut sent = Some(send);
        poll_fn(|cx| {
            if let Some(send) = sent.take() {
                send.send(cx.waker().clone()).unwrap();
            }
            if woken.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    });
    thread.join().unwrap();
}

#[test]
fn task_woken_from_another_thread_runs_on_its_core() {
    let (send, receive) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (waker, flag): (std::task::Waker, Arc<AtomicBool>) = receive.recv().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        flag.store(true, Ordering::SeqCst);
        waker.wake();
    });
    let core_thread = corering::start(async move {
        let handle = corering::spawn(async move {
            let flag = Arc::new(AtomicBool::new(false));
            let mut send = Some(send);
            poll_fn(|cx| {
                if let Some(send) = send.take() {
                    send.send((cx.waker().clone(), flag.clone())).unwrap();
                }
                if flag.load(Ordering::SeqCst) {
                    Poll::Ready(std::thread::current().id())
                } else {
                    Poll::Pending
                }
            })
            .await
        });
        handle.await.unwrap()
    });
    thread.join().unwrap();
    assert_eq!(core_thread, std::thread::current().id());
}

#[test]
#[should_panic(expected = "inside a corering runtime")]
fn spawn_outside_a_runtime_panics() {
    drop(corering::spawn(async {}));
}

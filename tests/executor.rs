//! Tasks: spawn, join, panics, abort, yield, cross-thread wakes.

mod common;

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
        // On epoll a dropped wait just leaves: no cancellation to send.
        let cancels = if common::on_epoll() { 0 } else { 1 };
        assert_eq!(
            (stats.cancel_requests, stats.cancelled, stats.in_flight),
            (cancels, 1, 0)
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

/// Counts drops of the future it lives in.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn waker_outliving_its_runtime_frees_the_task_from_another_thread() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = drops.clone();
    let runtime = corering::Runtime::new().unwrap();
    let waker = runtime.block_on(async move {
        let (send, receive) = mpsc::channel();
        // Never finishes: its future is dropped by the runtime's shutdown.
        corering::spawn(async move {
            let _counted = DropCount(counted);
            let mut send = Some(send);
            poll_fn(|cx| {
                if let Some(send) = send.take() {
                    send.send(cx.waker().clone()).unwrap();
                }
                Poll::<()>::Pending
            })
            .await
        });
        corering::yield_now().await;
        receive.try_recv().expect("the task ran once")
    });
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(runtime);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "shutdown drops the future once"
    );
    // The waker holds the last reference; waking it reaches no runtime and
    // dropping it on another thread frees the task (LeakSanitizer checks).
    std::thread::spawn(move || {
        waker.wake_by_ref();
        drop(waker);
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn many_wakes_of_one_task_poll_it_once_per_turn() {
    let polls = corering::start(async {
        let polls = Rc::new(Cell::new(0));
        let counted = polls.clone();
        let (send, receive) = mpsc::channel::<std::task::Waker>();
        let handle = corering::spawn(poll_fn(move |cx| {
            counted.set(counted.get() + 1);
            if counted.get() == 1 {
                send.send(cx.waker().clone()).unwrap();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
        corering::yield_now().await;
        let waker = receive.try_recv().unwrap();
        for _ in 0..10 {
            waker.wake_by_ref();
        }
        waker.wake();
        handle.await.unwrap();
        polls.get()
    });
    assert_eq!(polls, 2, "eleven wakes before the next turn make one poll");
}

/// `yield_now` in a spawned task lets the ring run before the task goes on:
/// a no-op pushed before the yield has completed when the task resumes,
/// every time (the task is not polled again in the same tick).
/// On io_uring in both runs: it watches the ring's turns.
#[test]
fn yield_now_lets_the_ring_run_before_the_task_resumes() {
    common::ring_start(async {
        let task = corering::spawn(async {
            for round in 0..100 {
                let mut nop = Box::pin(corering::op::nop());
                assert!(common::poll_once(&mut nop).await.is_pending());
                corering::yield_now().await;
                let done = common::poll_once(&mut nop).await;
                assert!(
                    done.is_ready(),
                    "round {round}: the ring ran during the yield"
                );
            }
        });
        task.await.unwrap();
    });
}

/// Panics in user code that runs outside a task poll are contained like a
/// panic in `poll`: a future's `Drop` on completion, abort or shutdown is
/// reported through its handle, and a panicking `wake` (an operation's
/// foreign waker, a `JoinHandle`'s waiter) costs the other wakes of its
/// batch nothing. Neither `block_on` nor the shutdown unwinds, and the
/// shutdown still closes what it had queued.
/// On io_uring in both runs: a nop that stays in flight is the ring's.
#[test]
fn panics_in_drops_and_wakes_are_contained() {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop panics");
        }
    }
    struct PanicOnWake;
    impl Wake for PanicOnWake {
        fn wake(self: Arc<Self>) {
            panic!("wake panics");
        }
    }

    let runtime = common::ring_builder().build().unwrap();
    runtime.block_on(async {
        // On completion: the panic replaces the output.
        let done = corering::spawn(async {
            let _guard = PanicOnDrop;
            1
        });
        assert!(done.await.unwrap_err().is_panic());
        // On abort: the panic replaces the cancellation.
        let aborted = corering::spawn(async {
            let _guard = PanicOnDrop;
            std::future::pending::<()>().await
        });
        corering::yield_now().await;
        aborted.abort();
        assert!(aborted.await.unwrap_err().is_panic());

        // Two operations awaited by panicking wakers and one by a task
        // complete in the same reap: the task is still woken.
        let panicky = Waker::from(Arc::new(PanicOnWake));
        let mut cx = Context::from_waker(&panicky);
        let mut nops = [Box::pin(corering::op::nop()), Box::pin(corering::op::nop())];
        for nop in &mut nops {
            assert!(nop.as_mut().poll(&mut cx).is_pending());
        }
        corering::op::nop().await.unwrap();
        // A JoinHandle awaited with a panicking waker.
        let mut task = corering::spawn(async { 7 });
        assert!(std::pin::Pin::new(&mut task).poll(&mut cx).is_pending());
        corering::yield_now().await;
        corering::yield_now().await;
        assert_eq!(task.await.unwrap(), 7);
        assert_eq!(corering::stats().callback_panics, 3);
    });
    // At shutdown: a task whose drop panics, and a descriptor to close.
    let (mut reader, writer) = std::io::pipe().unwrap();
    runtime.block_on(async {
        let writer = corering::fd::Fd::from(std::os::fd::OwnedFd::from(writer));
        corering::spawn(async move {
            let _guard = PanicOnDrop;
            let _writer = writer;
            std::future::pending::<()>().await
        });
        corering::yield_now().await;
    });
    let stats = runtime.shutdown();
    assert_eq!((stats.in_flight, stats.slots_in_use), (0, 0));
    // End of file: the write end was closed through the ring.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut rest).unwrap();
    assert!(rest.is_empty());
}

/// A task that completed with a waker of it still held elsewhere: the
/// waker keeps the task (and what it needs to find its core) alive past
/// the runtime, and frees it from another thread.
#[test]
fn waker_of_a_completed_task_outliving_its_runtime_frees_it_elsewhere() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = drops.clone();
    let runtime = corering::Runtime::new().unwrap();
    let (waker, handle) = runtime.block_on(async move {
        let (send, receive) = mpsc::channel();
        let handle = corering::spawn(async move {
            let counted = DropCount(counted);
            let mut send = Some(send);
            poll_fn(|cx| {
                if let Some(send) = send.take() {
                    send.send(cx.waker().clone()).unwrap();
                }
                Poll::Ready(())
            })
            .await;
            counted
        });
        drop(handle.await.unwrap());
        let handle = corering::spawn(async { 1 });
        (receive.try_recv().expect("the task ran once"), handle)
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(runtime);
    drop(handle);
    std::thread::spawn(move || {
        waker.wake_by_ref();
        waker.wake();
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A task of one runtime woken from a task of another runtime of the same
/// thread is queued on its own core (no doorbell needed: the thread is the
/// same), and runs there at its next turn.
#[test]
fn wake_from_another_runtime_of_the_thread_queues_the_task_on_its_core() {
    let first = corering::Runtime::new().unwrap();
    let second = corering::Runtime::new().unwrap();
    let polls = Rc::new(Cell::new(0));
    let counted = polls.clone();
    let (waker, handle) = first.block_on(async move {
        let (send, receive) = mpsc::channel();
        let handle = corering::spawn(poll_fn(move |cx| {
            counted.set(counted.get() + 1);
            if counted.get() == 1 {
                send.send(cx.waker().clone()).unwrap();
                return Poll::Pending;
            }
            Poll::Ready(counted.get())
        }));
        corering::yield_now().await;
        (receive.try_recv().expect("polled once"), handle)
    });
    assert_eq!(polls.get(), 1);
    second.block_on(async move {
        waker.wake();
        corering::yield_now().await;
    });
    assert_eq!(polls.get(), 1, "polled by its own core only");
    assert_eq!(first.block_on(handle).unwrap(), 2);
}

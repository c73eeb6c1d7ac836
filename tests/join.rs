//! Join handles and task outputs: every output, panic payload and future is
//! dropped exactly once, whoever drops it (the handle, the task, the
//! runtime's shutdown) and wherever (inside the runtime, after it is gone,
//! on another runtime of the thread).

use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Counts its drops; `value` tells outputs apart.
#[derive(Debug)]
struct Counted {
    value: u64,
    drops: Rc<Cell<usize>>,
}

impl Counted {
    fn new(value: u64, drops: &Rc<Cell<usize>>) -> Counted {
        Counted {
            value,
            drops: drops.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

/// Yields until `done` holds, at most `ticks_max` times.
async fn until(mut done: impl FnMut() -> bool, ticks_max: usize) {
    for _ in 0..ticks_max {
        if done() {
            return;
        }
        corering::yield_now().await;
    }
    panic!("not done after {ticks_max} ticks");
}

#[test]
fn output_is_dropped_once_when_the_handle_is_dropped_unread() {
    let drops = Rc::new(Cell::new(0));
    let counted = drops.clone();
    corering::start(async move {
        let handle = corering::spawn({
            let drops = counted.clone();
            async move { Counted::new(7, &drops) }
        });
        until(|| handle.is_finished(), 100).await;
        assert_eq!(counted.get(), 0, "the output waits in the task");
        drop(handle);
        assert_eq!(counted.get(), 1, "dropped with the handle");
        corering::yield_now().await;
    });
    assert_eq!(drops.get(), 1);
}

#[test]
fn output_of_a_detached_task_is_dropped_once_when_it_completes() {
    let drops = Rc::new(Cell::new(0));
    let counted = drops.clone();
    corering::start(async move {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        drop(corering::spawn({
            let drops = counted.clone();
            async move {
                corering::yield_now().await;
                flag.set(true);
                Counted::new(1, &drops)
            }
        }));
        until(|| ran.get(), 100).await;
        assert_eq!(counted.get(), 1, "no handle: dropped at completion");
    });
    assert_eq!(drops.get(), 1);
}

#[test]
fn output_taken_by_the_handle_is_the_callers_to_drop() {
    let drops = Rc::new(Cell::new(0));
    let counted = drops.clone();
    let output = corering::start(async move {
        let handle = corering::spawn(async move { Counted::new(42, &counted) });
        handle.await.unwrap()
    });
    assert_eq!((output.value, drops.get()), (42, 0));
    drop(output);
    assert_eq!(drops.get(), 1);
}

/// An output no one reads, held by a handle inside a task that never
/// finishes, goes when the runtime drops that task.
#[test]
fn output_never_read_is_freed_at_runtime_drop() {
    let drops = Rc::new(Cell::new(0));
    let runtime = corering::Runtime::new().unwrap();
    runtime.block_on({
        let drops = drops.clone();
        async move {
            let finished = corering::spawn(async move { Counted::new(3, &drops) });
            corering::spawn(async move {
                let _unread = finished;
                pending::<()>().await
            });
            corering::yield_now().await;
            corering::yield_now().await;
        }
    });
    assert_eq!(drops.get(), 0);
    drop(runtime);
    assert_eq!(drops.get(), 1);
}

/// A handle may outlive its runtime: the finished task's output is still
/// there to take (on another runtime of the thread), and an unfinished
/// task reports its cancellation by the shutdown.
#[test]
fn a_handle_outlives_its_runtime() {
    let drops = Rc::new(Cell::new(0));
    let runtime = corering::Runtime::new().unwrap();
    let (finished, cancelled, unread) = runtime.block_on({
        let drops = drops.clone();
        async move {
            let finished = corering::spawn({
                let drops = drops.clone();
                async move { Counted::new(5, &drops) }
            });
            let cancelled = corering::spawn({
                let drops = drops.clone();
                async move {
                    let _guard = Counted::new(0, &drops);
                    pending::<Counted>().await
                }
            });
            let unread = corering::spawn(async move { Counted::new(6, &drops) });
            until(|| finished.is_finished() && unread.is_finished(), 100).await;
            (finished, cancelled, unread)
        }
    });
    drop(runtime);
    assert_eq!(drops.get(), 1, "only the cancelled task's future went");
    assert!(cancelled.is_finished());
    let (output, error) = corering::start(async move {
        let output = finished.await.unwrap();
        (output, cancelled.await.unwrap_err())
    });
    assert!(error.is_cancelled());
    assert_eq!(output.value, 5);
    drop(output);
    assert_eq!(drops.get(), 2);
    drop(unread);
    assert_eq!(drops.get(), 3, "an unread output goes with its handle");
}

#[test]
fn aborted_before_its_first_poll_the_future_is_dropped_never_polled() {
    let drops = Rc::new(Cell::new(0));
    let polls = Rc::new(Cell::new(0));
    let (counted, polled) = (drops.clone(), polls.clone());
    corering::start(async move {
        let guard = Counted::new(0, &counted);
        let handle = corering::spawn(poll_fn(move |_| {
            let _guard = &guard;
            polled.set(polled.get() + 1);
            Poll::<()>::Pending
        }));
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
    });
    assert_eq!((polls.get(), drops.get()), (0, 1));
}

#[test]
fn abort_after_completion_leaves_the_output() {
    corering::start(async {
        let handle = corering::spawn(async { 9 });
        until(|| handle.is_finished(), 100).await;
        handle.abort();
        assert_eq!(handle.await.unwrap(), 9);
    });
}

#[test]
fn a_panic_payload_is_dropped_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // `panic_any` needs `Send`.
    struct Payload(Arc<AtomicUsize>);
    impl Drop for Payload {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let payloads = Arc::new(AtomicUsize::new(0));
    let counted = payloads.clone();
    corering::start(async move {
        let unread = corering::spawn({
            let payloads = counted.clone();
            async move { std::panic::panic_any(Payload(payloads)) }
        });
        let read = corering::spawn({
            let payloads = counted.clone();
            async move { std::panic::panic_any(Payload(payloads)) }
        });
        let error = read.await.unwrap_err();
        assert!(error.is_panic());
        until(|| unread.is_finished(), 100).await;
        assert_eq!(counted.load(Ordering::SeqCst), 0);
        drop(unread);
        assert_eq!(counted.load(Ordering::SeqCst), 1, "with the unread handle");
        drop(error);
        assert_eq!(counted.load(Ordering::SeqCst), 2, "with the error");
    });
    assert_eq!(payloads.load(Ordering::SeqCst), 2);
}

/// Outputs and futures of every size and alignment: small ones share a
/// recycled block, large and over-aligned ones have their own.
#[test]
fn outputs_of_any_size_and_alignment_arrive_intact() {
    #[repr(align(64))]
    #[derive(Debug, PartialEq)]
    struct Aligned(u64);
    corering::start(async {
        for round in 0..3u64 {
            let small = corering::spawn(async move { round });
            let aligned = corering::spawn(async move {
                let local = Aligned(round);
                corering::yield_now().await;
                Aligned(local.0 + 1)
            });
            let large = corering::spawn(async move {
                let buffer = [round as u8; 4096];
                corering::yield_now().await;
                buffer
            });
            assert_eq!(small.await.unwrap(), round);
            assert_eq!(aligned.await.unwrap(), Aligned(round + 1));
            let buffer = large.await.unwrap();
            assert!(buffer.iter().all(|&byte| byte == round as u8));
        }
    });
}

/// A task that holds its own handle and drops it in its last poll (the
/// block's locals go before it returns) is freed once, after the core is
/// done with it, and its output, with no one to go to, is dropped.
#[test]
fn a_task_dropping_its_own_handle_as_it_completes() {
    let drops = Rc::new(Cell::new(0));
    corering::start({
        let drops = drops.clone();
        async move {
            let slot: Rc<RefCell<Option<corering::JoinHandle<Counted>>>> = Rc::default();
            let own = slot.clone();
            let output_drops = drops.clone();
            let handle = corering::spawn(async move {
                corering::yield_now().await;
                let _own = own;
                Counted::new(1, &output_drops)
            });
            *slot.borrow_mut() = Some(handle);
            drop(slot);
            until(|| drops.get() == 1, 100).await;
        }
    });
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_task_that_aborts_itself_is_cancelled() {
    corering::start(async {
        let slot: Rc<RefCell<Option<corering::JoinHandle<()>>>> = Rc::default();
        let own = slot.clone();
        let handle = corering::spawn(async move {
            corering::yield_now().await;
            own.borrow().as_ref().expect("handle in place").abort();
            pending::<()>().await
        });
        *slot.borrow_mut() = Some(handle);
        until(|| slot.borrow().as_ref().unwrap().is_finished(), 100).await;
        let handle = slot.borrow_mut().take().unwrap();
        assert!(handle.await.unwrap_err().is_cancelled());
    });
}

#[test]
#[should_panic(expected = "JoinHandle polled after completion")]
fn a_handle_polled_after_completion_panics() {
    corering::start(async {
        let mut handle = corering::spawn(async { 1 });
        assert_eq!((&mut handle).await.unwrap(), 1);
        let mut cx = Context::from_waker(Waker::noop());
        let _ = Pin::new(&mut handle).poll(&mut cx);
    });
}

/// The handle keeps one waiter: a second poll with another waker replaces
/// the first, and only the latest is woken.
#[test]
fn the_handle_wakes_its_latest_waiter() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    corering::start(async {
        let (first, second) = (
            Arc::new(CountWakes(AtomicUsize::new(0))),
            Arc::new(CountWakes(AtomicUsize::new(0))),
        );
        let mut handle = corering::spawn(async {
            corering::yield_now().await;
            2
        });
        for waker in [&first, &second] {
            let waker = Waker::from(waker.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        }
        until(|| handle.is_finished(), 100).await;
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(handle.await.unwrap(), 2);
        // The waiter the handle held was dropped: the `Arc`s are ours alone.
        assert_eq!(
            (Arc::strong_count(&first), Arc::strong_count(&second)),
            (1, 1)
        );
    });
}

/// Tasks left at shutdown are dropped once each, including those their
/// drops spawn.
#[test]
fn tasks_left_at_shutdown_are_dropped_once_each() {
    struct SpawnOnDrop(Rc<Cell<usize>>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let counted = Counted::new(0, &self.0);
            drop(corering::spawn(async move {
                let _counted = counted;
                pending::<()>().await
            }));
        }
    }
    let drops = Rc::new(Cell::new(0));
    let runtime = corering::Runtime::new().unwrap();
    runtime.block_on({
        let drops = drops.clone();
        async move {
            for i in 0..100u64 {
                let drops = drops.clone();
                corering::spawn(async move {
                    let _counted = Counted::new(i, &drops);
                    let _spawner = (i == 0).then(|| SpawnOnDrop(drops.clone()));
                    pending::<()>().await
                });
            }
            corering::yield_now().await;
        }
    });
    assert_eq!(drops.get(), 0);
    drop(runtime);
    assert_eq!(
        drops.get(),
        101,
        "100 tasks and the one spawned at shutdown"
    );
}

/// A spawn reuses the block of a task freed before it, and the two never
/// see each other's state.
#[test]
fn recycled_task_blocks_start_clean() {
    let drops = Rc::new(Cell::new(0));
    corering::start({
        let drops = drops.clone();
        async move {
            for round in 0..1000u64 {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let drops = drops.clone();
                        corering::spawn(async move { Counted::new(round * 8 + i, &drops) })
                    })
                    .collect();
                for (i, handle) in handles.into_iter().enumerate() {
                    assert_eq!(handle.await.unwrap().value, round * 8 + i as u64);
                }
            }
        }
    });
    assert_eq!(drops.get(), 8000);
}

#[test]
fn a_handle_is_one_pointer() {
    assert_eq!(
        std::mem::size_of::<corering::JoinHandle<[u8; 256]>>(),
        std::mem::size_of::<usize>()
    );
}

//! `sync::mpsc`: bounded, ordered per sender, every message received once
//! or dropped once; across cores, from plain threads and within one core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use corering::sync::mpsc::{self, TryRecvError, TrySendError};

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Hands each core of a 2-core launch its end of a channel.
struct Ends<T> {
    tx: Mutex<Option<mpsc::Sender<T>>>,
    rx: Mutex<Option<mpsc::Receiver<T>>>,
}

impl<T> Ends<T> {
    fn new(capacity: usize) -> Ends<T> {
        let (tx, rx) = mpsc::channel(capacity);
        Ends {
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(Some(rx)),
        }
    }
}

#[test]
fn a_million_messages_cross_cores_once_and_in_order() {
    const COUNT: u64 = 1_000_000;
    let ends = Ends::<u64>::new(1024);
    let results = corering::Runtime::builder()
        .cores(2)
        .run_on_cores(|core| {
            let tx = (core.index() == 0).then(|| ends.tx.lock().unwrap().take().unwrap());
            let rx = (core.index() == 1).then(|| ends.rx.lock().unwrap().take().unwrap());
            async move {
                if let Some(tx) = tx {
                    for i in 0..COUNT {
                        tx.send(i).await.unwrap();
                    }
                    return COUNT;
                }
                let mut rx = rx.unwrap();
                let mut next = 0;
                while let Some(i) = rx.recv().await {
                    assert_eq!(i, next, "in order, once each");
                    next += 1;
                }
                next
            }
        })
        .unwrap();
    assert_eq!(results, [COUNT, COUNT]);
}

#[test]
fn twenty_thousand_round_trips_between_parking_cores() {
    const ROUNDS: u32 = 20_000;
    let there = Ends::<u32>::new(1);
    let back = Ends::<u32>::new(1);
    let results = corering::Runtime::builder()
        .cores(2)
        .run_on_cores(|core| {
            let (tx, rx) = if core.index() == 0 {
                (
                    there.tx.lock().unwrap().take(),
                    back.rx.lock().unwrap().take(),
                )
            } else {
                (
                    back.tx.lock().unwrap().take(),
                    there.rx.lock().unwrap().take(),
                )
            };
            let (tx, mut rx) = (tx.unwrap(), rx.unwrap());
            let first = core.index() == 0;
            async move {
                let mut seen = 0;
                if first {
                    for round in 0..ROUNDS {
                        tx.send(round).await.unwrap();
                        assert_eq!(rx.recv().await, Some(round));
                        seen += 1;
                    }
                } else {
                    while let Some(round) = rx.recv().await {
                        tx.send(round).await.unwrap();
                        seen += 1;
                    }
                }
                seen
            }
        })
        .unwrap();
    assert_eq!(results, [ROUNDS, ROUNDS]);
}

#[test]
fn four_plain_threads_blocking_send_to_a_parked_core() {
    let (tx, mut rx) = mpsc::channel::<(usize, u32)>(8);
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    tx.blocking_send((thread, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let next = corering::start(async move {
        let mut next = [0u32; 4];
        while let Some((thread, i)) = rx.recv().await {
            assert_eq!(i, next[thread], "each sender's messages in order");
            next[thread] += 1;
        }
        next
    });
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(next, [5_000; 4]);
}

#[test]
fn tasks_of_one_core_exchange_in_order_with_backpressure() {
    corering::start(async {
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        // Bind the receiver here, so the sends below take the local path.
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        for i in 0..4 {
            tx.try_send(i).unwrap();
        }
        assert!(matches!(tx.try_send(4), Err(TrySendError::Full(4))));
        let producer = corering::spawn(async move {
            for i in 4..1_000 {
                tx.send(i).await.unwrap();
            }
        });
        for i in 0..1_000 {
            assert_eq!(rx.recv().await, Some(i));
        }
        producer.await.unwrap();
        assert_eq!(rx.recv().await, None, "the only sender is gone");
    });
}

#[test]
fn messages_left_in_a_closed_channel_are_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    corering::start(async {
        let (tx, mut rx) = mpsc::channel(16);
        // Two messages from a plain thread (the remote queue) before the
        // receiver is bound, then three from this core (the local queue).
        let remote = tx.clone();
        let remote_drops = drops.clone();
        std::thread::spawn(move || {
            for _ in 0..2 {
                remote.blocking_send(Counted(remote_drops.clone())).unwrap();
            }
        })
        .join()
        .unwrap();
        assert!(rx.try_recv().is_ok(), "the first remote message");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            tx.try_send(Counted(drops.clone())).unwrap();
        }
        rx.close();
        let refused = tx.try_send(Counted(drops.clone())).unwrap_err();
        assert!(matches!(refused, TrySendError::Closed(_)));
        drop(refused);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "handed back, dropped by us"
        );
        // What was queued before the close is still received.
        drop(rx.recv().await.unwrap());
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        drop(rx);
        assert_eq!(drops.load(Ordering::SeqCst), 6, "the three left, once each");
        drop(tx);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}

#[test]
fn a_sender_waiting_for_room_sees_the_close() {
    corering::start(async {
        let (tx, mut rx) = mpsc::channel::<u8>(1);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.try_send(1).unwrap();
        let waiting = corering::spawn(async move { tx.send(2).await });
        corering::yield_now().await;
        rx.close();
        let refused = waiting.await.unwrap().unwrap_err();
        assert_eq!(refused.0, 2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    });
}

/// Runs `body` on a plain thread and waits for it (from a core, where the
/// wait is short: the body never waits on the core).
fn on_plain_thread<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(body).join().unwrap()
}

#[test]
fn a_remote_sender_takes_exactly_the_capacity_lap_after_lap() {
    corering::start(async {
        // Three places: not a power of two, so the ring's positions skip
        // from the last slot to the next lap.
        let (tx, mut rx) = mpsc::channel::<u32>(3);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let mut next = 0;
        for lap in 0..10u32 {
            let remote = tx.clone();
            let refused = on_plain_thread(move || {
                for i in 0..3 {
                    remote.try_send(lap * 3 + i).unwrap();
                }
                match remote.try_send(u32::MAX) {
                    Err(TrySendError::Full(value)) => value,
                    other => panic!("a fourth message in three places: {other:?}"),
                }
            });
            assert_eq!(refused, u32::MAX, "handed back");
            // One place freed lets exactly one more in.
            assert_eq!(rx.try_recv(), Ok(next));
            next += 1;
            let remote = tx.clone();
            let second =
                on_plain_thread(move || (remote.try_send(1_000 + lap), remote.try_send(u32::MAX)));
            assert_eq!(second.0, Ok(()));
            assert!(matches!(second.1, Err(TrySendError::Full(u32::MAX))));
            for _ in 0..2 {
                assert_eq!(rx.try_recv(), Ok(next));
                next += 1;
            }
            assert_eq!(rx.try_recv(), Ok(1_000 + lap));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        }
        assert_eq!(next, 30);
    });
}

#[test]
fn local_and_remote_sends_share_one_bound() {
    corering::start(async {
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.try_send(0).unwrap();
        tx.try_send(1).unwrap();
        let remote = tx.clone();
        let sent = on_plain_thread(move || {
            let ok = [remote.try_send(10), remote.try_send(11)];
            (ok, remote.try_send(12))
        });
        assert_eq!(sent.0, [Ok(()), Ok(())]);
        assert!(
            matches!(sent.1, Err(TrySendError::Full(12))),
            "two local and two remote fill four places"
        );
        assert!(
            matches!(tx.try_send(2), Err(TrySendError::Full(2))),
            "the local side counts the remote messages"
        );
        // The local queue first, then the ring.
        let mut got = Vec::new();
        while let Ok(value) = rx.try_recv() {
            got.push(value);
        }
        assert_eq!(got, [0, 1, 10, 11]);
    });
}

#[test]
fn messages_sent_before_the_first_receive_stay_ahead_of_later_ones() {
    corering::start(async {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        // Unbound: these go to the ring, even from the receiver's thread.
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        // The first receive binds; what follows goes to the local queue and
        // must not overtake what is in the ring.
        assert_eq!(rx.recv().await, Some(0));
        for i in 3..6 {
            tx.try_send(i).unwrap();
        }
        let mut got = Vec::new();
        while let Ok(value) = rx.try_recv() {
            got.push(value);
        }
        assert_eq!(got, [1, 2, 3, 4, 5]);
    });
}

#[test]
fn a_receiver_dropped_away_from_its_core_loses_no_message() {
    let drops = Arc::new(AtomicUsize::new(0));
    let tx = corering::start(async {
        let (tx, mut rx) = mpsc::channel(8);
        assert!(rx.try_recv().is_err(), "bound to this core");
        for _ in 0..2 {
            tx.try_send(Counted(drops.clone())).unwrap();
        }
        let remote = tx.clone();
        let remote_drops = drops.clone();
        on_plain_thread(move || {
            for _ in 0..3 {
                remote.try_send(Counted(remote_drops.clone())).unwrap();
            }
        });
        // Dropped on a plain thread: the ring's three go with it, the local
        // two stay until the channel itself goes (a sender of this core
        // could still touch them).
        on_plain_thread(move || drop(rx));
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        assert!(tx.is_closed());
        assert!(matches!(
            tx.try_send(Counted(drops.clone())),
            Err(TrySendError::Closed(_))
        ));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            4,
            "the refused one, handed back"
        );
        tx
    });
    drop(tx);
    assert_eq!(drops.load(Ordering::SeqCst), 6, "every message, once");
}

#[test]
fn many_threads_through_a_small_ring_lose_and_repeat_nothing() {
    const THREADS: usize = 6;
    const EACH: u32 = 20_000;
    let (tx, mut rx) = mpsc::channel::<(usize, u32)>(3);
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    tx.blocking_send((thread, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let next = corering::start(async move {
        let mut next = [0u32; THREADS];
        while let Some((thread, i)) = rx.recv().await {
            assert_eq!(i, next[thread], "each sender's messages in order");
            next[thread] += 1;
        }
        next
    });
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(next, [EACH; THREADS]);
}

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

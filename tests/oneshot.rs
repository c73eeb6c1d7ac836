//! `sync::oneshot`: one value, delivered once or dropped once.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use corering::sync::oneshot::{self, RecvError, TryRecvError};

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_value_sent_from_another_thread_wakes_a_parked_core() {
    let value = corering::start(async {
        let (tx, rx) = oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send(String::from("across")).unwrap();
        });
        let value = rx.await.unwrap();
        sender.join().unwrap();
        value
    });
    assert_eq!(value, "across");
}

#[test]
fn a_sender_dropped_unused_resolves_the_receiver_to_an_error() {
    corering::start(async {
        let (tx, rx) = oneshot::channel::<u32>();
        let waiting = corering::spawn(rx);
        corering::yield_now().await;
        drop(tx);
        assert!(matches!(waiting.await.unwrap(), Err(RecvError { .. })));
    });
}

#[test]
fn a_closed_or_dropped_receiver_hands_the_value_back_and_wakes_closed() {
    corering::start(async {
        let (tx, mut rx) = oneshot::channel::<u32>();
        assert!(!tx.is_closed());
        let tx = Rc::new(tx);
        let watcher = corering::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        corering::yield_now().await;
        rx.close();
        watcher.await.unwrap();
        assert!(tx.is_closed());
        let tx = Rc::try_unwrap(tx).unwrap();
        assert_eq!(tx.send(7), Err(7));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    });
}

#[test]
fn a_value_sent_before_close_is_still_received() {
    corering::start(async {
        let (tx, mut rx) = oneshot::channel();
        tx.send(5u8).unwrap();
        rx.close();
        assert_eq!(rx.await, Ok(5));
    });
}

#[test]
fn a_value_never_received_is_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel();
    assert!(tx.send(Counted(drops.clone())).is_ok());
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Refused: handed back, dropped by the caller, once.
    let (tx, rx) = oneshot::channel();
    drop(rx);
    let refused = tx.send(Counted(drops.clone())).unwrap_err();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(refused);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn try_recv_sees_empty_then_the_value() {
    let (tx, mut rx) = oneshot::channel();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(1u64).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

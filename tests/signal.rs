//! `signal`: each delivery reaches every listener on every core, once; a
//! handler installed before still runs. Each test uses its own signal,
//! since tests of one binary run side by side in one process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use corering::signal::{signal, SignalKind};

/// Sends `signum` to this thread: handled before `raise` returns.
fn raise(signum: i32) {
    // SAFETY: raise takes no pointers; every signal raised here has a
    // handler installed first.
    assert_eq!(unsafe { libc::raise(signum) }, 0);
}

#[test]
fn one_signal_reaches_both_cores_of_a_launch() {
    // A thread started before the runtime, not blocking anything: the
    // kernel may run the handler on it.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let bystander = std::thread::spawn(move || stop_rx.recv());
    let listening = Barrier::new(2);
    let seen = corering::Runtime::builder()
        .cores(2)
        .run_on_cores(|core| {
            let listening = &listening;
            async move {
                let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
                listening.wait();
                if core.index() == 0 {
                    // To the process, not to a thread: any thread may take it.
                    // SAFETY: kill takes no pointers.
                    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
                }
                usr1.recv().await.unwrap();
                // Exactly once: nothing more within 50 ms.
                let more = corering::time::timeout(Duration::from_millis(50), usr1.recv()).await;
                assert!(more.is_err(), "one delivery, seen once");
                core.index()
            }
        })
        .unwrap();
    assert_eq!(seen, [0, 1]);
    drop(stop_tx);
    bystander.join().unwrap().unwrap_err();
}

#[test]
fn fifty_signals_in_a_row_are_each_seen() {
    corering::start(async {
        let mut hup = signal(SignalKind::hangup()).unwrap();
        for _ in 0..50 {
            raise(libc::SIGHUP);
            hup.recv().await.unwrap();
        }
        // Fifty more before the listener looks: each counted.
        for _ in 0..50 {
            raise(libc::SIGHUP);
        }
        for _ in 0..50 {
            hup.recv().await.unwrap();
        }
        let more = corering::time::timeout(Duration::from_millis(50), hup.recv()).await;
        assert!(more.is_err(), "a hundred deliveries, a hundred receives");
    });
}

static EARLIER_HANDLER_RUNS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn earlier_handler(_: libc::c_int) {
    EARLIER_HANDLER_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_handler_installed_before_still_runs() {
    // SAFETY: an all-zero sigaction is a valid empty one; the handler only
    // does an atomic add (async-signal-safe).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = earlier_handler as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
            0
        );
    }
    corering::start(async {
        let mut usr2 = signal(SignalKind::user_defined2()).unwrap();
        raise(libc::SIGUSR2);
        usr2.recv().await.unwrap();
        raise(libc::SIGUSR2);
        usr2.recv().await.unwrap();
    });
    assert_eq!(EARLIER_HANDLER_RUNS.load(Ordering::SeqCst), 2);
}

#[test]
fn ctrl_c_resolves_on_sigint() {
    corering::start(async {
        let waiting = corering::spawn(corering::signal::ctrl_c());
        // Let it install the handler and wait.
        corering::time::sleep(Duration::from_millis(10)).await;
        raise(libc::SIGINT);
        waiting.await.unwrap().unwrap();
    });
}

#[test]
fn signals_a_handler_must_not_take_are_refused() {
    for signum in [0, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 65] {
        let error = signal(SignalKind::from_raw(signum)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{signum}");
    }
}

#[test]
fn a_dropped_listener_leaves_the_others_their_deliveries() {
    corering::start(async {
        let quit = SignalKind::quit();
        let mut kept = signal(quit).unwrap();
        let dropped = signal(quit).unwrap();
        drop(dropped);
        raise(libc::SIGQUIT);
        kept.recv().await.unwrap();
        // A listener made after a delivery does not see it.
        let mut late = signal(quit).unwrap();
        let early = corering::time::timeout(Duration::from_millis(20), late.recv()).await;
        assert!(early.is_err());
        raise(libc::SIGQUIT);
        late.recv().await.unwrap();
        kept.recv().await.unwrap();
    });
}

//! The epoll driver without a runtime: waits, wakes, drains, refusals.

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::task::Waker;
use std::time::Duration;

use super::{Interest, Reactor, Ticket};
use crate::driver::{Wait, Wake};
use crate::sys::eventfd::EventFd;

fn wake(token: &Option<u32>) -> Wake<'_, Option<u32>> {
    Wake {
        waker: Waker::noop(),
        tokens: token,
    }
}

/// Turns (at most a second each) until a token comes back or `turns` ran.
fn tokens(reactor: &mut Reactor, turns: usize) -> Vec<u32> {
    let mut ready = Vec::new();
    for _ in 0..turns {
        reactor.turn(Wait::For(Some(Duration::from_millis(200))), &mut |token| {
            ready.push(token)
        });
        if !ready.is_empty() {
            break;
        }
    }
    ready
}

/// A reader waiting on an empty pipe is woken by the write, once; the
/// writer's direction was never drained, so it stays ready.
#[test]
fn a_write_wakes_the_reader_of_a_pipe_once() {
    let doorbell = EventFd::new().unwrap();
    let mut reactor = Reactor::new(doorbell.as_raw_fd()).unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let fd = reader.as_raw_fd();
    let mut ticket = Ticket::default();
    assert!(reactor.may_be_ready(fd, Interest::READ), "unknown is ready");
    reactor
        .wait(fd, Interest::READ, wake(&Some(3)), &mut ticket)
        .unwrap();
    assert!(!reactor.may_be_ready(fd, Interest::READ));
    assert!(reactor.may_be_ready(fd, Interest::WRITE));
    reactor.turn(Wait::No, &mut |token| panic!("woken early: {token}"));
    writer.write_all(b"x").unwrap();
    assert_eq!(tokens(&mut reactor, 5), [3]);
    assert!(reactor.may_be_ready(fd, Interest::READ));
    // Woken once: the waiter is gone, and a second event wakes nobody.
    writer.write_all(b"y").unwrap();
    assert_eq!(tokens(&mut reactor, 2), Vec::<u32>::new());
    reactor.forget(fd);
    assert_eq!(reactor.stats().stale_completions, 0);
}

/// A dropped waiter is removed: the event finds nobody to wake.
#[test]
fn a_cancelled_waiter_is_not_woken() {
    let doorbell = EventFd::new().unwrap();
    let mut reactor = Reactor::new(doorbell.as_raw_fd()).unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let fd = reader.as_raw_fd();
    let mut ticket = Ticket::default();
    reactor
        .wait(fd, Interest::READ, wake(&Some(1)), &mut ticket)
        .unwrap();
    reactor.cancel(fd, &mut ticket);
    assert_eq!(ticket, Ticket::default());
    writer.write_all(b"x").unwrap();
    assert_eq!(tokens(&mut reactor, 2), Vec::<u32>::new());
    reactor.forget(fd);
}

/// epoll refuses a regular file (`EPERM`), and that is remembered.
#[test]
fn a_regular_file_is_refused_and_remembered() {
    let doorbell = EventFd::new().unwrap();
    let mut reactor = Reactor::new(doorbell.as_raw_fd()).unwrap();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let fd = file.as_raw_fd();
    let mut ticket = Ticket::default();
    let error = reactor
        .wait(fd, Interest::READ, wake(&Some(1)), &mut ticket)
        .unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EPERM));
    assert!(reactor.refused(fd));
    reactor.forget(fd);
    assert!(
        !reactor.refused(fd),
        "a new descriptor of that number starts afresh"
    );
}

/// The doorbell ends a wait and is drained (a second wait times out).
#[test]
fn the_doorbell_ends_a_wait() {
    let doorbell = EventFd::new().unwrap();
    let mut reactor = Reactor::new(doorbell.as_raw_fd()).unwrap();
    doorbell.notify();
    reactor.turn(Wait::For(Some(Duration::from_secs(5))), &mut |_| {});
    assert_eq!(reactor.stats().eventfd_wakes, 1);
    reactor.turn(Wait::For(Some(Duration::from_millis(10))), &mut |_| {});
    assert_eq!(reactor.stats().eventfd_wakes, 1);
}

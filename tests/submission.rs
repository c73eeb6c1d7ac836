//! Submission when the SQ is full: operations wait in a FIFO that the next
//! enter flushes ahead of new work, so order holds, linked pairs stay
//! whole and no push enters the kernel.
//!
//! The ring's own mechanics: these run on io_uring whatever
//! `CORERING_BACKEND` says (tests/epoll.rs checks the epoll backend's).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use corering::net::{TcpListener, TcpStream};

/// Polls every future once, in order, within one poll of the caller.
async fn poll_each_once<F: Future>(futures: &mut [Pin<Box<F>>]) {
    std::future::poll_fn(|cx| {
        for future in futures.iter_mut() {
            assert!(
                future.as_mut().poll(cx).is_pending(),
                "nothing is submitted yet"
            );
        }
        Poll::Ready(())
    })
    .await;
}

/// 200 writes to one pipe, pushed in one poll onto an 8-entry ring: the
/// pushes enter nothing, and the reader sees every write's bytes in push
/// order (the FIFO keeps the order in which they were pushed).
#[test]
fn writes_that_find_the_sq_full_keep_their_order() {
    let runtime = common::ring_builder().entries(8).build().unwrap();
    runtime.block_on(async {
        let (reader, writer) = common::pipe();
        let mut writes: Vec<_> = (0..200u32)
            .map(|i| Box::pin(writer.write(format!("{i:04};").into_bytes())))
            .collect();
        let before = corering::stats();
        poll_each_once(&mut writes).await;
        let pushed = corering::stats();
        assert_eq!(pushed.enters, before.enters, "no push entered the kernel");
        assert_eq!(pushed.submitted - before.submitted, 200);
        assert!(pushed.sq_full - before.sq_full >= 192, "{pushed:?}");
        for write in writes {
            assert_eq!(write.await.0.unwrap(), 5);
        }
        let mut got = Vec::new();
        while got.len() < 1000 {
            let (read, buf) = reader.read(Vec::with_capacity(4096)).await;
            assert!(read.unwrap() > 0, "the pipe's writer is still open");
            got.extend_from_slice(&buf);
        }
        let want: String = (0..200).map(|i| format!("{i:04};")).collect();
        assert_eq!(String::from_utf8(got).unwrap(), want);
    });
}

/// 16 linked turns (write, then read) pushed in one poll onto an 8-entry
/// ring beside single reads: each pair goes in whole, so every turn's
/// write reaches its peer and its read gets the peer's answer.
#[test]
fn linked_turns_at_the_sq_boundary_stay_whole() {
    let runtime = common::ring_builder().entries(8).build().unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut pairs = Vec::new();
        for _ in 0..16 {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            pairs.push((client, server));
        }
        let before = corering::stats();
        let mut turns: Vec<_> = pairs
            .iter()
            .enumerate()
            .map(|(i, (client, _))| {
                Box::pin(client.write_all_then_read(
                    format!("ask {i:02}").into_bytes(),
                    Vec::with_capacity(16),
                ))
            })
            .collect();
        poll_each_once(&mut turns).await;
        assert_eq!(corering::stats().enters, before.enters);
        let servers = pairs.iter().enumerate().map(|(i, (_, server))| async move {
            let (read, asked) = server.read(Vec::with_capacity(16)).await;
            assert_eq!(read.unwrap(), 6);
            assert_eq!(asked, format!("ask {i:02}").into_bytes());
            server
                .write_all(format!("answer {i:02}").into_bytes())
                .await
                .0
                .unwrap();
        });
        for server in servers {
            server.await;
        }
        for (i, turn) in turns.into_iter().enumerate() {
            let (read, _, answer) = turn.await;
            assert_eq!(read.unwrap(), 9);
            assert_eq!(answer, format!("answer {i:02}").into_bytes());
        }
        let after = corering::stats();
        assert!(after.sq_full > before.sq_full, "32 SQEs overflow 8 entries");
        assert_eq!(after.in_flight, 0);
    });
}

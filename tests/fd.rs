//! Reads and writes through the ring on pipes, eventfds and files.

mod common;

use std::io::ErrorKind;
use std::os::fd::{FromRawFd, OwnedFd};

use common::{open_fds, pipe};
use corering::buf::IoBuf;
use corering::fd::Fd;

fn temp_file(name: &str) -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("corering-fd-{}-{name}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    (path, file)
}

#[test]
fn pipe_round_trip() {
    let _serial = common::serial();
    corering::start(async {
        let (reader, writer) = pipe();
        let (written, buf) = writer.write(b"hello ring".as_slice()).await;
        assert_eq!(written.unwrap(), 10);
        assert_eq!(buf, b"hello ring");
        let (read, buf) = reader.read(Vec::with_capacity(64)).await;
        assert_eq!(read.unwrap(), 10);
        assert_eq!(buf, b"hello ring");
        drop(writer);
        let (read, buf) = reader.read(buf).await;
        assert_eq!(read.unwrap(), 0, "end of file once the writer is closed");
        assert_eq!(buf, b"hello ring");
    });
}

#[test]
fn read_fills_a_slice_inside_the_buffer() {
    let _serial = common::serial();
    corering::start(async {
        let (reader, writer) = pipe();
        writer.write_all(b"abc".as_slice()).await.0.unwrap();
        let mut buf = Vec::with_capacity(8);
        buf.extend_from_slice(b"XY");
        let (read, slice) = reader.read(buf.slice(2..8)).await;
        assert_eq!(read.unwrap(), 3);
        assert_eq!(slice.into_inner(), b"XYabc");
    });
}

#[test]
fn write_all_moves_a_megabyte_through_a_pipe() {
    let _serial = common::serial();
    corering::start(async {
        let (reader, writer) = pipe();
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer_task = corering::spawn(async move {
            let (result, data) = writer.write_all(data).await;
            result.unwrap();
            data.len()
        });
        let mut received = Vec::new();
        let mut buf = Vec::with_capacity(4096);
        loop {
            let (read, returned) = reader.read(buf).await;
            let read = read.unwrap();
            if read == 0 {
                break;
            }
            received.extend_from_slice(&returned[..read]);
            buf = returned;
            buf.clear();
        }
        assert_eq!(writer_task.await.unwrap(), 1 << 20);
        assert_eq!(received, expected);
    });
}

#[test]
fn eventfd_read_and_write() {
    let _serial = common::serial();
    corering::start(async {
        // SAFETY: eventfd takes no pointers.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let event = Fd::from(unsafe { OwnedFd::from_raw_fd(raw) });
        let (written, _) = event.write(7u64.to_ne_bytes().to_vec()).await;
        assert_eq!(written.unwrap(), 8);
        let (written, _) = event.write(5u64.to_ne_bytes().to_vec()).await;
        assert_eq!(written.unwrap(), 8);
        let (read, buf) = event.read(Vec::with_capacity(8)).await;
        assert_eq!(read.unwrap(), 8);
        assert_eq!(u64::from_ne_bytes(buf.try_into().unwrap()), 12);
    });
}

#[test]
fn file_positional_and_vectored_io() {
    let _serial = common::serial();
    let (path, file) = temp_file("vectored");
    corering::start(async move {
        let file = Fd::from(OwnedFd::from(file));
        let (written, _) = file.write_all_at(b"0123456789".as_slice(), 0).await;
        written.unwrap();
        let (written, _) = file
            .writev_at(vec![b"ab".as_slice(), b"cd".as_slice(), b"".as_slice()], 3)
            .await;
        assert_eq!(written.unwrap(), 4);
        let (read, buf) = file.read_at(Vec::with_capacity(4), 2).await;
        assert_eq!(read.unwrap(), 4);
        assert_eq!(buf, b"2abc");
        let bufs = vec![
            Vec::with_capacity(3),
            Vec::with_capacity(2),
            Vec::with_capacity(100),
        ];
        let (read, bufs) = file.readv_at(bufs, 0).await;
        assert_eq!(read.unwrap(), 10);
        assert_eq!(
            bufs,
            vec![b"012".to_vec(), b"ab".to_vec(), b"cd789".to_vec()]
        );
        let (read, buf) = file.read_at(Vec::with_capacity(4), 10).await;
        assert_eq!((read.unwrap(), buf.len()), (0, 0));
        file.close().await.unwrap();
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"012abcd789");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn errors_come_back_with_the_buffer() {
    let _serial = common::serial();
    corering::start(async {
        let (reader, _writer) = pipe();
        // Writing to a read end fails with EBADF; nothing panics, the buffer returns.
        let (result, buf) = reader.write(b"nope".as_slice()).await;
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(buf, b"nope");
        let (reader2, writer2) = pipe();
        reader2.close().await.unwrap();
        let (result, _) = writer2.write(b"x".as_slice()).await;
        assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn close_waits_for_operations_and_releases_the_descriptor() {
    let _serial = common::serial();
    let fds_before = open_fds();
    corering::start(async move {
        let inside = open_fds();
        let (reader, writer) = pipe();
        assert_eq!(open_fds(), inside + 2);
        reader.close().await.unwrap();
        writer.close().await.unwrap();
        assert_eq!(open_fds(), inside, "closed by the time close() returns");
    });
    assert_eq!(open_fds(), fds_before);
}

/// A `close` that waits for a free slot and is dropped meanwhile still
/// closes its descriptor (the close owns it from the moment it takes it).
/// On io_uring in both runs: the ring's slot table.
#[test]
fn close_dropped_while_waiting_for_a_slot_still_closes() {
    let _serial = common::serial();
    let runtime = common::ring_builder().slots_max(1).build().unwrap();
    runtime.block_on(async {
        let fds_before = open_fds();
        let (busy_reader, mut busy_writer) = std::io::pipe().unwrap();
        let busy_reader = Fd::from(OwnedFd::from(busy_reader));
        let (reader, writer) = pipe();
        // The only slot is taken by a read that waits for data.
        let mut read = Box::pin(busy_reader.read(Vec::with_capacity(8)));
        assert!(common::poll_once(&mut read).await.is_pending());
        let mut closing = Box::pin(reader.close());
        assert!(common::poll_once(&mut closing).await.is_pending());
        assert_eq!(corering::stats().slots_in_use, 1);
        drop(closing);
        // Written past the ring, whose one slot is taken.
        std::io::Write::write_all(&mut busy_writer, b"go").unwrap();
        let (read, _) = read.await;
        assert_eq!(read.unwrap(), 2);
        drop((busy_reader, busy_writer, writer));
        common::settle(|| open_fds() == fds_before, 1000).await;
        assert_eq!(open_fds(), fds_before);
    });
}

#[test]
fn positioned_calls_refuse_offsets_past_the_largest_and_sequential_ones_keep_the_position() {
    let _serial = common::serial();
    let (path, mut std_file) = temp_file("offset-max");
    std::io::Write::write_all(&mut std_file, b"0123456789").unwrap();
    std::io::Seek::rewind(&mut std_file).unwrap();
    corering::start(async move {
        let file = Fd::from(OwnedFd::from(std_file));
        let submitted = corering::stats().submitted;
        for pos in [u64::MAX, 1 << 63] {
            let (written, buf) = file.write_at(b"XY".as_slice(), pos).await;
            assert_eq!(written.unwrap_err().kind(), ErrorKind::InvalidInput);
            let (written, buf) = file.write_all_at(buf, pos).await;
            assert_eq!(written.unwrap_err().kind(), ErrorKind::InvalidInput);
            let (written, _) = file.writev_at(vec![buf], pos).await;
            assert_eq!(written.unwrap_err().kind(), ErrorKind::InvalidInput);
            let (read, buf) = file.read_at(Vec::with_capacity(4), pos).await;
            let error = read.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
            assert!(error.to_string().starts_with("read_at: offset"), "{error}");
            let (read, bufs) = file.readv_at(vec![buf], pos).await;
            assert_eq!(read.unwrap_err().kind(), ErrorKind::InvalidInput);
            assert_eq!((bufs[0].len(), bufs[0].capacity()), (0, 4));
        }
        assert_eq!(corering::stats().submitted, submitted, "nothing submitted");
        // The sequential calls still use the descriptor's position.
        let (written, _) = file.write(b"AB".as_slice()).await;
        assert_eq!(written.unwrap(), 2);
        let (read, buf) = file.read(Vec::with_capacity(3)).await;
        assert_eq!((read.unwrap(), &buf[..]), (3, &b"234"[..]));
        file.write_all(b"CD".as_slice()).await.0.unwrap();
        file.close().await.unwrap();
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"AB234CD789");
    std::fs::remove_file(path).unwrap();
}

/// More buffers than one call takes (`IOV_MAX`, 1,024): `InvalidInput`
/// before anything is submitted, every buffer handed back in order as it
/// was; at 1,024 the call goes through.
#[test]
fn vectored_calls_past_iov_max_hand_every_buffer_back_untouched() {
    let _serial = common::serial();
    corering::start(async {
        let (reader, writer) = pipe();
        let submitted = corering::stats().submitted;
        let out: Vec<Vec<u8>> = (0..1025u32)
            .map(|i| vec![(i % 251) as u8; 1 + i as usize % 4])
            .collect();
        let expected_out = out.clone();
        let (written, out) = writer.writev(out).await;
        let error = written.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(
            error.to_string().starts_with("writev: 1025 buffers"),
            "{error}"
        );
        assert_eq!(out, expected_out);
        let (written, out) = writer.writev_at(out, 0).await;
        assert_eq!(written.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(out, expected_out);

        let into: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| {
                let mut buf = Vec::with_capacity(4);
                buf.extend_from_slice(&i.to_le_bytes()[..2]);
                buf
            })
            .collect();
        let expected_into = into.clone();
        let (read, into) = reader.readv(into).await;
        let error = read.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(
            error.to_string().starts_with("readv: 2000 buffers"),
            "{error}"
        );
        assert_eq!(into, expected_into);
        assert!(into.iter().all(|buf| buf.capacity() == 4));
        let (read, into) = reader.readv_at(into, 0).await;
        assert_eq!(read.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(into, expected_into);
        assert_eq!(corering::stats().submitted, submitted, "nothing submitted");

        let (written, _) = writer.writev(vec![b"ab".as_slice(); 1024]).await;
        assert_eq!(written.unwrap(), 2048);
        let (read, bufs) = reader
            .readv((0..1024).map(|_| Vec::with_capacity(2)).collect())
            .await;
        assert_eq!(read.unwrap(), 2048);
        assert!(bufs.iter().all(|buf| buf == b"ab"));
    });
}

/// `Fd` lends the descriptor it was made from (`AsFd`, `AsRawFd`), for as
/// long as it lives.
#[test]
fn fd_lends_its_descriptor() {
    use std::os::fd::{AsFd, AsRawFd};

    let _serial = common::serial();
    corering::start(async {
        let (reader, writer) = std::io::pipe().unwrap();
        let raw = writer.as_raw_fd();
        let writer = Fd::from(OwnedFd::from(writer));
        assert_eq!(writer.as_fd().as_raw_fd(), raw);
        assert_eq!(writer.as_raw_fd(), raw);
        assert_eq!(format!("{writer:?}"), format!("Fd({raw})"));
        // A system call outside the ring through the borrowed descriptor.
        let mut std_writer = std::fs::File::from(writer.as_fd().try_clone_to_owned().unwrap());
        std::io::Write::write_all(&mut std_writer, b"lent").unwrap();
        drop(std_writer);
        drop(writer);
        let reader = Fd::from(OwnedFd::from(reader));
        let (read, buf) = reader.read(Vec::with_capacity(8)).await;
        assert_eq!((read.unwrap(), &buf[..]), (4, &b"lent"[..]));
    });
}

//! Files through the ring: 64 MiB written and read back at random offsets,
//! metadata against std's, path operations against std's, and opens,
//! reads and writes dropped in flight. Every test takes the
//! descriptor-counting lock, since they all open files.

mod common;

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use common::{open_fds, poll_once, settle, DropBuf};
use corering::buf::{FixedBufPool, IoBuf};
use corering::fs::{self, File, OpenOptions};

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("corering-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The byte at `offset` of the test file: varies with the position, so a
/// misplaced chunk shows.
fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (offset >> 20) as u8
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const FILE_SIZE: u64 = 64 << 20;

#[test]
fn sixty_four_mebibytes_written_and_read_back_at_random_offsets() {
    let _serial = common::serial();
    let dir = TempDir::new("random");
    let path = dir.join("data");
    corering::start(async move {
        let file = Rc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .await
                .unwrap(),
        );
        // Chunks of 4 KiB to 1 MiB covering the file, written in a shuffled
        // order, 16 at a time.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut chunks = Vec::new();
        let mut offset = 0;
        while offset < FILE_SIZE {
            let len = (4096 + rng.below(1 << 20)).min(FILE_SIZE - offset);
            chunks.push((offset, len));
            offset += len;
        }
        for i in (1..chunks.len()).rev() {
            chunks.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for batch in chunks.chunks(16) {
            let writes: Vec<_> = batch
                .iter()
                .map(|&(offset, len)| {
                    let file = file.clone();
                    corering::spawn(async move {
                        let data: Vec<u8> = (offset..offset + len).map(pattern).collect();
                        let (written, data) = file.write_all_at(data, offset).await;
                        written.unwrap();
                        assert_eq!(data.len() as u64, len);
                    })
                })
                .collect();
            for write in writes {
                write.await.unwrap();
            }
        }
        file.sync_data().await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), FILE_SIZE);

        // 512 reads at random offsets and lengths, 16 in flight, each
        // compared byte for byte; some run past the end of the file.
        for _ in 0..32 {
            let reads: Vec<_> = (0..16)
                .map(|_| {
                    let offset = rng.below(FILE_SIZE);
                    let len = 1 + rng.below(256 << 10);
                    let file = file.clone();
                    corering::spawn(async move {
                        let (read, buf) = file
                            .read_exact_at(Vec::with_capacity(len as usize), offset)
                            .await;
                        let end = (offset + len).min(FILE_SIZE);
                        if offset + len > FILE_SIZE {
                            assert_eq!(read.unwrap_err().kind(), ErrorKind::UnexpectedEof);
                        } else {
                            read.unwrap();
                        }
                        assert_eq!(buf.len() as u64, end - offset);
                        for (i, &byte) in buf.iter().enumerate() {
                            let at = offset + i as u64;
                            assert_eq!(byte, pattern(at), "byte at {at}");
                        }
                    })
                })
                .collect();
            for read in reads {
                read.await.unwrap();
            }
        }
        Rc::try_unwrap(file).unwrap().close().await.unwrap();
        assert_eq!(corering::stats().slots_in_use, 0);
    });
    // And std agrees with every byte.
    let contents = std::fs::read(dir.join("data")).unwrap();
    assert_eq!(contents.len() as u64, FILE_SIZE);
    assert!(contents
        .iter()
        .enumerate()
        .all(|(i, &byte)| byte == pattern(i as u64)));
}

#[test]
fn metadata_matches_std() {
    let _serial = common::serial();
    let dir = TempDir::new("metadata");
    let file_path = dir.join("file");
    std::fs::write(&file_path, vec![7u8; 10_000]).unwrap();
    let link_path = dir.join("link");
    std::os::unix::fs::symlink(&file_path, &link_path).unwrap();
    corering::start(async {
        for (path, follow) in [
            (&file_path, true),
            (&dir.0, true),
            (&link_path, true),
            (&link_path, false),
        ] {
            let (ours, std) = if follow {
                (
                    fs::metadata(path).await.unwrap(),
                    std::fs::metadata(path).unwrap(),
                )
            } else {
                (
                    fs::symlink_metadata(path).await.unwrap(),
                    std::fs::symlink_metadata(path).unwrap(),
                )
            };
            let what = format!("{} (follow: {follow})", path.display());
            assert_eq!(ours.len(), std.len(), "{what}");
            assert_eq!(ours.is_file(), std.is_file(), "{what}");
            assert_eq!(ours.is_dir(), std.is_dir(), "{what}");
            assert_eq!(ours.is_symlink(), std.is_symlink(), "{what}");
            assert_eq!(ours.mode(), std.mode(), "{what}");
            assert_eq!(ours.permissions(), std.permissions(), "{what}");
            assert_eq!(
                (ours.ino(), ours.dev(), ours.nlink()),
                (std.ino(), std.dev(), std.nlink()),
                "{what}"
            );
            assert_eq!((ours.uid(), ours.gid()), (std.uid(), std.gid()), "{what}");
            assert_eq!(
                (ours.blksize(), ours.blocks()),
                (std.blksize(), std.blocks()),
                "{what}"
            );
            assert_eq!(ours.modified().unwrap(), std.modified().unwrap(), "{what}");
            assert_eq!(ours.accessed().unwrap(), std.accessed().unwrap(), "{what}");
            assert_eq!(
                ours.created().ok(),
                std.created().ok(),
                "{what}: birth time where the file system keeps one"
            );
        }
        // The open file's metadata is the path's.
        let file = File::open(&file_path).await.unwrap();
        let ours = file.metadata().await.unwrap();
        assert_eq!(
            (ours.len(), ours.ino()),
            (10_000, std::fs::metadata(&file_path).unwrap().ino())
        );
        file.close().await.unwrap();
        assert_eq!(
            fs::metadata(dir.join("missing")).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
}

/// `ours` and `std` fail alike, or both succeed.
fn same_outcome<T: std::fmt::Debug, U: std::fmt::Debug>(
    what: &str,
    ours: std::io::Result<T>,
    std: std::io::Result<U>,
) {
    assert_eq!(
        ours.as_ref().map_err(|error| error.kind()).is_ok(),
        std.as_ref().map_err(|error| error.kind()).is_ok(),
        "{what}: ours {ours:?}, std {std:?}"
    );
    if let (Err(ours), Err(std)) = (&ours, &std) {
        assert_eq!(ours.kind(), std.kind(), "{what}");
        assert_eq!(ours.raw_os_error(), std.raw_os_error(), "{what}");
    }
}

#[test]
fn path_operations_behave_as_std() {
    let _serial = common::serial();
    let ours_dir = TempDir::new("paths-ours");
    let std_dir = TempDir::new("paths-std");
    corering::start(async {
        // The same steps on both sides, each outcome compared.
        let o = |name: &str| ours_dir.join(name);
        let s = |name: &str| std_dir.join(name);
        same_outcome(
            "create_dir",
            fs::create_dir(o("a")).await,
            std::fs::create_dir(s("a")),
        );
        same_outcome(
            "create_dir again",
            fs::create_dir(o("a")).await,
            std::fs::create_dir(s("a")),
        );
        same_outcome(
            "create_dir without parent",
            fs::create_dir(o("x/y")).await,
            std::fs::create_dir(s("x/y")),
        );
        same_outcome(
            "create_dir_all",
            fs::create_dir_all(o("a/b/c/d")).await,
            std::fs::create_dir_all(s("a/b/c/d")),
        );
        same_outcome(
            "create_dir_all existing",
            fs::create_dir_all(o("a/b")).await,
            std::fs::create_dir_all(s("a/b")),
        );
        fs::write(o("a/file"), b"one".to_vec()).await.unwrap();
        std::fs::write(s("a/file"), b"one").unwrap();
        same_outcome(
            "create_dir_all through a file",
            fs::create_dir_all(o("a/file/z")).await,
            std::fs::create_dir_all(s("a/file/z")),
        );
        same_outcome(
            "remove_dir not empty",
            fs::remove_dir(o("a")).await,
            std::fs::remove_dir(s("a")),
        );
        same_outcome(
            "remove_file on a directory",
            fs::remove_file(o("a/b")).await,
            std::fs::remove_file(s("a/b")),
        );
        same_outcome(
            "remove_file missing",
            fs::remove_file(o("nothing")).await,
            std::fs::remove_file(s("nothing")),
        );
        fs::write(o("a/other"), b"two".to_vec()).await.unwrap();
        std::fs::write(s("a/other"), b"two").unwrap();
        same_outcome(
            "rename over an existing file",
            fs::rename(o("a/other"), o("a/file")).await,
            std::fs::rename(s("a/other"), s("a/file")),
        );
        assert_eq!(fs::read(o("a/file")).await.unwrap(), b"two");
        same_outcome(
            "rename a missing file",
            fs::rename(o("a/other"), o("a/third")).await,
            std::fs::rename(s("a/other"), s("a/third")),
        );
        same_outcome(
            "rename a directory onto a file",
            fs::rename(o("a/b"), o("a/file")).await,
            std::fs::rename(s("a/b"), s("a/file")),
        );
        same_outcome(
            "remove_dir",
            fs::remove_dir(o("a/b/c/d")).await,
            std::fs::remove_dir(s("a/b/c/d")),
        );
        same_outcome(
            "remove_dir missing",
            fs::remove_dir(o("a/b/c/d")).await,
            std::fs::remove_dir(s("a/b/c/d")),
        );

        // Links.
        fs::symlink("file", o("a/soft")).await.unwrap();
        assert_eq!(fs::read(o("a/soft")).await.unwrap(), b"two");
        assert!(fs::symlink_metadata(o("a/soft"))
            .await
            .unwrap()
            .is_symlink());
        assert_eq!(std::fs::read_link(o("a/soft")).unwrap(), Path::new("file"));
        same_outcome(
            "symlink over an existing path",
            fs::symlink("file", o("a/soft")).await,
            std::os::unix::fs::symlink("file", s("a/file")),
        );
        fs::hard_link(o("a/file"), o("a/hard")).await.unwrap();
        assert_eq!(fs::metadata(o("a/file")).await.unwrap().nlink(), 2);
        assert_eq!(
            fs::metadata(o("a/hard")).await.unwrap().ino(),
            fs::metadata(o("a/file")).await.unwrap().ino()
        );

        // A path with a NUL byte never reaches the kernel.
        let nul = std::ffi::OsStr::from_bytes(b"a\0b");
        assert_eq!(
            fs::remove_file(nul).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

#[test]
fn open_options_set_len_allocate_and_short_reads() {
    let _serial = common::serial();
    let dir = TempDir::new("options");
    corering::start(async {
        let path = dir.join("file");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .await
            .unwrap();
        assert_eq!(
            fs::metadata(&path).await.unwrap().mode() & 0o777,
            0o640 & !umask()
        );
        assert_eq!(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::AlreadyExists
        );
        file.write_all_at(b"0123456789".to_vec(), 0)
            .await
            .0
            .unwrap();
        file.set_len(4).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 4);
        file.set_len(8192).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 8192);
        file.allocate(0, 1 << 20).await.unwrap();
        let metadata = file.metadata().await.unwrap();
        assert_eq!(metadata.len(), 1 << 20);
        assert!(metadata.blocks() * 512 >= 1 << 20, "{metadata:?}");
        file.sync_all().await.unwrap();
        file.close().await.unwrap();

        // Append goes to the end whatever the offset.
        let appender = OpenOptions::new().append(true).open(&path).await.unwrap();
        appender.write_all_at(b"tail".to_vec(), 0).await.0.unwrap();
        appender.close().await.unwrap();
        let contents = fs::read(&path).await.unwrap();
        assert_eq!(contents.len(), (1 << 20) + 4);
        assert_eq!(&contents[..4], b"0123");
        assert_eq!(&contents[(1 << 20)..], b"tail");

        // A read past the end: what is there, then UnexpectedEof.
        let reader = File::open(&path).await.unwrap();
        let (read, buf) = reader
            .read_exact_at(Vec::with_capacity(10), (1 << 20) - 2)
            .await;
        assert_eq!(read.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(buf, [0, 0, b't', b'a', b'i', b'l']);
        let (read, buf) = reader.read_at(Vec::with_capacity(10), 1 << 30).await;
        assert_eq!((read.unwrap(), buf.len()), (0, 0));
        // Vectored: two buffers filled in order.
        let (read, bufs) = reader
            .readv_at(vec![Vec::with_capacity(2), Vec::with_capacity(3)], 0)
            .await;
        assert_eq!(read.unwrap(), 5);
        assert_eq!(bufs, [b"01".to_vec(), b"23\0".to_vec()]);
        reader.close().await.unwrap();

        // fs::write replaces the contents.
        fs::write(&path, b"short".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        assert_eq!(
            File::open(dir.join("missing")).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            OpenOptions::new().open(&path).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    });
}

fn umask() -> u32 {
    // SAFETY: umask only swaps the process's mask; it is put back at once.
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask
    }
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

/// On io_uring in both runs: the ring's slots (tests/epoll.rs has the pool's).
#[test]
fn dropped_open_read_and_write_leak_no_descriptor_and_free_buffers_after_their_completion() {
    let _serial = common::serial();
    let dir = TempDir::new("dropped");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    common::ring_start(async {
        let fds_before = open_fds();
        // Opens dropped once submitted: the kernel finishes them anyway (an
        // open is not interrupted; even a FIFO's does not wait for io_uring)
        // and the descriptors they made are closed.
        let cancelled = corering::stats().cancelled;
        for _ in 0..8 {
            let mut open = Box::pin(File::open(&fifo));
            assert!(poll_once(&mut open).await.is_pending());
            drop(open);
        }
        settle(|| corering::stats().slots_in_use == 0, 1000).await;
        assert_eq!(corering::stats().cancelled, cancelled + 8);
        assert_eq!(corering::stats().slots_in_use, 0);
        settle(|| open_fds() == fds_before, 1000).await;
        assert_eq!(open_fds(), fds_before);

        // Read and write ends at once (O_RDWR does not wait on a FIFO).
        let fifo_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .await
            .unwrap();
        // A read of an empty FIFO waits; dropped, its buffer lives until
        // the cancellation's completion.
        let (buf, drops, stats_at_drop) = DropBuf::new(64);
        let mut read = Box::pin(fifo_file.read_at(buf, 0));
        assert!(poll_once(&mut read).await.is_pending());
        drop(read);
        assert_eq!(drops.get(), 0, "the kernel may still write into it");
        settle(|| drops.get() > 0, 1000).await;
        assert_eq!(drops.get(), 1);
        assert_eq!(
            stats_at_drop.get().unwrap().slots_in_use,
            0,
            "freed after its CQE"
        );

        // Fill the FIFO, then a write waits for room; dropped, likewise.
        // SAFETY: F_GETPIPE_SZ only reads the pipe's capacity.
        let capacity = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&fifo_file),
                libc::F_GETPIPE_SZ,
            )
        };
        assert!(capacity > 0);
        fifo_file
            .write_all_at(vec![1u8; capacity as usize], 0)
            .await
            .0
            .unwrap();
        let (mut buf, drops, stats_at_drop) = DropBuf::new(4096);
        // SAFETY: DropBuf's memory is a Vec's; 4096 bytes are reserved and
        // are written before being marked initialized.
        unsafe {
            std::ptr::write_bytes(corering::buf::IoBufMut::stable_mut_ptr(&mut buf), 2, 4096);
            corering::buf::IoBufMut::set_init(&mut buf, 4096);
        }
        let mut write = Box::pin(fifo_file.write_at(buf, 0));
        assert!(poll_once(&mut write).await.is_pending());
        drop(write);
        assert_eq!(drops.get(), 0, "the kernel may still read from it");
        settle(|| drops.get() > 0, 1000).await;
        assert_eq!(drops.get(), 1);
        assert_eq!(
            stats_at_drop.get().unwrap().slots_in_use,
            0,
            "freed after its CQE"
        );

        fifo_file.close().await.unwrap();
        assert_eq!(open_fds(), fds_before);
        assert_eq!(corering::stats().in_flight, 0);
    });
}

#[test]
fn direct_io_with_aligned_buffers_and_a_clear_error_when_misaligned() {
    let _serial = common::serial();
    let dir = TempDir::new("direct");
    let path = dir.join("direct");
    let written_data = corering::start(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .await
            .unwrap();
        let (memory, offset) = file.direct_io_alignment().expect("opened with O_DIRECT");
        assert!(memory.is_power_of_two() && offset.is_power_of_two());
        let block = offset as u64;

        // Aligned: 16 KiB written at block 4, read back exactly.
        let mut buf = file.aligned_buf(16 << 10);
        let len = buf.capacity();
        assert_eq!(buf.stable_ptr() as usize % memory as usize, 0);
        let data: Vec<u8> = (0..len as u64).map(pattern).collect();
        buf.extend_from_slice(&data);
        file.write_all_at(buf, 4 * block).await.0.unwrap();
        let (read, back) = file.read_exact_at(file.aligned_buf(len), 4 * block).await;
        read.unwrap();
        assert_eq!(&back[..], &data[..]);
        // A read running past the end stops there.
        let (read, tail) = file
            .read_exact_at(file.aligned_buf(len + block as usize), 4 * block)
            .await;
        assert_eq!(read.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(tail.len(), len);

        // Misaligned offset, length or address: refused before submission.
        let submitted = corering::stats().submitted;
        let misaligned = |error: std::io::Error| {
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
            assert!(error.to_string().contains("O_DIRECT"), "{error}");
        };
        let (read, _) = file.read_at(file.aligned_buf(block as usize), 1).await;
        misaligned(read.unwrap_err());
        let mut short = file.aligned_buf(block as usize);
        short.set_len(block as usize - 1);
        let (written, short) = file.write_at(short, 0).await;
        misaligned(written.unwrap_err());
        assert_eq!(short.len(), block as usize - 1, "the buffer comes back");
        let (written, _) = file.write_all_at(vec![0u8; 3], 0).await;
        misaligned(written.unwrap_err());
        if memory > 1 {
            let shifted = file
                .aligned_buf(2 * block as usize)
                .slice(1..=block as usize);
            let (read, _) = file.read_at(shifted, 0).await;
            misaligned(read.unwrap_err());
        }
        assert_eq!(
            corering::stats().submitted,
            submitted,
            "nothing reached the kernel"
        );
        file.close().await.unwrap();
        (4 * block, data)
    });
    let (at, data) = written_data;
    let contents = std::fs::read(&path).unwrap();
    assert_eq!(&contents[at as usize..], &data[..]);
    assert!(contents[..at as usize].iter().all(|&byte| byte == 0));
}

/// On io_uring in both runs: the ring's table of registered buffers.
#[test]
fn fixed_buffers_read_write_wait_for_a_free_one_and_share_the_ring_table() {
    let _serial = common::serial();
    let dir = TempDir::new("fixed");
    let path = dir.join("file");
    common::ring_start(async {
        let pool = FixedBufPool::new(2, 8000).unwrap();
        assert_eq!(
            (pool.count(), pool.buf_len(), pool.available()),
            (2, 8192, 2)
        );
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .unwrap();
        let data: Vec<u8> = (0..8192).map(pattern).collect();
        let mut buf = pool.get().await;
        buf.extend_from_slice(&data);
        let (written, buf) = file.write_fixed_at(buf, 4096).await;
        assert_eq!(written.unwrap(), 8192);
        drop(buf);
        let (read, back) = file.read_fixed_at(pool.get().await, 4096).await;
        assert_eq!(read.unwrap(), 8192);
        assert_eq!(&back[..], &data[..]);

        // Both out: a third `get` waits until one comes back.
        let other = pool.try_get().expect("one left");
        assert_eq!(pool.available(), 0);
        let waiter = corering::spawn({
            let pool = pool.clone();
            async move { pool.get().await.len() }
        });
        corering::yield_now().await;
        assert_eq!(pool.waited(), 1);
        drop(back);
        assert_eq!(waiter.await.unwrap(), 0, "checked out empty");
        drop(other);
        assert_eq!(pool.available(), 2);

        // The buffers are page-aligned: they serve O_DIRECT too.
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .await
            .unwrap();
        let (read, back) = direct.read_fixed_at(pool.get().await, 4096).await;
        assert_eq!(read.unwrap(), 8192);
        assert_eq!(&back[..], &data[..]);
        drop(back);
        direct.close().await.unwrap();
        file.close().await.unwrap();

        // Pools share the ring's table of 1,024 entries; a dropped pool's
        // entries are free again.
        let big = FixedBufPool::new(1000, 4096).unwrap();
        let error = FixedBufPool::new(100, 4096).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::OutOfMemory);
        drop(big);
        let again = FixedBufPool::new(100, 4096).unwrap();
        assert_eq!(again.available(), 100);
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

#[test]
fn splice_sends_a_file_on_a_socket_and_copy_copies_it() {
    let _serial = common::serial();
    let dir = TempDir::new("splice");
    let source = dir.join("source");
    // More than a pipe holds, and not a whole number of pages.
    let len: u64 = (3 << 20) + 17;
    std::fs::write(&source, (0..len).map(pattern).collect::<Vec<u8>>()).unwrap();
    let copy_path = dir.join("copy");
    corering::start(async {
        assert_eq!(fs::copy(&source, &copy_path).await.unwrap(), len);

        let listener = corering::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = corering::spawn(async move {
            let stream = corering::net::TcpStream::connect(addr).await.unwrap();
            let mut received = Vec::new();
            loop {
                let (read, buf) = stream.read(Vec::with_capacity(64 << 10)).await;
                if read.unwrap() == 0 {
                    return received;
                }
                received.extend_from_slice(&buf);
            }
        });
        let (stream, _) = listener.accept().await.unwrap();
        let file = File::open(&source).await.unwrap();
        // From an offset, asking for more than is left: what is left.
        let offset = 1000;
        let sent = file.splice_to(&stream, offset, len).await.unwrap();
        assert_eq!(sent, len - offset);
        stream.close().await.unwrap();
        let received = reader.await.unwrap();
        assert_eq!(received.len() as u64, len - offset);
        assert!(received
            .iter()
            .enumerate()
            .all(|(i, &byte)| byte == pattern(offset + i as u64)));
        file.close().await.unwrap();
        assert_eq!(corering::stats().slots_in_use, 0);
    });
    assert_eq!(
        std::fs::read(&copy_path).unwrap(),
        std::fs::read(&source).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&copy_path).unwrap().mode(),
        std::fs::metadata(&source).unwrap().mode()
    );
}

/// `splice_to` takes any stream socket: a Unix stream, and a TCP
/// connection in the ring's table of direct descriptors (spliced to by
/// its table entry).
/// On io_uring in both runs: direct descriptors are the ring's table.
#[test]
fn splice_sends_a_file_on_a_unix_stream_and_on_a_direct_connection() {
    let _serial = common::serial();
    let dir = TempDir::new("splice-any");
    let source = dir.join("source");
    let len: u64 = (1 << 20) + 5;
    std::fs::write(&source, (0..len).map(pattern).collect::<Vec<u8>>()).unwrap();
    let runtime = common::ring_builder().direct_fds(1).build().unwrap();
    runtime.block_on(async {
        let file = File::open(&source).await.unwrap();
        let (unix_out, unix_in) = corering::net::UnixStream::pair().unwrap();
        let listener = corering::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_in = corering::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp_out, _) = listener.accept_direct().await.unwrap();
        assert!(tcp_out.as_fd().is_none(), "a direct connection");
        let unix_reader = corering::spawn(async move {
            let mut received = Vec::new();
            loop {
                let (read, buf) = unix_in.read(Vec::with_capacity(64 << 10)).await;
                if read.unwrap() == 0 {
                    return received;
                }
                received.extend_from_slice(&buf);
            }
        });
        let tcp_reader = corering::spawn(async move {
            let mut received = Vec::new();
            loop {
                let (read, buf) = tcp_in.read(Vec::with_capacity(64 << 10)).await;
                if read.unwrap() == 0 {
                    return received;
                }
                received.extend_from_slice(&buf);
            }
        });
        assert_eq!(file.splice_to(&unix_out, 0, len).await.unwrap(), len);
        assert_eq!(file.splice_to(&tcp_out, 7, len).await.unwrap(), len - 7);
        unix_out.close().await.unwrap();
        tcp_out.close().await.unwrap();
        let expected: Vec<u8> = (0..len).map(pattern).collect();
        assert!(
            unix_reader.await.unwrap() == expected,
            "the Unix stream got the file"
        );
        assert!(
            tcp_reader.await.unwrap() == expected[7..],
            "the direct connection got the file from 7"
        );
        file.close().await.unwrap();
        assert_eq!(corering::stats().slots_in_use, 0);
    });
}

#[test]
fn open_beneath_keeps_paths_inside_the_directory() {
    let _serial = common::serial();
    let dir = TempDir::new("beneath");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/inside.txt"), b"in").unwrap();
    std::fs::write(dir.join("outside.txt"), b"out").unwrap();
    std::os::unix::fs::symlink("../outside.txt", root.join("escape")).unwrap();
    std::os::unix::fs::symlink("sub/inside.txt", root.join("fine")).unwrap();
    corering::start(async {
        let root_dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&root)
            .await
            .unwrap();
        let mut read = OpenOptions::new();
        read.read(true);
        for inside in ["sub/inside.txt", "fine", "sub/../sub/inside.txt"] {
            let file = read.open_beneath(&root_dir, inside).await.unwrap();
            let (got, buf) = file.read_at(Vec::with_capacity(8), 0).await;
            assert_eq!((got.unwrap(), &buf[..]), (2, &b"in"[..]), "{inside}");
        }
        for outside in [
            "../outside.txt",
            "escape",
            "sub/../../outside.txt",
            "/etc/passwd",
        ] {
            let error = read.open_beneath(&root_dir, outside).await.unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EXDEV), "{outside}");
        }
        assert_eq!(
            read.open_beneath(&root_dir, "missing")
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    });
}

#[test]
fn copy_of_a_file_that_reports_size_zero_copies_until_its_end() {
    let _serial = common::serial();
    let dir = TempDir::new("copy-proc");
    // Each reports a size of 0 and holds bytes that do not change while
    // this process runs; the last cannot splice, so it takes the copy
    // through a buffer.
    for source in [
        "/proc/version",
        "/proc/sys/kernel/ostype",
        "/proc/self/cmdline",
    ] {
        assert_eq!(std::fs::metadata(source).unwrap().len(), 0);
        let expected = std::fs::read(source).unwrap();
        assert!(!expected.is_empty());
        let target = dir.join("copy");
        let copied = corering::start(fs::copy(source, &target)).unwrap();
        assert_eq!(copied, expected.len() as u64, "{source}");
        assert_eq!(std::fs::read(&target).unwrap(), expected, "{source}");
    }
}

#[test]
fn read_of_a_file_too_large_for_memory_is_out_of_memory_not_an_abort() {
    let _serial = common::serial();
    let dir = TempDir::new("read-huge");
    let path = dir.join("sparse");
    // 1 TiB of holes: no disk used, and more than any memory here.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let fds_before = open_fds();
    let error = corering::start(fs::read(&path)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{error}");
    // Steady: on epoll the pool thread that ran the open drops its waker
    // (the core's eventfd, shared) a moment after waking the core.
    assert_eq!(
        common::steady_fds_for(std::time::Duration::from_millis(50)),
        fds_before,
        "the file is closed"
    );

    // A file of the size it reports gets a buffer of that size, no more;
    // one that reports 0 is read to its end.
    let exact = dir.join("exact");
    let data: Vec<u8> = (0..10_000).map(pattern).collect();
    std::fs::write(&exact, &data).unwrap();
    let read = corering::start(fs::read(&exact)).unwrap();
    assert_eq!((read.len(), read.capacity()), (data.len(), data.len()));
    assert_eq!(read, data);
    let cmdline = corering::start(fs::read("/proc/self/cmdline")).unwrap();
    assert_eq!(cmdline, std::fs::read("/proc/self/cmdline").unwrap());
}

/// Asserts `result` is `InvalidInput` (from a past-the-largest offset).
fn assert_invalid_offset<T: std::fmt::Debug>(result: std::io::Result<T>, call: &str) {
    let error = result.expect_err(call);
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{call}: {error}");
}

#[test]
fn offsets_past_the_largest_are_invalid_and_submit_nothing() {
    let _serial = common::serial();
    let dir = TempDir::new("offset-max");
    let path = dir.join("file");
    std::fs::write(&path, b"0123456789").unwrap();
    corering::start(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        let pool = FixedBufPool::new(1, 4096).unwrap();
        let submitted = corering::stats().submitted;
        // u64::MAX was taken as "the current position", 0 here.
        for pos in [u64::MAX, u64::MAX - 1, 1 << 63] {
            let (written, buf) = file.write_at(b"XY".to_vec(), pos).await;
            assert_invalid_offset(written, "write_at");
            assert_eq!(buf, b"XY");
            let (written, buf) = file.write_all_at(buf, pos).await;
            assert_invalid_offset(written, "write_all_at");
            assert_eq!(buf, b"XY");
            let (written, bufs) = file.writev_at(vec![buf], pos).await;
            assert_invalid_offset(written, "writev_at");
            assert_eq!(bufs, [b"XY"]);
            let (read, buf) = file.read_at(Vec::with_capacity(4), pos).await;
            assert_invalid_offset(read, "read_at");
            assert_eq!((buf.len(), buf.capacity()), (0, 4));
            let (read, buf) = file.read_exact_at(buf, pos).await;
            assert_invalid_offset(read, "read_exact_at");
            assert!(buf.is_empty());
            let (read, bufs) = file.readv_at(vec![buf], pos).await;
            assert_invalid_offset(read, "readv_at");
            assert!(bufs[0].is_empty());
            let mut fixed = pool.get().await;
            fixed.extend_from_slice(b"XY");
            let (written, fixed) = file.write_fixed_at(fixed, pos).await;
            assert_invalid_offset(written, "write_fixed_at");
            assert_eq!(&fixed[..], b"XY");
            let (read, fixed) = file.read_fixed_at(fixed, pos).await;
            assert_invalid_offset(read, "read_fixed_at");
            assert_eq!(&fixed[..], b"XY");
        }
        assert_eq!(corering::stats().submitted, submitted, "nothing submitted");
        // Offsets up to the largest are the kernel's to judge: it takes a
        // transfer that ends by `i64::MAX` (nothing there to read).
        let (read, _) = file
            .read_at(Vec::with_capacity(4), i64::MAX as u64 - 4)
            .await;
        assert_eq!(read.unwrap(), 0);
        file.close().await.unwrap();
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
}

#[test]
fn vectored_calls_with_more_buffers_than_one_call_takes_are_invalid() {
    let _serial = common::serial();
    let dir = TempDir::new("iov-max");
    let path = dir.join("file");
    corering::start(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .unwrap();
        let submitted = corering::stats().submitted;
        let (written, bufs) = file.writev_at(vec![b"x".as_slice(); 1025], 0).await;
        assert_eq!(written.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(bufs.len(), 1025, "every buffer handed back");
        let empty: Vec<Vec<u8>> = (0..1025).map(|_| Vec::with_capacity(1)).collect();
        let (read, bufs) = file.readv_at(empty, 0).await;
        let error = read.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(error.to_string().contains("1025 buffers"), "{error}");
        assert_eq!(bufs.len(), 1025);
        assert_eq!(corering::stats().submitted, submitted, "nothing submitted");

        // 1,024 is one call's worth.
        let (written, _) = file.writev_at(vec![b"x".as_slice(); 1024], 0).await;
        assert_eq!(written.unwrap(), 1024);
        let mut bufs = bufs;
        bufs.pop();
        let (read, bufs) = file.readv_at(bufs, 0).await;
        assert_eq!(read.unwrap(), 1024);
        assert!(bufs.iter().all(|buf| buf == b"x"));
        file.close().await.unwrap();
    });
}

//! File benchmarks on one 1 GiB file:
//!
//! - 4 KiB random reads, `O_DIRECT`, 32 in flight: corering (registered
//!   buffers, one core) against `fio --ioengine=io_uring` with the same
//!   parameters, and against tokio (the way `tokio::fs` works: each read a
//!   `pread` on its blocking pool, 32 at a time). Reported in IOPS.
//! - Buffered sequential read, 128 KiB blocks: corering (4 in flight)
//!   against fio (io_uring, depth 4) and `std::fs` (one `read` after
//!   another), both into page-aligned buffers: on this machine a
//!   destination 16 bytes past a page boundary (what malloc returns for
//!   128 KiB) made the kernel's copy of cached pages up to 6x slower.
//!   Reported in MiB/s. The file is read through once first and
//!   fio told not to drop it (`--invalidate=0`), so every reader finds it
//!   in the page cache: this measures the cost of moving cached pages.
//!
//! Method: each round runs every contender back to back, in an order that
//! rotates from round to round; IOPS and MiB/s are medians over the
//! rounds, the ratios medians of the per-round ratios. Random offsets are
//! fresh every round for every contender.
//! The file lives in `target/bench/` (fio and O_DIRECT need a real file
//! system, not tmpfs). Writes `target/bench/files.md` and prints
//! `files-randread ...` and `files-seqread ...` lines.
//!
//! Usage: `files [--quick]` (quick: 5 rounds of 1 s; full: 11 rounds of
//! 3 s), run from the repository root.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corering::buf::{AlignedBuf, FixedBufPool};
use corering::fs::OpenOptions;

const FILE_SIZE: u64 = 1 << 30;
const BLOCK: usize = 4096;
const DEPTH: usize = 32;
const SEQ_BLOCK: usize = 128 << 10;
const SEQ_DEPTH: usize = 4;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, seconds) = if quick { (5, 1) } else { (11, 3) };
    let path = PathBuf::from("target/bench/files-1g.dat");
    prepare(&path);
    println!(
        "files: {} MiB file, {rounds} rounds of {seconds} s, contenders in rotating order",
        FILE_SIZE >> 20
    );
    let runtime = Duration::from_secs(seconds);

    // The device's speed drifts by more than the gaps measured, so each
    // round runs every contender back to back, in an order that rotates
    // from round to round, and the ratios are medians of the per-round
    // ratios. Offsets are fresh every round (fio: --randrepeat=0), so no
    // contender rereads blocks the host may still cache from its last run.
    let mut random = [Vec::new(), Vec::new(), Vec::new()];
    let mut sequential = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        let mut results = [0.0; 3];
        for contender in (0..3).map(|i| (i + round) % 3) {
            results[contender] = match contender {
                0 => corering_random(&path, runtime, round as u64),
                1 => fio(&path, "randread", BLOCK, DEPTH, true, runtime),
                _ => tokio_random(&path, runtime, round as u64),
            };
        }
        for (all, result) in random.iter_mut().zip(results) {
            all.push(result);
        }
        for contender in (0..3).map(|i| (i + round) % 3) {
            results[contender] = match contender {
                0 => corering_sequential(&path, runtime),
                1 => {
                    fio(&path, "read", SEQ_BLOCK, SEQ_DEPTH, false, runtime) * SEQ_BLOCK as f64
                        / (1 << 20) as f64
                }
                _ => std_sequential(&path, runtime),
            };
        }
        for (all, result) in sequential.iter_mut().zip(results) {
            all.push(result);
        }
    }
    // corering over each peer: the median of the per-round ratios.
    let ratio = |rounds: &[Vec<f64>; 3], peer: usize| {
        let mut ratios: Vec<f64> = rounds[0]
            .iter()
            .zip(&rounds[peer])
            .map(|(ours, theirs)| ours / theirs)
            .collect();
        median(&mut ratios)
    };
    let random_ratios = [ratio(&random, 1), ratio(&random, 2)];
    let sequential_ratios = [ratio(&sequential, 1), ratio(&sequential, 2)];
    let random = random.map(|mut rounds| median(&mut rounds));
    let sequential = sequential.map(|mut rounds| median(&mut rounds));
    println!("4 KiB random reads, O_DIRECT, {DEPTH} in flight (IOPS, medians):");
    for (name, iops) in ["corering", "fio io_uring", "tokio (blocking pool)"]
        .iter()
        .zip(random)
    {
        println!("  {name:<24} {iops:>12.0}");
    }
    println!("buffered sequential read, 128 KiB blocks (MiB/s, medians):");
    for (name, rate) in ["corering", "fio io_uring", "std::fs"]
        .iter()
        .zip(sequential)
    {
        println!("  {name:<24} {rate:>12.0}");
    }
    println!(
        "files-randread corering-iops {:.0} fio-iops {:.0} tokio-iops {:.0} fio-ratio {:.3} tokio-ratio {:.3}",
        random[0], random[1], random[2], random_ratios[0], random_ratios[1]
    );
    println!(
        "files-seqread corering-mibs {:.0} fio-mibs {:.0} std-mibs {:.0} fio-ratio {:.3} std-ratio {:.3}",
        sequential[0], sequential[1], sequential[2], sequential_ratios[0], sequential_ratios[1]
    );
    let md = format!(
        "## Files (1 GiB file; {rounds} rounds of {seconds} s, contenders in rotating order)\n\n\
         IOPS and MiB/s are medians over the rounds; the ratios are medians of the per-round ratios.\n\n\
         | 4 KiB random reads, O_DIRECT, depth {DEPTH} | IOPS | corering / this |\n| --- | ---: | ---: |\n\
         | corering (registered buffers) | {:.0} | |\n| fio --ioengine=io_uring | {:.0} | {:.2} |\n| tokio (pread on its blocking pool) | {:.0} | {:.2} |\n\n\
         | buffered sequential read, 128 KiB | MiB/s | corering / this |\n| --- | ---: | ---: |\n\
         | corering (depth {SEQ_DEPTH}) | {:.0} | |\n| fio --ioengine=io_uring (depth {SEQ_DEPTH}) | {:.0} | {:.2} |\n| std::fs (read after read) | {:.0} | {:.2} |\n",
        random[0],
        random[1],
        random_ratios[0],
        random[2],
        random_ratios[1],
        sequential[0],
        sequential[1],
        sequential_ratios[0],
        sequential[2],
        sequential_ratios[1],
    );
    std::fs::write("target/bench/files.md", md).expect("write target/bench/files.md");
    println!("report: target/bench/files.md");
}

/// Writes the 1 GiB file once (kept between runs), and reads it through
/// once so the buffered readers all find it in the page cache.
fn prepare(path: &Path) {
    if !std::fs::metadata(path).is_ok_and(|metadata| metadata.len() == FILE_SIZE) {
        write_file(path);
    }
    let mut file = std::fs::File::open(path).expect("open the benchmark file");
    let mut buf = vec![0u8; 1 << 20];
    while file.read(&mut buf).expect("read the benchmark file") > 0 {}
}

fn write_file(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create target/bench");
    let mut file = std::fs::File::create(path).expect("create the benchmark file");
    let chunk: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    for _ in 0..FILE_SIZE >> 20 {
        file.write_all(&chunk).expect("write the benchmark file");
    }
    file.sync_all().expect("sync the benchmark file");
}

/// A small deterministic generator (xorshift64*), one per reader.
struct Rng(u64);

impl Rng {
    /// Reader `id`'s own sequence in round `seed`.
    fn for_reader(seed: u64, id: usize) -> Rng {
        Rng(0x9e37_79b9_7f4a_7c15 ^ ((seed << 32) + (id as u64 + 1) * 0x1000_0001))
    }

    /// A random block-aligned offset inside the file.
    fn block(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let blocks = FILE_SIZE / BLOCK as u64;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % blocks) * BLOCK as u64
    }
}

/// corering: `DEPTH` tasks, each reading random blocks into its own
/// registered buffer, for `runtime`. IOPS.
fn corering_random(path: &Path, runtime: Duration, seed: u64) -> f64 {
    // Park for batches of completions, as a storage engine would (Linux
    // 6.12; ignored before): fewer wake-ups with 32 reads in flight.
    let core = corering::Runtime::builder()
        .batch_wait(8, Duration::from_micros(50))
        .build()
        .expect("corering runtime");
    core.block_on(async {
        let file = Rc::new(
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .await
                .expect("open O_DIRECT"),
        );
        let pool = FixedBufPool::new(DEPTH as u16, BLOCK).expect("register buffers");
        let done = Rc::new(Cell::new(0u64));
        let deadline = Instant::now() + runtime;
        let readers: Vec<_> = (0..DEPTH)
            .map(|id| {
                let (file, pool, done) = (file.clone(), pool.clone(), done.clone());
                corering::spawn(async move {
                    let mut rng = Rng::for_reader(seed, id);
                    let mut buf = pool.get().await;
                    // Checking the clock every 64 reads keeps it off the
                    // per-read cost.
                    loop {
                        for _ in 0..64 {
                            buf.clear();
                            let (read, returned) = file.read_fixed_at(buf, rng.block()).await;
                            buf = returned;
                            assert_eq!(read.expect("read"), BLOCK);
                        }
                        done.set(done.get() + 64);
                        if Instant::now() >= deadline {
                            return;
                        }
                    }
                })
            })
            .collect();
        let started = Instant::now();
        for reader in readers {
            reader.await.expect("reader");
        }
        done.get() as f64 / started.elapsed().as_secs_f64()
    })
}

/// tokio, as `tokio::fs` does file I/O: each read a `pread` on the
/// blocking pool, `DEPTH` in flight, into aligned buffers. IOPS.
fn tokio_random(path: &Path, runtime: Duration, seed: u64) -> f64 {
    let file = std::sync::Arc::new(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .expect("open O_DIRECT"),
    );
    let tokio = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(DEPTH)
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(async {
        let deadline = Instant::now() + runtime;
        let started = Instant::now();
        let readers: Vec<_> = (0..DEPTH)
            .map(|id| {
                let file = file.clone();
                tokio::spawn(async move {
                    let mut rng = Rng::for_reader(seed, id);
                    let mut buf = AlignedBuf::new(BLOCK, BLOCK);
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let (offset, file) = (rng.block(), file.clone());
                        buf = tokio::task::spawn_blocking(move || {
                            buf.set_len(BLOCK);
                            let read = file.read_at(&mut buf, offset).expect("pread");
                            assert_eq!(read, BLOCK);
                            buf
                        })
                        .await
                        .expect("blocking read");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut done = 0;
        for reader in readers {
            done += reader.await.expect("reader");
        }
        done as f64 / started.elapsed().as_secs_f64()
    })
}

/// corering: `SEQ_DEPTH` tasks reading consecutive 128 KiB blocks of the
/// (cached) file, round after round, for `runtime`. MiB/s.
fn corering_sequential(path: &Path, runtime: Duration) -> f64 {
    corering::start(async {
        let file = Rc::new(corering::fs::File::open(path).await.expect("open"));
        let next = Rc::new(Cell::new(0u64));
        let bytes = Rc::new(Cell::new(0u64));
        let deadline = Instant::now() + runtime;
        let started = Instant::now();
        let readers: Vec<_> = (0..SEQ_DEPTH)
            .map(|_| {
                let (file, next, bytes) = (file.clone(), next.clone(), bytes.clone());
                corering::spawn(async move {
                    let mut buf = AlignedBuf::new(SEQ_BLOCK, 4096);
                    while Instant::now() < deadline {
                        let offset = next.get() % FILE_SIZE;
                        next.set(offset + SEQ_BLOCK as u64);
                        buf.clear();
                        let (read, returned) = file.read_at(buf, offset).await;
                        buf = returned;
                        bytes.set(bytes.get() + read.expect("read") as u64);
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.await.expect("reader");
        }
        bytes.get() as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64
    })
}

/// std::fs: one `read` of 128 KiB after another, from the start again at
/// the end, for `runtime`. MiB/s.
fn std_sequential(path: &Path, runtime: Duration) -> f64 {
    let mut file = std::fs::File::open(path).expect("open");
    let mut buf = AlignedBuf::new(SEQ_BLOCK, 4096);
    buf.set_len(SEQ_BLOCK);
    let mut bytes = 0u64;
    let started = Instant::now();
    while started.elapsed() < runtime {
        let read = file.read(&mut buf).expect("read");
        if read == 0 {
            file = std::fs::File::open(path).expect("reopen");
        }
        bytes += read as u64;
    }
    bytes as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64
}

/// fio's IOPS for one job on `path`, io_uring engine.
fn fio(path: &Path, rw: &str, block: usize, depth: usize, direct: bool, runtime: Duration) -> f64 {
    let output = Command::new("fio")
        .args([
            "--name=bench",
            &format!("--filename={}", path.display()),
            &format!("--rw={rw}"),
            &format!("--bs={block}"),
            &format!("--iodepth={depth}"),
            &format!("--direct={}", u8::from(direct)),
            "--ioengine=io_uring",
            &format!("--size={FILE_SIZE}"),
            &format!("--runtime={}", runtime.as_secs()),
            "--time_based",
            // Keep the page cache: every buffered reader here reads the
            // file cached (fio would drop it before each job).
            "--invalidate=0",
            "--randrepeat=0",
            "--output-format=json",
        ])
        .output()
        .expect("fio is installed (ci/setup --bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fio failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "read" : { ..., "iops" : 123456.789, ...
    let read = &text[text.find("\"read\"").expect("fio printed a read section")..];
    let iops = &read[read.find("\"iops\"").expect("fio printed iops") + 6..];
    let number: String = iops
        .trim_start_matches([' ', ':'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number.parse().expect("fio's iops is a number")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

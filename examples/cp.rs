//! Copies a file with a chosen number of reads and writes in flight: each
//! of `depth` tasks takes the next block, reads it and writes it, so up to
//! `depth` blocks move at once on one core. Prints the throughput.
//!
//! ```sh
//! cargo run --release --example cp -- <from> <to> [depth, 32] [block KiB, 128] [--direct]
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use corering::fs::OpenOptions;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let direct = args.iter().any(|arg| arg == "--direct");
    let positional: Vec<&String> = args.iter().filter(|arg| !arg.starts_with("--")).collect();
    let usage = "usage: cp <from> <to> [depth] [block KiB] [--direct]";
    let (Some(from), Some(to)) = (positional.first(), positional.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let number = |index: usize, default: usize| -> usize {
        positional.get(index).map_or(default, |text| {
            text.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                eprintln!("cp: bad number {text:?}\n{usage}");
                std::process::exit(2);
            })
        })
    };
    let depth = number(2, 32);
    let block = number(3, 128) << 10;
    let (from, to) = (from.to_string(), to.to_string());
    let started = Instant::now();
    match corering::start(copy(from, to, depth, block, direct)) {
        Ok(bytes) => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "cp: {bytes} bytes in {seconds:.3} s, {:.1} MiB/s (depth {depth}, {} KiB blocks{})",
                bytes as f64 / seconds / (1 << 20) as f64,
                block >> 10,
                if direct { ", O_DIRECT" } else { "" }
            );
        }
        Err(error) => {
            eprintln!("cp: {error}");
            std::process::exit(1);
        }
    }
}

async fn copy(
    from: String,
    to: String,
    depth: usize,
    block: usize,
    direct: bool,
) -> std::io::Result<u64> {
    let flags = if direct { libc::O_DIRECT } else { 0 };
    let source = Rc::new(
        OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&from)
            .await?,
    );
    let len = source.metadata().await?.len();
    let target = Rc::new(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(flags)
            .open(&to)
            .await?,
    );
    // Direct I/O moves whole blocks: the last one may run past the end,
    // and the file is cut back to size afterwards.
    if len > 0 {
        target.allocate(0, len).await?;
    }
    let unit = target
        .direct_io_alignment()
        .map_or(1, |(_, offset)| offset as usize);
    // Whole aligned buffers: the block rounded up to the alignment.
    let block = source.aligned_buf(block).capacity();
    let next = Rc::new(Cell::new(0u64));
    let workers: Vec<_> = (0..depth)
        .map(|_| {
            let (source, target, next) = (source.clone(), target.clone(), next.clone());
            corering::spawn(async move {
                let mut buf = source.aligned_buf(block);
                loop {
                    let offset = next.get();
                    if offset >= len {
                        return Ok::<(), std::io::Error>(());
                    }
                    next.set(offset + block as u64);
                    buf.clear();
                    let (read, filled) = source.read_at(buf, offset).await;
                    buf = filled;
                    let read = read?;
                    // Direct I/O writes whole blocks; the tail is cut back
                    // by `set_len` at the end.
                    let whole = read.next_multiple_of(unit);
                    buf.set_len(whole);
                    let (written, returned) = target.write_all_at(buf, offset).await;
                    buf = returned;
                    written?;
                    if whole == 0 {
                        return Ok(());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("copy task")?;
    }
    target.set_len(len).await?;
    target.sync_data().await?;
    Ok(len)
}

//! A first look at corering: tasks, a timer, a pipe round trip through the
//! ring, and the driver's counters.
//!
//! Run with `cargo run --release --example hello`.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use corering::fd::Fd;

fn main() {
    let runtime = match corering::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hello: {error}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let reader = Fd::from(OwnedFd::from(reader));
        let writer = Fd::from(OwnedFd::from(writer));

        let sender = corering::spawn(async move {
            corering::time::sleep(Duration::from_millis(10)).await;
            let (result, _) = writer.write_all(b"Hello World!".as_slice()).await;
            result
        });
        let started = Instant::now();
        let (read, buf) = reader.read(Vec::with_capacity(64)).await;
        let read = read.expect("read");
        sender.await.expect("sender task").expect("write");
        println!(
            "{} ({read} bytes through an io_uring pipe read, after {:?})",
            String::from_utf8_lossy(&buf),
            started.elapsed()
        );

        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                corering::spawn(async {
                    for _ in 0..1_000 {
                        corering::op::nop().await.expect("nop");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("nop task");
        }
        let elapsed = started.elapsed();
        println!(
            "64,000 nop round trips from 64 tasks in {elapsed:?} ({:.1} M/s)",
            64_000.0 / elapsed.as_secs_f64() / 1e6
        );
        println!("{:?}", corering::stats());
    });
}

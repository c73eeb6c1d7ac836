use corering::buf::FixedBufPool;
use corering::fs::OpenOptions;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
fn main() {
    let depth = 32usize;
    let iops = corering::start(async move {
        let file = Rc::new(
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open("target/bench/files-1g.dat")
                .await
                .unwrap(),
        );
        let pool = FixedBufPool::new(depth as u16, 4096).unwrap();
        let done = Rc::new(Cell::new(0u64));
        let deadline = Instant::now() + Duration::from_secs(2);
        let started = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|id| {
                let (file, pool, done) = (file.clone(), pool.clone(), done.clone());
                corering::spawn(async move {
                    let mut x: u64 = 0x9e3779b97f4a7c15
                        ^ ((id as u64 + 1) * 0x10000001)
                        ^ (started.elapsed().as_nanos() as u64);
                    let mut fb = pool.get().await;
                    while Instant::now() < deadline {
                        x ^= x >> 12;
                        x ^= x << 25;
                        x ^= x >> 27;
                        let off = (x.wrapping_mul(0x2545f4914f6cdd1d) % 262144) * 4096;
                        let (r, b) = file.read_fixed_at(fb, off).await;
                        r.unwrap();
                        fb = b;
                        fb.clear();
                        done.set(done.get() + 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        done.get() as f64 / started.elapsed().as_secs_f64()
    });
    println!(
        "want {}: iops {iops:.0}",
        std::env::var("WANT").unwrap_or("1".into())
    );
}

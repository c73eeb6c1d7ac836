//! Per-core counters: every core of a launch reads every core's, they
//! count what happened (task polls, operations, wakes by `MSG_RING` and
//! by eventfd, parked time), and render in the Prometheus text format.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use corering::sync::mpsc;
use corering::CoreStats;

/// The value of `name{core="N"}` in a Prometheus text.
fn sample(text: &str, name: &str, core: usize) -> f64 {
    let prefix = format!("corering_{name}{{core=\"{core}\"}} ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line[prefix.len()..].parse().unwrap()
}

/// On io_uring in both runs: it counts `MSG_RING` wakes.
#[test]
fn each_core_reads_every_cores_counters() {
    // Core 0 wakes a parked core 1 with MSG_RING, a plain thread wakes it
    // through its eventfd; core 1 then does 100 nops and 10 tasks.
    let (to_one, from_zero) = mpsc::channel::<u32>(4);
    let (to_zero, from_one) = mpsc::channel::<CoreStats>(4);
    let ends = Mutex::new((Some(to_one), Some(from_zero), Some(to_zero), Some(from_one)));
    let results = common::ring_builder()
        .cores(2)
        .run_on_cores(|core| {
            let mut ends = ends.lock().unwrap();
            let (to_one, from_zero, to_zero, from_one) = if core.index() == 0 {
                (ends.0.take(), None, None, ends.3.take())
            } else {
                (None, ends.1.take(), ends.2.take(), None)
            };
            async move {
                if let Some(mut from_zero) = from_zero {
                    let to_zero = to_zero.unwrap();
                    // Parked until core 0 sends (MSG_RING), then until the
                    // plain thread does (eventfd).
                    assert_eq!(from_zero.recv().await, Some(1));
                    assert_eq!(from_zero.recv().await, Some(2));
                    for _ in 0..100 {
                        corering::op::nop().await.unwrap();
                    }
                    for _ in 0..10 {
                        corering::spawn(async {}).await.unwrap();
                    }
                    let mine = corering::core_stats().remove(1);
                    to_zero.send(mine).await.unwrap();
                    return None;
                }
                let to_one = to_one.unwrap();
                corering::time::sleep(Duration::from_millis(20)).await;
                to_one.send(1).await.unwrap();
                corering::time::sleep(Duration::from_millis(20)).await;
                let plain = to_one.clone();
                std::thread::spawn(move || plain.blocking_send(2).unwrap())
                    .join()
                    .unwrap();
                let reported = from_one.unwrap().recv().await.unwrap();
                Some((reported, corering::core_stats()))
            }
        })
        .unwrap();
    let (reported, seen) = results[0].clone().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].core.index(), seen[1].core.index()), (0, 1));
    let one = &seen[1];
    // What core 0 read is what core 1 published, or later.
    assert!(one.ticks >= reported.ticks && one.tasks_polled >= reported.tasks_polled);
    assert!(reported.ops.submitted >= 100, "{:?}", reported.ops);
    assert!(reported.tasks_polled >= 10, "{reported:?}");
    assert!(reported.ops.msg_ring_wakes >= 1, "{:?}", reported.ops);
    assert!(reported.ops.eventfd_wakes >= 1, "{:?}", reported.ops);
    assert!(reported.parked >= Duration::from_millis(30), "{reported:?}");
    assert!(reported.ops.cqes >= reported.ops.completed);
    assert!(reported.completions_per_enter() > 0.0);
    assert!(seen[0].ops.msg_ring_sent >= 1, "{:?}", seen[0].ops);

    let text = CoreStats::render_prometheus(&seen);
    assert!(text.contains("# TYPE corering_busy_seconds_total counter\n"));
    assert_eq!(
        sample(&text, "wakes_msg_ring_total", 1),
        one.ops.msg_ring_wakes as f64
    );
    assert_eq!(
        sample(&text, "tasks_polled_total", 1),
        one.tasks_polled as f64
    );
    assert_eq!(
        sample(&text, "ops_submitted_total", 0),
        seen[0].ops.submitted as f64
    );
    let families = text
        .lines()
        .filter(|line| line.starts_with("# TYPE "))
        .count();
    let samples = text.lines().filter(|line| !line.starts_with('#')).count();
    assert_eq!(samples, families * 2, "one sample per core in every family");
}

#[test]
fn a_lone_runtime_is_core_zero_of_one() {
    corering::start(async {
        corering::op::nop().await.unwrap();
        let stats = corering::core_stats();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].core.index(), 0);
        assert_eq!(stats[0].ops.submitted, corering::stats().submitted);
    });
}

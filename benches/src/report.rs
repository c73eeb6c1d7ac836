//! The networking report: `report.md` with tables of ratios, and SVG bar
//! charts of throughput and cost per request by server.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::Round;

/// The medians of one workload, by server: corering first, tokio second,
/// the raw loop last, the other peers between.
pub struct Workload {
    pub key: &'static str,
    pub title: &'static str,
    pub results: Vec<(&'static str, Round)>,
}

impl Workload {
    /// The peer runtime (neither corering nor the raw loop) with the most
    /// requests per CPU-second.
    pub fn best_peer(&self) -> (&'static str, Round) {
        let peers = &self.results[1..self.results.len() - 1];
        *peers
            .iter()
            .max_by(|a, b| a.1.per_cpu_second.total_cmp(&b.1.per_cpu_second))
            .expect("at least one peer")
    }

    /// The raw io_uring loop's medians.
    pub fn raw_loop(&self) -> Round {
        self.results.last().expect("the raw loop").1
    }
}

/// Writes `report.md` and the charts into `dir`.
pub fn write(dir: &Path, method: &str, workloads: &[Workload]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut md = String::new();
    let _ = writeln!(md, "# Networking benchmark report\n");
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ = writeln!(md, "{method}\n");
    for workload in workloads {
        let ours = workload.results[0].1;
        let tokio = workload.results[1].1;
        let (best_name, best) = workload.best_peer();
        let _ = writeln!(md, "## {}\n", workload.title);
        let _ = writeln!(
            md,
            "| server | req/s | req per CPU-s | user µs/req | CPU µs/req | req per CPU-s vs tokio | p50 / p99 latency (µs) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (name, round) in &workload.results {
            let _ = writeln!(
                md,
                "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} |",
                round.per_second,
                round.per_cpu_second,
                round.user_us_per_request,
                1e6 / round.per_cpu_second,
                round.per_cpu_second / tokio.per_cpu_second,
                round.p50_us,
                round.p99_us,
            );
        }
        let raw = workload.raw_loop();
        let _ = writeln!(
            md,
            "\ncorering's requests per CPU-second: {:.2}x tokio's, {:.2}x the best peer's ({best_name}), {:.2}x the raw loop's. User time per request: {:.2}x tokio's, {:.2}x the raw loop's.\n",
            ours.per_cpu_second / tokio.per_cpu_second,
            ours.per_cpu_second / best.per_cpu_second,
            ours.per_cpu_second / raw.per_cpu_second,
            ours.user_us_per_request / tokio.user_us_per_request,
            ours.user_us_per_request / raw.user_us_per_request,
        );
        for chart in &CHARTS {
            let file = format!("{}_{}.svg", workload.key, chart.suffix);
            let bars: Vec<(&str, f64)> = workload
                .results
                .iter()
                .map(|(name, round)| (*name, (chart.value)(round)))
                .collect();
            let title = format!("{}: {}", workload.title, chart.title);
            std::fs::write(dir.join(&file), bar_chart(&title, chart.unit, &bars))?;
            let _ = writeln!(md, "![{}]({file})\n", chart.title);
        }
    }
    std::fs::write(dir.join("report.md"), md)
}

/// One chart per workload: file suffix, title, unit, and the value charted.
struct Chart {
    suffix: &'static str,
    title: &'static str,
    unit: &'static str,
    value: fn(&Round) -> f64,
}

const CHARTS: [Chart; 2] = [
    Chart {
        suffix: "throughput",
        title: "requests per second",
        unit: "req/s",
        value: |round| round.per_second,
    },
    Chart {
        suffix: "cost",
        title: "server CPU time per request (lower is better)",
        unit: "µs",
        value: |round| 1e6 / round.per_cpu_second,
    },
];

/// A horizontal bar chart, one bar per server, labelled with its value.
fn bar_chart(title: &str, unit: &str, bars: &[(&str, f64)]) -> String {
    const WIDTH: f64 = 720.0;
    const LABEL: f64 = 170.0;
    const BAR_AREA: f64 = 440.0;
    const ROW: f64 = 30.0;
    let max = bars
        .iter()
        .map(|bar| bar.1)
        .fold(f64::MIN_POSITIVE, f64::max);
    let height = 50.0 + ROW * bars.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    for (index, (name, value)) in bars.iter().enumerate() {
        let y = 38.0 + ROW * index as f64;
        let width = (value / max * BAR_AREA).max(1.0);
        let fill = if index == 0 { "#d9480f" } else { "#4c6ef5" };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{width:.1}\" height=\"20\" fill=\"{fill}\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{} {unit}</text>\n",
            LABEL - 8.0,
            y + 15.0,
            escape(name),
            LABEL + width + 6.0,
            y + 15.0,
            format_value(*value),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The CPU model, CPU count and kernel of this machine.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{cpus} x {cpu}, Linux {kernel}")
}

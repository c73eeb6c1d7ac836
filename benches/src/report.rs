//! The networking report: `report.md` with tables of ratios, SVG bar
//! charts of throughput and cost per request by server, and line charts
//! of the echo grid by connection count.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::Round;

/// The medians of one workload, by server: corering first, tokio second,
/// the raw loop last, the other peers between.
pub struct Workload {
    pub key: &'static str,
    pub title: String,
    pub results: Vec<(&'static str, Round)>,
}

/// One cell of the echo grid.
pub struct Cell {
    pub connections: usize,
    pub bytes: usize,
    pub workload: Workload,
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
pub fn write(dir: &Path, method: &str, workloads: &[Workload], grid: &[Cell]) -> io::Result<()> {
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
    write_grid(dir, &mut md, grid)?;
    std::fs::write(dir.join("report.md"), md)
}

/// The echo grid: per message size, a table of round trips per second and
/// CPU per round trip by server and connection count, and a line chart of
/// each.
fn write_grid(dir: &Path, md: &mut String, grid: &[Cell]) -> io::Result<()> {
    let Some(first) = grid.first() else {
        return Ok(());
    };
    let names: Vec<&str> = first.workload.results.iter().map(|r| r.0).collect();
    let _ = writeln!(
        md,
        "## Echo grid: connections x message size\n\n\
         Each cell: round trips per second, and server CPU µs per round trip \
         (lower is better). The last column is corering's round trips per \
         CPU-second over the best peer's.\n"
    );
    let mut sizes: Vec<usize> = grid.iter().map(|cell| cell.bytes).collect();
    sizes.dedup();
    for bytes in sizes {
        let cells: Vec<&Cell> = grid.iter().filter(|cell| cell.bytes == bytes).collect();
        let _ = writeln!(md, "### {bytes} B messages\n");
        let _ = writeln!(
            md,
            "| connections | {} | corering / best peer |\n| ---: |{} ---: |",
            names.join(" | "),
            " ---: |".repeat(names.len())
        );
        for cell in &cells {
            let row: Vec<String> = cell
                .workload
                .results
                .iter()
                .map(|(_, round)| {
                    format!(
                        "{:.0} · {:.1}",
                        round.per_second,
                        1e6 / round.per_cpu_second
                    )
                })
                .collect();
            let (best_name, best) = cell.workload.best_peer();
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} ({best_name}) |",
                cell.connections,
                row.join(" | "),
                cell.workload.results[0].1.per_cpu_second / best.per_cpu_second
            );
        }
        let _ = writeln!(md);
        let labels: Vec<String> = cells
            .iter()
            .map(|cell| cell.connections.to_string())
            .collect();
        for chart in &CHARTS {
            let series: Vec<(&str, Vec<f64>)> = names
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    let values = cells
                        .iter()
                        .map(|cell| (chart.value)(&cell.workload.results[index].1))
                        .collect();
                    (*name, values)
                })
                .collect();
            let file = format!("echo_grid_{bytes}_{}.svg", chart.suffix);
            let title = format!("echo, {bytes} B messages: {} by connections", chart.title);
            std::fs::write(
                dir.join(&file),
                line_chart(&title, chart.unit, &labels, &series),
            )?;
            let _ = writeln!(md, "![{title}]({file})\n");
        }
    }
    Ok(())
}

/// Colours of the line chart's series; corering's first.
const COLOURS: [&str; 8] = [
    "#d9480f", "#4c6ef5", "#2f9e44", "#ae3ec9", "#f59f00", "#1098ad", "#495057", "#e64980",
];

/// A line chart: the x labels evenly spaced, one line per series, a
/// legend on the right.
fn line_chart(title: &str, unit: &str, labels: &[String], series: &[(&str, Vec<f64>)]) -> String {
    const LEFT: f64 = 70.0;
    const TOP: f64 = 40.0;
    const PLOT_W: f64 = 460.0;
    const PLOT_H: f64 = 260.0;
    let max = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(f64::MIN_POSITIVE, f64::max);
    let x = |index: usize| LEFT + PLOT_W * (index as f64 + 0.5) / labels.len().max(1) as f64;
    let y = |value: f64| TOP + PLOT_H * (1.0 - value / max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"{}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">{}</text>\n\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{TOP}\" text-anchor=\"end\">{} {unit}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">connections</text>\n",
        TOP + PLOT_H + 50.0,
        escape(title),
        TOP + PLOT_H,
        LEFT + PLOT_W,
        TOP + PLOT_H,
        TOP + PLOT_H,
        LEFT - 6.0,
        format_value(max),
        LEFT - 6.0,
        TOP + PLOT_H,
        LEFT + PLOT_W / 2.0,
        TOP + PLOT_H + 40.0,
    );
    for (index, label) in labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(index),
            TOP + PLOT_H + 18.0,
            escape(label)
        );
    }
    for (number, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[number % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(index, &value)| format!("{:.1},{:.1}", x(index), y(value)))
            .collect();
        let width = if number == 0 { 3 } else { 2 };
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\"/>",
            points.join(" ")
        );
        for point in &points {
            let (px, py) = point.split_once(',').expect("x,y");
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let legend_y = TOP + 10.0 + 20.0 * number as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\n\
             <text x=\"{}\" y=\"{}\">{}</text>",
            LEFT + PLOT_W + 20.0,
            legend_y - 4.0,
            LEFT + PLOT_W + 40.0,
            legend_y + 1.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
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

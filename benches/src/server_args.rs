//! The command line the monoio, compio and glommio peer servers share:
//! `<program> echo|hello <port> [idle seconds, default 60]`; the per-core
//! servers take one more, `[cores, default the CPUs this process may use]`.

use std::time::Duration;

/// What to serve, where, and the hello server's idle timeout.
pub struct Args {
    pub hello: bool,
    pub port: u16,
    pub idle: Duration,
}

/// Parses this process's arguments; panics with the usage line on bad ones.
pub fn parse(program: &str) -> Args {
    let usage = format!("usage: {program} echo|hello <port> [idle seconds]");
    let mut args = std::env::args().skip(1);
    let hello = match args.next().as_deref() {
        Some("hello") => true,
        Some("echo") => false,
        _ => panic!("{usage}"),
    };
    let port = args
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{usage}"));
    let idle = Duration::from_secs(args.next().map_or(60, |s| s.parse().expect("idle seconds")));
    Args { hello, port, idle }
}

/// [`parse`], then the optional 4th argument: how many threads (one per
/// core) to serve on, by default the CPUs this process may run on (its
/// affinity, so `taskset` narrows it).
#[allow(dead_code)] // the single-thread servers take no core count
pub fn parse_with_cores(program: &str) -> (Args, usize) {
    let args = parse(program);
    let usage = format!("usage: {program} echo|hello <port> [idle seconds] [cores]");
    let cores = std::env::args().nth(4).map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |cores| match cores.parse() {
            Ok(cores) if cores > 0 => cores,
            _ => panic!("{usage}"),
        },
    );
    (args, cores)
}

//! The command line the monoio and compio peer servers share:
//! `<program> echo|hello <port> [idle seconds, default 60]`.

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

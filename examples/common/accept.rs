//! The accept loop the example servers share (hello, file_server, echo,
//! kv), how it rides out a process out of descriptors, and their graceful
//! shutdown: on `SIGINT` or `SIGTERM` the loop stops (the listener closes),
//! the connections drain for at most the `--drain SECONDS` deadline
//! (default 5), and each core prints one line with what it served.
//!
//! When the process is out of descriptors (`EMFILE`, `ENFILE`) every accept
//! fails at once, even with no connection waiting (io_uring takes the
//! descriptor before it looks at the queue), and keeps failing until some
//! connection closes. Retrying at a fixed short interval burns a core and
//! logs a line each time; this loop waits [`BACKOFF_MIN`], doubling up to
//! [`BACKOFF_MAX`], and logs one line when such an episode starts and one
//! when accepts succeed again, with the count of refused attempts (and
//! within [`LOG_QUIET`] of that, nothing more).

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corering::shutdown::{Drained, Shutdown};

/// The wait after the first refused accept of an episode; it doubles with
/// each refusal after it.
pub const BACKOFF_MIN: Duration = Duration::from_millis(1);

/// The longest wait between two attempts: how late, at most, the server
/// notices that descriptors are free again.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// After an episode is reported, further episodes that start within this
/// time are counted but not logged: a server at its descriptor limit can
/// flap, refused for a millisecond each time a connection closes and
/// frees a descriptor, and two lines per connection would be a flood of
/// their own. The next episode logged says how many went unreported.
pub const LOG_QUIET: Duration = Duration::from_secs(10);

/// A server example's command line, named in the message for an argument
/// that does not parse.
pub struct Usage {
    pub program: &'static str,
    /// What follows the program's name, as `[port] [cores]`.
    pub args: &'static str,
}

impl Usage {
    /// The argument, parsed, or `default` when absent; exits 2 with the
    /// usage when it does not parse.
    pub fn arg<T: std::str::FromStr>(&self, arg: Option<String>, what: &str, default: T) -> T {
        match arg {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                let Usage { program, args } = self;
                eprintln!("{program}: bad {what}: {text:?}\nusage: {program} {args}");
                std::process::exit(2);
            }),
        }
    }
}

/// How many cores a server takes by default: the CPUs this process may
/// run on.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Ends a launch of `program`: prints each core's closing line, and each
/// error (the launch's, or a core's) on stderr; exits 1 after an error.
pub fn finish(program: &str, launched: io::Result<Vec<Result<String, String>>>) {
    let results = launched.unwrap_or_else(|error| vec![Err(error.to_string())]);
    let mut failed = false;
    for result in results {
        match result {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("{program}: {error}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// Accepts connections until `shutdown` is triggered, handing each to
/// `serve`; `label` starts the lines it logs.
pub async fn accept_loop<S, A>(
    label: impl Display,
    shutdown: &Shutdown,
    mut accept: impl FnMut() -> A,
    mut serve: impl FnMut(S),
) where
    A: Future<Output = io::Result<(S, SocketAddr)>>,
{
    let mut episode: Option<Episode> = None;
    let mut quiet = Quiet::default();
    while let Some(accepted) = shutdown.until(accept()).await {
        match accepted {
            Ok((stream, _)) => {
                if let Some(ended) = episode.take() {
                    quiet.ended(&label, &ended);
                }
                serve(stream);
            }
            // A connection reset while it was queued: that connection is
            // lost, nothing is wrong with the server.
            Err(error) if error.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(error) => {
                let episode = episode.get_or_insert_with(|| quiet.started(&label, &error));
                episode.refused += 1;
                if shutdown
                    .until(corering::time::sleep(episode.wait))
                    .await
                    .is_none()
                {
                    return;
                }
                episode.wait = (episode.wait * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Accepts failing in a row.
struct Episode {
    started: Instant,
    refused: u64,
    /// The wait before the next attempt.
    wait: Duration,
    /// Whether its start was logged (and so its end will be).
    logged: bool,
}

/// What has gone unlogged since the last episode reported.
#[derive(Default)]
struct Quiet {
    /// Until when new episodes go unlogged.
    until: Option<Instant>,
    episodes: u64,
    refused: u64,
}

impl Quiet {
    /// A new episode, refused with `error`: logged unless within
    /// [`LOG_QUIET`] of the last one logged.
    fn started(&mut self, label: &impl Display, error: &io::Error) -> Episode {
        let now = Instant::now();
        let logged = self.until.is_none_or(|until| now >= until);
        if logged {
            let unreported = if self.episodes > 0 {
                format!(
                    " ({} refused attempts in {} brief episodes went unlogged before this one)",
                    self.refused, self.episodes
                )
            } else {
                String::new()
            };
            eprintln!(
                "{label}: accept: {error}; retrying after {BACKOFF_MIN:?}, doubling up to \
                 {BACKOFF_MAX:?}, until it succeeds{unreported}"
            );
            (self.episodes, self.refused) = (0, 0);
        }
        Episode {
            started: now,
            refused: 0,
            wait: BACKOFF_MIN,
            logged,
        }
    }

    /// An accept succeeded after `episode`.
    fn ended(&mut self, label: &impl Display, episode: &Episode) {
        if episode.logged {
            eprintln!(
                "{label}: accepting again after {} refused attempts in {:.1?}",
                episode.refused,
                episode.started.elapsed()
            );
            self.until = Some(Instant::now() + LOG_QUIET);
        } else {
            self.episodes += 1;
            self.refused += episode.refused;
        }
    }
}

/// The drain deadline when `--drain` is not given.
pub const DRAIN_DEFAULT: Duration = Duration::from_secs(5);

/// Takes `--drain SECONDS` out of the arguments (anywhere among them);
/// exits with a message when its value does not parse.
pub fn take_drain_flag(args: &mut Vec<String>, program: &str) -> Duration {
    let Some(at) = args.iter().position(|arg| arg == "--drain") else {
        return DRAIN_DEFAULT;
    };
    args.remove(at);
    let value = (at < args.len()).then(|| args.remove(at));
    match value.as_deref().map(str::parse::<f64>) {
        Some(Ok(seconds)) if seconds >= 0.0 && seconds.is_finite() => {
            Duration::from_secs_f64(seconds)
        }
        _ => {
            eprintln!("{program}: --drain needs a number of seconds");
            std::process::exit(2);
        }
    }
}

/// The line a core prints at exit: what it served and how the drain went.
pub fn report(program: &str, core: corering::CoreId, served: &str, drained: &Drained) -> String {
    format!(
        "{program}: {core}: {} connections, {served}; {} open at shutdown, {} cut at the deadline",
        drained.served, drained.open, drained.aborted
    )
}

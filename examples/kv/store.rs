//! The keyspace of one core (a [`Shard`]) and the commands that run
//! against it; [`shard_of`], which core a key belongs to.
//!
//! A shard is a plain `HashMap` owned by one core and never locked: its
//! core's tasks reach it through an `Rc<RefCell<..>>`, each borrow lasting
//! one synchronous batch. A batch of commands goes in, and their replies
//! come out encoded, each marked where it ends ([`Replies`]), so that the
//! batches a pipeline is split into, once commands are routed to the cores
//! that own their keys, can be answered apart and put back in order.
//!
//! Keys with a deadline expire two ways, as in redis: lazily, when a
//! command finds its key past its deadline and removes it, and actively,
//! by [`Shard::sweep`], which a task of the core runs every
//! [`SWEEP_PERIOD`] over a bounded sample of the keys that have a deadline
//! so that keys never read again do not stay forever. Every command takes
//! the time as an argument (`now`), read once per batch by the caller,
//! which is also what lets the tests move the clock.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crate::resp::{parse_i64, Command, Replies};

/// How often each core sweeps its shard for expired keys (redis: `hz 10`).
pub const SWEEP_PERIOD: Duration = Duration::from_millis(100);

/// Keys with a deadline that one round of a sweep looks at (redis: 20).
pub const SWEEP_SAMPLE: usize = 20;

/// Most rounds of one sweep: a round follows another only while more than
/// a quarter of its sample had expired, and never more than this many, so
/// one sweep looks at no more than `SWEEP_SAMPLE * SWEEP_ROUNDS_MAX` keys.
pub const SWEEP_ROUNDS_MAX: usize = 16;

/// The shard that owns `key` among `cores` shards: FNV-1a (64-bit) of the
/// key, modulo `cores`. Stable across runs and machines, unlike the std
/// `HashMap`'s keyed hash, so every core of every process agrees.
///
/// # Panics
///
/// When `cores` is zero.
pub fn shard_of(key: &[u8], cores: usize) -> usize {
    assert!(cores > 0, "a key belongs to one of at least one shard");
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    (hash % cores as u64) as usize
}

/// One core's keys and their values.
///
/// Invariant: a key is in `expiring` exactly when its entry has a
/// deadline, at the index its [`Expiry::slot`] names.
#[derive(Debug, Default)]
pub struct Shard {
    entries: HashMap<Vec<u8>, Entry>,
    /// The keys that have a deadline: what a sweep samples from. A copy of
    /// each such key, since a `HashMap` cannot be sampled.
    expiring: Vec<Vec<u8>>,
    /// Where in `expiring` the next sweep looks first: sweeps go round it,
    /// so every key with a deadline is looked at in turn.
    cursor: usize,
    /// The index of the core that owns this shard, which `INFO` shows.
    core: usize,
}

/// A value, and when it expires.
#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expiry: Option<Expiry>,
}

/// A key's deadline.
#[derive(Debug, Clone, Copy)]
struct Expiry {
    /// From this instant on the key is gone.
    at: Instant,
    /// The key's index in [`Shard::expiring`].
    slot: usize,
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        self.expiry.is_some_and(|expiry| expiry.at <= now)
    }
}

/// A command's handler: its arguments (the name first), the time, and
/// where its reply goes.
type Handler = fn(&mut Shard, Vec<Vec<u8>>, Instant, &mut Replies);

/// A command this server knows: its name as redis writes it in errors,
/// its arity as redis counts it (the name included; negative: at least
/// that many), and its handler.
struct Spec {
    name: &'static str,
    arity: i32,
    run: Handler,
}

/// Every command, looked up by name whatever its case.
const COMMANDS: &[Spec] = &[
    spec("get", 2, Shard::get),
    spec("set", -3, Shard::set_command),
    spec("del", -2, Shard::del),
    spec("exists", -2, Shard::exists),
    spec("incr", 2, Shard::incr),
    spec("mget", -2, Shard::mget),
    spec("mset", -3, Shard::mset),
    spec("ping", -1, Shard::ping),
    spec("dbsize", 1, Shard::dbsize),
    spec("flushall", -1, Shard::flushall),
    spec("command", -1, Shard::command),
    spec("info", -1, Shard::info),
    spec("config", -2, Shard::config),
];

const fn spec(name: &'static str, arity: i32, run: Handler) -> Spec {
    Spec { name, arity, run }
}

const NOT_AN_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
const OVERFLOW: &[u8] = b"ERR increment or decrement would overflow";
const SYNTAX: &[u8] = b"ERR syntax error";

impl Shard {
    /// An empty shard, core 0's.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn new() -> Shard {
        Shard::default()
    }

    /// An empty shard, owned by the core of index `core`.
    pub fn for_core(core: usize) -> Shard {
        Shard {
            core,
            ..Shard::default()
        }
    }

    /// Runs `commands` in order at `now`, appending each one's reply to
    /// `replies` and marking its end there.
    pub fn execute(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
        now: Instant,
        replies: &mut Replies,
    ) {
        for Command(args) in commands {
            self.run(args, now, replies);
            replies.finish();
        }
    }

    /// One command, or the error redis gives for an unknown name or a
    /// wrong count of arguments.
    fn run(&mut self, args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        debug_assert!(!args.is_empty(), "the parser makes no empty command");
        let name = &args[0];
        let Some(spec) = COMMANDS
            .iter()
            .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
        else {
            return out.error(&unknown_command(&args));
        };
        let count = args.len() as i64;
        let arity = i64::from(spec.arity);
        if (arity >= 0 && count != arity) || count < arity.abs() {
            return out.error(&wrong_arity(spec.name));
        }
        (spec.run)(self, args, now, out);
    }

    /// Keys held, expired ones not yet removed included (as redis's
    /// `DBSIZE` counts them).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes keys past their deadline from a bounded sample of those
    /// with one (see [`SWEEP_ROUNDS_MAX`]); returns how many it removed.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        for _ in 0..SWEEP_ROUNDS_MAX {
            let sample = SWEEP_SAMPLE.min(self.expiring.len());
            let mut expired = 0;
            for _ in 0..sample {
                if self.cursor >= self.expiring.len() {
                    self.cursor = 0;
                }
                if self.entries[&self.expiring[self.cursor]].is_expired(now) {
                    // The last key moves into the cursor's place, and is
                    // looked at next.
                    let key = self.unlink(self.cursor);
                    self.entries.remove(&key);
                    expired += 1;
                } else {
                    self.cursor += 1;
                }
            }
            removed += expired;
            if expired * 4 <= sample {
                break;
            }
        }
        removed
    }

    /// The entry of `key` unless it has expired; an expired one is
    /// removed.
    fn live(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key)?.is_expired(now) {
            self.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    /// Sets `key` to `value`, with a deadline when `at` is one, replacing
    /// any value and deadline it had.
    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>, at: Option<Instant>) {
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.expiry.is_none() && at.is_none() {
                entry.value = value;
                return;
            }
        }
        self.remove(&key);
        let expiry = at.map(|at| {
            self.expiring.push(key.clone());
            Expiry {
                at,
                slot: self.expiring.len() - 1,
            }
        });
        self.entries.insert(key, Entry { value, expiry });
    }

    /// Removes `key`, expired or not, and its place in `expiring`.
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(expiry) = entry.expiry {
            self.unlink(expiry.slot);
        }
        Some(entry)
    }

    /// Takes the key at `slot` out of `expiring` and returns it; the key
    /// that moves into its place gets its new slot.
    fn unlink(&mut self, slot: usize) -> Vec<u8> {
        let key = self.expiring.swap_remove(slot);
        if let Some(moved) = self.expiring.get(slot) {
            let entry = self
                .entries
                .get_mut(moved)
                .expect("an expiring key is held");
            entry
                .expiry
                .as_mut()
                .expect("an expiring key has a deadline")
                .slot = slot;
        }
        key
    }

    fn get(&mut self, args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        match self.live(&args[1], now) {
            Some(entry) => out.bulk(&entry.value),
            None => out.null(),
        }
    }

    /// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds |
    /// KEEPTTL]`, with redis's replies: `OK`; nil when NX or XX stopped
    /// it; with GET, the value before (or nil) either way.
    fn set_command(&mut self, args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        let options = match SetOptions::parse(&args[3..], now) {
            Ok(options) => options,
            Err(error) => return out.error(error),
        };
        let mut args = args.into_iter().skip(1);
        let (key, value) = (args.next().unwrap(), args.next().unwrap());
        let (exists, kept) = match self.live(&key, now) {
            Some(entry) => {
                if options.get {
                    out.bulk(&entry.value);
                }
                (true, entry.expiry.map(|expiry| expiry.at))
            }
            None => {
                if options.get {
                    out.null();
                }
                (false, None)
            }
        };
        if (options.condition == Condition::IfAbsent && exists)
            || (options.condition == Condition::IfPresent && !exists)
        {
            if !options.get {
                out.null();
            }
            return;
        }
        let at = match options.deadline {
            Deadline::None => None,
            Deadline::At(at) => Some(at),
            Deadline::Keep => kept,
        };
        self.insert(key, value, at);
        if !options.get {
            out.simple("OK");
        }
    }

    fn del(&mut self, args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        let removed = args[1..]
            .iter()
            .filter(|key| self.remove(key).is_some_and(|entry| !entry.is_expired(now)))
            .count();
        out.integer(removed as i64);
    }

    fn exists(&mut self, args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        let found = args[1..]
            .iter()
            .filter(|key| self.live(key, now).is_some())
            .count();
        out.integer(found as i64);
    }

    /// `INCR key`: a missing key counts from 0; the deadline stays.
    fn incr(&mut self, mut args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        let key = args.swap_remove(1);
        match self.live(&key, now) {
            Some(entry) => {
                let Some(value) = parse_i64(&entry.value) else {
                    return out.error(NOT_AN_INTEGER);
                };
                let Some(value) = value.checked_add(1) else {
                    return out.error(OVERFLOW);
                };
                entry.value = value.to_string().into_bytes();
                out.integer(value);
            }
            None => {
                self.insert(key, b"1".to_vec(), None);
                out.integer(1);
            }
        }
    }

    fn mget(&mut self, args: Vec<Vec<u8>>, now: Instant, out: &mut Replies) {
        out.array(args.len() - 1);
        for key in &args[1..] {
            match self.live(key, now) {
                Some(entry) => out.bulk(&entry.value),
                None => out.null(),
            }
        }
    }

    fn mset(&mut self, args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        if args.len().is_multiple_of(2) {
            return out.error(&wrong_arity("mset"));
        }
        let mut pairs = args.into_iter().skip(1);
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            self.insert(key, value, None);
        }
        out.simple("OK");
    }

    fn ping(&mut self, args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        match &args[1..] {
            [] => out.simple("PONG"),
            [message] => out.bulk(message),
            _ => out.error(&wrong_arity("ping")),
        }
    }

    fn dbsize(&mut self, _args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        out.integer(self.len() as i64);
    }

    /// `FLUSHALL [ASYNC | SYNC]`: both flush at once.
    fn flushall(&mut self, args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        match &args[1..] {
            [] => {}
            [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {
            }
            _ => return out.error(SYNTAX),
        }
        *self = Shard::for_core(self.core);
        out.simple("OK");
    }

    /// `COMMAND [...]`: an empty array, whatever is asked. redis-cli asks
    /// `COMMAND DOCS` as it starts, for its hints, and does without.
    fn command(&mut self, _args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        out.array(0);
    }

    /// `INFO [section ...]`: a few lines, whatever the section; `core`
    /// is the index of the core that answered (a connection's own: see
    /// the `route` module).
    fn info(&mut self, _args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        let mut info = format!(
            "# Server\r\nserver_name:corering-kv\r\nredis_mode:standalone\r\n\
             multiplexing_api:io_uring\r\ncore:{}\r\n\r\n# Keyspace\r\n",
            self.core
        );
        if !self.entries.is_empty() {
            info += &format!(
                "db0:keys={},expires={},avg_ttl=0\r\n",
                self.entries.len(),
                self.expiring.len()
            );
        }
        out.bulk(info.as_bytes());
    }

    /// `CONFIG GET name [name ...]`: the two settings redis-benchmark asks
    /// for as it starts (it warns without them), as a name-value array;
    /// names match whole, not as patterns. No other subcommand.
    fn config(&mut self, args: Vec<Vec<u8>>, _now: Instant, out: &mut Replies) {
        const SETTINGS: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];
        if !args[1].eq_ignore_ascii_case(b"get") {
            let mut message = b"ERR unknown subcommand '".to_vec();
            message.extend_from_slice(c_text(&args[1], 128));
            message.extend_from_slice(b"'. Try CONFIG HELP.");
            return out.error(&message);
        }
        if args.len() < 3 {
            return out.error(&wrong_arity("config|get"));
        }
        let found: Vec<_> = SETTINGS
            .iter()
            .filter(|(name, _)| {
                args[2..]
                    .iter()
                    .any(|asked| asked.eq_ignore_ascii_case(name.as_bytes()))
            })
            .collect();
        out.array(found.len() * 2);
        for (name, value) in found {
            out.bulk(name.as_bytes());
            out.bulk(value.as_bytes());
        }
    }
}

/// How `SET` may go.
#[derive(Debug, PartialEq, Eq)]
enum Condition {
    Always,
    /// NX
    IfAbsent,
    /// XX
    IfPresent,
}

/// What deadline `SET` gives.
#[derive(Debug, PartialEq, Eq)]
enum Deadline {
    /// None: a deadline the key had is gone.
    None,
    /// EX or PX, from now.
    At(Instant),
    /// KEEPTTL: the deadline the key had, if any.
    Keep,
}

/// The options of a `SET`.
#[derive(Debug)]
struct SetOptions {
    condition: Condition,
    deadline: Deadline,
    /// GET: reply with the value before.
    get: bool,
}

impl SetOptions {
    /// Parses the options after `SET key value` as redis does: first
    /// their combination (a conflict or an unknown option is a syntax
    /// error), then the expiry's number.
    fn parse(options: &[Vec<u8>], now: Instant) -> Result<SetOptions, &'static [u8]> {
        let mut parsed = SetOptions {
            condition: Condition::Always,
            deadline: Deadline::None,
            get: false,
        };
        // The unit (milliseconds per unit) and number of EX or PX.
        let mut expire: Option<(u64, &[u8])> = None;
        let mut keep = false;
        let mut at = 0;
        while at < options.len() {
            let option = options[at].to_ascii_lowercase();
            let next = options.get(at + 1);
            match (option.as_slice(), next) {
                (b"nx", _) if parsed.condition != Condition::IfPresent => {
                    parsed.condition = Condition::IfAbsent;
                }
                (b"xx", _) if parsed.condition != Condition::IfAbsent => {
                    parsed.condition = Condition::IfPresent;
                }
                (b"get", _) => parsed.get = true,
                (b"keepttl", _) if expire.is_none() => keep = true,
                (b"ex", Some(number)) if !keep && expire.is_none_or(|(unit, _)| unit == 1000) => {
                    expire = Some((1000, number));
                    at += 1;
                }
                (b"px", Some(number)) if !keep && expire.is_none_or(|(unit, _)| unit == 1) => {
                    expire = Some((1, number));
                    at += 1;
                }
                _ => return Err(SYNTAX),
            }
            at += 1;
        }
        if keep {
            parsed.deadline = Deadline::Keep;
        }
        if let Some((unit, number)) = expire {
            let number = parse_i64(number).ok_or(NOT_AN_INTEGER)?;
            let invalid: &[u8] = b"ERR invalid expire time in 'set' command";
            // Redis keeps a deadline as Unix milliseconds in an i64, so it
            // refuses one past that; so does this server, to agree.
            let unix_millis = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64);
            let millis = u64::try_from(number)
                .ok()
                .filter(|&number| number > 0)
                .and_then(|number| number.checked_mul(unit))
                .filter(|&millis| millis <= i64::MAX as u64 - unix_millis)
                .ok_or(invalid)?;
            let at = now
                .checked_add(Duration::from_millis(millis))
                .ok_or(invalid)?;
            parsed.deadline = Deadline::At(at);
        }
        Ok(parsed)
    }
}

/// Redis's error for a name it does not know: the name and the start of
/// the arguments, quoted, each cut as redis's C formatting cuts them.
fn unknown_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut message = b"ERR unknown command '".to_vec();
    message.extend_from_slice(c_text(&args[0], 128));
    message.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for arg in &args[1..] {
        if listed >= 128 {
            break;
        }
        let text = c_text(arg, 128 - listed);
        message.push(b'\'');
        message.extend_from_slice(text);
        message.extend_from_slice(b"' ");
        listed += text.len() + 3;
    }
    message
}

/// Redis's error for a wrong count of arguments.
fn wrong_arity(name: &str) -> Vec<u8> {
    format!("ERR wrong number of arguments for '{name}' command").into_bytes()
}

/// `bytes` as C's `%.*s` prints them: up to a NUL, at most `max`.
fn c_text(bytes: &[u8], max: usize) -> &[u8] {
    let end = memchr::memchr(0, bytes).unwrap_or(bytes.len()).min(max);
    &bytes[..end]
}

#[cfg(test)]
mod tests;

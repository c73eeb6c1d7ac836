//! Routing a batch of commands to the cores that own their keys
//! ([`Plan::new`]), and putting the replies that come back together in
//! request order ([`Plan::assemble`]).
//!
//! A command is split into pieces, each a command one core runs on its
//! own shard: `GET`, `SET` and `INCR` are one piece, on the core of their
//! key; `DEL`, `EXISTS`, `MGET` and `MSET` one piece per key (a `GET` per
//! key for `MGET`), each on the core of its key; `DBSIZE`, `FLUSHALL` and
//! `INFO` one piece per core; everything else (`PING`, `COMMAND`,
//! `CONFIG`, unknown names, commands missing their key) one piece on this
//! core, which answers them as any core would. The pieces of one core run
//! there in request order, so a pipeline sees its own writes: a key's
//! commands all go to one core, in the order they came.
//!
//! Splitting by key means every piece's reply is a single value, which
//! is what makes merging simple: a sum of integers, an array of the
//! pieces' values, `OK` once every piece said so.

use crate::resp::{parse_i64, Command, Replies};
use crate::store::shard_of;

/// How a command's reply is made from the replies of its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// One piece, whose reply is the command's.
    One,
    /// `DEL`, `EXISTS`, `DBSIZE`: the sum of the pieces' integers, or the
    /// first reply that is not an integer.
    Sum,
    /// `MGET`: an array of the pieces' replies (each a `GET`'s), in key
    /// order.
    Array,
    /// `MSET`, `FLUSHALL`: `OK` once every piece said `OK`, or the first
    /// reply that is not.
    AllOk,
    /// `INFO`: the first piece's text (this core's) with the keyspace line
    /// made from the totals of every piece's.
    Info,
}

/// One command of the batch: how its reply is merged, and where its
/// pieces end in [`Plan::pieces`] (they start where the step before's
/// end).
#[derive(Debug)]
struct Step {
    merge: Merge,
    pieces_end: usize,
}

/// A batch split by the core that runs each piece.
#[derive(Debug, Default)]
pub struct Plan {
    /// Each core's pieces, in the order they run there.
    pub parts: Vec<Vec<Command>>,
    /// The batch's commands, in request order.
    steps: Vec<Step>,
    /// Each piece's core and its index in that core's part, command by
    /// command.
    pieces: Vec<(usize, usize)>,
}

impl Plan {
    /// Splits `commands` among `cores` cores, `here` being this one.
    pub fn new(commands: impl IntoIterator<Item = Command>, cores: usize, here: usize) -> Plan {
        assert!(here < cores, "core {here} is one of {cores}");
        let mut plan = Plan {
            parts: (0..cores).map(|_| Vec::new()).collect(),
            steps: Vec::new(),
            pieces: Vec::new(),
        };
        for command in commands {
            plan.split(command, here);
        }
        plan
    }

    /// Whether every command is one piece on core `here`: then
    /// `parts[here]` is the whole batch in order, and its replies are the
    /// batch's as they are.
    pub fn is_local(&self, here: usize) -> bool {
        self.steps.iter().all(|step| step.merge == Merge::One)
            && self.pieces.iter().all(|&(core, _)| core == here)
    }

    /// Adds `command`'s pieces and its step.
    fn split(&mut self, Command(args): Command, here: usize) {
        let cores = self.parts.len();
        let name = args[0].to_ascii_lowercase();
        let merge = match (name.as_slice(), args.len()) {
            (b"get" | b"set" | b"incr", 2..) => {
                let core = shard_of(&args[1], cores);
                self.push(core, Command(args));
                Merge::One
            }
            (b"del" | b"exists", 2..) => {
                let mut words = args.into_iter();
                let name = words.next().expect("a command has a name");
                for key in words {
                    let core = shard_of(&key, cores);
                    self.push(core, Command(vec![name.clone(), key]));
                }
                Merge::Sum
            }
            (b"mget", 2..) => {
                for key in args.into_iter().skip(1) {
                    let core = shard_of(&key, cores);
                    self.push(core, Command(vec![b"GET".to_vec(), key]));
                }
                Merge::Array
            }
            // An even count is the wrong arity, which this core answers.
            (b"mset", 3..) if args.len() % 2 == 1 => {
                let mut pairs = args.into_iter();
                let name = pairs.next().expect("a command has a name");
                while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
                    let core = shard_of(&key, cores);
                    self.push(core, Command(vec![name.clone(), key, value]));
                }
                Merge::AllOk
            }
            (b"dbsize", 1) => {
                self.push_everywhere(&args, here);
                Merge::Sum
            }
            (b"flushall", _) => {
                self.push_everywhere(&args, here);
                Merge::AllOk
            }
            (b"info", _) => {
                self.push_everywhere(&args, here);
                Merge::Info
            }
            _ => {
                self.push(here, Command(args));
                Merge::One
            }
        };
        self.steps.push(Step {
            merge,
            pieces_end: self.pieces.len(),
        });
    }

    /// A copy of `args` for every core, this one first.
    fn push_everywhere(&mut self, args: &[Vec<u8>], here: usize) {
        let cores = self.parts.len();
        for core in (here..cores).chain(0..here) {
            self.push(core, Command(args.to_vec()));
        }
    }

    fn push(&mut self, core: usize, piece: Command) {
        self.pieces.push((core, self.parts[core].len()));
        self.parts[core].push(piece);
    }

    /// Appends each command's reply to `out`, in request order, from
    /// `replies`, each core's replies to its part.
    ///
    /// # Panics
    ///
    /// When a core's replies are not one per piece of its part.
    pub fn assemble(&self, replies: &[Replies], out: &mut Replies) {
        assert_eq!(replies.len(), self.parts.len(), "replies from every core");
        let piece = |&(core, index): &(usize, usize)| -> &[u8] {
            let ends = &replies[core].ends;
            let start = if index == 0 { 0 } else { ends[index - 1] };
            &replies[core].bytes[start..ends[index]]
        };
        let mut start = 0;
        for step in &self.steps {
            let pieces = self.pieces[start..step.pieces_end].iter().map(piece);
            start = step.pieces_end;
            match step.merge {
                Merge::One => pieces.for_each(|reply| out.bytes.extend_from_slice(reply)),
                Merge::Sum => sum(pieces, out),
                Merge::Array => {
                    out.array(pieces.len());
                    pieces.for_each(|reply| out.bytes.extend_from_slice(reply));
                }
                Merge::AllOk => match pieces.into_iter().find(|reply| *reply != b"+OK\r\n") {
                    Some(reply) => out.bytes.extend_from_slice(reply),
                    None => out.simple("OK"),
                },
                Merge::Info => info(pieces, out),
            }
            out.finish();
        }
    }
}

/// The sum of the integer replies, or the first reply that is not one.
fn sum<'a>(pieces: impl Iterator<Item = &'a [u8]>, out: &mut Replies) {
    let mut total: i64 = 0;
    for reply in pieces {
        match integer(reply) {
            Some(value) => total = total.saturating_add(value),
            None => return out.bytes.extend_from_slice(reply),
        }
    }
    out.integer(total);
}

/// The value of `:value\r\n`.
fn integer(reply: &[u8]) -> Option<i64> {
    parse_i64(reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?)
}

/// The first piece's `INFO` text, its keyspace line replaced by one with
/// the keys and expiring keys of every piece's added up (none when there
/// are no keys, as redis and [`Shard`](crate::store::Shard) write it).
fn info<'a>(mut pieces: impl Iterator<Item = &'a [u8]>, out: &mut Replies) {
    const KEYSPACE: &[u8] = b"# Keyspace\r\n";
    let first = pieces.next().expect("INFO goes to every core");
    let Some(text) = bulk(first) else {
        return out.bytes.extend_from_slice(first);
    };
    let (mut keys, mut expires) = keyspace(text);
    for reply in pieces {
        let (more_keys, more_expires) = bulk(reply).map_or((0, 0), keyspace);
        keys += more_keys;
        expires += more_expires;
    }
    let end = memchr::memmem::find(text, KEYSPACE).map_or(text.len(), |at| at + KEYSPACE.len());
    let mut merged = text[..end].to_vec();
    if keys > 0 {
        merged.extend(format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n").bytes());
    }
    out.bulk(&merged);
}

/// The content of `$len\r\ncontent\r\n`.
fn bulk(reply: &[u8]) -> Option<&[u8]> {
    let rest = reply.strip_prefix(b"$")?;
    let header = memchr::memchr(b'\r', rest)?;
    let len = usize::try_from(parse_i64(&rest[..header])?).ok()?;
    rest.get(header + 2..header + 2 + len)
}

/// The keys and expiring keys of an `INFO` text's `db0:` line; zeros when
/// it has none.
fn keyspace(text: &[u8]) -> (u64, u64) {
    let field = |name: &[u8]| -> Option<u64> {
        let at = memchr::memmem::find(text, name)? + name.len();
        let digits = text[at..].iter().take_while(|byte| byte.is_ascii_digit());
        let end = at + digits.count();
        std::str::from_utf8(&text[at..end]).ok()?.parse().ok()
    };
    (
        field(b"db0:keys=").unwrap_or(0),
        field(b",expires=").unwrap_or(0),
    )
}

#[cfg(test)]
mod tests;

//! The Redis protocol (RESP2) as the kv server speaks it: an incremental
//! parser for requests, and the encoder of replies.
//!
//! Requests come in two forms, as redis accepts them: an array of bulk
//! strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what redis-cli and
//! redis-benchmark send), and an inline command, one line of words
//! (`GET k\r\n`, what a person types into telnet). The parser keeps the
//! command it is in the middle of, so bytes can be handed to it as they
//! arrive, split anywhere; what it has taken in is consumed from the
//! caller's buffer, which therefore never holds more than one receive and
//! the unfinished line of a header or inline command.
//!
//! Every way a client could make the server hold memory is capped by
//! [`Limits`]: arguments per command, bytes per argument, bytes per
//! command, bytes per line. Input that breaks the protocol or a limit is a
//! [`ProtocolError`]: the server replies `-ERR Protocol error: ...` and
//! closes the connection, as redis does, since it no longer knows where
//! the next command starts.

use std::fmt;

/// One command: its name and arguments, as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<Vec<u8>>);

/// The caps on what one command may make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most arguments in one command (its name included). Redis allows
    /// 1,048,576 to a client that has not authenticated.
    pub args_max: usize,
    /// Most bytes in one bulk string. Redis allows 512 MB
    /// (`proto-max-bulk-len`); this server 64 MiB.
    pub bulk_len_max: usize,
    /// Most memory one command may take while it arrives: the bytes of its
    /// arguments (a bulk string counts in full once its length is read)
    /// plus [`ARG_OVERHEAD`] for each. 128 MiB: two arguments of the
    /// largest size fit, as `SET` or a one-pair `MSET` needs.
    pub command_size_max: usize,
    /// Most bytes in an inline command's line, as redis (64 KiB).
    pub inline_len_max: usize,
}

impl Limits {
    /// The limits the server runs with.
    pub const DEFAULT: Limits = Limits {
        args_max: 1024 * 1024,
        bulk_len_max: 64 * 1024 * 1024,
        command_size_max: 128 * 1024 * 1024,
        inline_len_max: 64 * 1024,
    };
}

/// What each argument costs a command beyond its bytes, for
/// [`Limits::command_size_max`]: the `Vec` that holds it.
pub const ARG_OVERHEAD: usize = std::mem::size_of::<Vec<u8>>();

/// The most bytes of a `*<count>` or `$<length>` line, its CRLF included.
/// A count that fits an `i64` takes at most 20 characters.
const COUNT_LINE_MAX: usize = 32;

/// The most bytes a bulk string's buffer gets before its bytes arrive: a
/// length on its own is cheap to send, so a large bulk string's buffer
/// grows with what actually arrives.
const BULK_PREALLOC_MAX: usize = 64 * 1024;

/// How input broke the protocol or a limit; each displays as redis
/// words it (but for the ones redis does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A `*<count>` line without its CRLF within [`COUNT_LINE_MAX`].
    CountLineTooLong,
    /// A `*<count>` that is not a number, or more than
    /// [`Limits::args_max`].
    InvalidMultibulkLength,
    /// A `$<len>` line without its CRLF within [`COUNT_LINE_MAX`].
    LenLineTooLong,
    /// A `$<len>` that is not a number, negative, or more than
    /// [`Limits::bulk_len_max`].
    InvalidBulkLength,
    /// This byte where an array's next element must start with `$`.
    ExpectedDollar(u8),
    /// A bulk string not followed by CRLF (redis skips two bytes unseen).
    ExpectedCrlf,
    /// A command over [`Limits::command_size_max`] (redis has no such cap).
    CommandTooLarge,
    /// An inline line over [`Limits::inline_len_max`].
    InlineTooLong,
    /// An inline line with a quote not closed, or not followed by a space.
    UnbalancedQuotes,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Protocol error: ")?;
        match *self {
            ProtocolError::CountLineTooLong => f.write_str("too big mbulk count string"),
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::LenLineTooLong => f.write_str("too big bulk count string"),
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::ExpectedDollar(byte) => {
                write!(f, "expected '$', got '{}'", byte.escape_ascii())
            }
            ProtocolError::ExpectedCrlf => f.write_str("expected CRLF after bulk string"),
            ProtocolError::CommandTooLarge => f.write_str("command too large"),
            ProtocolError::InlineTooLong => f.write_str("too big inline request"),
            ProtocolError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
        }
    }
}

/// Where the parser is between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between commands: the next byte starts a command. No arguments held.
    Idle,
    /// Inside an array, before the `$<length>` line of its next bulk
    /// string; `remaining` (at least one) are still to come.
    Header { remaining: usize },
    /// Inside a bulk string of `len` bytes, the last argument held, which
    /// has fewer than `len` bytes or has them all and waits for the CRLF
    /// after them; `remaining` bulk strings follow this one.
    Bulk { len: usize, remaining: usize },
}

/// Why [`Parser::parse_all`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every byte was taken; a command may be under way, waiting for more.
    NeedInput,
    /// The batch reached the most commands asked for; input may be left.
    BatchFull,
    /// The input broke the protocol. The commands before it were parsed.
    Error(ProtocolError),
}

/// The incremental request parser of one connection.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The arguments of the command under way.
    args: Vec<Vec<u8>>,
    /// What the command under way counts against
    /// [`Limits::command_size_max`].
    size: usize,
}

impl Parser {
    /// A parser between commands.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            state: State::Idle,
            args: Vec::new(),
            size: 0,
        }
    }

    /// Parses every whole command at the start of `input`, up to
    /// `batch_max` of them, onto `commands`, and takes the start of an
    /// unfinished one in; returns how many bytes of `input` it consumed and
    /// why it stopped. The caller drops the consumed bytes and hands the
    /// rest back, with more after it, next time.
    pub fn parse_all(
        &mut self,
        input: &[u8],
        commands: &mut Vec<Command>,
        batch_max: usize,
    ) -> (usize, Stop) {
        let mut consumed = 0;
        let mut parsed = 0;
        while parsed < batch_max {
            let (taken, step) = self.step(&input[consumed..]);
            consumed += taken;
            match step {
                Ok(Some(command)) => {
                    commands.push(command);
                    parsed += 1;
                }
                Ok(None) if taken == 0 => return (consumed, Stop::NeedInput),
                Ok(None) => {}
                Err(error) => return (consumed, Stop::Error(error)),
            }
        }
        (consumed, Stop::BatchFull)
    }

    /// One step: consumes what it can of `input` and returns how much, and
    /// a command if one ended. Consuming nothing and ending no command
    /// means it needs more input.
    fn step(&mut self, input: &[u8]) -> (usize, Result<Option<Command>, ProtocolError>) {
        match self.state {
            State::Idle => match input.first() {
                None => (0, Ok(None)),
                Some(b'*') => self.array_header(input),
                Some(_) => self.inline(input),
            },
            State::Header { remaining } => self.bulk_header(input, remaining),
            State::Bulk { len, remaining } => self.bulk_body(input, len, remaining),
        }
    }

    /// `*<count>\r\n`: the start of an array of `count` bulk strings. A
    /// count of zero or less is no command, as in redis.
    fn array_header(&mut self, input: &[u8]) -> (usize, Result<Option<Command>, ProtocolError>) {
        let (taken, count) = match count_line(input, ProtocolError::CountLineTooLong) {
            Ok(Some(line)) => line,
            Ok(None) => return (0, Ok(None)),
            Err(error) => return (0, Err(error)),
        };
        match count {
            Some(count) if count <= 0 => (taken, Ok(None)),
            Some(count) if count as u64 <= self.limits.args_max as u64 => {
                let remaining = count as usize;
                self.args = Vec::with_capacity(remaining.min(64));
                self.size = 0;
                self.state = State::Header { remaining };
                (taken, Ok(None))
            }
            _ => (0, Err(ProtocolError::InvalidMultibulkLength)),
        }
    }

    /// `$<len>\r\n`: the start of the next bulk string.
    fn bulk_header(
        &mut self,
        input: &[u8],
        remaining: usize,
    ) -> (usize, Result<Option<Command>, ProtocolError>) {
        match input.first() {
            None => return (0, Ok(None)),
            Some(b'$') => {}
            Some(&other) => return (0, Err(ProtocolError::ExpectedDollar(other))),
        }
        let (taken, len) = match count_line(input, ProtocolError::LenLineTooLong) {
            Ok(Some(line)) => line,
            Ok(None) => return (0, Ok(None)),
            Err(error) => return (0, Err(error)),
        };
        let len = match len {
            Some(len) if len >= 0 && len as u64 <= self.limits.bulk_len_max as u64 => len as usize,
            _ => return (0, Err(ProtocolError::InvalidBulkLength)),
        };
        // At most args_max * ARG_OVERHEAD + bulk_len_max more: no overflow
        // on a 64-bit machine.
        self.size += len + ARG_OVERHEAD;
        if self.size > self.limits.command_size_max {
            return (0, Err(ProtocolError::CommandTooLarge));
        }
        self.args
            .push(Vec::with_capacity(len.min(BULK_PREALLOC_MAX)));
        self.state = State::Bulk {
            len,
            remaining: remaining - 1,
        };
        (taken, Ok(None))
    }

    /// The bytes of the bulk string under way, then its CRLF.
    fn bulk_body(
        &mut self,
        input: &[u8],
        len: usize,
        remaining: usize,
    ) -> (usize, Result<Option<Command>, ProtocolError>) {
        let arg = self
            .args
            .last_mut()
            .expect("a bulk string under way is held");
        let missing = len - arg.len();
        if missing > 0 {
            let taken = missing.min(input.len());
            arg.extend_from_slice(&input[..taken]);
            return (taken, Ok(None));
        }
        match input {
            [b'\r', b'\n', ..] => {}
            [] | [b'\r'] => return (0, Ok(None)),
            _ => return (0, Err(ProtocolError::ExpectedCrlf)),
        }
        if remaining > 0 {
            self.state = State::Header { remaining };
            return (2, Ok(None));
        }
        self.state = State::Idle;
        self.size = 0;
        (2, Ok(Some(Command(std::mem::take(&mut self.args)))))
    }

    /// An inline command: one line, ended by LF or CRLF, of words split as
    /// redis splits them (`sdssplitargs`). An empty line is no command.
    fn inline(&mut self, input: &[u8]) -> (usize, Result<Option<Command>, ProtocolError>) {
        let Some(lf) = memchr::memchr(b'\n', input) else {
            if input.len() > self.limits.inline_len_max {
                return (0, Err(ProtocolError::InlineTooLong));
            }
            return (0, Ok(None));
        };
        if lf > self.limits.inline_len_max {
            return (0, Err(ProtocolError::InlineTooLong));
        }
        let line = &input[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Redis splits the line as a C string, so a NUL ends it.
        let line = &line[..memchr::memchr(0, line).unwrap_or(line.len())];
        match split_args(line) {
            Some(args) if args.is_empty() => (lf + 1, Ok(None)),
            Some(args) if args.len() > self.limits.args_max => {
                (0, Err(ProtocolError::InvalidMultibulkLength))
            }
            Some(args) => (lf + 1, Ok(Some(Command(args)))),
            None => (0, Err(ProtocolError::UnbalancedQuotes)),
        }
    }
}

/// A `*<n>` or `$<n>` line at the start of `input`: the bytes it takes and
/// its number (`None` when it is not one). `Ok(None)` while its CRLF has
/// not arrived; `too_long` when no CRLF comes within [`COUNT_LINE_MAX`].
fn count_line(
    input: &[u8],
    too_long: ProtocolError,
) -> Result<Option<(usize, Option<i64>)>, ProtocolError> {
    let window = &input[..input.len().min(COUNT_LINE_MAX)];
    let Some(cr) = memchr::memchr(b'\r', window) else {
        if input.len() >= COUNT_LINE_MAX {
            return Err(too_long);
        }
        return Ok(None);
    };
    match input.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((cr + 2, parse_i64(&input[1..cr])))),
        Some(_) => Ok(Some((cr + 2, None))),
    }
}

/// A decimal integer written as redis writes one and accepts one
/// (`string2ll`): an optional `-`, then `0` alone or digits without a
/// leading zero, in range of an `i64`; no `+`, no spaces.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    // Accumulating downwards reaches i64::MIN, which has no positive twin.
    let mut value: i64 = 0;
    for &digit in digits {
        value = value
            .checked_mul(10)?
            .checked_sub(i64::from(digit - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// The words of an inline command, as redis's `sdssplitargs` splits them:
/// separated by whitespace; inside double quotes the escapes `\n \r \t \b
/// \a \\ \" \xHH` (and `\` before any other byte stands for it); inside
/// single quotes only `\'`. A closing quote must be followed by
/// whitespace or the end. `None` for unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|byte| is_space(*byte)) {
            at += 1;
        }
        if at == line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        loop {
            match line.get(at) {
                None => break,
                Some(b'"') => at = double_quoted(line, at + 1, &mut arg)?,
                Some(b'\'') => at = single_quoted(line, at + 1, &mut arg)?,
                Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                Some(&byte) => {
                    arg.push(byte);
                    at += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// The whitespace of C's `isspace`.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A double-quoted part starting at `at` (after the quote) onto `arg`;
/// returns where the word goes on: the end of the word, just after the
/// closing quote.
fn double_quoted(line: &[u8], mut at: usize, arg: &mut Vec<u8>) -> Option<usize> {
    loop {
        match line.get(at..)? {
            [b'\\', b'x', high, low, ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                arg.push((hex_value(*high) << 4) | hex_value(*low));
                at += 4;
            }
            [b'\\', escaped, ..] => {
                arg.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => *other,
                });
                at += 2;
            }
            [b'"', rest @ ..] => return closing_quote(rest, at + 1),
            [byte, ..] => {
                arg.push(*byte);
                at += 1;
            }
            [] => return None,
        }
    }
}

/// A single-quoted part starting at `at` (after the quote) onto `arg`, as
/// [`double_quoted`].
fn single_quoted(line: &[u8], mut at: usize, arg: &mut Vec<u8>) -> Option<usize> {
    loop {
        match line.get(at..)? {
            [b'\\', b'\'', ..] => {
                arg.push(b'\'');
                at += 2;
            }
            [b'\'', rest @ ..] => return closing_quote(rest, at + 1),
            [byte, ..] => {
                arg.push(*byte);
                at += 1;
            }
            [] => return None,
        }
    }
}

/// After a closing quote, at `after` with `rest` following: the word ends
/// there, and only whitespace or the end of the line may follow.
fn closing_quote(rest: &[u8], after: usize) -> Option<usize> {
    match rest.first() {
        None => Some(after),
        Some(&byte) if is_space(byte) => Some(after),
        Some(_) => None,
    }
}

/// The value of an ASCII hex digit.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The replies to a batch of commands, encoded back to back as they go on
/// the wire, and where each ends.
///
/// The ends are what lets replies computed apart be put back in request
/// order: once commands are routed to the cores that own their keys, each
/// core answers its part of a pipeline in one `Replies`, and the
/// connection interleaves them.
#[derive(Debug, Default)]
pub struct Replies {
    /// The encoded replies.
    pub bytes: Vec<u8>,
    /// The end of each finished reply in `bytes`, in order.
    pub ends: Vec<usize>,
}

impl Replies {
    /// Ends the reply under way: what was encoded since the last end is one
    /// command's reply.
    pub fn finish(&mut self) {
        debug_assert!(self.ends.last().is_none_or(|&end| end < self.bytes.len()));
        self.ends.push(self.bytes.len());
    }

    /// `+text`: a status such as `OK` (no CR or LF in it).
    pub fn simple(&mut self, text: &str) {
        debug_assert!(!text.contains(['\r', '\n']));
        self.line(b'+', text.as_bytes());
    }

    /// `-message`: an error, its message starting with a code such as
    /// `ERR`. A CR or LF in it would break the framing, so each becomes a
    /// space, as redis does.
    pub fn error(&mut self, message: &[u8]) {
        self.bytes.push(b'-');
        self.bytes.extend(message.iter().map(|&byte| {
            if byte == b'\r' || byte == b'\n' {
                b' '
            } else {
                byte
            }
        }));
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// `:value`.
    pub fn integer(&mut self, value: i64) {
        self.line(b':', itoa(value).as_bytes());
    }

    /// `$len\r\nbytes\r\n`.
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.line(b'$', itoa(bytes.len() as i64).as_bytes());
        self.bytes.extend_from_slice(bytes);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// `$-1`: no value.
    pub fn null(&mut self) {
        self.bytes.extend_from_slice(b"$-1\r\n");
    }

    /// `*len`: an array, whose `len` elements are encoded next.
    pub fn array(&mut self, len: usize) {
        self.line(b'*', itoa(len as i64).as_bytes());
    }

    /// One line: the type byte, the text, CRLF.
    fn line(&mut self, kind: u8, text: &[u8]) {
        self.bytes.push(kind);
        self.bytes.extend_from_slice(text);
        self.bytes.extend_from_slice(b"\r\n");
    }
}

/// The decimal form of `value`, on the stack.
fn itoa(value: i64) -> Decimal {
    let mut decimal = Decimal {
        digits: [0; 20],
        start: 20,
    };
    let mut rest = value.unsigned_abs();
    loop {
        decimal.start -= 1;
        decimal.digits[decimal.start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        decimal.start -= 1;
        decimal.digits[decimal.start] = b'-';
    }
    decimal
}

/// An integer's decimal digits: `digits[start..]`. 20 bytes hold any
/// `i64`, `-9223372036854775808` included.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

#[cfg(test)]
mod tests;

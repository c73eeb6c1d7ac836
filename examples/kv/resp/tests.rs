//! The parser fed whole, split at every byte and byte by byte; pipelines,
//! inline commands, malformed input, every limit; integers as redis reads
//! them; the reply encoding.

use super::*;

/// A command from its words.
fn command(words: &[&[u8]]) -> Command {
    Command(words.iter().map(|word| word.to_vec()).collect())
}

/// What one parser makes of `chunks` handed over one after another, each
/// appended to what it left unconsumed, as a connection does; stops at
/// the first error.
fn parse_chunks(chunks: &[&[u8]], limits: Limits) -> (Vec<Command>, Stop, Vec<u8>) {
    let mut parser = Parser::new(limits);
    let mut input = Vec::new();
    let mut commands = Vec::new();
    let mut stop = Stop::NeedInput;
    for chunk in chunks {
        input.extend_from_slice(chunk);
        loop {
            let (consumed, stopped) = parser.parse_all(&input, &mut commands, usize::MAX);
            input.drain(..consumed);
            stop = stopped;
            if stop != Stop::BatchFull {
                break;
            }
        }
        if let Stop::Error(_) = stop {
            break;
        }
    }
    (commands, stop, input)
}

/// [`parse_chunks`] of one chunk with the default limits.
fn parse(input: &[u8]) -> (Vec<Command>, Stop) {
    let (commands, stop, _) = parse_chunks(&[input], Limits::DEFAULT);
    (commands, stop)
}

/// A pipeline of every form: arrays with binary, empty and CRLF-holding
/// bulk strings, an empty array (no command), inline commands with quotes,
/// an empty inline line (no command).
const PIPELINE: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\
    *3\r\n$3\r\nSET\r\n$4\r\nkey\0\r\n$6\r\na\r\nb\xff\x00\r\n\
    *0\r\n\
    *2\r\n$4\r\nPING\r\n$0\r\n\r\n\
    PING\r\n\
    \r\n\
    set  k \"two words\\n\" 'it\\'s'\n\
    *1\r\n$6\r\nDBSIZE\r\n";

fn pipeline_commands() -> Vec<Command> {
    vec![
        command(&[b"GET", b"k"]),
        command(&[b"SET", b"key\0", b"a\r\nb\xff\x00"]),
        command(&[b"PING", b""]),
        command(&[b"PING"]),
        command(&[b"set", b"k", b"two words\n", b"it's"]),
        command(&[b"DBSIZE"]),
    ]
}

#[test]
fn a_pipeline_parses_whole_in_order() {
    let (commands, stop) = parse(PIPELINE);
    assert_eq!(commands, pipeline_commands());
    assert_eq!(stop, Stop::NeedInput);
}

#[test]
fn a_pipeline_split_at_every_byte_parses_the_same() {
    for split in 0..=PIPELINE.len() {
        let (commands, stop, left) =
            parse_chunks(&[&PIPELINE[..split], &PIPELINE[split..]], Limits::DEFAULT);
        assert_eq!(commands, pipeline_commands(), "split at {split}");
        assert_eq!((stop, left.len()), (Stop::NeedInput, 0), "split at {split}");
    }
}

#[test]
fn a_pipeline_fed_byte_by_byte_parses_the_same_and_holds_little() {
    let mut parser = Parser::new(Limits::DEFAULT);
    let mut input = Vec::new();
    let mut commands = Vec::new();
    let mut held_max = 0;
    for &byte in PIPELINE {
        input.push(byte);
        let (consumed, stop) = parser.parse_all(&input, &mut commands, usize::MAX);
        assert_eq!(stop, Stop::NeedInput);
        input.drain(..consumed);
        held_max = held_max.max(input.len());
    }
    assert_eq!(commands, pipeline_commands());
    // Bulk bytes are taken in as they come; only a line waits whole, until
    // its LF: the longest here is the inline `set` line.
    assert_eq!(held_max, b"set  k \"two words\\n\" 'it\\'s'".len());
}

#[test]
fn an_incomplete_command_consumes_its_start_and_waits() {
    let mut parser = Parser::new(Limits::DEFAULT);
    let mut commands = Vec::new();
    // A header line without its CRLF is left in the buffer.
    assert_eq!(
        parser.parse_all(b"*2\r\n$3", &mut commands, 16),
        (4, Stop::NeedInput)
    );
    // The bytes of a bulk string are taken as they come.
    assert_eq!(
        parser.parse_all(b"$3\r\nGE", &mut commands, 16),
        (6, Stop::NeedInput)
    );
    assert_eq!(
        parser.parse_all(b"T\r", &mut commands, 16),
        (1, Stop::NeedInput)
    );
    assert_eq!(
        parser.parse_all(b"\r\n$1\r\nk\r\n", &mut commands, 16),
        (9, Stop::NeedInput)
    );
    assert_eq!(commands, vec![command(&[b"GET", b"k"])]);
    // An inline command waits for its line end.
    assert_eq!(
        parser.parse_all(b"PIN", &mut commands, 16),
        (0, Stop::NeedInput)
    );
}

#[test]
fn a_full_batch_stops_with_the_rest_unconsumed() {
    let mut parser = Parser::new(Limits::DEFAULT);
    let mut commands = Vec::new();
    let input = b"PING\r\nPING\r\nPING\r\n";
    assert_eq!(
        parser.parse_all(input, &mut commands, 2),
        (12, Stop::BatchFull)
    );
    assert_eq!(commands.len(), 2);
    assert_eq!(
        parser.parse_all(&input[12..], &mut commands, 2),
        (6, Stop::NeedInput)
    );
    assert_eq!(commands.len(), 3);
}

#[test]
fn inline_commands_split_as_redis_splits_them() {
    let cases: &[(&[u8], &[&[u8]])] = &[
        (b"PING\r\n", &[b"PING"]),
        (b"PING\n", &[b"PING"]),
        (b"  get\t k  \r\n", &[b"get", b"k"]),
        (b"set k \"a b\"\r\n", &[b"set", b"k", b"a b"]),
        (
            b"set k \"\\x41\\x4a\\t\\r\\n\\b\\a\\\\\\\"\\q\"\n",
            &[b"set", b"k", b"AJ\t\r\n\x08\x07\\\"q"],
        ),
        (b"set k 'a \\' \\n'\n", &[b"set", b"k", b"a ' \\n"]),
        (b"set k \"\"\n", &[b"set", b"k", b""]),
        // A quote inside a word opens a quoted part of it.
        (b"set k a\"b c\"\n", &[b"set", b"k", b"ab c"]),
        // "\x4" is no hex escape: the `x` stands for itself.
        (b"echo \"\\x4\"\n", &[b"echo", b"x4"]),
        // Redis reads the line as a C string: a NUL ends it.
        (b"get k\0 ignored\n", &[b"get", b"k"]),
    ];
    for (line, words) in cases {
        assert_eq!(
            parse(line),
            (vec![command(words)], Stop::NeedInput),
            "{}",
            line.escape_ascii()
        );
    }
    // Blank lines are no command.
    assert_eq!(parse(b"\r\n \t\r\n\n"), (vec![], Stop::NeedInput));
}

#[test]
fn malformed_input_is_a_protocol_error_after_the_commands_before_it() {
    use ProtocolError::*;
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"*x\r\n", InvalidMultibulkLength),
        (b"*1x\r\n", InvalidMultibulkLength),
        (b"*01\r\n", InvalidMultibulkLength),
        (b"*+1\r\n", InvalidMultibulkLength),
        (b"*\r\n", InvalidMultibulkLength),
        (b"*1\rx", InvalidMultibulkLength),
        (b"*9223372036854775808\r\n", InvalidMultibulkLength),
        (b"*1048577\r\n", InvalidMultibulkLength),
        (b"*1234567890123456789012345678901", CountLineTooLong),
        (b"*1\r\nGET\r\n", ExpectedDollar(b'G')),
        (b"*1\r\n:1\r\n", ExpectedDollar(b':')),
        (b"*1\r\n$-1\r\n", InvalidBulkLength),
        (b"*1\r\n$x\r\n", InvalidBulkLength),
        (b"*1\r\n$67108865\r\n", InvalidBulkLength),
        (b"*1\r\n$1234567890123456789012345678901", LenLineTooLong),
        (b"*1\r\n$3\r\nabcd\r\n", ExpectedCrlf),
        (b"*1\r\n$3\r\nabc\rx", ExpectedCrlf),
        (b"*1\r\n$3\r\nabc\n\r", ExpectedCrlf),
        (b"set k \"open\r\n", UnbalancedQuotes),
        (b"set k 'open\r\n", UnbalancedQuotes),
        (b"set k \"a\"b\r\n", UnbalancedQuotes),
    ];
    for (bad, error) in cases {
        let mut input = b"PING\r\n*1\r\n$4\r\nPING\r\n".to_vec();
        input.extend_from_slice(bad);
        let (commands, stop) = parse(&input);
        assert_eq!(
            (commands, stop),
            (vec![command(&[b"PING"]); 2], Stop::Error(*error)),
            "{}",
            bad.escape_ascii()
        );
    }
}

#[test]
fn protocol_errors_read_as_redis_words_them() {
    use ProtocolError::*;
    let cases = [
        (CountLineTooLong, "too big mbulk count string"),
        (InvalidMultibulkLength, "invalid multibulk length"),
        (LenLineTooLong, "too big bulk count string"),
        (InvalidBulkLength, "invalid bulk length"),
        (ExpectedDollar(b'G'), "expected '$', got 'G'"),
        (ExpectedDollar(0xff), "expected '$', got '\\xff'"),
        (ExpectedCrlf, "expected CRLF after bulk string"),
        (CommandTooLarge, "command too large"),
        (InlineTooLong, "too big inline request"),
        (UnbalancedQuotes, "unbalanced quotes in request"),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), format!("Protocol error: {text}"));
    }
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    assert_eq!(
        Limits::DEFAULT,
        Limits {
            args_max: 1 << 20,
            bulk_len_max: 64 << 20,
            command_size_max: 128 << 20,
            inline_len_max: 64 << 10,
        }
    );
    assert_eq!(ARG_OVERHEAD, 24);
}

/// The words of the one command an input parses to, or its error.
type Parsed = Result<&'static [&'static [u8]], ProtocolError>;

/// Limits small enough to reach in a test.
const SMALL: Limits = Limits {
    args_max: 3,
    bulk_len_max: 8,
    command_size_max: 12 + 3 * ARG_OVERHEAD,
    inline_len_max: 16,
};

#[test]
fn every_limit_holds_at_its_value_and_refuses_past_it() {
    use ProtocolError::*;
    let cases: &[(&[u8], Parsed)] = &[
        (
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
            Ok(&[b"a", b"b", b"c"]),
        ),
        (b"*4\r\n", Err(InvalidMultibulkLength)),
        (b"*1\r\n$8\r\n12345678\r\n", Ok(&[b"12345678"])),
        (b"*1\r\n$9\r\n", Err(InvalidBulkLength)),
        // 4 + 8 bytes of arguments fit, 4 + 8 + 1 do not.
        (
            b"*3\r\n$4\r\nabcd\r\n$8\r\n12345678\r\n$0\r\n\r\n",
            Ok(&[b"abcd", b"12345678", b""]),
        ),
        (
            b"*3\r\n$4\r\nabcd\r\n$8\r\n12345678\r\n$1\r\n",
            Err(CommandTooLarge),
        ),
        // A line of 16 bytes before its LF fits.
        (b"1234567890123456\n", Ok(&[b"1234567890123456"])),
        (b"12345678901234567\n", Err(InlineTooLong)),
        // Without an LF, more than 16 bytes are refused before the end.
        (b"12345678901234567", Err(InlineTooLong)),
        (b"a b c d\n", Err(InvalidMultibulkLength)),
    ];
    for (input, expected) in cases {
        let (commands, stop, _) = parse_chunks(&[input], SMALL);
        let expected = match expected {
            Ok(words) => (vec![command(words)], Stop::NeedInput),
            Err(error) => (vec![], Stop::Error(*error)),
        };
        assert_eq!((commands, stop), expected, "{}", input.escape_ascii());
    }
}

#[test]
fn a_bulk_length_alone_does_not_allocate_it() {
    let mut parser = Parser::new(Limits::DEFAULT);
    let mut commands = Vec::new();
    let header = b"*1\r\n$67108864\r\n";
    assert_eq!(
        parser.parse_all(header, &mut commands, 16),
        (header.len(), Stop::NeedInput)
    );
    assert_eq!(parser.args.len(), 1);
    assert_eq!(parser.args[0].capacity(), BULK_PREALLOC_MAX);
    assert_eq!(parser.size, (64 << 20) + ARG_OVERHEAD);
}

#[test]
fn integers_parse_as_redis_parses_them() {
    let good: &[(&[u8], i64)] = &[
        (b"0", 0),
        (b"7", 7),
        (b"-1", -1),
        (b"1234567890", 1234567890),
        (b"9223372036854775807", i64::MAX),
        (b"-9223372036854775808", i64::MIN),
    ];
    for (text, value) in good {
        assert_eq!(parse_i64(text), Some(*value), "{}", text.escape_ascii());
    }
    let bad: &[&[u8]] = &[
        b"",
        b"-",
        b"+1",
        b"01",
        b"-0",
        b"00",
        b" 1",
        b"1 ",
        b"1a",
        b"1.0",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"99999999999999999999999",
    ];
    for text in bad {
        assert_eq!(parse_i64(text), None, "{}", text.escape_ascii());
    }
}

#[test]
fn replies_encode_as_redis_encodes_them_and_mark_their_ends() {
    let mut replies = Replies::default();
    replies.simple("OK");
    replies.finish();
    replies.error(b"ERR bad\r\nline");
    replies.finish();
    replies.integer(0);
    replies.finish();
    replies.integer(i64::MIN);
    replies.finish();
    replies.bulk(b"a\r\nb");
    replies.finish();
    replies.bulk(b"");
    replies.finish();
    replies.null();
    replies.finish();
    replies.array(2);
    replies.integer(-12);
    replies.null();
    replies.finish();
    replies.array(0);
    replies.finish();
    let expected: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR bad  line\r\n",
        b":0\r\n",
        b":-9223372036854775808\r\n",
        b"$4\r\na\r\nb\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*2\r\n:-12\r\n$-1\r\n",
        b"*0\r\n",
    ];
    assert_eq!(replies.bytes, expected.concat());
    let ends: Vec<usize> = expected
        .iter()
        .scan(0, |end, reply| {
            *end += reply.len();
            Some(*end)
        })
        .collect();
    assert_eq!(replies.ends, ends);
}

//! Seeded random-input tests of the HTTP request parsers of the hello and
//! file_server examples: a corpus of hostile requests (duplicate, huge,
//! signed and listed Content-Length, obs-fold, bare CR and LF, NUL bytes,
//! long lines, many headers, pipelined garbage, chunked bodies,
//! percent-encoded traversal, paths that are not UTF-8), every truncation
//! of it, and mutations of it (bit flips, inserted and deleted bytes,
//! splices of two requests, repeated pieces), each parsed whole and split
//! at random points as it would arrive.
//!
//! What must hold for every input: no panic; an outcome from the allowed
//! set; a request accepted only when its head is unambiguous (checked
//! against a strict reading written here, apart from the parsers: CRLF
//! line ends only, token names, no control bytes, one plain decimal
//! `Content-Length` at most, no `Transfer-Encoding`) and as long as that
//! reading says; a request never longer than the input nor than the
//! limits; a `Partial` only while the input is under what the server may
//! be made to buffer (`HEAD_MAX`, plus `BODY_MAX` for hello), and decided
//! once that much has arrived; a prefix that is not `Partial` decides the
//! same outcome as the whole input; and hello's responses the same however
//! the bytes were split.
//!
//! Deterministic: fixed seeds, a small PRNG written here. A failure names
//! the seed, the iteration and the input. `CORERING_FUZZ_ITERATIONS` sets
//! the inputs per parser (default 200,000 in release, 20,000 in debug).

#[allow(dead_code)] // the connection code is tested in tests/hello.rs
#[path = "../examples/hello/http.rs"]
mod hello;

#[allow(dead_code)] // the connection code is tested in tests/file_server.rs
#[path = "../examples/file_server/http.rs"]
mod file_server;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Component;

/// The seeds; each runs an equal share of the iterations.
const SEEDS: [u64; 8] = [
    1,
    2,
    0x5eed,
    0xc0ffee,
    0xdead_beef,
    0x0123_4567_89ab_cdef,
    0xfeed_face_cafe_f00d,
    u64::MAX,
];

/// Inputs per parser.
fn iterations() -> usize {
    std::env::var("CORERING_FUZZ_ITERATIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            20_000
        } else {
            200_000
        })
}

/// SplitMix64: small, fast, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (which is not 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Requests, well-formed and hostile, that both servers are fed.
fn corpus() -> Vec<Vec<u8>> {
    let mut corpus: Vec<Vec<u8>> = [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"HEAD /docs/notes.txt HTTP/1.1\r\nRange: bytes=0-1\r\nConnection: close\r\n\r\n",
        b"POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        // Framing a proxy could read another way.
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length:  \r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: identity\r\n\r\nabc",
        // Line ends and bytes other parsers take differently.
        b"GET / HTTP/1.1\r\nX-A: a\r\n folded: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: a\r\n\tContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nX-A: a\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nX-A: \0\r\n\r\n",
        b"GET /\0 HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 \r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\n\r\n",
        b"get / http/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\n: no name\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        // Pipelined garbage after a good request.
        b"GET / HTTP/1.1\r\n\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // The file server's paths: traversal, however encoded, and names
        // that are not UTF-8.
        b"GET /../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /docs/../../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /%2E%2E%2Fetc%2Fpasswd HTTP/1.1\r\n\r\n",
        b"GET /..%2f..%2fetc/passwd HTTP/1.1\r\n\r\n",
        b"GET /%252e%252e/etc HTTP/1.1\r\n\r\n",
        b"GET /a%00b HTTP/1.1\r\n\r\n",
        b"GET /%ff%fe HTTP/1.1\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET /%+1 HTTP/1.1\r\n\r\n",
        b"GET /% HTTP/1.1\r\n\r\n",
        b"GET /%e HTTP/1.1\r\n\r\n",
        b"GET //etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /./././index.html?x=../..#../ HTTP/1.1\r\n\r\n",
        b"GET http://a/index.html HTTP/1.1\r\n\r\n",
        b"GET * HTTP/1.1\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nRange: bytes=-0\r\n\r\n",
        b"GET / HTTP/1.1\r\nRange: bytes=18446744073709551615-\r\n\r\n",
        b"GET / HTTP/1.1\r\nRange: bytes=0-18446744073709551616\r\n\r\n",
    ]
    .iter()
    .map(|request| request.to_vec())
    .collect();
    // A line as long as a head may be, and one byte over.
    for len in [hello::HEAD_MAX - 24, hello::HEAD_MAX - 23, hello::HEAD_MAX] {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(len, b'x');
        long.extend_from_slice(b"\r\n\r\n");
        corpus.push(long);
    }
    let mut long_target = b"GET /".to_vec();
    long_target.resize(5000, b'a');
    long_target.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    corpus.push(long_target);
    // Header count explosion.
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    corpus.push(many);
    // Bodies at hello's limit and just past it.
    for len in [hello::BODY_MAX, hello::BODY_MAX + 1] {
        let mut post = format!("POST / HTTP/1.1\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        post.resize(post.len() + len, b'b');
        corpus.push(post);
    }
    corpus
}

/// Bytes worth inserting: the ones parsers decide on.
const INTERESTING: &[u8] = b"\r\n\0: \t%./0123456789-+,;=?#\x7f\x80\xff";

/// One input: a corpus entry, changed by a few random mutations.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = rng.pick(corpus).clone();
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            // Flip a bit.
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            // Insert a byte, interesting or random.
            1 => {
                let byte = if rng.chance(2) {
                    *rng.pick(INTERESTING)
                } else {
                    rng.next() as u8
                };
                input.insert(rng.below(len + 1), byte);
            }
            // Delete a run of bytes.
            2 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(8)).min(len);
                input.drain(at..end);
            }
            // Splice: this input's start, another's end.
            3 => {
                let other = rng.pick(corpus);
                let cut = rng.below(len + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            // Pipeline another request (or its start) after this one.
            4 => {
                let other = rng.pick(corpus);
                input.extend_from_slice(&other[..rng.below(other.len() + 1)]);
            }
            // Repeat a piece many times (long lines, many headers).
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                let piece = input[at..end].to_vec();
                let most = if rng.chance(8) { 2000 } else { 16 };
                let times = 1 + rng.below(most);
                let tail = input.split_off(end);
                for _ in 0..times {
                    input.extend_from_slice(&piece);
                }
                input.extend_from_slice(&tail);
            }
            // Truncate.
            6 => input.truncate(rng.below(len + 1)),
            // Overwrite a byte with an interesting one.
            7 if len > 0 => {
                let at = rng.below(len);
                input[at] = *rng.pick(INTERESTING);
            }
            // Replace a digit run with a huge or odd number.
            _ => {
                let numbers: [&[u8]; 6] = [
                    b"0",
                    b"18446744073709551615",
                    b"18446744073709551616",
                    b"65536",
                    b"65537",
                    b"00000000000000000000000000001",
                ];
                if let Some(at) = input.iter().position(u8::is_ascii_digit) {
                    let end = input[at..]
                        .iter()
                        .position(|byte| !byte.is_ascii_digit())
                        .map_or(input.len(), |n| at + n);
                    input.splice(at..end, rng.pick(&numbers).iter().copied());
                }
            }
        }
    }
    input
}

/// Runs `check` on `iterations` inputs from each seed's share, and on every
/// truncation of every corpus entry first; a panic is reported with the
/// seed, the iteration and the input.
fn fuzz(name: &str, check: impl Fn(&[u8], &mut Rng)) -> usize {
    let corpus = corpus();
    let mut count = 0;
    // `seed` is `None` for the truncations of the corpus, where
    // `iteration` is the entry's index.
    let run = |input: &[u8], rng: &mut Rng, seed: Option<u64>, iteration: usize| {
        let state = rng.0;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(input, rng))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let source = match seed {
                Some(seed) => format!("seed {seed:#x}, iteration {iteration}"),
                None => format!("corpus entry {iteration} truncated"),
            };
            panic!(
                "{name}: {source} (rng state {state:#x}), input of {} bytes: \"{}\"\n{message}",
                input.len(),
                input.escape_ascii()
            );
        }
    };
    // Every truncation of every entry (of the long ones: of their first
    // bytes, and around the head limit and their end).
    let mut rng = Rng(0);
    for (index, entry) in corpus.iter().enumerate() {
        let len = entry.len();
        let around = |at: usize| at.saturating_sub(8)..(at + 9).min(len + 1);
        let cuts = (0..=len.min(512))
            .chain(around(hello::HEAD_MAX))
            .chain(around(len));
        for cut in cuts {
            run(&entry[..cut], &mut rng, None, index);
            count += 1;
        }
    }
    let per_seed = iterations() / SEEDS.len();
    for seed in SEEDS {
        let mut rng = Rng(seed);
        for iteration in 0..per_seed {
            let input = mutate(&mut rng, &corpus);
            run(&input, &mut rng, Some(seed), iteration);
            count += 1;
        }
    }
    println!("fuzz iterations: {name} {count}");
    count
}

/// A few prefix lengths of `input` to parse as if it had arrived so far:
/// random ones, and the ends of the input.
fn cuts(input: &[u8], rng: &mut Rng) -> Vec<usize> {
    let mut cuts = vec![0, input.len().saturating_sub(1)];
    for _ in 0..3 {
        cuts.push(rng.below(input.len() + 1));
    }
    cuts
}

/// The input split into chunks, as reads might deliver it.
fn chunks<'a>(input: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let most = if rng.chance(2) { 16 } else { 4096 };
        let take = (1 + rng.below(most)).min(rest.len());
        let (chunk, after) = rest.split_at(take);
        chunks.push(chunk);
        rest = after;
    }
    chunks
}

/// The strict reading of the head at the start of `input` that the
/// parsers are checked against, written apart from them: `Ok` with the
/// head's length and its `Content-Length`, or why a proxy and a server
/// could frame it differently. `any_control` refuses every control byte
/// but HTAB in values, not only CR, LF and NUL.
fn strict_head(input: &[u8], any_control: bool) -> Result<(usize, Option<u64>), String> {
    let end = input
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("no end of head")?;
    let mut lines = Vec::new();
    let mut rest = &input[..end];
    loop {
        match rest.windows(2).position(|window| window == b"\r\n") {
            Some(at) => {
                lines.push(&rest[..at]);
                rest = &rest[at + 2..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    let token = |bytes: &[u8]| {
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let request_line: Vec<&[u8]> = lines[0].split(|&b| b == b' ').collect();
    match request_line[..] {
        [method, target, b"HTTP/1.1" | b"HTTP/1.0"]
            if token(method)
                && !target.is_empty()
                && target.iter().all(|b| b.is_ascii_graphic()) => {}
        _ => return Err(format!("request line {}", lines[0].escape_ascii())),
    }
    let mut length = None;
    for line in &lines[1..] {
        let colon = line.iter().position(|&b| b == b':').ok_or("no colon")?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if !token(name) {
            return Err(format!("name \"{}\"", name.escape_ascii()));
        }
        let bad = |&b: &u8| {
            b == b'\r'
                || b == b'\n'
                || b == 0
                || (any_control && b.is_ascii_control() && b != b'\t')
        };
        if value.iter().any(bad) {
            return Err(format!("value \"{}\"", value.escape_ascii()));
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err("Transfer-Encoding".into());
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return Err("two Content-Length".into());
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(format!("Content-Length \"{}\"", value.escape_ascii()));
            }
            length = Some(
                std::str::from_utf8(value)
                    .unwrap()
                    .parse()
                    .map_err(|_| "Content-Length overflows")?,
            );
        }
    }
    Ok((end + 4, length))
}

/// `input` followed by filler up to `len` bytes.
fn padded(input: &[u8], len: usize) -> Vec<u8> {
    let mut padded = input.to_vec();
    padded.resize(len.max(input.len()), b'a');
    padded
}

fn check_hello(input: &[u8], rng: &mut Rng) {
    use hello::{parse, respond, Parse, BODY_MAX, HEAD_MAX};
    let outcome = parse(input);
    match &outcome {
        Parse::Request { len, .. } => {
            assert!(*len > 0 && *len <= input.len(), "{outcome:?}");
            assert!(*len <= HEAD_MAX + BODY_MAX, "{outcome:?}");
            match strict_head(input, false) {
                Ok((head, body)) => assert_eq!(
                    *len as u64,
                    head as u64 + body.unwrap_or(0),
                    "the request's length"
                ),
                Err(why) => panic!("{outcome:?} of an ambiguous head: {why}"),
            }
        }
        // What a connection may make the server keep; and once that much
        // has come, the parser has decided.
        Parse::Partial => {
            assert!(input.len() < HEAD_MAX + BODY_MAX, "{outcome:?}");
            let decided = parse(&padded(input, HEAD_MAX + BODY_MAX));
            assert!(
                decided != Parse::Partial,
                "still Partial after HEAD_MAX + BODY_MAX bytes"
            );
        }
        Parse::Refuse(status) => assert!(
            [
                "400 Bad Request",
                "413 Content Too Large",
                "431 Request Header Fields Too Large",
                "501 Not Implemented",
            ]
            .contains(status),
            "{outcome:?}"
        ),
    }
    // What has arrived so far decides nothing the whole input would not.
    for cut in cuts(input, rng) {
        let early = parse(&input[..cut]);
        if early != Parse::Partial {
            assert_eq!(early, outcome, "after {cut} bytes");
        }
    }
    // Answered whole, or as it arrives in pieces (what `serve` does): the
    // same responses, the same close, and never more kept than allowed.
    let mut whole = Vec::new();
    let (consumed, closing) = respond(input, &mut whole);
    assert!(consumed <= input.len());
    let mut pieces = Vec::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut closed = false;
    for chunk in chunks(input, rng) {
        kept.extend_from_slice(chunk);
        let (consumed, closing) = respond(&kept, &mut pieces);
        kept.drain(..consumed);
        if closing {
            closed = true;
            break;
        }
        assert!(
            kept.len() < HEAD_MAX + BODY_MAX,
            "kept {} bytes",
            kept.len()
        );
    }
    assert_eq!(closed, closing);
    assert!(
        pieces == whole,
        "in pieces: \"{}\"\nwhole: \"{}\"",
        pieces.escape_ascii(),
        whole.escape_ascii()
    );
}

fn check_file_server(input: &[u8], rng: &mut Rng) {
    use file_server::{byte_range, parse, Parse, HEAD_MAX};
    let outcome = parse(input);
    match &outcome {
        Parse::Request(request) => {
            assert!(request.len <= input.len() && request.len <= HEAD_MAX);
            match strict_head(input, true) {
                Ok((head, None | Some(0))) => assert_eq!(request.len, head),
                Ok((_, Some(body))) => panic!("{request:?} with a body of {body}"),
                Err(why) => panic!("{request:?} of an ambiguous head: {why}"),
            }
            // Beneath the root: plain names only, none with a NUL.
            for component in request.path.components() {
                match component {
                    Component::Normal(name) => {
                        assert!(!name.as_encoded_bytes().contains(&0), "{request:?}")
                    }
                    _ => panic!("{component:?} in {request:?}"),
                }
            }
            if let Some(range) = &request.range {
                for len in [0, 1, 16, u64::MAX] {
                    if let Some(Ok((start, end))) = byte_range(range, len) {
                        assert!(start < end && end <= len, "{range:?} of {len}");
                    }
                }
            }
        }
        Parse::Partial => {
            assert!(input.len() < HEAD_MAX, "{outcome:?}");
            let decided = parse(&padded(input, HEAD_MAX));
            assert!(
                decided != Parse::Partial,
                "still Partial after HEAD_MAX bytes"
            );
        }
        Parse::Refuse(status) => assert!(
            [
                "400 Bad Request",
                "403 Forbidden",
                "405 Method Not Allowed",
                "431 Request Header Fields Too Large",
            ]
            .contains(status),
            "{outcome:?}"
        ),
    }
    for cut in cuts(input, rng) {
        let early = parse(&input[..cut]);
        if early != Parse::Partial {
            assert_eq!(early, outcome, "after {cut} bytes");
        }
    }
    // The server takes pipelined requests one after another from the same
    // buffer: each must parse as well.
    let mut rest = input;
    while let Parse::Request(request) = parse(rest) {
        rest = &rest[request.len..];
    }
    // Byte ranges on their own: a spec from a small corpus, mutated.
    let mut spec = rng.pick(RANGES).as_bytes().to_vec();
    for _ in 0..rng.below(3) {
        let at = rng.below(spec.len() + 1);
        if rng.chance(2) && at < spec.len() {
            spec.remove(at);
        } else {
            spec.insert(at, *rng.pick(b"bytes=-,0123456789 "));
        }
    }
    let spec = String::from_utf8(spec).unwrap();
    let len = rng.next() >> rng.below(64);
    for len in [0, 1, len, u64::MAX] {
        if let Some(Ok((start, end))) = byte_range(&spec, len) {
            assert!(start < end && end <= len, "{spec:?} of {len}");
        }
    }
}

/// Range headers for [`file_server::byte_range`], to mutate.
const RANGES: &[&str] = &[
    "bytes=0-0",
    "bytes=0-1",
    "bytes=5-",
    "bytes=-5",
    "bytes=-0",
    "bytes=5-2",
    "bytes= 1 - 2 ",
    "bytes=1-2,3-4",
    "bytes=18446744073709551615-",
    "bytes=0-18446744073709551615",
    "bytes=-18446744073709551615",
    "bytes=18446744073709551616-",
    "lines=1-2",
    "bytes=",
    "bytes=-",
];

#[test]
fn hello_parser_survives_hostile_input() {
    let count = fuzz("hello", check_hello);
    assert!(count >= iterations());
}

#[test]
fn file_server_parser_survives_hostile_input() {
    let count = fuzz("file_server", check_file_server);
    assert!(count >= iterations());
}

//! Every command's replies, byte for byte as redis gives them; expiry,
//! lazy and swept, on a clock the tests move; the shard's bookkeeping of
//! deadlines; which shard a key belongs to.

use super::*;

/// A shard and a clock the tests move.
struct Fixture {
    shard: Shard,
    now: Instant,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            shard: Shard::new(),
            now: Instant::now(),
        }
    }

    /// The reply to the command of `words`, as text (`\r\n` and all).
    fn run(&mut self, words: &[&str]) -> String {
        let command = Command(words.iter().map(|word| word.as_bytes().to_vec()).collect());
        let mut replies = Replies::default();
        self.shard.execute([command], self.now, &mut replies);
        assert_eq!(replies.ends, [replies.bytes.len()]);
        check_invariants(&self.shard);
        String::from_utf8(replies.bytes).unwrap()
    }

    /// Moves the clock on.
    fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

/// Every key with a deadline is in `expiring` at its slot, and nothing
/// else is there.
fn check_invariants(shard: &Shard) {
    for (slot, key) in shard.expiring.iter().enumerate() {
        let expiry = shard.entries[key]
            .expiry
            .expect("an expiring key has a deadline");
        assert_eq!(expiry.slot, slot);
    }
    let with_deadline = shard
        .entries
        .values()
        .filter(|entry| entry.expiry.is_some());
    assert_eq!(with_deadline.count(), shard.expiring.len());
}

/// Asserts each command's exact reply, in order, on one fixture.
fn replies(fixture: &mut Fixture, cases: &[(&[&str], &str)]) {
    for (words, reply) in cases {
        assert_eq!(fixture.run(words), *reply, "{words:?}");
    }
}

#[test]
fn ping_answers_pong_or_its_message() {
    replies(
        &mut Fixture::new(),
        &[
            (&["PING"], "+PONG\r\n"),
            (&["ping", "hello there"], "$11\r\nhello there\r\n"),
            (
                &["PING", "a", "b"],
                "-ERR wrong number of arguments for 'ping' command\r\n",
            ),
        ],
    );
}

#[test]
fn get_and_set_store_bytes_under_any_case_of_name() {
    replies(
        &mut Fixture::new(),
        &[
            (&["GET", "k"], "$-1\r\n"),
            (&["SET", "k", "v"], "+OK\r\n"),
            (&["get", "k"], "$1\r\nv\r\n"),
            (&["sEt", "k", ""], "+OK\r\n"),
            (&["GeT", "k"], "$0\r\n\r\n"),
            (&["SET", "k", "line\r\nbreak"], "+OK\r\n"),
            (&["GET", "k"], "$11\r\nline\r\nbreak\r\n"),
        ],
    );
}

#[test]
fn set_nx_xx_and_get_go_as_in_redis() {
    replies(
        &mut Fixture::new(),
        &[
            (&["SET", "k", "1", "XX"], "$-1\r\n"),
            (&["GET", "k"], "$-1\r\n"),
            (&["SET", "k", "1", "NX"], "+OK\r\n"),
            (&["SET", "k", "2", "nx"], "$-1\r\n"),
            (&["GET", "k"], "$1\r\n1\r\n"),
            (&["SET", "k", "3", "xx"], "+OK\r\n"),
            (&["SET", "k", "4", "GET"], "$1\r\n3\r\n"),
            (&["SET", "other", "5", "GET"], "$-1\r\n"),
            // With GET the old value is the reply even when NX stops it.
            (&["SET", "k", "6", "NX", "GET"], "$1\r\n4\r\n"),
            (&["GET", "k"], "$1\r\n4\r\n"),
            (&["SET", "k", "7", "NX", "XX"], "-ERR syntax error\r\n"),
            (&["SET", "k", "7", "XX", "NX"], "-ERR syntax error\r\n"),
            (&["SET", "k", "7", "NX", "NX"], "$-1\r\n"),
            (&["SET", "k", "7", "FOO"], "-ERR syntax error\r\n"),
            (
                &["SET", "k"],
                "-ERR wrong number of arguments for 'set' command\r\n",
            ),
        ],
    );
}

#[test]
fn set_ex_and_px_expire_on_the_clock() {
    let mut fixture = Fixture::new();
    replies(
        &mut fixture,
        &[
            (&["SET", "seconds", "s", "EX", "2"], "+OK\r\n"),
            (&["SET", "millis", "m", "px", "1500"], "+OK\r\n"),
            (&["SET", "forever", "f"], "+OK\r\n"),
        ],
    );
    fixture.advance(Duration::from_millis(1499));
    replies(
        &mut fixture,
        &[(
            &["MGET", "seconds", "millis"],
            "*2\r\n$1\r\ns\r\n$1\r\nm\r\n",
        )],
    );
    fixture.advance(Duration::from_millis(1));
    replies(
        &mut fixture,
        &[
            (&["GET", "millis"], "$-1\r\n"),
            (&["EXISTS", "seconds", "millis"], ":1\r\n"),
        ],
    );
    fixture.advance(Duration::from_millis(500));
    replies(
        &mut fixture,
        &[
            (&["GET", "seconds"], "$-1\r\n"),
            (&["GET", "forever"], "$1\r\nf\r\n"),
            (&["DBSIZE"], ":1\r\n"),
        ],
    );
}

#[test]
fn a_plain_set_clears_a_deadline_and_keepttl_keeps_it() {
    let mut fixture = Fixture::new();
    replies(
        &mut fixture,
        &[
            (&["SET", "cleared", "1", "EX", "1"], "+OK\r\n"),
            (&["SET", "cleared", "2"], "+OK\r\n"),
            (&["SET", "kept", "1", "EX", "1"], "+OK\r\n"),
            (&["SET", "kept", "2", "KEEPTTL"], "+OK\r\n"),
            (&["SET", "renewed", "1", "EX", "1"], "+OK\r\n"),
            (&["SET", "renewed", "2", "EX", "10"], "+OK\r\n"),
            (&["SET", "never", "1", "KEEPTTL"], "+OK\r\n"),
        ],
    );
    fixture.advance(Duration::from_secs(1));
    replies(
        &mut fixture,
        &[
            (&["GET", "cleared"], "$1\r\n2\r\n"),
            (&["GET", "kept"], "$-1\r\n"),
            (&["GET", "renewed"], "$1\r\n2\r\n"),
            (&["GET", "never"], "$1\r\n1\r\n"),
        ],
    );
}

#[test]
fn set_expiry_errors_read_as_redis_gives_them() {
    let invalid = "-ERR invalid expire time in 'set' command\r\n";
    let not_integer = "-ERR value is not an integer or out of range\r\n";
    replies(
        &mut Fixture::new(),
        &[
            (&["SET", "k", "v", "EX", "0"], invalid),
            (&["SET", "k", "v", "PX", "-5"], invalid),
            (&["SET", "k", "v", "EX", "9223372036854776"], invalid),
            (&["SET", "k", "v", "PX", "9223372036854775807"], invalid),
            (&["SET", "k", "v", "EX", "ten"], not_integer),
            (&["SET", "k", "v", "EX", "1.5"], not_integer),
            (&["SET", "k", "v", "EX"], "-ERR syntax error\r\n"),
            (
                &["SET", "k", "v", "EX", "1", "PX", "1"],
                "-ERR syntax error\r\n",
            ),
            (
                &["SET", "k", "v", "PX", "1", "KEEPTTL"],
                "-ERR syntax error\r\n",
            ),
            (
                &["SET", "k", "v", "KEEPTTL", "EX", "1"],
                "-ERR syntax error\r\n",
            ),
            // The combination is checked before the number.
            (
                &["SET", "k", "v", "EX", "ten", "FOO"],
                "-ERR syntax error\r\n",
            ),
            (&["SET", "k", "v", "EX", "5", "EX", "1"], "+OK\r\n"),
            (&["GET", "k"], "$1\r\nv\r\n"),
        ],
    );
}

#[test]
fn del_and_exists_count_live_keys() {
    let mut fixture = Fixture::new();
    replies(
        &mut fixture,
        &[
            (&["MSET", "a", "1", "b", "2", "c", "3"], "+OK\r\n"),
            (&["SET", "short", "x", "PX", "10"], "+OK\r\n"),
            (&["EXISTS", "a", "a", "missing", "short"], ":3\r\n"),
        ],
    );
    fixture.advance(Duration::from_millis(10));
    replies(
        &mut fixture,
        &[
            (&["EXISTS", "short"], ":0\r\n"),
            (&["SET", "short", "x", "PX", "10"], "+OK\r\n"),
        ],
    );
    fixture.advance(Duration::from_millis(10));
    replies(
        &mut fixture,
        &[
            // The expired key is removed but not counted.
            (&["DEL", "a", "b", "a", "missing", "short"], ":2\r\n"),
            (&["DBSIZE"], ":1\r\n"),
            (&["EXISTS", "c"], ":1\r\n"),
            (
                &["DEL"],
                "-ERR wrong number of arguments for 'del' command\r\n",
            ),
            (
                &["EXISTS"],
                "-ERR wrong number of arguments for 'exists' command\r\n",
            ),
        ],
    );
}

#[test]
fn incr_counts_in_place_and_refuses_what_is_not_an_integer() {
    let mut fixture = Fixture::new();
    replies(
        &mut fixture,
        &[
            (&["INCR", "n"], ":1\r\n"),
            (&["INCR", "n"], ":2\r\n"),
            (&["GET", "n"], "$1\r\n2\r\n"),
            (&["SET", "n", "-5"], "+OK\r\n"),
            (&["INCR", "n"], ":-4\r\n"),
            (&["SET", "n", "9223372036854775806"], "+OK\r\n"),
            (&["INCR", "n"], ":9223372036854775807\r\n"),
            (
                &["INCR", "n"],
                "-ERR increment or decrement would overflow\r\n",
            ),
            (&["GET", "n"], "$19\r\n9223372036854775807\r\n"),
            (&["SET", "s", "abc"], "+OK\r\n"),
            (
                &["INCR", "s"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["SET", "s", " 1"], "+OK\r\n"),
            (
                &["INCR", "s"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (&["SET", "s", "01"], "+OK\r\n"),
            (
                &["INCR", "s"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                &["INCR"],
                "-ERR wrong number of arguments for 'incr' command\r\n",
            ),
            (
                &["INCR", "a", "b"],
                "-ERR wrong number of arguments for 'incr' command\r\n",
            ),
            // The deadline stays.
            (&["SET", "t", "10", "EX", "1"], "+OK\r\n"),
            (&["INCR", "t"], ":11\r\n"),
        ],
    );
    fixture.advance(Duration::from_secs(1));
    replies(
        &mut fixture,
        &[(&["GET", "t"], "$-1\r\n"), (&["INCR", "t"], ":1\r\n")],
    );
}

#[test]
fn mget_and_mset_take_many_keys() {
    replies(
        &mut Fixture::new(),
        &[
            (&["MSET", "a", "1", "b", "22", "a", "3"], "+OK\r\n"),
            (
                &["MGET", "a", "missing", "b"],
                "*3\r\n$1\r\n3\r\n$-1\r\n$2\r\n22\r\n",
            ),
            (
                &["MSET", "a"],
                "-ERR wrong number of arguments for 'mset' command\r\n",
            ),
            (
                &["MSET", "a", "1", "b"],
                "-ERR wrong number of arguments for 'mset' command\r\n",
            ),
            (
                &["MGET"],
                "-ERR wrong number of arguments for 'mget' command\r\n",
            ),
            (&["GET", "b"], "$2\r\n22\r\n"),
        ],
    );
}

#[test]
fn dbsize_and_flushall_see_the_whole_shard() {
    let mut fixture = Fixture::new();
    replies(
        &mut fixture,
        &[
            (&["DBSIZE"], ":0\r\n"),
            (&["MSET", "a", "1", "b", "2"], "+OK\r\n"),
            (&["SET", "c", "3", "EX", "1"], "+OK\r\n"),
            (&["DBSIZE"], ":3\r\n"),
        ],
    );
    // An expired key not yet removed still counts, as in redis.
    fixture.advance(Duration::from_secs(1));
    replies(
        &mut fixture,
        &[
            (&["DBSIZE"], ":3\r\n"),
            (
                &["DBSIZE", "x"],
                "-ERR wrong number of arguments for 'dbsize' command\r\n",
            ),
            (&["FLUSHALL", "LATER"], "-ERR syntax error\r\n"),
            (&["FLUSHALL", "ASYNC", "SYNC"], "-ERR syntax error\r\n"),
            (&["FLUSHALL"], "+OK\r\n"),
            (&["DBSIZE"], ":0\r\n"),
            (&["SET", "a", "1"], "+OK\r\n"),
            (&["flushall", "async"], "+OK\r\n"),
            (&["SET", "a", "1", "EX", "5"], "+OK\r\n"),
            (&["FLUSHALL", "sync"], "+OK\r\n"),
            (&["GET", "a"], "$-1\r\n"),
        ],
    );
    assert!(fixture.shard.expiring.is_empty());
}

#[test]
fn command_info_and_config_get_answer_what_clients_ask_at_start() {
    let mut fixture = Fixture::new();
    let info_empty = "# Server\r\nserver_name:corering-kv\r\nredis_mode:standalone\r\n\
                      multiplexing_api:io_uring\r\ncore:0\r\n\r\n# Keyspace\r\n";
    replies(
        &mut fixture,
        &[
            (&["COMMAND"], "*0\r\n"),
            (&["COMMAND", "DOCS"], "*0\r\n"),
            (
                &["INFO"],
                &format!("${}\r\n{info_empty}\r\n", info_empty.len()),
            ),
            (&["SET", "a", "1"], "+OK\r\n"),
            (&["SET", "b", "1", "EX", "9"], "+OK\r\n"),
        ],
    );
    let info = format!("{info_empty}db0:keys=2,expires=1,avg_ttl=0\r\n");
    replies(
        &mut fixture,
        &[
            (
                &["info", "keyspace"],
                &format!("${}\r\n{info}\r\n", info.len()),
            ),
            (
                &["CONFIG", "GET", "save", "APPENDONLY", "other"],
                "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
            ),
            (&["CONFIG", "GET", "maxmemory"], "*0\r\n"),
            (
                &["CONFIG", "GET"],
                "-ERR wrong number of arguments for 'config|get' command\r\n",
            ),
            (
                &["CONFIG", "SET", "save", ""],
                "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n",
            ),
            (
                &["CONFIG"],
                "-ERR wrong number of arguments for 'config' command\r\n",
            ),
        ],
    );
}

#[test]
fn unknown_commands_and_wrong_arity_read_as_redis_gives_them() {
    let long = "x".repeat(200);
    replies(
        &mut Fixture::new(),
        &[
            (
                &["FOO"],
                "-ERR unknown command 'FOO', with args beginning with: \r\n",
            ),
            (
                &["foo", "a", "b c"],
                "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' \r\n",
            ),
            // A CR or LF cannot go into an error line: each is a space.
            (
                &["foo", "a\r\nb"],
                "-ERR unknown command 'foo', with args beginning with: 'a  b' \r\n",
            ),
            (
                &["GET"],
                "-ERR wrong number of arguments for 'get' command\r\n",
            ),
            (
                &["get", "a", "b"],
                "-ERR wrong number of arguments for 'get' command\r\n",
            ),
        ],
    );
    // The name is cut at 128 bytes, the arguments once they reach 128.
    let mut fixture = Fixture::new();
    let reply = fixture.run(&[&long, "a", &long, "b"]);
    assert_eq!(
        reply,
        format!(
            "-ERR unknown command '{}', with args beginning with: 'a' '{}' \r\n",
            &long[..128],
            &long[..124]
        )
    );
}

#[test]
fn a_batch_is_answered_in_order_with_each_end_marked() {
    let mut shard = Shard::new();
    let words: [&[&str]; 4] = [&["SET", "k", "v"], &["GET", "k"], &["NOPE"], &["DEL", "k"]];
    let commands = words
        .iter()
        .map(|words| Command(words.iter().map(|word| word.as_bytes().to_vec()).collect()));
    let mut replies = Replies::default();
    shard.execute(commands, Instant::now(), &mut replies);
    let expected = [
        "+OK\r\n",
        "$1\r\nv\r\n",
        "-ERR unknown command 'NOPE', with args beginning with: \r\n",
        ":1\r\n",
    ];
    assert_eq!(String::from_utf8(replies.bytes).unwrap(), expected.concat());
    let ends: Vec<usize> = (1..=expected.len())
        .map(|count| expected[..count].concat().len())
        .collect();
    assert_eq!(replies.ends, ends);
}

/// A fixture holding `expiring` keys with a 1 s deadline and `lasting`
/// keys without one.
fn mixed(expiring: usize, lasting: usize) -> Fixture {
    let mut fixture = Fixture::new();
    for key in 0..expiring {
        fixture.run(&["SET", &format!("e{key}"), "v", "EX", "1"]);
    }
    for key in 0..lasting {
        fixture.run(&["SET", &format!("l{key}"), "v"]);
    }
    fixture
}

#[test]
fn a_sweep_removes_only_expired_keys_a_bounded_sample_at_a_time() {
    let mut fixture = mixed(1000, 100);
    assert_eq!(
        fixture.shard.sweep(fixture.now),
        0,
        "nothing has expired yet"
    );
    fixture.advance(Duration::from_secs(1));
    // Every key sampled has expired, so every round runs.
    let bound = SWEEP_SAMPLE * SWEEP_ROUNDS_MAX;
    assert_eq!(fixture.shard.sweep(fixture.now), bound);
    check_invariants(&fixture.shard);
    assert_eq!(fixture.shard.len(), 1100 - bound);
    let mut removed = bound;
    while removed < 1000 {
        let swept = fixture.shard.sweep(fixture.now);
        assert!(swept > 0 && swept <= bound, "{swept}");
        check_invariants(&fixture.shard);
        removed += swept;
    }
    assert_eq!(removed, 1000);
    assert_eq!(fixture.shard.len(), 100);
    assert!(fixture.shard.expiring.is_empty());
    assert_eq!(fixture.shard.sweep(fixture.now), 0);
}

#[test]
fn a_sweep_that_finds_few_expired_keys_stops_after_one_round() {
    let mut fixture = mixed(0, 0);
    // 100 keys expire in 1 s, after 5 that expire at once: a sample of 20
    // finds at most a quarter expired.
    for key in 0..5 {
        fixture.run(&["SET", &format!("now{key}"), "v", "PX", "1"]);
    }
    for key in 0..100 {
        fixture.run(&["SET", &format!("later{key}"), "v", "EX", "1"]);
    }
    fixture.advance(Duration::from_millis(1));
    assert_eq!(fixture.shard.sweep(fixture.now), 5);
    assert_eq!(
        fixture.shard.cursor, 15,
        "one round: 20 looked at, 5 removed"
    );
    assert_eq!(fixture.shard.len(), 100);
    check_invariants(&fixture.shard);
}

#[test]
fn overwriting_and_deleting_keep_the_deadlines_in_step() {
    let mut fixture = mixed(50, 0);
    for key in (0..50).step_by(3) {
        fixture.run(&["SET", &format!("e{key}"), "w"]);
    }
    for key in (1..50).step_by(3) {
        fixture.run(&["DEL", &format!("e{key}")]);
    }
    for key in (2..50).step_by(3) {
        fixture.run(&["SET", &format!("e{key}"), "w", "PX", "5000"]);
    }
    // 17 lost their deadline, 17 are gone, 16 have a new one.
    assert_eq!(fixture.shard.expiring.len(), 16);
    fixture.advance(Duration::from_secs(1));
    assert_eq!(fixture.shard.sweep(fixture.now), 0);
    fixture.advance(Duration::from_secs(4));
    assert_eq!(fixture.shard.sweep(fixture.now), 16);
    assert_eq!(fixture.shard.len(), 17);
    check_invariants(&fixture.shard);
}

/// FNV-1a of `key`, written out from its definition.
fn fnv1a(key: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

#[test]
fn shard_of_is_fnv1a_modulo_the_cores() {
    // The published FNV-1a 64-bit test vectors.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(shard_of(b"", 1000), 37);
    assert_eq!(shard_of(b"a", 1000), 996);
    assert_eq!(shard_of(b"foobar", 7), 6);
    for key in [&b""[..], b"a", b"key:000000000042", &[0xff; 100]] {
        assert_eq!(shard_of(key, 1), 0);
        for cores in 1..=64 {
            assert_eq!(shard_of(key, cores), (fnv1a(key) % cores as u64) as usize);
        }
    }
}

#[test]
fn shard_of_spreads_keys_evenly() {
    let mut counts = [0usize; 4];
    for key in 0..10_000 {
        counts[shard_of(format!("key:{key:012}").as_bytes(), 4)] += 1;
    }
    for count in counts {
        assert!((2300..=2700).contains(&count), "{counts:?}");
    }
}

#[test]
#[should_panic(expected = "at least one shard")]
fn shard_of_no_cores_panics() {
    shard_of(b"k", 0);
}

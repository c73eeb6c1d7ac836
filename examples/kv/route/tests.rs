//! Batches split over 2 and 3 cores, each core's part run on a [`Shard`]
//! of its own, answer byte for byte as one shard holding every key does;
//! which batches stay on their core; `INFO`'s totals.

use std::time::Instant;

use super::*;
use crate::store::Shard;

fn command(words: &[&str]) -> Command {
    Command(words.iter().map(|word| word.as_bytes().to_vec()).collect())
}

/// The replies to `batch` run on one shard.
fn on_one_shard(batch: &[&[&str]]) -> String {
    let mut replies = Replies::default();
    let commands = batch.iter().map(|words| command(words));
    Shard::new().execute(commands, Instant::now(), &mut replies);
    assert_eq!(replies.ends.len(), batch.len());
    String::from_utf8(replies.bytes).unwrap()
}

/// The replies to `batch`, sent by core `here`, with `shards` each
/// holding its core's keys; one reply marked per command.
fn routed(shards: &mut [Shard], here: usize, batch: &[&[&str]]) -> String {
    let mut plan = Plan::new(batch.iter().map(|words| command(words)), shards.len(), here);
    let mut answered: Vec<Replies> = Vec::new();
    for (shard, part) in shards.iter_mut().zip(&mut plan.parts) {
        let mut replies = Replies::default();
        let pieces = part.len();
        shard.execute(part.drain(..), Instant::now(), &mut replies);
        assert_eq!(replies.ends.len(), pieces);
        answered.push(replies);
    }
    let mut out = Replies::default();
    plan.assemble(&answered, &mut out);
    assert_eq!(out.ends.len(), batch.len());
    assert_eq!(out.ends.last().copied().unwrap_or(0), out.bytes.len());
    String::from_utf8(out.bytes).unwrap()
}

fn shards(cores: usize) -> Vec<Shard> {
    (0..cores).map(Shard::for_core).collect()
}

/// Keys named `k0`, `k1`, ... of which `shard_of` gives each of 2 and 3
/// cores several.
const BATCH: &[&[&str]] = &[
    &["PING"],
    &[
        "MSET", "k0", "a", "k1", "b", "k2", "c", "k3", "d", "k4", "e",
    ],
    &["MGET", "k4", "missing", "k0", "k1", "k2", "k3", "k0"],
    &["EXISTS", "k0", "k1", "k2", "missing", "k3", "k0"],
    &["DBSIZE"],
    &["SET", "k5", "5"],
    &["INCR", "k5"],
    &["GET", "k5"],
    &["DEL", "k0", "k1", "missing", "k1", "k3"],
    &["DBSIZE"],
    &["MGET", "k0", "k1", "k2", "k3", "k4", "k5"],
    &["MSET", "k1", "odd"],
    &["MSET", "k1"],
    &["GET"],
    &["DEL"],
    &["MGET"],
    &["DBSIZE", "extra"],
    &["FLUSHALL", "bad"],
    &["NOPE", "k1"],
    &["INCR", "k4"],
    &["FLUSHALL"],
    &["DBSIZE"],
    &["EXISTS", "k2", "k4"],
];

#[test]
fn a_batch_split_over_cores_answers_as_one_shard_does() {
    assert!(
        (0..6).any(|n| shard_of(format!("k{n}").as_bytes(), 2) == 0)
            && (0..6).any(|n| shard_of(format!("k{n}").as_bytes(), 2) == 1),
        "the keys are on both of 2 cores"
    );
    let expected = on_one_shard(BATCH);
    for cores in [2, 3] {
        for here in 0..cores {
            let mut shards = shards(cores);
            assert_eq!(
                routed(&mut shards, here, BATCH),
                expected,
                "{here} of {cores}"
            );
        }
    }
}

#[test]
fn keys_end_up_on_the_core_that_owns_them() {
    let mut shards = shards(2);
    let keys: Vec<String> = (0..20).map(|n| format!("key{n}")).collect();
    let mut mset = vec!["MSET"];
    for key in &keys {
        mset.extend([key.as_str(), "v"]);
    }
    assert_eq!(routed(&mut shards, 1, &[&mset]), "+OK\r\n");
    let held: Vec<usize> = shards.iter().map(Shard::len).collect();
    let owned = |core| {
        keys.iter()
            .filter(|key| shard_of(key.as_bytes(), 2) == core)
            .count()
    };
    assert_eq!(held, [owned(0), owned(1)]);
    assert!(held[0] > 0 && held[1] > 0, "{held:?}");
    assert_eq!(routed(&mut shards, 0, &[&["DBSIZE"]]), ":20\r\n");
}

#[test]
fn only_batches_of_this_cores_keys_stay_whole() {
    let key_of = |core| {
        (0..)
            .map(|n| format!("k{n}"))
            .find(|key| shard_of(key.as_bytes(), 2) == core)
            .unwrap()
    };
    let (mine, theirs) = (key_of(0), key_of(1));
    let plan = |batch: &[&[&str]]| Plan::new(batch.iter().map(|words| command(words)), 2, 0);
    assert!(plan(&[&["GET", &mine], &["SET", &mine, "v"], &["PING"], &["GET"]]).is_local(0));
    assert!(!plan(&[&["GET", &mine], &["GET", &theirs]]).is_local(0));
    // One key, but its reply is merged: split all the same.
    assert!(!plan(&[&["MGET", &mine]]).is_local(0));
    assert!(!plan(&[&["DBSIZE"]]).is_local(0));
    let split = plan(&[&["GET", &theirs], &["MGET", &mine, &theirs], &["DBSIZE"]]);
    let sizes: Vec<usize> = split.parts.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 3]);
}

#[test]
fn info_shows_the_core_asked_and_the_keys_of_every_core() {
    let mut shards = shards(2);
    let info = |core: usize, keyspace: &str| {
        let text = format!(
            "# Server\r\nserver_name:corering-kv\r\nredis_mode:standalone\r\n\
             multiplexing_api:io_uring\r\ncore:{core}\r\n\r\n# Keyspace\r\n{keyspace}"
        );
        format!("${}\r\n{text}\r\n", text.len())
    };
    assert_eq!(routed(&mut shards, 1, &[&["INFO"]]), info(1, ""));
    let batch: &[&[&str]] = &[
        &["MSET", "k0", "a", "k1", "b", "k2", "c", "k3", "d"],
        &["SET", "k4", "e", "EX", "100"],
        &["SET", "k5", "f", "PX", "100000"],
    ];
    routed(&mut shards, 0, batch);
    assert!(shards.iter().all(|shard| shard.len() > 0));
    let totals = "db0:keys=6,expires=2,avg_ttl=0\r\n";
    assert_eq!(routed(&mut shards, 0, &[&["INFO"]]), info(0, totals));
    assert_eq!(
        routed(&mut shards, 1, &[&["info", "keyspace"]]),
        info(1, totals)
    );
}

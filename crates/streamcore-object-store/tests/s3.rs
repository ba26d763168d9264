//! Checkpoint storage on a real S3-compatible server: moto on 127.0.0.1:9090, installed and
//! started by scripts/test-deps.d/50-s3.sh. Each test works in a bucket of its own. The
//! tests fail (they do not skip) when the server is not there.

use std::io::{Read, Write};
use std::sync::Arc;
use streamcore::checkpoint::storage::{CheckpointData, InstanceState};
use streamcore::checkpoint::{
    decode, BlobCheckpointStorage, BlobStore, CheckpointKind, CheckpointLocation,
    CheckpointStorage, StateSnapshot,
};
use streamcore::state::KeyGroupState;
use streamcore_object_store::{ObjectStoreBlobs, RetryPolicy, RETRY};

const ENDPOINT: &str = "127.0.0.1:9090";

/// The options that point the S3 client at the test server (its credentials are not checked).
const OPTIONS: [(&str, &str); 5] = [
    ("aws_endpoint", "http://127.0.0.1:9090"),
    ("aws_allow_http", "true"),
    ("aws_access_key_id", "test"),
    ("aws_secret_access_key", "test"),
    ("aws_region", "us-east-1"),
];

/// Creates a fresh bucket on the test server (an unsigned `PUT /bucket`, which moto accepts)
/// and returns its name.
fn bucket(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("sc-{test}-{}-{nanos}", std::process::id()).replace('_', "-");
    let name: String = name.chars().take(63).collect();
    let mut conn = std::net::TcpStream::connect(ENDPOINT).unwrap_or_else(|e| {
        panic!(
            "no S3 server on {ENDPOINT} ({e}): run scripts/test-deps.d/50-s3.sh (or scripts/install-test-deps.sh) first"
        )
    });
    write!(
        conn,
        "PUT /{name} HTTP/1.1\r\nHost: {ENDPOINT}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "creating bucket {name}: {answer}"
    );
    name
}

fn blobs(test: &str, prefix: &str) -> Arc<ObjectStoreBlobs> {
    let url = format!("s3://{}/{prefix}", bucket(test));
    Arc::new(ObjectStoreBlobs::open_with(&url, &OPTIONS, RETRY).unwrap())
}

/// A checkpoint with one instance holding `groups` key groups of `size` bytes each.
fn checkpoint(id: u64, groups: u32, size: usize) -> CheckpointData {
    let mut snapshot = StateSnapshot::default();
    for g in 0..groups {
        let payload: Vec<u8> = (0..size).map(|i| (i as u32 ^ g) as u8).collect();
        snapshot.put_group(g, &payload).unwrap();
    }
    snapshot.put_operator(&format!("position {id}")).unwrap();
    CheckpointData {
        job: "s3-test".into(),
        id,
        kind: CheckpointKind::Checkpoint,
        key_groups: 128,
        nodes: vec![
            (
                "counts".into(),
                vec![
                    InstanceState {
                        subtask: 0,
                        snapshot,
                        committables: vec![format!("commit {id}").into_bytes()],
                    },
                    InstanceState::default(),
                ],
            ),
            ("source".into(), vec![InstanceState::default()]),
        ],
    }
}

#[test]
fn checkpoints_round_trip_through_s3_with_multipart_files() {
    let store = blobs("round-trip", "jobs/demo");
    let storage = BlobCheckpointStorage::new(store.clone(), "");
    assert_eq!(storage.next_id().unwrap(), 1);
    // 3 groups of 8 MiB: one 24 MiB state file, uploaded in parts.
    let written = storage.write(&checkpoint(1, 3, 8 << 20)).unwrap();
    assert!(written.bytes > 24 << 20);
    assert!(
        written.location.as_str().ends_with("/jobs/demo/chk-000001"),
        "{}",
        written.location
    );
    assert!(written.location.as_str().starts_with("s3://sc-round-trip-"));
    storage.write(&checkpoint(2, 2, 1000)).unwrap();
    assert_eq!(storage.next_id().unwrap(), 3);

    let first = storage.load(&written.location).unwrap();
    let counts = &first.node("counts").unwrap()[0];
    let groups = KeyGroupState::from_checkpoint(&first, std::slice::from_ref(&(0..128)));
    assert_eq!(groups.node("counts").len(), 3);
    let g2: Vec<u8> = decode(&groups.node("counts")[2].1).unwrap();
    assert_eq!(g2.len(), 8 << 20);
    assert!(g2
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i as u32 ^ 2) as u8));
    assert_eq!(counts.committables, vec![b"commit 1".to_vec()]);

    let latest = storage.load_latest().unwrap().unwrap();
    assert_eq!(latest.manifest.checkpoint_id, 2);
    assert!(latest.skipped.is_empty());
    let position: String = decode(
        latest.node("counts").unwrap()[0]
            .snapshot
            .operator_state()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(position, "position 2");

    // The objects, as keys under the URL's prefix.
    let mut keys = store.list("").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "chk-000001/_manifest.json",
            "chk-000001/n0000-s000.state",
            "chk-000002/_manifest.json",
            "chk-000002/n0000-s000.state"
        ]
    );
}

#[test]
fn a_torn_upload_is_skipped_on_restore_and_deleted_by_retention() {
    let store = blobs("torn", "job");
    let storage = BlobCheckpointStorage::new(store.clone(), "");
    storage.write(&checkpoint(1, 2, 100)).unwrap();
    // Checkpoint 2: the process died after uploading its state, before the manifest.
    store
        .put("chk-000002/n0000-s000.state", vec![7; 1000])
        .unwrap();
    let cp = storage.load_latest().unwrap().unwrap();
    assert_eq!(cp.manifest.checkpoint_id, 1);
    assert_eq!(cp.skipped.len(), 1, "{:?}", cp.skipped);
    assert!(
        cp.skipped[0].contains("chk-000002") && cp.skipped[0].contains("incomplete"),
        "{:?}",
        cp.skipped
    );
    // The next run continues above the torn id; once a newer checkpoint is complete, the
    // torn one goes.
    assert_eq!(storage.next_id().unwrap(), 3);
    storage.write(&checkpoint(3, 2, 100)).unwrap();
    storage.retain(2).unwrap();
    let mut dirs = store.list_dirs("").unwrap();
    dirs.sort();
    assert_eq!(dirs, ["chk-000001", "chk-000003"]);
    storage.write(&checkpoint(4, 2, 100)).unwrap();
    storage.retain(2).unwrap();
    let mut dirs = store.list_dirs("").unwrap();
    dirs.sort();
    assert_eq!(dirs, ["chk-000003", "chk-000004"]);
    // A state file that does not match its manifest: that checkpoint is skipped too.
    store
        .put("chk-000004/n0000-s000.state", vec![1; 10])
        .unwrap();
    let cp = storage.load_latest().unwrap().unwrap();
    assert_eq!(cp.manifest.checkpoint_id, 3);
    assert!(cp.skipped[0].contains("corrupted"), "{:?}", cp.skipped);
}

#[test]
fn the_manifest_is_created_at_most_once() {
    let store = blobs("conditional", "");
    assert!(store.put_if_absent("m", b"first".to_vec()).unwrap());
    assert!(!store.put_if_absent("m", b"second".to_vec()).unwrap());
    assert_eq!(store.get("m").unwrap().unwrap(), b"first");
    // Racing writers: exactly one wins.
    let winners: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || store.put_if_absent("race", vec![i]).unwrap() as usize)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
    // So a second run writing the same checkpoint id fails instead of replacing it.
    let storage = BlobCheckpointStorage::new(store.clone(), "job");
    storage.write(&checkpoint(5, 1, 10)).unwrap();
    let err = storage
        .write(&checkpoint(5, 1, 10))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists already"), "{err}");
}

#[test]
fn listing_getting_and_deleting() {
    let store = blobs("list", "root/inner");
    assert_eq!(store.get("absent").unwrap(), None);
    store
        .put_all(
            ["a/1", "a/2", "b/c/3", "top"]
                .iter()
                .map(|k| (k.to_string(), k.as_bytes().to_vec()))
                .collect(),
        )
        .unwrap();
    let mut dirs = store.list_dirs("").unwrap();
    dirs.sort();
    assert_eq!(dirs, ["a", "b"]);
    assert_eq!(store.list_dirs("b").unwrap(), ["c"]);
    let mut keys = store.list("a").unwrap();
    keys.sort();
    assert_eq!(keys, ["a/1", "a/2"]);
    let got = store
        .get_all(&["b/c/3".to_string(), "nothing".to_string()])
        .unwrap();
    assert_eq!(got, vec![Some(b"b/c/3".to_vec()), None]);
    store
        .delete_all(vec!["a/1".into(), "a/2".into(), "never-there".into()])
        .unwrap();
    assert!(store.list("a").unwrap().is_empty());
    assert_eq!(store.url("top"), format!("{}/top", store.root_url()));
    assert!(store.root_url().ends_with("/root/inner"));
}

#[test]
fn errors_name_the_url_and_never_the_credentials() {
    // A bucket that does not exist, with a secret that must not show.
    let url = "s3://sc-no-such-bucket-here/job";
    let mut options = OPTIONS.to_vec();
    options.retain(|(k, _)| *k != "aws_secret_access_key");
    options.push(("aws_secret_access_key", "do-not-print-this-secret"));
    let quick = RetryPolicy {
        max_retries: 1,
        retry_timeout: std::time::Duration::from_secs(5),
    };
    let store = Arc::new(ObjectStoreBlobs::open_with(url, &options, quick).unwrap());
    let storage = BlobCheckpointStorage::new(store, "");
    let err = storage
        .write(&checkpoint(1, 1, 10))
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://sc-no-such-bucket-here/job"), "{err}");
    assert!(!err.contains("do-not-print-this-secret"), "{err}");
    let debug = format!("{storage:?}");
    assert!(!debug.contains("do-not-print-this-secret"), "{debug}");
    // Unknown options and schemes are refused up front.
    let err = ObjectStoreBlobs::open_with(url, &[("aws_no_such_option", "1")], RETRY)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown option `aws_no_such_option`"), "{err}");
    let err = ObjectStoreBlobs::open("ftp://host/x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown scheme `ftp`"), "{err}");
    // Locations of another store are refused by load.
    let other = BlobCheckpointStorage::new(blobs("other", "x"), "");
    let err = other
        .load(&CheckpointLocation::new("s3://elsewhere/x/chk-000001"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a checkpoint of"), "{err}");
}

#[test]
fn file_urls_use_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/ckpt", dir.path().display());
    let storage = streamcore_object_store::checkpoint_storage(&url).unwrap();
    let w = storage.write(&checkpoint(1, 2, 100)).unwrap();
    assert_eq!(w.location.as_str(), format!("{url}/chk-000001"));
    assert!(dir.path().join("ckpt/chk-000001/_manifest.json").is_file());
    assert_eq!(
        storage
            .load_latest()
            .unwrap()
            .unwrap()
            .manifest
            .checkpoint_id,
        1
    );
    let err = storage
        .write(&checkpoint(1, 2, 100))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists already"), "{err}");
}

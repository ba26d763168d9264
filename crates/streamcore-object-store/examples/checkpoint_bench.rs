//! Checkpoint write and restore time, local directory against an object store, for a state of
//! a given size (docs/benchmarks.md, "Checkpoints on object storage").
//!
//! ```text
//! cargo run --release -p streamcore-object-store --example checkpoint_bench -- \
//!     [--mb 300] [--runs 3] [--dir /var/tmp/ckpt-bench] [--url s3://bucket/prefix]
//! ```
//!
//! The state: 4 operator instances × 128 key groups of incompressible bytes (what the engine
//! writes is already encoded, so content does not matter to the storage). Each run writes a
//! checkpoint (`CheckpointStorage::write`: state files, then the manifest) and loads it back
//! verified (`load_latest`: manifest, files, CRC-32s), and prints the times. The object store
//! takes its endpoint and credentials from the environment (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
//! `AWS_ACCESS_KEY_ID`, …).

use std::time::Instant;
use streamcore::checkpoint::storage::{CheckpointData, InstanceState};
use streamcore::checkpoint::{
    CheckpointKind, CheckpointStorage, LocalCheckpointStorage, StateSnapshot,
};

fn state(mb: usize, id: u64) -> CheckpointData {
    const INSTANCES: usize = 4;
    const GROUPS: u32 = 128;
    let per_group = (mb << 20) / INSTANCES / GROUPS as usize;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ id;
    let mut instances = Vec::with_capacity(INSTANCES);
    for subtask in 0..INSTANCES {
        let mut snapshot = StateSnapshot::default();
        for g in 0..GROUPS {
            let bytes: Vec<u8> = (0..per_group / 8)
                .flat_map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()
                })
                .collect();
            snapshot.put_group(g, &as_text(&bytes)).unwrap();
        }
        instances.push(InstanceState {
            subtask,
            snapshot,
            committables: Vec::new(),
        });
    }
    CheckpointData {
        job: "bench".into(),
        id,
        kind: CheckpointKind::Checkpoint,
        key_groups: GROUPS,
        nodes: vec![("counts".into(), instances)],
    }
}

/// The bytes as letters: MessagePack writes a string in one piece (a `Vec<u8>` would be
/// encoded byte by byte, and the setup would take longer than the measurement).
fn as_text(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(b'a' + b % 26)).collect()
}

fn measure(name: &str, storage: &dyn CheckpointStorage, mb: usize, runs: usize) {
    for run in 0..runs {
        let id = storage.next_id().unwrap();
        let cp = state(mb, id);
        let started = Instant::now();
        let written = storage.write(&cp).unwrap();
        let write = started.elapsed();
        drop(cp);
        let started = Instant::now();
        let loaded = storage.load_latest().unwrap().unwrap();
        let load = started.elapsed();
        assert_eq!(loaded.manifest.checkpoint_id, id);
        let mib = written.bytes as f64 / (1 << 20) as f64;
        println!(
            "{name}\trun {run}\t{mib:.0} MiB\twrite {:.2} s ({:.0} MiB/s)\trestore {:.2} s ({:.0} MiB/s)",
            write.as_secs_f64(),
            mib / write.as_secs_f64(),
            load.as_secs_f64(),
            mib / load.as_secs_f64()
        );
        drop(loaded);
        storage.retain(1).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let mb: usize = arg("--mb").map_or(300, |v| v.parse().expect("--mb N"));
    let runs: usize = arg("--runs").map_or(3, |v| v.parse().expect("--runs N"));
    let dir = arg("--dir").unwrap_or_else(|| "/var/tmp/streamcore-ckpt-bench".into());
    let _ = std::fs::remove_dir_all(&dir);
    let local = LocalCheckpointStorage::new(&dir).unwrap();
    measure("local", &local, mb, runs);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(url) = arg("--url") {
        let storage = streamcore_object_store::checkpoint_storage(&url).unwrap();
        measure(&url, &storage, mb, runs);
    }
}

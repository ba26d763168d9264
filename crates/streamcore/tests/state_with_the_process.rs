//! `state::free_state_with_the_process`: the keyed state of a task that ran to the end of
//! its input is left for the process's exit to free, and only then — with the switch off, or
//! for a task that fails, every key's state is dropped as ever. One test in its own binary:
//! the switch is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use streamcore::state::{
    free_state_with_the_process, KeyedContext, KeyedProcessFunction, ValueState,
};
use streamcore::{Job, JobConfig, Output};

/// Drops of [`Counted`] values so far.
static DROPS: AtomicUsize = AtomicUsize::new(0);

/// A per-key count whose drops are counted.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Counted(u64);

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts records per key; panics at the record `fail_at`, if set.
#[derive(Clone)]
struct Count {
    fail_at: Option<u64>,
}

impl KeyedProcessFunction<u64, u64> for Count {
    type State = ValueState<Counted>;
    type Out = u64;
    fn process(
        &mut self,
        r: u64,
        ctx: &mut KeyedContext<'_, u64, ValueState<Counted>>,
        out: &mut Output<u64>,
    ) {
        assert_ne!(Some(r), self.fail_at, "failing at record {r}");
        ctx.state().get_or_insert_with(Counted::default).0 += 1;
        out.emit(r);
    }
}

/// Runs 1,000 records over 100 keys; the records out, and the `Counted` drops meanwhile.
fn run(fail_at: Option<u64>) -> (Option<usize>, usize) {
    let before = DROPS.load(Ordering::SeqCst);
    let mut job = Job::new("counts");
    let out = job
        .from_vec("records", (0..1000u64).collect())
        .key_by(|r: &u64| r % 100)
        .process(Count { fail_at })
        .collect();
    let ran = job.run(JobConfig::default().parallelism(1));
    let emitted = ran.ok().map(|_| out.len());
    (emitted, DROPS.load(Ordering::SeqCst) - before)
}

#[test]
fn finished_tasks_leave_their_state_to_the_process_exit_and_only_they() {
    // Off (the default): the 100 keys' states are dropped when the job ends.
    assert_eq!(run(None), (Some(1000), 100));
    free_state_with_the_process(true);
    // On: a job run to the end leaves them...
    assert_eq!(run(None), (Some(1000), 0));
    // ...but a failed one frees what it held (keys 0..=99 exist before record 500 fails).
    let (emitted, drops) = run(Some(500));
    assert_eq!(emitted, None);
    assert!(drops >= 100, "{drops} of at least 100 states dropped");
    free_state_with_the_process(false);
    assert_eq!(run(None), (Some(1000), 100));
}

//! The command line itself: one `-p/--parallelism` convention on every job command, the Kafka
//! commands in a build without the `kafka` feature, and plain (colourless) logs when stderr is
//! not a terminal.

use std::process::{Command, Output};

fn streamcore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamcore"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("STREAMCORE_LOG")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The job commands of this build.
fn job_commands() -> Vec<&'static str> {
    let mut commands = vec!["demo", "patterns", "nexmark", "bench"];
    if cfg!(feature = "kafka") {
        commands.extend(["kafka", "kafka-bench"]);
    }
    commands
}

#[test]
fn every_job_command_takes_p_defaulting_to_the_number_of_cores() {
    for command in job_commands() {
        let out = streamcore(&[command, "--help"]);
        let help = text(&out.stdout);
        assert!(
            out.status.success(),
            "{command} --help: {}",
            text(&out.stderr)
        );
        assert!(
            help.contains("-p, --parallelism <P>"),
            "{command} --help has no -p, --parallelism:\n{help}"
        );
        assert!(
            help.contains("[default: number of cores]"),
            "{command} --help does not give the default parallelism:\n{help}"
        );
    }
}

#[test]
fn nexmark_runs_at_the_number_of_cores_by_default_and_at_p_when_given() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (args, parallelism) in [
        (&["-p", "1"][..], 1),
        (&["--parallelism", "1"][..], 1),
        (&[][..], cores),
    ] {
        let mut all = vec!["nexmark", "--query", "q0", "--events", "1000"];
        all.extend(args);
        let out = streamcore(&all);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{all:?}: {stderr}");
        assert!(
            stderr.contains(&format!("(parallelism {parallelism})")),
            "{all:?}: {stderr}"
        );
    }
}

#[test]
fn a_parallelism_of_zero_is_refused_with_the_reason() {
    for command in job_commands() {
        let out = streamcore(&[command, "-p", "0"]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{command} -p 0 ran: {stderr}");
        assert!(
            stderr.contains("--parallelism") && stderr.contains("at least 1"),
            "{command} -p 0: {stderr}"
        );
    }
}

/// Without the `kafka` feature, `kafka` and `kafka-bench` are known commands that say how to
/// get a build with them, and fail.
#[cfg(not(feature = "kafka"))]
#[test]
fn kafka_commands_without_the_feature_say_how_to_get_them() {
    for args in [
        &["kafka", "--brokers", "127.0.0.1:9092", "--topic", "t"][..],
        &["kafka", "--help"][..],
        &["kafka-bench", "-p", "2"][..],
    ] {
        let out = streamcore(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("unrecognized subcommand"), "{stderr}");
        let command = args[0];
        for needed in [
            format!("`streamcore {command}` is not in this build"),
            "the `kafka` cargo feature".to_string(),
            format!("cargo run --release -p streamcore-cli --features kafka -- {command} …"),
            "cargo install --path crates/streamcore-cli --features kafka".to_string(),
        ] {
            assert!(
                stderr.contains(&needed),
                "{args:?}: `{needed}` missing from: {stderr}"
            );
        }
    }
    let out = streamcore(&["--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("kafka") && help.contains("needs the `kafka` cargo feature"),
        "{help}"
    );
}

/// With the `kafka` feature, the Kafka commands are the real ones.
#[cfg(feature = "kafka")]
#[test]
fn kafka_commands_with_the_feature_are_built() {
    for command in ["kafka", "kafka-bench"] {
        let out = streamcore(&[command, "--help"]);
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("--brokers"), "{command}");
    }
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let out = streamcore(&["--log", "info", "demo"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("starting job"), "no log line in: {stderr}");
    assert!(!stderr.contains("\x1b["), "ANSI codes in: {stderr:?}");
}

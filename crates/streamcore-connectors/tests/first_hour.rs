//! What a newcomer meets in their first job over their own data: a job over JSON-lines events
//! written without type annotations, ISO-8601 timestamps, window results straight into CSV,
//! and error messages that name the file, line and event at fault.

use std::io::Write;
use std::path::Path;
use std::time::Duration;
use streamcore::sink::CollectSink;
use streamcore::window::Windows;
use streamcore::{ErrorPolicy, Event, Job, JobConfig, StreamError, WatermarkStrategy};
use streamcore_connectors::{CsvSink, JsonLinesSource};

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap();
    for line in lines {
        writeln!(f, "{line}").unwrap();
    }
}

/// `n` transactions: user `u{i % 3}`, amount `10 * i`, one second apart, with ISO-8601 times.
fn transactions(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"event_id":"e{i}","timestamp":"2026-12-05T10:00:{:02}.500Z","event_type":"tx","data":{{"user_id":"u{}","amount":{}}}}}"#,
                i % 60,
                i % 3,
                10 * i
            )
        })
        .collect()
}

/// The first job, as a newcomer writes it: no `::<Event>`, no `&Event` on the closures, a
/// string field as the key, integer sums, window results straight into a CSV file.
#[test]
fn per_user_sums_from_json_lines_into_csv_with_no_type_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tx.jsonl");
    write_lines(&input, &transactions(30));
    let output = dir.path().join("sums.csv");

    let mut job = Job::new("per-user-sums");
    job.source("tx", JsonLinesSource::new(input.to_str().unwrap()))
        .filter(|e| e.get_i64("amount").unwrap_or(0) > 0)
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            Duration::from_secs(1),
        ))
        .key_by(|e| e.get_string("user_id"))
        .window(Windows::tumbling(Duration::from_secs(10)))
        .sum(|e| e.get_i64("amount").unwrap_or(0))
        .sink(CsvSink::file(&output));
    job.run(JobConfig::default().parallelism(2)).unwrap();

    let csv = std::fs::read_to_string(&output).unwrap();
    let mut lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.remove(0), "key,window_start,window_end,value");
    lines.sort();
    // Window [10:00:00, 10:00:10) holds i = 0..9 (i = 0 is filtered out: amount 0).
    let start = 1_796_464_800; // 2026-12-05T10:00:00Z
    let mut want = Vec::new();
    for w in 0..3i64 {
        for user in 0..3i64 {
            let sum: i64 = (w * 10..w * 10 + 10)
                .filter(|i| i % 3 == user)
                .map(|i| 10 * i)
                .sum();
            want.push(format!(
                "u{user},{}.0,{}.0,{sum}",
                start + 10 * w,
                start + 10 * w + 10
            ));
        }
    }
    want.sort();
    assert_eq!(lines, want);
}

fn high_value(e: &Event) -> Result<bool, String> {
    match e.get("amount") {
        None => Ok(false),
        Some(v) => v.as_f64().map(|a| a > 30.0).ok_or_else(|| {
            format!(
                "field `data.amount`: expected a number, got {}",
                v.type_name()
            )
        }),
    }
}

fn with_bad_amount_on_line_5(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tx.jsonl");
    let mut lines = transactions(8);
    lines[4] = lines[4].replace(r#""amount":40"#, r#""amount":"120""#);
    write_lines(&path, &lines);
    path
}

#[test]
fn an_operator_failing_on_an_event_names_the_file_line_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let input = with_bad_amount_on_line_5(dir.path());
    let mut job = Job::new("high-value");
    job.source("tx", JsonLinesSource::new(input.to_str().unwrap()))
        .try_filter(high_value)
        .name("high_value_filter")
        .collect();
    let err = job.run(JobConfig::default()).unwrap_err();
    assert!(matches!(err, StreamError::UserFunction { .. }), "{err:?}");
    let offset: usize = transactions(4).iter().map(|l| l.len() + 1).sum();
    assert_eq!(
        err.to_string(),
        format!(
            "operator `high_value_filter` failed on event `e4` from {} line 5 (byte offset {offset}): \
             field `data.amount`: expected a number, got string",
            input.display()
        )
    );
}

#[test]
fn a_dead_letter_names_the_operator_file_line_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let input = with_bad_amount_on_line_5(dir.path());
    let mut job = Job::new("high-value");
    let (sink, letters) = CollectSink::new();
    job.dead_letters(sink);
    let passed = job
        .source("tx", JsonLinesSource::new(input.to_str().unwrap()))
        .try_filter(high_value)
        .name("high_value_filter")
        .collect();
    let summary = job
        .run(JobConfig::default().error_policy(ErrorPolicy::DeadLetter))
        .unwrap();
    assert_eq!(summary.events_dead_lettered, 1);
    assert_eq!(passed.len(), 3); // amounts 50, 60, 70 (over 30)
    let letters = letters.take();
    let origin = &letters[0].origin;
    assert!(
        origin.starts_with("operator `high_value_filter` on event `e4` from ")
            && origin.contains(&format!("{} line 5 (byte offset ", input.display())),
        "{origin}"
    );
    assert!(
        letters[0].raw.contains(r#""amount":"120""#),
        "{}",
        letters[0].raw
    );
    // The origin is provenance, not content: the raw record is the event's JSON form.
    assert!(!letters[0].raw.contains("origin"), "{}", letters[0].raw);
}

#[test]
fn a_truncated_line_says_one_line_number_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.jsonl");
    let mut lines = transactions(3);
    lines[2].pop(); // the event's closing brace: the record as a whole is cut short
    write_lines(&path, &lines);
    let mut job = Job::new("truncated");
    job.source("tx", JsonLinesSource::new(path.to_str().unwrap()))
        .collect();
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    let offset = lines[0].len() + lines[1].len() + 2;
    assert_eq!(
        err,
        format!(
            "bad input in {} line 3 (byte offset {offset}): EOF while parsing an object at column {}",
            path.display(),
            lines[2].len()
        )
    );
}

#[test]
fn a_nested_record_into_csv_says_how_to_fix_it() {
    #[derive(Clone, serde::Serialize)]
    struct Nested {
        user: String,
        totals: (u64, f64),
    }
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    let mut job = Job::new("nested");
    job.from_vec(
        "in",
        vec![Nested {
            user: "u1".into(),
            totals: (1, 2.0),
        }],
    )
    .sink(CsvSink::file(&output));
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(err.contains("CSV needs flat records"), "{err}");
    assert!(err.contains("Nested"), "{err}");
    assert!(
        err.contains("map the records to a flat struct first"),
        "{err}"
    );
}

//! The interactive SQL shell (`streamcore sql` on a terminal with no script): line editing
//! and history (rustyline; history in `~/.streamcore_sql_history`), statements spanning lines
//! until their `;`, and queries that stream into the terminal — as changes (`+I[…]`, `-U[…]`;
//! the default, Flink SQL client's `changelog` mode) or as a table redrawn in place
//! (`SET 'sql-client.execution.result-mode' = 'table'`). Ctrl-C cancels the running query,
//! not the shell; Ctrl-D or `QUIT;` leaves.

use crate::checkpointing::print_summary;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streamcore::changelog::Change;
use streamcore::row::Row;
use streamcore::{Job, JobConfig};
use streamcore_sql::connectors::PrintSink;
use streamcore_sql::parser::parse_script;
use streamcore_sql::plan::Plan;
use streamcore_sql::{Outcome, Session};

/// Runs the shell until Ctrl-D or `QUIT;`.
pub fn run(mut session: Session, base: JobConfig) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = std::env::var_os("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".streamcore_sql_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    // Ctrl-C while a query runs cancels it (the shell goes on); while editing, rustyline
    // reads it as a key.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone())?;
    eprintln!(
        "streamcore SQL shell. Statements end with `;`. Ctrl-C cancels a running query; Ctrl-D or QUIT; leaves.\n\
         SET 'sql-client.execution.result-mode' = 'table' shows a query's result as a table updated in place."
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "streamcore> "
        } else {
            "         -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        if buffer.is_empty()
            && line
                .trim()
                .trim_end_matches(';')
                .eq_ignore_ascii_case("quit")
        {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !statement_complete(&buffer) {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(text.trim());
        if let Err(e) = execute(&mut session, &text, &base, &interrupted) {
            eprintln!("[ERROR] {e}");
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// True when the text ends with a `;` outside quotes and comments.
fn statement_complete(text: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut last = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '`' || c == '"' => quote = Some(c),
            None if c == '-' && chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                continue;
            }
            None if !c.is_whitespace() => last = Some(c),
            None => {}
        }
    }
    quote.is_none() && last == Some(';')
}

fn execute(
    session: &mut Session,
    text: &str,
    base: &JobConfig,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    for statement in parse_script(text)? {
        match session.execute(statement)? {
            Outcome::Done(what) => eprintln!("[INFO] {what}"),
            Outcome::Table { header, rows } => crate::sql::print_table(&header, &rows),
            Outcome::Explain(plan) => print!("{plan}"),
            Outcome::Queued(what) if session.in_statement_set => {
                eprintln!("[INFO] {what}: added to the statement set")
            }
            // In the shell an INSERT runs at once, as its own job; a statement set at its END.
            Outcome::Queued(_) | Outcome::RunStatementSet => {
                let mut job = Job::new(&session.job_name("insert"));
                if session.plan_inserts(&mut job)? > 0 {
                    let config =
                        crate::checkpointing::with_object_store(session.job_config(base.clone())?);
                    run_until_done(job, config, interrupted)?;
                }
            }
            Outcome::Query(plan) => query(session, &plan, base, interrupted)?,
        }
    }
    Ok(())
}

fn query(
    session: &Session,
    plan: &Plan,
    base: &JobConfig,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let table_mode = session
        .catalog
        .option("sql-client.execution.result-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("table"));
    let mut job = Job::new(&session.job_name("select"));
    let config = session.select_config(base.clone())?;
    if !table_mode {
        session.plan_select(&mut job, plan, |s| {
            s.sink_named("print", PrintSink::new(None))
        })?;
        return run_until_done(job, config, interrupted);
    }
    let table: Arc<Mutex<BTreeMap<Row, i64>>> = Arc::default();
    let sink = table.clone();
    session.plan_select(&mut job, plan, move |s| {
        s.for_each(move |c: Change<Row>| {
            let mut t = sink.lock().expect("the table lock");
            let d = if c.is_addition() { 1 } else { -1 };
            let row = c.into_row();
            let n = {
                let n = t.entry(row.clone()).or_insert(0);
                *n += d;
                *n
            };
            if n == 0 {
                // A row withdrawn as often as it was added is gone.
                t.remove(&row);
            }
        })
    })?;
    let header: Vec<String> = plan.fields.iter().map(|f| f.name.clone()).collect();
    let handle = job.start(config)?;
    interrupted.store(false, Ordering::SeqCst);
    loop {
        let done = handle.is_finished();
        let rows: Vec<Vec<String>> = {
            let t = table.lock().expect("the table lock");
            t.iter()
                .flat_map(|(r, n)| {
                    let cells: Vec<String> = r.values.iter().map(|v| v.to_string()).collect();
                    std::iter::repeat_n(cells, (*n).max(0) as usize)
                })
                .collect()
        };
        // Redraw in place: clear the screen, then the table.
        print!("\x1b[2J\x1b[H");
        crate::sql::print_table(&header, &rows);
        if done {
            break;
        }
        if interrupted.swap(false, Ordering::SeqCst) {
            handle.cancel();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    finish(handle.join())
}

fn run_until_done(
    job: Job,
    config: JobConfig,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let handle = job.start(config)?;
    interrupted.store(false, Ordering::SeqCst);
    while !handle.is_finished() {
        if interrupted.swap(false, Ordering::SeqCst) {
            eprintln!("[INFO] cancelling the query");
            handle.cancel();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(handle.join())
}

fn finish(result: streamcore::Result<streamcore::JobSummary>) -> anyhow::Result<()> {
    match result {
        Ok(summary) => print_summary(&summary, false),
        Err(streamcore::StreamError::Cancelled) => {
            eprintln!("[INFO] query cancelled");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::statement_complete;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes_and_comments() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1\nFROM t;\n"));
        assert!(!statement_complete("SELECT ';'"));
        assert!(!statement_complete("SELECT 1 -- ;"));
        assert!(statement_complete("SELECT 1 -- x\n;"));
        assert!(!statement_complete("SELECT 1"));
    }
}

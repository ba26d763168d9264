//! `-p/--parallelism`, the one parallelism option of every job command: parallel instances of
//! every stage, by default the number of cores.

use clap::Args;

/// The `-p/--parallelism` option (flattened into every job command's arguments).
#[derive(Args, Debug, Clone, Copy)]
pub struct ParallelismArg {
    /// Parallel instances of every stage, a thread each (at 1, a stage fed by one task alone
    /// runs on that task's thread) [default: number of cores].
    #[arg(
        long = "parallelism",
        short = 'p',
        value_name = "P",
        value_parser = parse_parallelism
    )]
    parallelism: Option<usize>,
}

impl ParallelismArg {
    /// The parallelism given, or the number of cores this process may use.
    pub fn get(&self) -> usize {
        self.parallelism.unwrap_or_else(default_parallelism)
    }
}

/// A parallelism from the command line: a whole number, at least 1.
fn parse_parallelism(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the parallelism must be at least 1".into()),
        Ok(p) => Ok(p),
        Err(e) => Err(format!("not a whole number of instances ({e})")),
    }
}

/// The number of cores this process may use (1 if that cannot be found out).
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

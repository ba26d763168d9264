//! [`PlanError`]: what is wrong with a statement, where (line and column of the script), and
//! whether it is a mistake or a feature not supported yet.

use sqlparser::tokenizer::{Location, Span};

/// A statement that cannot be planned or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The statement is wrong: an unknown table or column, a type mismatch, a missing option.
    #[error("{}{message}", at(*.location))]
    Invalid {
        /// Where in the script (line and column, 1-based; `0:0` when unknown).
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The statement is valid Flink SQL that streamcore does not support yet.
    #[error("{}not supported yet: {message}", at(*.location))]
    Unsupported {
        /// Where in the script.
        location: Location,
        /// What is not supported.
        message: String,
    },
    /// The script does not parse.
    #[error("{0}")]
    Parse(#[from] crate::parser::ParseError),
    /// The job failed while it ran.
    #[error("the job failed: {0}")]
    Run(String),
}

fn at(location: Location) -> String {
    if location.line == 0 {
        String::new()
    } else {
        format!("at {}:{}: ", location.line, location.column)
    }
}

impl PlanError {
    /// A mistake in the statement, position not known yet.
    pub fn invalid(message: impl Into<String>) -> Self {
        PlanError::Invalid {
            location: Location::empty(),
            message: message.into(),
        }
    }

    /// An unsupported feature, position not known yet.
    pub fn unsupported(message: impl Into<String>) -> Self {
        PlanError::Unsupported {
            location: Location::empty(),
            message: message.into(),
        }
    }

    /// Sets the position, unless one is known already.
    pub fn at(mut self, span: Span) -> Self {
        if let PlanError::Invalid { location, .. } | PlanError::Unsupported { location, .. } =
            &mut self
        {
            if location.line == 0 {
                *location = span.start;
            }
        }
        self
    }

    /// The message without the position.
    pub fn message(&self) -> String {
        match self {
            PlanError::Invalid { message, .. } => message.clone(),
            PlanError::Unsupported { message, .. } => format!("not supported yet: {message}"),
            other => other.to_string(),
        }
    }
}

/// The closest of `candidates` to `name` (edit distance at most 2, or a case-insensitive
/// match), for "did you mean" hints.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &c.to_lowercase())
        };
        if d <= 2 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    match best {
        Some((_, c)) => format!(" — did you mean `{c}`?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_the_nearest_name() {
        assert_eq!(
            did_you_mean("pricee", ["price", "bidder"]),
            " — did you mean `price`?"
        );
        assert_eq!(
            did_you_mean("DATETIME", ["dateTime"]),
            " — did you mean `dateTime`?"
        );
        assert_eq!(did_you_mean("zzz", ["price"]), "");
    }
}

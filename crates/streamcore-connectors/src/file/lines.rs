//! Reading the lines of one byte-range split of a file.

use super::FileSplit;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::sync::Arc;
use streamcore::event::{Position, RecordOrigin};
use streamcore::{Result, StreamError};

const READ_BUFFER: usize = 256 << 10;

/// Reads the lines that start inside one split. A split that starts mid-line skips to the next
/// line start (the previous split reads the line that crosses its end).
pub(crate) struct LineSplitReader {
    split: FileSplit,
    /// The file's path as records name it (shared by the split's records).
    input: Arc<str>,
    reader: BufReader<File>,
    /// Byte offset of the next line.
    pos: u64,
    /// 1-based number of the next line, known when the split starts at the file's start.
    line: Option<u64>,
    pub(crate) buf: Vec<u8>,
}

/// Where a line came from, for error messages.
pub(crate) struct LineOrigin {
    pub(crate) offset: u64,
    pub(crate) line: Option<u64>,
}

impl LineSplitReader {
    pub(crate) fn open(split: FileSplit) -> Result<Self> {
        let ctx = || format!("reading {}", split.path.display());
        let file = File::open(&split.path).map_err(|e| StreamError::io(ctx(), e))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, file);
        let mut pos = split.start;
        let mut line = Some(1);
        if split.start > 0 {
            line = None;
            // Start at the byte before: if it is a newline, a line starts exactly at `start`.
            reader
                .seek(SeekFrom::Start(split.start - 1))
                .map_err(|e| StreamError::io(ctx(), e))?;
            let mut skipped = Vec::new();
            let n = reader
                .read_until(b'\n', &mut skipped)
                .map_err(|e| StreamError::io(ctx(), e))?;
            pos = split.start - 1 + n as u64;
        }
        Ok(LineSplitReader {
            input: Arc::from(split.path.display().to_string()),
            split,
            reader,
            pos,
            line,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Reads the next line of this split into `self.buf` (without its line ending).
    /// Returns `None` at the end of the split.
    pub(crate) fn next_line(&mut self) -> Result<Option<LineOrigin>> {
        if self.pos >= self.split.end {
            return Ok(None);
        }
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| StreamError::io(format!("reading {}", self.split.path.display()), e))?;
        if n == 0 {
            return Ok(None);
        }
        let origin = LineOrigin {
            offset: self.pos,
            line: self.line,
        };
        self.pos += n as u64;
        if let Some(l) = &mut self.line {
            *l += 1;
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(origin))
    }

    /// The split's id.
    pub(crate) fn split_id(&self) -> u64 {
        self.split.id
    }

    /// Where the next line starts, and its 1-based number if known: the reader's position.
    pub(crate) fn position(&self) -> (u64, Option<u64>) {
        (self.pos, self.line)
    }

    /// Opens `split` to continue at `pos` (a line start recorded by [`Self::position`]).
    pub(crate) fn open_at(split: FileSplit, pos: u64, line: Option<u64>) -> Result<Self> {
        let ctx = || format!("reading {}", split.path.display());
        let file = File::open(&split.path).map_err(|e| StreamError::io(ctx(), e))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, file);
        reader
            .seek(SeekFrom::Start(pos))
            .map_err(|e| StreamError::io(ctx(), e))?;
        Ok(LineSplitReader {
            input: Arc::from(split.path.display().to_string()),
            split,
            reader,
            pos,
            line,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Where the line at `origin` is, as records carry it.
    pub(crate) fn record_origin(&self, origin: &LineOrigin) -> RecordOrigin {
        let position = match origin.line {
            Some(line) => Position::Line {
                line,
                byte_offset: Some(origin.offset),
            },
            None => Position::ByteOffset(origin.offset),
        };
        RecordOrigin::new(self.input.clone(), position)
    }

    /// "path line N (byte offset X)" or "path byte offset X".
    pub(crate) fn describe(&self, origin: &LineOrigin) -> String {
        self.record_origin(origin).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(split: FileSplit) -> Vec<(u64, String)> {
        let mut r = LineSplitReader::open(split).unwrap();
        let mut out = Vec::new();
        while let Some(o) = r.next_line().unwrap() {
            out.push((o.offset, String::from_utf8(r.buf.clone()).unwrap()));
        }
        out
    }

    proptest! {
        #[test]
        fn any_cut_reads_every_line_exactly_once(
            lines in proptest::collection::vec("[a-z]{0,12}", 0..40),
            cuts in proptest::collection::vec(0u64..600, 0..8),
            crlf in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.txt");
            let eol = if crlf { "\r\n" } else { "\n" };
            let text: String = lines.iter().map(|l| format!("{l}{eol}")).collect();
            std::fs::write(&path, &text).unwrap();
            let len = text.len() as u64;
            let mut bounds: Vec<u64> = cuts.into_iter().filter(|&c| c < len).collect();
            bounds.push(0);
            bounds.push(len);
            bounds.sort();
            bounds.dedup();
            let mut got = Vec::new();
            for w in bounds.windows(2) {
                got.extend(read_all(FileSplit { id: 0, path: path.clone(), start: w[0], end: w[1] }));
            }
            let mut offset = 0;
            let expected: Vec<(u64, String)> = lines.iter().map(|l| {
                let o = offset;
                offset += (l.len() + eol.len()) as u64;
                (o, l.clone())
            }).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn last_line_without_newline_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "a\nbb").unwrap();
        let got = read_all(FileSplit {
            id: 0,
            path,
            start: 0,
            end: 4,
        });
        assert_eq!(got, vec![(0, "a".to_string()), (2, "bb".to_string())]);
    }
}

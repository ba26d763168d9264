//! Reading the lines of one byte-range split of a file: large reads into one buffer, lines
//! found in it with `memchr` (SIMD) and handed out in place — no copy per line.

use super::FileSplit;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
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
    file: File,
    /// Bytes read from the file; `chunk[head..tail]` are not handed out yet. A line longer
    /// than the buffer grows it.
    chunk: Vec<u8>,
    head: usize,
    tail: usize,
    eof: bool,
    /// The last line handed out: `chunk[current.0..current.1]`, without its line ending.
    current: (usize, usize),
    /// Byte offset of the next line.
    pos: u64,
    /// 1-based number of the next line, known when the split starts at the file's start.
    line: Option<u64>,
}

/// Where a line came from, for error messages.
pub(crate) struct LineOrigin {
    pub(crate) offset: u64,
    pub(crate) line: Option<u64>,
}

impl LineSplitReader {
    pub(crate) fn open(split: FileSplit) -> Result<Self> {
        Self::open_with_buffer(split, READ_BUFFER)
    }

    fn open_with_buffer(split: FileSplit, buffer: usize) -> Result<Self> {
        if split.start == 0 {
            return Self::at(split, 0, Some(1), buffer);
        }
        // Start at the byte before: if it is a newline, a line starts exactly at `start`.
        let start = split.start;
        let mut reader = Self::at(split, start - 1, None, buffer)?;
        reader.take_line()?;
        Ok(reader)
    }

    /// Opens `split` to continue at `pos` (a line start recorded by [`Self::position`]).
    pub(crate) fn open_at(split: FileSplit, pos: u64, line: Option<u64>) -> Result<Self> {
        Self::at(split, pos, line, READ_BUFFER)
    }

    fn at(split: FileSplit, pos: u64, line: Option<u64>, buffer: usize) -> Result<Self> {
        let ctx = || format!("reading {}", split.path.display());
        let mut file = File::open(&split.path).map_err(|e| StreamError::io(ctx(), e))?;
        if pos > 0 {
            file.seek(SeekFrom::Start(pos))
                .map_err(|e| StreamError::io(ctx(), e))?;
        }
        Ok(LineSplitReader {
            input: Arc::from(split.path.display().to_string()),
            split,
            file,
            chunk: vec![0; buffer.max(1)],
            head: 0,
            tail: 0,
            eof: false,
            current: (0, 0),
            pos,
            line,
        })
    }

    /// Reads the next line of this split ([`Self::line`], without its line ending).
    /// Returns `None` at the end of the split.
    #[inline]
    pub(crate) fn next_line(&mut self) -> Result<Option<LineOrigin>> {
        if self.pos >= self.split.end {
            return Ok(None);
        }
        self.take_line()
    }

    /// The line the last [`Self::next_line`] read.
    #[inline]
    pub(crate) fn line(&self) -> &[u8] {
        &self.chunk[self.current.0..self.current.1]
    }

    /// The next line of the file, wherever the split ends.
    fn take_line(&mut self) -> Result<Option<LineOrigin>> {
        loop {
            let unread = &self.chunk[self.head..self.tail];
            if let Some(n) = memchr::memchr(b'\n', unread) {
                let start = self.head;
                self.head += n + 1;
                return Ok(Some(self.hand_out(start, start + n, n + 1)));
            }
            if self.eof {
                if unread.is_empty() {
                    return Ok(None);
                }
                let (start, end) = (self.head, self.tail);
                self.head = self.tail;
                return Ok(Some(self.hand_out(start, end, end - start)));
            }
            self.fill()?;
        }
    }

    /// Makes `chunk[start..end]` the current line (`consumed` bytes with its newline).
    #[inline]
    fn hand_out(&mut self, start: usize, mut end: usize, consumed: usize) -> LineOrigin {
        let origin = LineOrigin {
            offset: self.pos,
            line: self.line,
        };
        self.pos += consumed as u64;
        if let Some(l) = &mut self.line {
            *l += 1;
        }
        while end > start && self.chunk[end - 1] == b'\r' {
            end -= 1;
        }
        self.current = (start, end);
        origin
    }

    /// Reads more of the file behind the unread bytes (moved to the buffer's front).
    fn fill(&mut self) -> Result<()> {
        if self.head > 0 {
            self.chunk.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if self.tail == self.chunk.len() {
            let grown = self.chunk.len() * 2;
            self.chunk.resize(grown, 0);
        }
        loop {
            match self.file.read(&mut self.chunk[self.tail..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.tail += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(StreamError::io(
                        format!("reading {}", self.split.path.display()),
                        e,
                    ))
                }
            }
            return Ok(());
        }
    }

    /// The split's id.
    pub(crate) fn split_id(&self) -> u64 {
        self.split.id
    }

    /// Where the next line starts, and its 1-based number if known: the reader's position.
    pub(crate) fn position(&self) -> (u64, Option<u64>) {
        (self.pos, self.line)
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
        read_all_with(split, READ_BUFFER)
    }

    fn read_all_with(split: FileSplit, buffer: usize) -> Vec<(u64, String)> {
        let mut r = LineSplitReader::open_with_buffer(split, buffer).unwrap();
        let mut out = Vec::new();
        while let Some(o) = r.next_line().unwrap() {
            out.push((o.offset, String::from_utf8(r.line().to_vec()).unwrap()));
        }
        out
    }

    proptest! {
        #[test]
        fn any_cut_reads_every_line_exactly_once(
            lines in proptest::collection::vec("[a-z]{0,12}", 0..40),
            cuts in proptest::collection::vec(0u64..600, 0..8),
            crlf in any::<bool>(),
            buffer in prop_oneof![1usize..24, Just(READ_BUFFER)],
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
                // Small buffers: lines cross refills and outgrow the buffer.
                got.extend(read_all_with(FileSplit { id: 0, path: path.clone(), start: w[0], end: w[1] }, buffer));
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

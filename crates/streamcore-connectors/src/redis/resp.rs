//! Packing Redis commands (RESP arrays of bulk strings) straight into one reused buffer, so a
//! pipeline of thousands of commands costs no allocation per command; and reading a packed
//! command back, to name the key of a command the server refused.

use std::io::Write as _;

/// A buffer of packed commands, sent as one pipeline.
#[derive(Default)]
pub(crate) struct Packed {
    pub(crate) bytes: Vec<u8>,
    /// Where each command starts in `bytes`.
    pub(crate) starts: Vec<usize>,
}

impl Packed {
    /// Number of commands packed.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.starts.clear();
    }

    /// Starts a command of `args` arguments (the command name included).
    pub(crate) fn command(&mut self, args: usize) {
        self.starts.push(self.bytes.len());
        self.bytes.push(b'*');
        self.number(args as u64);
    }

    /// Appends one argument.
    pub(crate) fn arg(&mut self, arg: &[u8]) {
        self.bytes.push(b'$');
        self.number(arg.len() as u64);
        self.bytes.extend_from_slice(arg);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// Appends an integer argument.
    pub(crate) fn int_arg(&mut self, v: i64) {
        let mut b = itoa::Buffer::new();
        self.arg(b.format(v).as_bytes());
    }

    /// Appends a float argument (Redis reads `inf`/`-inf`; NaN is refused before).
    pub(crate) fn float_arg(&mut self, v: f64) {
        let mut b = [0u8; 40];
        let mut w = &mut b[..];
        let _ = write!(w, "{v}");
        let n = 40 - w.len();
        self.arg(&b[..n]);
    }

    fn number(&mut self, n: u64) {
        let mut b = itoa::Buffer::new();
        self.bytes.extend_from_slice(b.format(n).as_bytes());
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// The first `n` arguments of command `i` (for messages), lossily decoded.
    pub(crate) fn describe(&self, i: usize, n: usize) -> String {
        let Some(&start) = self.starts.get(i) else {
            return String::new();
        };
        let mut rest = &self.bytes[start..];
        let mut line = || -> Option<&[u8]> {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let l = &rest[..end];
            rest = &rest[end + 2..];
            Some(l)
        };
        let Some(count) = line()
            .and_then(|l| l.strip_prefix(b"*"))
            .and_then(|l| std::str::from_utf8(l).ok()?.parse::<usize>().ok())
        else {
            return String::new();
        };
        let mut args = Vec::new();
        for _ in 0..count.min(n) {
            let Some(len) = line()
                .and_then(|l| l.strip_prefix(b"$"))
                .and_then(|l| std::str::from_utf8(l).ok()?.parse::<usize>().ok())
            else {
                break;
            };
            let Some(arg) = line() else { break };
            args.push(String::from_utf8_lossy(&arg[..len.min(arg.len())]).into_owned());
        }
        args.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_resp_and_reads_it_back() {
        let mut p = Packed::default();
        p.command(3);
        p.arg(b"SET");
        p.arg(b"user:1");
        p.int_arg(-42);
        p.command(4);
        p.arg(b"ZADD");
        p.arg(b"top");
        p.float_arg(1.5);
        p.arg(b"alice");
        assert_eq!(
            p.bytes,
            b"*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$3\r\n-42\r\n*4\r\n$4\r\nZADD\r\n$3\r\ntop\r\n$3\r\n1.5\r\n$5\r\nalice\r\n"
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p.describe(0, 2), "SET user:1");
        assert_eq!(p.describe(1, 9), "ZADD top 1.5 alice");
    }
}

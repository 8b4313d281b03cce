//! Splitting a byte stream into lines, whatever the chunking: a pure state
//! machine (bytes in, complete lines out) so it can be tested on every
//! possible split of its input.
//!
//! A line is held in memory until its newline arrives, so its length is
//! bounded: past the limit the line is reported as too long and the rest
//! of it is skipped, not buffered. Lines are bytes: a chunk boundary inside
//! a multi-byte UTF-8 character is harmless because nothing is decoded
//! before the line is complete.

/// One line of the input, numbered from 1 (blank lines count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub number: u64,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line's bytes, without its `\n` or `\r\n`.
    Text(Vec<u8>),
    /// Longer than the limit; its bytes were dropped.
    TooLong,
}

/// Feed it bytes, get complete lines.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    /// Longest line kept, without its line ending.
    max: usize,
    /// The current line so far (at most `max + 1` bytes: room for a `\r`).
    buf: Vec<u8>,
    /// The current line is too long: skip to its end.
    skipping: bool,
    /// Lines completed so far.
    lines: u64,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            buf: Vec::new(),
            skipping: false,
            lines: 0,
        }
    }

    /// Lines completed so far (including blank and too-long ones).
    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    /// Takes the next bytes of the input; every line they complete is
    /// appended to `out`.
    pub(crate) fn feed(&mut self, mut data: &[u8], out: &mut impl Extend<Piece>) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            self.take(&data[..i]);
            out.extend(Some(self.end_line()));
            data = &data[i + 1..];
        }
        self.take(data);
    }

    /// The input ended: its last line, if it had no newline.
    pub(crate) fn finish(&mut self) -> Option<Piece> {
        (self.skipping || !self.buf.is_empty()).then(|| self.end_line())
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        // `max + 1`: a line of exactly `max` bytes may still end in `\r\n`.
        if self.buf.len() + bytes.len() > self.max.saturating_add(1) {
            self.skipping = true;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) -> Piece {
        self.lines += 1;
        let line = if std::mem::take(&mut self.skipping) {
            Line::TooLong
        } else {
            let mut text = std::mem::take(&mut self.buf);
            if text.last() == Some(&b'\r') {
                text.pop();
            }
            if text.len() > self.max {
                Line::TooLong
            } else {
                Line::Text(text)
            }
        };
        Piece {
            number: self.lines,
            line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Piece> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out.extend(s.finish());
        assert_eq!(s.lines(), out.len() as u64);
        out
    }

    fn text(number: u64, s: &str) -> Piece {
        Piece {
            number,
            line: Line::Text(s.as_bytes().to_vec()),
        }
    }

    fn too_long(number: u64) -> Piece {
        Piece {
            number,
            line: Line::TooLong,
        }
    }

    #[test]
    fn lines_endings_blank_lines_and_the_last_line() {
        assert_eq!(split(100, &[b""]), vec![]);
        assert_eq!(split(100, &[b"\n"]), vec![text(1, "")]);
        assert_eq!(
            split(100, &[b"a\r\n\nb\r\nc"]),
            vec![text(1, "a"), text(2, ""), text(3, "b"), text(4, "c")]
        );
        // A lone `\r` inside a line is kept; only the one before `\n` goes.
        assert_eq!(split(100, &[b"a\rb\r\r\n"]), vec![text(1, "a\rb\r")]);
    }

    #[test]
    fn the_limit_is_on_the_line_without_its_ending() {
        assert_eq!(
            split(3, &[b"abc\r\nabc\nab"]),
            vec![text(1, "abc"), text(2, "abc"), text(3, "ab")]
        );
        assert_eq!(
            split(3, &[b"abcd\nxy\nabc\rd\r\nabcd"]),
            vec![too_long(1), text(2, "xy"), too_long(3), too_long(4)]
        );
        // A long line is not kept while it is skipped.
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.feed(&[b'x'; 1000], &mut out);
            assert!(s.buf.capacity() <= 1000);
        }
        s.feed(b"\nok\n", &mut out);
        assert_eq!(out, vec![too_long(1), text(2, "ok")]);
    }

    /// Inputs with every kind of boundary: multi-byte UTF-8 (2, 3 and 4
    /// bytes), CRLF, blank lines, lines at and over the limit, no final
    /// newline.
    fn inputs() -> Vec<Vec<u8>> {
        vec![
            "{\"a\":\"é€𝄞\"}\n{\"b\":1}\r\n\n  \r\nlast".into(),
            "€€€€€€\n𝄞𝄞\r\n€\n".into(),
            "12345678\r\n123456789\n12345678\r\r\n1234567\r\n€€€\n".into(),
            "\r\n\r\n\n\n𝄞".into(),
            "x".repeat(30).into_bytes(),
            b"\xff\xfe\n\xe2\x82\n\r".to_vec(),
        ]
    }

    #[test]
    fn every_split_gives_the_unsplit_result() {
        for max in [0, 1, 4, 8, 9, 1000] {
            for input in inputs() {
                let whole = split(max, &[&input]);
                let bytewise: Vec<&[u8]> = input.chunks(1).collect();
                assert_eq!(split(max, &bytewise), whole, "max {max}, bytewise");
                for i in 0..=input.len() {
                    let (a, b) = input.split_at(i);
                    assert_eq!(split(max, &[a, b]), whole, "max {max}, split at {i}");
                    for j in i..=input.len() {
                        let (b, c) = input[i..].split_at(j - i);
                        assert_eq!(
                            split(max, &[a, b, c]),
                            whole,
                            "max {max}, split at {i}, {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_character_split_across_chunks_is_joined() {
        let input = "{\"k\":\"€𝄞\"}\n".as_bytes();
        // Inside the 3-byte € (bytes 6..9) and the 4-byte 𝄞 (9..13).
        for i in 7..13 {
            let pieces = split(100, &[&input[..i], &input[i..]]);
            assert_eq!(pieces, vec![text(1, "{\"k\":\"€𝄞\"}")], "split at {i}");
        }
    }
}

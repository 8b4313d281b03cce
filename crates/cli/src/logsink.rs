//! Where `evault serve` writes its log: standard error, through a writer
//! that cannot fail the process. `eprintln!` panics when stderr is a closed
//! pipe (a dead log shipper) or a full disk, and a panic in a vault task
//! stops it; here a failed write is counted in
//! `evault_log_write_errors_total` and the line is dropped.

use std::io::{self, Write};

/// Counter of log lines (or parts of them) that could not be written.
pub const LOG_WRITE_ERRORS: &str = "evault_log_write_errors_total";

/// Standard error that never returns an error and never panics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_all_or_count(&mut io::stderr().lock(), buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if io::stderr().flush().is_err() {
            metrics::counter!(LOG_WRITE_ERRORS).increment(1);
        }
        Ok(())
    }
}

/// Writes `buf` to `w`; a failure is counted, never returned.
fn write_all_or_count(w: &mut dyn Write, buf: &[u8]) -> bool {
    if w.write_all(buf).is_err() {
        metrics::counter!(LOG_WRITE_ERRORS).increment(1);
        return false;
    }
    true
}

/// Writes one line to standard error, like `eprintln!` but never panics.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut s = args.to_string();
    s.push('\n');
    write_all_or_count(&mut io::stderr().lock(), s.as_bytes());
}

/// `eprintln!` that cannot fail: see [`line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::logsink::line(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink like a closed pipe or a full disk.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_broken_sink_is_counted_not_raised() {
        assert!(!write_all_or_count(&mut Broken, b"lost line\n"));
        let mut ok = Vec::new();
        assert!(write_all_or_count(&mut ok, b"kept\n"));
        assert_eq!(ok, b"kept\n");
    }

    #[test]
    fn the_stderr_writer_reports_success_always() {
        assert_eq!(Stderr.write(b"").unwrap(), 0);
        assert!(Stderr.flush().is_ok());
    }
}

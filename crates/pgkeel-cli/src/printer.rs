//! Standard output for every command. A closed pipe (`pgkeel lint | head`) is the reader saying
//! "enough", not an error: the first failed write marks stdout closed, later output is dropped,
//! the command runs to its end (a migration is never cut short by its reader going away), and
//! the process exits 0 unless the command failed.
//!
//! The crate's `println!` and `print!` are this module's (defined here, in scope everywhere
//! after `mod printer` in main.rs), so no command can write to stdout in a way that panics.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` (and a newline) to stdout, unless stdout is closed.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    note(result);
}

/// Records a failed write to stdout: a closed pipe marks stdout closed; other errors are
/// reported once on stderr.
pub fn note(result: std::io::Result<()>) {
    if let Err(e) = result {
        if !CLOSED.swap(true, Ordering::Relaxed) && e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("pgkeel: cannot write to standard output: {e}");
        }
    }
}

/// Whether stdout was found closed.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `println!` that never panics (see the module doc).
macro_rules! println {
    () => {
        $crate::printer::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::printer::write(format_args!($($arg)*), true)
    };
}

/// `print!` that never panics (see the module doc).
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::printer::write(format_args!($($arg)*), false)
    };
}

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

/// The one colour policy: `--color always|never` wins; `auto` colours a stream only when it is a
/// terminal and NO_COLOR is not set (https://no-color.org). Set once from the flag in main.
static COLOR: std::sync::OnceLock<crate::args::ColorChoice> = std::sync::OnceLock::new();

/// Records `--color` (the first call wins).
pub fn set_color(choice: crate::args::ColorChoice) {
    let _ = COLOR.set(choice);
}

/// Which stream a coloured text goes to.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether text written to `stream` may carry colour codes.
pub fn color(stream: Stream) -> bool {
    use std::io::IsTerminal;
    let terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    decide(
        COLOR.get().copied().unwrap_or_default(),
        terminal,
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

fn decide(choice: crate::args::ColorChoice, terminal: bool, no_color: bool) -> bool {
    use crate::args::ColorChoice;
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && !no_color,
    }
}

/// `text` in SGR colour `code` (e.g. `1;31`) when `stream` may be coloured, else as is.
pub fn paint(stream: Stream, code: &str, text: &str) -> String {
    sgr(color(stream), code, text)
}

/// `text` in SGR colour `code` when `on` (a [`color`] decision taken once), else as is.
pub fn sgr(on: bool, code: &str, text: &str) -> String {
    match on {
        true => format!("\x1b[{code}m{text}\x1b[0m"),
        false => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::args::ColorChoice;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_unless_forced() {
        assert!(super::decide(ColorChoice::Auto, true, false));
        assert!(!super::decide(ColorChoice::Auto, false, false), "a pipe");
        assert!(!super::decide(ColorChoice::Auto, true, true), "NO_COLOR");
        assert!(super::decide(ColorChoice::Always, false, true));
        assert!(!super::decide(ColorChoice::Never, true, false));
    }
}

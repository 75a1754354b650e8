//! The command line beside `run` and `check`: one module per verb.

pub mod admin;
pub mod chat;
pub mod check;
pub mod http;
pub mod install;
pub mod keys;
pub mod models;
pub mod status;
pub mod usage;
pub mod workspace;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Rows as left-aligned columns two spaces apart, the first row a header.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// One line of progress on stderr ("testing 3/7 …"), shown only on a
/// terminal and wiped before anything else is printed.
pub struct Progress {
    tty: bool,
    shown: bool,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    pub fn set(&mut self, text: &str) {
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K{text} …");
            self.shown = true;
        }
    }

    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A current-thread runtime for a verb's async calls.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// `runtime()` for a verb: the error printed, the exit code returned.
pub fn runtime_or_exit() -> Result<tokio::runtime::Runtime, ExitCode> {
    runtime().map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = [["A".to_owned(), "BB".into()], ["ccc".into(), "d".into()]];
        assert_eq!(table(&rows), "A    BB\nccc  d\n");
    }
}

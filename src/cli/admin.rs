//! `modelswitch admin set-password`: the admin UI's password for
//! single-user setups, stored in the key store as an Argon2id hash (never
//! the password). Setting it ends every password session, on every
//! gateway sharing the store. Reads only `[storage]` of the config, as
//! `keys` does.
//!
//! Exit codes: 0 done, 1 store failure, 2 bad input.

use super::keys::open_store;
use crate::admin::password;
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

#[derive(Args)]
pub struct AdminArgs {
    /// A SQLite key store file, whatever the config says (default: the
    /// config's `[storage]`).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Set the admin UI password (shown as user "(password)"); asked twice on a terminal.
    SetPassword {
        /// Read the password from standard input (one line) instead.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn run(config: &Path, args: AdminArgs) -> ExitCode {
    let Verb::SetPassword { password_stdin } = args.verb;
    let new = match read_password(password_stdin) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = password::check_new(&new) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let phc = match password::hash(&new) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    drop(new);
    let store = match open_store(config, args.db) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::runtime_or_exit() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(store.set_admin_password(phc)) {
        Ok(ended) => {
            eprintln!(
                "The admin password is set; log in to the UI as \"admin\". \
                 {ended} password session(s) ended."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The new password: stdin's first line with `--password-stdin`, else
/// asked twice on the terminal without echo.
fn read_password(from_stdin: bool) -> Result<String, String> {
    let stdin = std::io::stdin();
    if from_stdin {
        let mut text = String::new();
        stdin
            .lock()
            .take(password::MAX_BYTES as u64 + 2)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        return Ok(first_line(&text).to_owned());
    }
    if !stdin.is_terminal() {
        return Err("no terminal to ask on: pipe the password in with --password-stdin".into());
    }
    let first = prompt("New admin password: ")?;
    password::check_new(&first)?;
    let again = prompt("Repeat it: ")?;
    if first != again {
        return Err("the two passwords differ; nothing was changed".into());
    }
    Ok(first)
}

/// The password as typed: the first line, without its line ending.
fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

/// One line from the terminal with echo off (`stty`, so no unsafe code
/// here); echo comes back even when reading fails.
fn prompt(text: &str) -> Result<String, String> {
    let mut err = std::io::stderr();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    let echo = |on: bool| {
        Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !echo(false) {
        return Err("cannot turn the terminal's echo off: use --password-stdin".into());
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    echo(true);
    let _ = err.write_all(b"\n");
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(first_line(&line).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_ending() {
        assert_eq!(first_line("correct horse\n"), "correct horse");
        assert_eq!(first_line("correct horse\r\n"), "correct horse");
        assert_eq!(first_line("no newline"), "no newline");
        assert_eq!(first_line("  spaced  \nsecond"), "  spaced  ");
        assert_eq!(first_line(""), "");
    }
}

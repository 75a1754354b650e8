//! Descriptors held back for upstream connections.
//!
//! Every accepted request needs one more socket, for its upstream. A burst
//! past the open-files limit lets Pingora's accept loop take every free
//! descriptor for client sockets; then no request can connect, none ends to
//! free one, and each waits out its deadline. A few descriptors opened at
//! start (on `/dev/null`) are given up one at a time to a connect that found
//! none, so some request always moves and frees two when it ends. The
//! reserve is refilled only while no connect is waiting, so a freed
//! descriptor goes to a waiting request first.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// At most this many held back: enough to keep requests moving, not to
/// serve them.
const MOST: usize = 16;

static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
/// How many the reserve should hold (set once by `fill`).
static TARGET: AtomicUsize = AtomicUsize::new(0);
/// The reserve holds fewer than its target: the one flag the connect path
/// reads when nothing is short.
static SHORT: AtomicBool = AtomicBool::new(false);
/// Connects waiting for a descriptor now.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Opens the reserve: a sixteenth of the open-files limit, at most `MOST`,
/// so a low limit is left to the gateway's own files and the listeners.
/// Returns how many are held.
pub fn fill() -> usize {
    let target = open_files_limit().map_or(MOST, |limit| (limit / 16).min(MOST as u64) as usize);
    let mut opened = Vec::with_capacity(target);
    while opened.len() < target {
        match File::open("/dev/null") {
            Ok(f) => opened.push(f),
            Err(_) => break,
        }
    }
    let held = opened.len();
    if let Ok(mut reserve) = HELD.lock() {
        *reserve = opened;
    }
    TARGET.store(held, Ordering::Relaxed);
    SHORT.store(false, Ordering::Relaxed);
    held
}

/// The soft open-files limit, where the system says (Linux's
/// `/proc/self/limits`; `unsafe` is not allowed here for `getrlimit`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    soft_open_files(&limits)
}

fn soft_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Gives one held descriptor back to the process, for a connect that found
/// none. False when the reserve is empty.
pub fn release_one() -> bool {
    let released = HELD.lock().ok().and_then(|mut held| held.pop());
    if released.is_some() {
        SHORT.store(true, Ordering::Relaxed);
    }
    released.is_some()
}

/// Tops the reserve up when it is short and no connect is waiting; a
/// descriptor the process cannot spare is left alone.
pub fn refill() {
    if !SHORT.load(Ordering::Relaxed) || WAITING.load(Ordering::Relaxed) > 0 {
        return;
    }
    let Ok(mut held) = HELD.lock() else { return };
    let target = TARGET.load(Ordering::Relaxed);
    while held.len() < target {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(_) => return,
        }
    }
    SHORT.store(false, Ordering::Relaxed);
}

/// Some connect is waiting for a descriptor now.
pub fn waiting() -> bool {
    WAITING.load(Ordering::Relaxed) > 0
}

/// Counts a connect as waiting for a descriptor while it lives.
pub struct Waiting(());

impl Waiting {
    pub fn start() -> Self {
        WAITING.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The reserve is process-wide: unit tests that open connections (and so
/// may refill it) hold this while the reserve's own test counts it.
#[cfg(test)]
pub(crate) static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the reserve is process-wide state.
    #[test]
    fn the_soft_limit_is_read_from_the_limits_table() {
        let table = "Limit                     Soft Limit           Hard Limit           Units     \n\
                     Max cpu time              unlimited            unlimited            seconds   \n\
                     Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files(table), Some(1024));
        assert_eq!(
            soft_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
        assert_eq!(soft_open_files("Max processes 10 10 processes"), None);
    }

    #[test]
    fn held_descriptors_are_released_one_at_a_time_and_refilled_when_nobody_waits() {
        let _alone = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let held = fill();
        assert_eq!(held, MOST, "a test process has a limit of 256 or more");
        assert!(release_one());
        assert!(release_one());
        assert_eq!(HELD.lock().unwrap().len(), MOST - 2);
        {
            let _w = Waiting::start();
            refill();
            assert_eq!(HELD.lock().unwrap().len(), MOST - 2, "a waiter goes first");
        }
        refill();
        assert_eq!(HELD.lock().unwrap().len(), MOST);
        assert!(!SHORT.load(Ordering::Relaxed));
        for _ in 0..MOST {
            assert!(release_one());
        }
        assert!(!release_one(), "an empty reserve says so");
        refill();
        assert_eq!(HELD.lock().unwrap().len(), MOST);
    }
}

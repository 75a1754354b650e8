//! Daily, size-capped JSON-lines files: `conversations-YYYY-MM-DD.jsonl`,
//! rolled over to `conversations-YYYY-MM-DD.1.jsonl`, `.2.jsonl`… when a
//! file would pass its size cap, and deleted past their retention or the
//! file count cap. Days are UTC days: a file's name says the same day on
//! every host, whatever `[limits] timezone` says. Also the reverse reader
//! the admin API scans them with, newest line first.
//!
//! Plain std IO: the one writer runs on a background service's runtime, and
//! the readers in `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PREFIX: &str = "conversations-";
const SUFFIX: &str = ".jsonl";
const MS_PER_DAY: i64 = 86_400_000;

/// A UTC calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Day {
    /// The UTC day holding `unix_ms`.
    pub fn of_ms(unix_ms: i64) -> Self {
        civil_from_days(unix_ms.div_euclid(MS_PER_DAY))
    }

    /// Unix milliseconds at the day's first instant.
    pub fn start_ms(self) -> i64 {
        days_from_civil(self) * MS_PER_DAY
    }

    fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let day = Self {
            year: i32::try_from(num(0..4)?).ok()?,
            month: u8::try_from(num(5..7)?).ok()?,
            day: u8::try_from(num(8..10)?).ok()?,
        };
        // Round-trips only if it is a real date.
        (civil_from_days(days_from_civil(day)) == day).then_some(day)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Days since 1970-01-01 → civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> Day {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Day {
        year: i32::try_from(y).unwrap_or(i32::MAX),
        month: u8::try_from(m).unwrap_or(1),
        day: u8::try_from(d).unwrap_or(1),
    }
}

fn days_from_civil(d: Day) -> i64 {
    let (m, day) = (i64::from(d.month), i64::from(d.day));
    let y = i64::from(d.year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-03T08:07:25.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    Rfc3339Ms(unix_ms).to_string()
}

/// [`rfc3339_ms`] written straight into a buffer (the access log file's
/// lines, which must not allocate).
pub struct Rfc3339Ms(pub i64);

impl std::fmt::Display for Rfc3339Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let day = Day::of_ms(self.0);
        let ms = self.0.rem_euclid(MS_PER_DAY);
        let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        write!(f, "{day}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A time given to the admin API: RFC 3339, or Unix seconds (or
/// milliseconds, past the year 5138 in seconds). In Unix milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(if n.abs() < 100_000_000_000 {
            n.saturating_mul(1000)
        } else {
            n
        });
    }
    filters::auth::parse_rfc3339(s).map(|t| t.saturating_mul(1000))
}

/// One file of the log: its day and its roll-over index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub day: Day,
    pub index: u32,
    pub path: PathBuf,
}

fn file_name(day: Day, index: u32) -> String {
    if index == 0 {
        format!("{PREFIX}{day}{SUFFIX}")
    } else {
        format!("{PREFIX}{day}.{index}{SUFFIX}")
    }
}

fn parse_name(name: &str) -> Option<(Day, u32)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (day, index) = match rest.split_once('.') {
        None => (rest, 0),
        Some((d, i)) if !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()) => {
            (d, i.parse().ok().filter(|&n| n > 0)?)
        }
        Some(_) => return None,
    };
    Some((Day::parse(day)?, index))
}

/// The log's files in `dir`, newest first (by day, then roll-over index);
/// other files are left alone. A missing directory holds none.
pub fn list_newest_first(dir: &Path) -> io::Result<Vec<LogFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((day, index)) = name.to_str().and_then(parse_name) {
            files.push(LogFile {
                day,
                index,
                path: entry.path(),
            });
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse((f.day, f.index)));
    Ok(files)
}

/// How the files are kept.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_file_bytes: u64,
    pub retention: Duration,
    pub max_files: usize,
}

struct Current {
    day: Day,
    index: u32,
    size: u64,
    out: BufWriter<File>,
}

/// The writer's side: appends lines to the right file, rolling over by
/// day and size and pruning old files when a new one starts.
pub struct DailyFiles {
    dir: PathBuf,
    policy: Policy,
    current: Option<Current>,
}

impl DailyFiles {
    pub fn new(dir: PathBuf, policy: Policy) -> Self {
        Self {
            dir,
            policy,
            current: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one line (`line` without its newline) at `now_ms`. A line
    /// larger than the cap gets a file of its own rather than being cut.
    pub fn append(&mut self, now_ms: i64, line: &[u8]) -> io::Result<()> {
        let day = Day::of_ms(now_ms);
        let len = line.len() as u64 + 1;
        let roll = match &self.current {
            None => true,
            Some(c) => c.day != day || (c.size > 0 && c.size + len > self.policy.max_file_bytes),
        };
        if roll {
            // Past the cap within the day: the next index, never back into
            // a file with room left for a smaller line.
            let next = self
                .current
                .as_ref()
                .filter(|c| c.day == day)
                .map(|c| c.index + 1);
            self.open(day, next, now_ms)?;
        }
        let Some(c) = &mut self.current else {
            return Err(io::Error::other("no file is open"));
        };
        c.out.write_all(line)?;
        c.out.write_all(b"\n")?;
        c.size += len;
        Ok(())
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some(c) => c.out.flush(),
            None => Ok(()),
        }
    }

    /// Opens file `index` of `day`, or with none given, the day's last file
    /// while it is under the cap (after a restart) or the one after it.
    fn open(&mut self, day: Day, index: Option<u32>, now_ms: i64) -> io::Result<()> {
        if let Some(mut c) = self.current.take() {
            c.out.flush()?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let last = match index {
            Some(_) => None,
            None => list_newest_first(&self.dir)?
                .into_iter()
                .find(|f| f.day == day),
        };
        let (index, size) = match last {
            None => (index.unwrap_or(0), 0),
            Some(f) => {
                let size = std::fs::metadata(&f.path).map_or(0, |m| m.len());
                if size < self.policy.max_file_bytes {
                    (f.index, size)
                } else {
                    (f.index + 1, 0)
                }
            }
        };
        // Conversations are private: owner-only, like the key store.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.join(file_name(day, index)))?;
        self.current = Some(Current {
            day,
            index,
            size,
            out: BufWriter::with_capacity(64 * 1024, file),
        });
        self.prune(now_ms)
    }

    /// Deletes files whose whole day is older than the retention, then the
    /// oldest beyond the count cap (never the file being written).
    pub fn prune(&mut self, now_ms: i64) -> io::Result<()> {
        let files = list_newest_first(&self.dir)?;
        let retention = i64::try_from(self.policy.retention.as_millis()).unwrap_or(i64::MAX);
        let current = self.current.as_ref().map(|c| (c.day, c.index));
        for (i, f) in files.iter().enumerate() {
            if Some((f.day, f.index)) == current {
                continue;
            }
            let day_end = f.day.start_ms() + MS_PER_DAY;
            let expired = now_ms.saturating_sub(day_end) > retention;
            if expired || i >= self.policy.max_files {
                match std::fs::remove_file(&f.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// A file's lines from last to first, read backwards in blocks; counts the
/// bytes it read so a scan can be bounded.
pub struct ReverseLines {
    file: File,
    /// Start of what is still unread.
    pos: u64,
    /// Read, not yet returned: whole lines, the first maybe partial.
    pending: Vec<u8>,
    block: usize,
    pub bytes_read: u64,
}

impl ReverseLines {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let pos = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            pos,
            pending: Vec::new(),
            block: 64 * 1024,
            bytes_read: 0,
        })
    }

    /// The previous non-empty line, without its newline.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            while self.pending.last() == Some(&b'\n') {
                self.pending.pop();
            }
            if let Some(i) = self.pending.iter().rposition(|&b| b == b'\n') {
                let line = self.pending.split_off(i + 1);
                self.pending.truncate(i);
                if !line.is_empty() {
                    return Ok(Some(line));
                }
                continue;
            }
            if self.pos == 0 {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.pending)));
            }
            // No line end in what is held: read further back (in larger
            // blocks while a long line goes on, so it is not O(n²)).
            let n = (self.block as u64).min(self.pos);
            self.pos -= n;
            self.file.seek(SeekFrom::Start(self.pos))?;
            let mut block = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
            self.file.read_exact(&mut block)?;
            self.bytes_read += n;
            block.extend_from_slice(&self.pending);
            self.pending = block;
            self.block = self.block.saturating_mul(2).min(8 << 20);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-journal-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        list_newest_first(dir)
            .unwrap()
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    const DAY0: i64 = 1_764_720_000_000; // 2025-12-03T00:00:00Z

    #[test]
    fn dates_round_trip_and_format() {
        assert_eq!(Day::of_ms(0).to_string(), "1970-01-01");
        assert_eq!(Day::of_ms(DAY0).to_string(), "2025-12-03");
        assert_eq!(Day::of_ms(DAY0 - 1).to_string(), "2025-12-02");
        assert_eq!(Day::of_ms(951_782_400_000).to_string(), "2000-02-29");
        assert_eq!(Day::of_ms(DAY0).start_ms(), DAY0);
        assert_eq!(rfc3339_ms(DAY0 + 3_723_045), "2025-12-03T01:02:03.045Z");
        assert_eq!(Day::parse("2025-02-29"), None);
        assert_eq!(Day::parse("2024-02-29").map(|d| d.day), Some(29));
        assert_eq!(parse_time("1764720000"), Some(DAY0));
        assert_eq!(parse_time("1764720000000"), Some(DAY0));
        assert_eq!(parse_time("2025-12-03T00:00:00Z"), Some(DAY0));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn names_parse_and_sort_newest_first() {
        assert_eq!(
            parse_name("conversations-2025-12-03.jsonl"),
            Some((Day::of_ms(DAY0), 0))
        );
        assert_eq!(
            parse_name("conversations-2025-12-03.12.jsonl"),
            Some((Day::of_ms(DAY0), 12))
        );
        for bad in [
            "conversations-2025-12-03.0.jsonl",
            "conversations-2025-12-03..jsonl",
            "conversations-2025-13-03.jsonl",
            "conversations-2025-12-03.jsonl.tmp",
            "usage.jsonl",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        let dir = temp_dir("sort");
        for n in [
            "conversations-2025-12-02.jsonl",
            "conversations-2025-12-03.jsonl",
            "conversations-2025-12-03.2.jsonl",
            "conversations-2025-12-03.10.jsonl",
            "notes.txt",
        ] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        assert_eq!(
            names(&dir),
            [
                "conversations-2025-12-03.10.jsonl",
                "conversations-2025-12-03.2.jsonl",
                "conversations-2025-12-03.jsonl",
                "conversations-2025-12-02.jsonl",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn policy(max_file_bytes: u64, days: u64, max_files: usize) -> Policy {
        Policy {
            max_file_bytes,
            retention: Duration::from_secs(days * 86_400),
            max_files,
        }
    }

    #[test]
    fn rolls_over_by_size_and_by_day() {
        let dir = temp_dir("roll");
        let mut files = DailyFiles::new(dir.clone(), policy(100, 14, 100));
        let line = [b'x'; 39]; // 40 bytes with its newline
        for _ in 0..5 {
            files.append(DAY0 + 1000, &line).unwrap();
        }
        // A line larger than the cap is written whole, alone.
        files.append(DAY0 + 2000, &[b'y'; 150]).unwrap();
        files.append(DAY0 + MS_PER_DAY + 5, &line).unwrap();
        files.flush().unwrap();
        assert_eq!(
            names(&dir),
            [
                "conversations-2025-12-04.jsonl",
                "conversations-2025-12-03.3.jsonl",
                "conversations-2025-12-03.2.jsonl",
                "conversations-2025-12-03.1.jsonl",
                "conversations-2025-12-03.jsonl",
            ]
        );
        let size = |n: &str| std::fs::metadata(dir.join(n)).unwrap().len();
        assert_eq!(size("conversations-2025-12-03.jsonl"), 80);
        assert_eq!(size("conversations-2025-12-03.1.jsonl"), 80);
        assert_eq!(size("conversations-2025-12-03.2.jsonl"), 40);
        assert_eq!(size("conversations-2025-12-03.3.jsonl"), 151);
        // A restart appends to the day's last file while it has room.
        drop(files);
        let mut again = DailyFiles::new(dir.clone(), policy(100, 14, 100));
        again.append(DAY0 + MS_PER_DAY + 9, &line).unwrap();
        again.flush().unwrap();
        assert_eq!(size("conversations-2025-12-04.jsonl"), 80);
        assert_eq!(names(&dir).len(), 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prunes_past_retention_and_count() {
        let dir = temp_dir("prune");
        for n in [
            "conversations-2025-11-01.jsonl",
            "conversations-2025-11-17.jsonl",
            "conversations-2025-11-18.jsonl",
            "conversations-2025-11-18.1.jsonl",
            "keep-me.jsonl",
        ] {
            std::fs::write(dir.join(n), b"{}\n").unwrap();
        }
        // 14 days: on 2025-12-03, files of 2025-11-17 (ended 15 days ago)
        // go, those of 2025-11-18 (ended exactly 14 days ago) stay.
        let mut files = DailyFiles::new(dir.clone(), policy(1 << 20, 14, 100));
        files.append(DAY0, b"{}").unwrap();
        assert_eq!(
            names(&dir),
            [
                "conversations-2025-12-03.jsonl",
                "conversations-2025-11-18.1.jsonl",
                "conversations-2025-11-18.jsonl",
            ]
        );
        assert!(dir.join("keep-me.jsonl").exists());
        // At most two files: the oldest go, never the one being written.
        let mut capped = DailyFiles::new(dir.clone(), policy(1 << 20, 14, 2));
        capped.append(DAY0, b"{}").unwrap();
        assert_eq!(
            names(&dir),
            [
                "conversations-2025-12-03.jsonl",
                "conversations-2025-11-18.1.jsonl",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_lines_backwards_across_blocks() {
        let dir = temp_dir("reverse");
        let path = dir.join("f.jsonl");
        let long = "z".repeat(200_000);
        let text = format!("first\n\nsecond\n{long}\nlast");
        std::fs::write(&path, &text).unwrap();
        let mut r = ReverseLines::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(got, ["last", long.as_str(), "second", "first"]);
        assert_eq!(r.bytes_read, text.len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

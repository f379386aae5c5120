//! The block device under the database, watched while a load runs: the
//! spans in which it completed no I/O although I/O was outstanding. Every
//! accepted submission waits for an `fdatasync` (SQLite with
//! synchronous=FULL), so such a span is a span in which nothing can be
//! accepted, whatever Herald does; the late requests of a paced run can
//! then be told apart as those behind one and the rest.
//!
//! The counters are the kernel's, from `/sys/dev/block/MAJ:MIN/stat`
//! (Documentation/block/stat.rst): I/Os completed (reads, writes, discards
//! and flushes) and I/Os in flight.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the counters are read.
const EVERY: Duration = Duration::from_millis(2);

/// A span without a completion longer than this is a stall (the
/// acceptance p99's limit).
pub const STALL: Duration = Duration::from_millis(25);

/// A span in which the device completed nothing with I/O outstanding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub start: Instant,
    pub length: Duration,
}

impl Stall {
    /// Whether `at` falls in the stall or within `after` of its end.
    pub fn covers(&self, at: Instant, after: Duration) -> bool {
        at >= self.start && at <= self.start + self.length + after
    }
}

/// What a [`Watch`] saw.
#[derive(Debug, Default)]
pub struct Device {
    /// I/Os the device completed while watched.
    pub completed: u64,
    pub stalls: Vec<Stall>,
}

impl Device {
    pub fn longest_ms(&self) -> f64 {
        self.stalls
            .iter()
            .map(|s| s.length.as_secs_f64() * 1e3)
            .fold(0.0, f64::max)
    }
}

/// One reading of the device's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counters {
    completed: u64,
    in_flight: u64,
}

impl Counters {
    /// Fields 1, 5, 12 and 15 (reads, writes, discards and flushes
    /// completed; the last two are missing on older kernels) and field 9
    /// (in flight) of a `stat` file.
    fn parse(stat: &str) -> Option<Counters> {
        let fields: Vec<u64> = stat
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let at = |i: usize| fields.get(i).copied().unwrap_or(0);
        (fields.len() >= 11).then(|| Counters {
            completed: at(0) + at(4) + at(11) + at(14),
            in_flight: at(8),
        })
    }
}

/// Turns readings into stalls: a stall begins at the first reading after
/// a completion (or after idleness) that finds I/O in flight, and ends at
/// the first reading that finds a new completion or nothing in flight.
#[derive(Debug, Default)]
struct Spans {
    last: Option<Counters>,
    since: Option<Instant>,
    first: u64,
    device: Device,
}

impl Spans {
    fn read(&mut self, at: Instant, now: Counters) {
        let Some(last) = self.last.replace(now) else {
            self.first = now.completed;
            self.since = (now.in_flight > 0).then_some(at);
            return;
        };
        if now.completed != last.completed || now.in_flight == 0 {
            self.close(at);
        }
        if now.in_flight > 0 && self.since.is_none() {
            self.since = Some(at);
        }
    }

    fn close(&mut self, at: Instant) {
        if let Some(start) = self.since.take() {
            let length = at - start;
            if length > STALL {
                self.device.stalls.push(Stall { start, length });
            }
        }
    }

    fn finish(mut self, at: Instant) -> Device {
        self.close(at);
        self.device.completed = self.last.map_or(0, |l| l.completed - self.first);
        self.device
    }
}

/// The kernel's counters of the block device holding `dir`.
fn stat_path(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir)?.dev();
    // glibc's gnu_dev_major / gnu_dev_minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let path = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    let stat = std::fs::read_to_string(&path)?;
    Counters::parse(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a block device's stat", path.display()),
        )
    })?;
    Ok(path)
}

/// The device under a directory, read every [`EVERY`] on a thread of its
/// own until [`Watch::stop`].
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Device>,
}

impl Watch {
    /// Fails when `dir` is on no block device (tmpfs, overlay) or its
    /// counters cannot be read.
    pub fn start(dir: &Path) -> std::io::Result<Watch> {
        let path = stat_path(dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-device".into())
            .spawn(move || {
                use std::os::unix::fs::FileExt;
                let mut spans = Spans::default();
                // Read again from the start of the open file, a tenth of
                // the cost of opening it each time.
                let file = std::fs::File::open(&path);
                let mut buf = [0u8; 512];
                while !stopped.load(Ordering::Relaxed) {
                    if let Some(now) = file
                        .as_ref()
                        .ok()
                        .and_then(|f| f.read_at(&mut buf, 0).ok())
                        .and_then(|n| std::str::from_utf8(&buf[..n]).ok())
                        .and_then(Counters::parse)
                    {
                        spans.read(Instant::now(), now);
                    }
                    std::thread::sleep(EVERY);
                }
                spans.finish(Instant::now())
            })?;
        Ok(Watch { stop, thread })
    }

    pub fn stop(self) -> Device {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the device watch panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn c(completed: u64, in_flight: u64) -> Counters {
        Counters {
            completed,
            in_flight,
        }
    }

    #[test]
    fn counters_come_from_the_kernels_fields() {
        // Kernel 6.x: 17 fields; reads 61148, writes 243952, discards
        // 21764, flushes 4346 completed; 3 in flight.
        let line = "   61148    10253  9150266    48389   243952    76870 40386440   139552        3    45212   199113    21764       16 16331744     4346    85382     6824\n";
        assert_eq!(
            Counters::parse(line),
            Some(c(61148 + 243952 + 21764 + 4346, 3))
        );
        // Before discards and flushes were counted: 11 fields.
        assert_eq!(Counters::parse("1 0 8 0 2 0 16 0 0 4 4"), Some(c(3, 0)));
        assert_eq!(Counters::parse("1 2 3"), None);
        assert_eq!(Counters::parse("a b c d e f g h i j k"), None);
    }

    #[test]
    fn a_stall_is_a_span_with_io_outstanding_and_nothing_completed() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut spans = Spans::default();
        // Busy and completing: no stall.
        for n in 0..20 {
            spans.read(ms(2 * n), c(n, 1));
        }
        // Idle for 100 ms: no stall either.
        for n in 20..70 {
            spans.read(ms(2 * n), c(20, 0));
        }
        // 40 ms with one I/O outstanding and nothing completed.
        for n in 70..90 {
            spans.read(ms(2 * n), c(20, 1));
        }
        spans.read(ms(180), c(21, 1));
        // 20 ms stuck: under the limit.
        spans.read(ms(200), c(21, 2));
        spans.read(ms(200), c(22, 0));
        // Stuck until the watch stops.
        spans.read(ms(210), c(22, 1));
        let device = spans.finish(ms(300));
        assert_eq!(device.completed, 22);
        assert_eq!(
            device.stalls,
            vec![
                Stall {
                    start: ms(140),
                    length: Duration::from_millis(40)
                },
                Stall {
                    start: ms(210),
                    length: Duration::from_millis(90)
                },
            ]
        );
        assert_eq!(device.longest_ms(), 90.0);
        assert!(device.stalls[0].covers(ms(140), Duration::ZERO));
        assert!(device.stalls[0].covers(ms(1180), Duration::from_secs(1)));
        assert!(!device.stalls[0].covers(ms(1181), Duration::from_secs(1)));
        assert!(!device.stalls[0].covers(ms(139), Duration::from_secs(1)));
    }

    #[test]
    fn the_watch_counts_the_syncs_of_a_file_beside_it() {
        // In the source tree: on the disk the bench's databases use, not
        // a tmpfs.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let watch = Watch::start(dir.path()).unwrap();
        let mut file = std::fs::File::create(dir.path().join("synced")).unwrap();
        for n in 0..20u8 {
            file.write_all(&[n; 4096]).unwrap();
            file.sync_data().unwrap();
        }
        std::thread::sleep(EVERY * 3);
        let device = watch.stop();
        assert!(
            device.completed >= 20,
            "{} I/Os completed",
            device.completed
        );
    }
}

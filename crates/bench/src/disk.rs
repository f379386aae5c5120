//! The disk alone: how long `fdatasync` takes on the database's filesystem
//! when nothing else runs. Every accepted submission waits for one (SQLite
//! with synchronous=FULL), so a stall of the device is a stall of
//! acceptance, and the p99 at 80% of the peak cannot be told apart from it
//! without this line beside it.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes written before each sync: about what a group commit of a few
/// dozen submissions appends to the WAL.
pub const WRITE: usize = 32 * 1024;

/// The probe's file, overwritten in a loop like a WAL after its restarts.
const FILE: u64 = 32 << 20;

/// A sync over this is a stall (the acceptance p99's limit).
const STALL: Duration = Duration::from_millis(25);

/// What [`probe`] measured.
#[derive(Default)]
pub struct Disk {
    pub syncs: usize,
    pub p50_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Syncs that took longer than [`STALL`].
    pub stalls: usize,
}

/// Writes [`WRITE`] bytes and calls `fdatasync` every 2 ms for `length`,
/// in a file of its own in `dir` (removed after).
pub fn probe(dir: &Path, length: Duration) -> std::io::Result<Disk> {
    let path = dir.join("disk-probe");
    let mut file = std::fs::File::create(&path)?;
    let chunk = vec![0x5a_u8; WRITE];
    // Allocated and synced first, so the loop measures overwrites, not
    // the filesystem's allocation.
    for _ in 0..FILE / WRITE as u64 {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    file.seek(SeekFrom::Start(0))?;
    let mut took = Vec::new();
    let until = Instant::now() + length;
    let mut at = 0;
    while Instant::now() < until {
        if at + WRITE as u64 > FILE {
            file.seek(SeekFrom::Start(0))?;
            at = 0;
        }
        file.write_all(&chunk)?;
        at += WRITE as u64;
        let started = Instant::now();
        file.sync_data()?;
        took.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(file);
    std::fs::remove_file(&path)?;
    took.sort_unstable();
    if took.is_empty() {
        return Ok(Disk::default());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(took[((took.len() as f64 * q) as usize).min(took.len() - 1)]);
    Ok(Disk {
        syncs: took.len(),
        p50_ms: at(0.5),
        p999_ms: at(0.999),
        max_ms: ms(took[took.len() - 1]),
        stalls: took.iter().filter(|&&d| d > STALL).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_syncs_for_its_length_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let disk = probe(dir.path(), Duration::from_millis(300)).unwrap();
        assert!(disk.syncs > 10, "{} syncs in 300 ms", disk.syncs);
        assert!(disk.p50_ms <= disk.p999_ms && disk.p999_ms <= disk.max_ms);
        assert!(disk.stalls <= disk.syncs);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

//! One process at a time in a run folder. Every command that writes a run's own files
//! (`pipeline`, `stage`, `report`; not `eval`, which writes only its `eval.suite.json` beside any
//! checkpoint, and may run while a later stage trains) first takes an exclusive advisory lock on
//! `runs/NAME/run.lock` (std's `File::try_lock`: `flock` on Unix, `LockFileEx` on Windows)
//! and holds it until the process ends. The operating system releases it when the process
//! exits or is killed, so a crash never leaves a run locked; the file itself stays, holding
//! the pid of its last holder (for the refusal message only: the lock, not the file, is what
//! counts). A second command on the same run refuses before it touches anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The lock file's name in a run folder.
pub const LOCK_FILE: &str = "run.lock";

/// Held for as long as the value lives (in practice, the whole command).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks the run folder `run_dir` (which must exist), or refuses in one line naming the
    /// run and the process that holds it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(LOCK_FILE);
        // Opened without truncating: until the lock is ours, the holder's pid stays readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "unknown pid".to_string(),
                    pid => format!("pid {pid}"),
                };
                bail!(
                    "run {} is in use by another process ({holder} holds {}): wait for it to \
                     finish, or use another --run name",
                    run_dir.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => bail!("locking {}: {e}", path.display()),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_run_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        let err = format!("{:#}", RunLock::acquire(dir.path()).unwrap_err());
        assert!(err.contains("is in use by another process"), "{err}");
        assert!(
            err.contains(&format!("pid {} holds", std::process::id())),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }
}

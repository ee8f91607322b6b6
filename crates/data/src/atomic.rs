//! Atomic file writes: a reader sees the old file or the new one, never half of one.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, Context, Result};

/// Writes `contents` to `path` through a temporary file in the same folder, then renames it
/// over `path` (a rename within one file system is atomic). The temporary file is removed
/// when a step fails, so a failed write leaves `path` as it was. The temporary file's name
/// (`.NAME.PID.N.tmp`) is unique to this process and call, so two writers never share one,
/// and it is created with the default permissions (not `tempfile`'s owner-only ones).
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    let (tmp, mut file) = create_temporary(path)?;
    let written = file
        .write_all(contents.as_ref())
        .and_then(|()| file.flush())
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn create_temporary(path: &Path) -> Result<(PathBuf, std::fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("writing {}: not a file path", path.display()))?
        .to_string_lossy();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // Left by a killed process that had the same pid: take the next number.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(anyhow!("creating {}: {e}", tmp.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write(&path, "old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such");
        let err = write(&missing.join("a.json"), "x").unwrap_err();
        assert!(format!("{err:#}").contains("no/such"), "{err:#}");
    }
}

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

/// `metrics.jsonl`: one JSON object per logged step, flushed line by line so a killed run
/// keeps everything it logged.
pub struct MetricsSink {
    path: PathBuf,
    out: BufWriter<File>,
    rows: usize,
}

impl MetricsSink {
    /// Starts a fresh file (a rerun of a stage replaces its metrics).
    pub fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            rows: 0,
        })
    }

    /// Continues a file after a resume: keeps its first `keep` rows (those logged before the
    /// resumed checkpoint) and appends from there, so the metrics stay continuous.
    pub fn resume(path: &Path, keep: usize) -> Result<Self> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(keep)
            .collect();
        let mut sink = Self::create(path)?;
        for line in &kept {
            sink.out.write_all(line.as_bytes())?;
            sink.out.write_all(b"\n")?;
        }
        sink.out.flush()?;
        sink.rows = kept.len();
        Ok(sink)
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes one row; `fields` are `(name, value)` pairs, in the order they are given. Names
    /// may be borrowed or owned (a loop that appends evaluation metrics builds owned ones).
    pub fn log<K: AsRef<str>>(&mut self, fields: &[(K, Value)]) -> Result<()> {
        let row: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.clone()))
            .collect();
        serde_json::to_writer(&mut self.out, &row)?;
        self.out.write_all(b"\n")?;
        self.rows += 1;
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads every row of a `metrics.jsonl` (for tests and the report).
pub fn read_rows(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))
        })
        .collect()
}

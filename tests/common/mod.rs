//! Helpers shared by the end-to-end tests: they drive the real `xtask` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

pub fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tiny.toml")
}

/// The tiny config as text with its data paths made absolute, so a test can edit it and
/// write it anywhere.
pub fn tiny_config_text() -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let mut text = std::fs::read_to_string(tiny_config()).unwrap();
    for file in ["shakespeare.txt", "words4.txt"] {
        let absolute = format!("{:?}", data.join(file).display().to_string());
        text = text.replace(&format!("\"../data/{file}\""), &absolute);
    }
    text
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("xtask runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "xtask failed:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
}

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

/// A Python 3 that imports numpy, safetensors and tokenizers, for the checks by an
/// independent implementation (bench/parity.py). `python3` itself when it has them; else a
/// virtual environment under target/ (`target/parity-venv`), made and filled from PyPI on
/// first use, so the README's test command needs no `pip` beforehand. `Err` says why neither
/// works (no `venv` module, no network): the caller reports it as SKIPPED, and CI
/// (`GPT_MINI_REQUIRE_PYTHON=1`) as a failure.
pub fn parity_python() -> Result<PathBuf, String> {
    const PACKAGES: [&str; 3] = ["numpy", "safetensors", "tokenizers"];
    let imports = format!("import {}", PACKAGES.join(", "));
    let has_packages = |python: &Path| {
        Command::new(python)
            .args(["-c", &imports])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let system = PathBuf::from("python3");
    if has_packages(&system) {
        return Ok(system);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let venv = target.join("parity-venv");
    let python = venv.join("bin/python");
    std::fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    // Tests run in parallel: one of them makes the venv while the others wait on this lock.
    let lock_path = target.join("parity-venv.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if has_packages(&python) {
        return Ok(python);
    }
    eprintln!(
        "creating {} with {} (once)",
        venv.display(),
        PACKAGES.join(", ")
    );
    let step = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{what} failed: {}", last.trim()))
    };
    step(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv target/parity-venv",
    )?;
    step(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES),
        "pip install numpy safetensors tokenizers into target/parity-venv",
    )?;
    if has_packages(&python) {
        Ok(python)
    } else {
        Err(format!("{} cannot {imports}", python.display()))
    }
}

/// The Python for the parity checks, or `None` after printing why the test is skipped. Under
/// `GPT_MINI_REQUIRE_PYTHON=1` (CI) a missing Python fails the test instead.
pub fn parity_python_or_skip(test: &str) -> Option<PathBuf> {
    match parity_python() {
        Ok(python) => Some(python),
        Err(why) if std::env::var_os("GPT_MINI_REQUIRE_PYTHON").is_some() => {
            panic!("{test}: no Python with numpy, safetensors and tokenizers: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: no Python with numpy, safetensors and tokenizers: {why}");
            None
        }
    }
}

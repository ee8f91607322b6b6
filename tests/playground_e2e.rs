//! `xtask serve` and `xtask chat` against a tiny run that has only its first two stages: the
//! API, its error cases (the server keeps serving after each), concurrent requests, the page in
//! headless Chromium, and the REPL fed through a pipe.
//!
//! The browser check needs Chromium (`chromium`, or `GPT_MINI_CHROMIUM=/path`); without one it
//! says it skipped, unless `GPT_MINI_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::*;
use serde_json::{json, Value};

/// One tiny run with pretrain and SFT only, shared by every test of this file.
fn tiny_run() -> &'static Path {
    static RUNS: OnceLock<tempfile::TempDir> = OnceLock::new();
    let runs = RUNS.get_or_init(|| {
        let runs = tempfile::tempdir().unwrap();
        for stage in ["pretrain", "sft"] {
            assert_ok(&run(xtask()
                .args(["stage", stage, "--quiet", "--run", "t", "--config"])
                .arg(tiny_config())
                .arg("--runs-dir")
                .arg(runs.path())));
        }
        assert_ok(&run(xtask()
            .args(["report", "--run", "t", "--runs-dir"])
            .arg(runs.path())));
        runs
    });
    runs.path()
}

/// A running `xtask serve` on an ephemeral port; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let mut child = xtask()
            .args(["serve", "--run", "t", "--port", "0", "--config"])
            .arg(tiny_config())
            .arg("--runs-dir")
            .arg(tiny_run())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xtask serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines
            .next()
            .expect("serve prints its address")
            .expect("readable stderr");
        let port = line
            .rsplit_once("127.0.0.1:")
            .and_then(|(_, rest)| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port }
    }

    /// One HTTP/1.1 request; returns the status and the body.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (status, text) = self.request(method, path, body.as_deref());
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, value)
    }

    fn url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/{query}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_api_answers_with_every_stage_and_refuses_bad_input_in_one_line() {
    let server = Server::start();
    let (status, stages) = server.json("GET", "/api/stages", None);
    assert_eq!(status, 200);
    let available: Vec<(&str, bool)> = stages["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["available"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        available,
        [
            ("pretrain", true),
            ("sft", true),
            ("cot-sft", false),
            ("dpo", false),
            ("rlvr", false)
        ]
    );

    let (status, answer) = server.json("POST", "/api/complete", Some(json!({"prompt": "<abcd>"})));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["order"], json!(["pretrain", "sft"]));
    for stage in ["pretrain", "sft"] {
        let completion = &answer["completions"][stage];
        let tokens = completion["tokens"].as_array().unwrap();
        assert!(!tokens.is_empty(), "{stage}: {completion}");
        let joined: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
        assert_eq!(joined, completion["text"].as_str().unwrap());
        assert!(tokens.iter().all(|t| t["logprob"].as_f64().unwrap() <= 0.0));
        assert_eq!(completion["verdict"]["task"], "reverse", "{completion}");
        assert_eq!(completion["verdict"]["expected"], "dcba#");
    }
    // Greedy decoding is deterministic; sampling follows its seed.
    let again = server
        .json("POST", "/api/complete", Some(json!({"prompt": "<abcd>"})))
        .1;
    assert_eq!(again["completions"], answer["completions"]);
    let sampled = |seed: u64| {
        let body =
            json!({"prompt": "ROMEO:", "stages": ["pretrain"], "temperature": 1.0, "seed": seed});
        server.json("POST", "/api/complete", Some(body)).1["completions"]["pretrain"]["text"]
            .clone()
    };
    assert_eq!(sampled(3), sampled(3));

    let (status, margins) = server.json(
        "POST",
        "/api/preference",
        Some(json!({"prompt": "<abcd>", "chosen": "dcba#", "rejected": "abcd#"})),
    );
    assert_eq!(status, 200, "{margins}");
    let sft = &margins["stages"]["sft"];
    assert_eq!(sft["reference"]["stage"], "pretrain");
    let difference = sft["margin"].as_f64().unwrap() - sft["reference"]["margin"].as_f64().unwrap();
    assert!((sft["implicit_reward_margin_over_beta"].as_f64().unwrap() - difference).abs() < 1e-9);
    assert!(margins["stages"]["pretrain"]["reference"].is_null());

    let long = "a".repeat(1001);
    let bad: [(&str, &str, u16, &str); 8] = [
        ("/api/complete", r#"{"prompt": ""}"#, 400, "empty"),
        (
            "/api/complete",
            &format!(r#"{{"prompt": "{long}"}}"#),
            400,
            "characters",
        ),
        (
            "/api/complete",
            r#"{"prompt": "3+4+5=é"}"#,
            400,
            "vocabulary",
        ),
        (
            "/api/complete",
            r#"{"prompt": "abababababababababababababababababab"}"#,
            400,
            "positions",
        ),
        (
            "/api/complete",
            r#"{"prompt": "3+4=", "stages": ["dpo"]}"#,
            404,
            "dpo",
        ),
        (
            "/api/complete",
            r#"{"prompt": "3+4=", "stages": ["ppo"]}"#,
            400,
            "unknown stage",
        ),
        ("/api/complete", r#"{"prompt": "3+4=""#, 400, "JSON"),
        (
            "/api/complete",
            r#"{"prompt": "3+4=", "temperature": -1}"#,
            400,
            "temperature",
        ),
    ];
    for (path, body, expected, says) in bad {
        let (status, text) = server.request("POST", path, Some(body));
        assert_eq!(status, expected, "{body} → {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains(says) && !message.contains('\n'),
            "{body} → {message}"
        );
    }
    let (status, _) = server.request("POST", "/api/complete", Some(r#"{"prompt": 3}"#));
    assert!((400..500).contains(&status));
    assert_eq!(
        server.request("GET", "/report/../../secret.svg", None).0,
        404
    );
    assert_eq!(server.request("GET", "/no/such/route", None).0, 404);

    // Still serving, several clients at once.
    std::thread::scope(|scope| {
        let answers: Vec<_> = (0..6)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let body = json!({"prompt": format!("{}+{}=", i, i + 1)});
                    server.json("POST", "/api/complete", Some(body))
                })
            })
            .collect();
        assert_eq!(server.json("GET", "/api/stages", None).0, 200);
        for answer in answers {
            let (status, body) = answer.join().unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["completions"]["sft"]["verdict"]["task"], "digit_sum");
        }
    });

    let (status, page) = server.request("GET", "/", None);
    assert_eq!(status, 200);
    assert!(page.contains("gpt_mini playground"));
    let (status, report) = server.request("GET", "/report.html", None);
    assert_eq!(status, 200);
    assert!(
        report.contains("<img src=\"report/"),
        "the report card links its plots"
    );
}

#[test]
fn serve_refuses_a_run_without_checkpoints_in_one_line() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("none")).unwrap();
    let out = run(xtask()
        .args(["serve", "--run", "none", "--port", "0", "--config"])
        .arg(tiny_config())
        .arg("--runs-dir")
        .arg(empty.path()));
    assert!(!out.status.success());
    let message = stderr(&out);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("no stage checkpoint"), "{message}");
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GPT_MINI_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

/// Headless Chromium with the flags this sandbox needs (no network beyond localhost).
fn headless(browser: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=30000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn the_page_answers_a_prompt_in_headless_chromium() {
    let Some(browser) = chromium() else {
        let required = std::env::var_os("GPT_MINI_REQUIRE_BROWSER").is_some();
        assert!(
            !required,
            "GPT_MINI_REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("SKIPPED the_page_answers_a_prompt_in_headless_chromium: no Chromium (apt-get install chromium)");
        return;
    };
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("?prompt=%3Cabcd%3E");
    let dom = headless(&browser, &dir.path().join("profile-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(r#"data-state="answered""#),
        "the page did not answer:\n{dom}"
    );
    for stage in ["pretrain", "sft"] {
        assert!(
            dom.contains(&format!(r#"id="answer-{stage}""#)),
            "no {stage} card:\n{dom}"
        );
    }
    assert!(dom.contains("data-verdict="), "{dom}");
    assert!(
        dom.contains("K=2"),
        "the held-out problems are listed:\n{dom}"
    );

    let shot = dir.path().join("page.png");
    let out = headless(&browser, &dir.path().join("profile-shot"))
        .arg("--window-size=1280,1100")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("GPT_MINI_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn chat_streams_an_answer_and_judges_task_prompts_from_a_pipe() {
    let history = tempfile::tempdir().unwrap();
    let mut child = xtask()
        .arg("chat")
        .arg("--from")
        .arg(tiny_run().join("t/sft"))
        .arg("--history")
        .arg(history.path().join("h"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            "<abcd>\n3+4=\n3+4+5=é\n/temperature x\n/temperature 0.5\n<wxyz>\n/quit\nnever read\n"
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[reverse: "), "{text}");
    assert!(text.contains("[digit_sum K=2: "), "{text}");
    assert!(text.contains("not in the vocabulary"), "{text}");
    assert!(
        text.contains("error: /temperature takes a number"),
        "{text}"
    );
    assert!(text.contains("temperature 0.5"), "{text}");
    assert_eq!(text.matches("[reverse: ").count(), 2, "{text}");
    let history = std::fs::read_to_string(history.path().join("h")).unwrap();
    assert!(history.contains("3+4="), "history kept: {history}");
}

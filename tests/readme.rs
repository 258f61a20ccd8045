//! The README's curl examples, run verbatim with curl against the real hub: subscribers over
//! HTTP/1.1, h2c and TLS h2 receive what the publish commands send. Needs `curl` (skipped when
//! absent, except in CI).
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

const MARKER: &str =
    "<!-- The curl lines in the next block are run verbatim by tests/readme.rs. -->";

fn readme_curl_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let after = readme.split(MARKER).nth(1).expect("README marker");
    let block = after
        .split("```")
        .nth(1)
        .expect("code block after the marker");
    block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .map(str::to_owned)
        .collect()
}

struct Curl {
    child: Child,
    lines: mpsc::Receiver<String>,
    command: String,
}

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Curl {
    /// Waits for a stdout line satisfying `pred`, within the test deadline.
    fn wait_line(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => continue,
                Err(_) => panic!("`{}`: expected line not received", self.command),
            }
        }
    }
}

fn bash(line: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", line])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

// Multi-threaded: this test blocks on curl's output while the in-process hub keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_examples_work_as_written() {
    if !external_program("curl") {
        return;
    }
    let lines = readme_curl_lines();
    assert!(lines.len() >= 6, "README curl examples found: {lines:?}");
    let hub = TestHub::start_with(|c| c.anonymous = true).await;
    let env = [
        (
            "HUB",
            format!("http://localhost:{}/.well-known/mercure", hub.addr.port()),
        ),
        (
            "HUB_TLS",
            format!(
                "https://localhost:{}/.well-known/mercure",
                hub.tls_addr.port()
            ),
        ),
        ("TOKEN", publish_all()),
        ("SUB_TOKEN", subscribe_all()),
    ];
    let mut subscribers = Vec::new();
    for line in lines.iter().filter(|l| l.contains(" -N ")) {
        let mut child = bash(line, &env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn curl");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let curl = Curl {
            child,
            lines: rx,
            command: line.clone(),
        };
        // The preamble comment proves the stream is registered before anything is published.
        curl.wait_line(|l| l == ":");
        subscribers.push(curl);
    }
    assert_eq!(
        subscribers.len(),
        3,
        "three subscribe examples (h1, h2c, TLS h2)"
    );
    for line in lines.iter().filter(|l| !l.contains(" -N ")) {
        let out = bash(line, &env).output().expect("run curl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`{line}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("urn:uuid:"),
            "`{line}` printed {stdout:?}"
        );
    }
    for sub in &subscribers {
        sub.wait_line(|l| l == "data: {\"status\": \"updated\"}");
        sub.wait_line(|l| l == "data: second");
    }
    // The token subscriber (TLS h2) is granted everything: it also gets the private update.
    let tls_sub = subscribers
        .iter()
        .find(|s| s.command.contains("SUB_TOKEN"))
        .expect("token subscriber");
    tls_sub.wait_line(|l| l == "data: secret");
    drop(subscribers);
    hub.shutdown().await;
}

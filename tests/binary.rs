//! The `quicksilver` binary as an operator runs it: first-try mode with no keys (prints working
//! tokens, serves on loopback), SIGTERM ends streams cleanly and exits 0, bad configuration is
//! reported all at once with exit code 64.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail by panicking

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http::StatusCode;

/// Environment variables that would configure the hub behind the test's back.
const CONFIG_VARS: &[&str] = &[
    "MERCURE_PUBLISHER_JWT_KEY",
    "MERCURE_PUBLISHER_JWT_ALG",
    "MERCURE_SUBSCRIBER_JWT_KEY",
    "MERCURE_SUBSCRIBER_JWT_ALG",
    "MERCURE_TRUSTED_ISSUERS",
    "RUST_LOG",
];

fn hub_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quicksilver"));
    cmd.args(args).stdin(Stdio::null());
    for var in CONFIG_VARS {
        cmd.env_remove(var);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("QUICKSILVER_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running hub process whose output lines arrive on channels.
struct HubProcess {
    child: Child,
    data_dir: std::path::PathBuf,
    keep_data: bool,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl HubProcess {
    /// Spawns the hub with its durable history in a fresh temp directory.
    fn spawn(args: &[&str]) -> Self {
        Self::spawn_in(args, temp_data_dir("bin"))
    }

    /// Spawns the hub with its durable history in `dir` (removed when this is dropped).
    fn spawn_in(args: &[&str], dir: std::path::PathBuf) -> Self {
        let dir_arg = dir.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", &dir_arg]);
        let mut child = hub_command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quicksilver");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            data_dir: dir,
            keep_data: false,
            stdout,
            stderr,
        }
    }

    /// Waits for the "listening" log line and returns the bound plain address.
    fn listening_addr(&self) -> SocketAddr {
        loop {
            let line = self
                .stderr
                .recv_timeout(DEADLINE)
                .expect("a listening line on stderr");
            if line.contains("listening (HTTP/1.1, h2c)") {
                let addr = line.split("addr=").nth(1).expect("addr field").trim();
                return addr.parse().expect("socket address");
            }
        }
    }

    /// The line printed after the one starting with `heading`.
    fn stdout_after(&self, heading: &str) -> String {
        loop {
            let line = self
                .stdout
                .recv_timeout(DEADLINE)
                .expect("banner line on stdout");
            if line.starts_with(heading) {
                return self.stdout.recv_timeout(DEADLINE).expect("value line");
            }
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "hub did not exit in time"
            );
            // Polling a child's exit status has no event to wait on from std.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test]
async fn first_try_mode_prints_working_tokens_and_sigterm_exits_cleanly() {
    let mut proc = HubProcess::spawn(&["--addr", "127.0.0.1:0"]);
    let addr = proc.listening_addr();
    let publisher = proc.stdout_after("Publisher token").trim().to_owned();
    let subscriber = proc.stdout_after("Subscriber token").trim().to_owned();
    assert_eq!(
        publisher.matches('.').count(),
        2,
        "a compact JWS: {publisher}"
    );

    let client = TestClient::connect(addr, Proto::H1).await;
    // Anonymous subscribers are on in first-try mode; the printed subscriber token works too.
    let mut anon = client
        .open_stream(Request::sse(
            "/.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fbooks%2F1",
        ))
        .await;
    assert_eq!(anon.status, StatusCode::OK);
    let h2 = TestClient::connect(addr, Proto::H2c).await;
    let mut authed = h2
        .open_stream(
            Request::sse("/.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fbooks%2F1")
                .bearer(&subscriber),
        )
        .await;
    assert_eq!(authed.status, StatusCode::OK);
    let resp = client
        .send(
            Request::post("/.well-known/mercure")
                .bearer(&publisher)
                .form(&[
                    ("topic", "https://example.com/books/1"),
                    ("data", "{\"status\": \"updated\"}"),
                ]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        anon.next_event(DEADLINE)
            .await
            .expect("anonymous event")
            .data,
        "{\"status\": \"updated\"}"
    );
    assert_eq!(
        authed.next_event(DEADLINE).await.expect("token event").data,
        "{\"status\": \"updated\"}"
    );

    proc.signal("-TERM");
    assert!(
        anon.wait_end(DEADLINE).await,
        "h1 stream ended cleanly: {:?}",
        anon.failure()
    );
    assert!(
        authed.wait_end(DEADLINE).await,
        "h2 stream ended cleanly: {:?}",
        authed.failure()
    );
    let status = proc.wait_exit();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

#[tokio::test]
async fn sigint_also_exits_zero() {
    let mut proc = HubProcess::spawn(&["--addr", "127.0.0.1:0"]);
    let _ = proc.listening_addr();
    // The hub turns transparent huge pages off for itself (src/alloc.rs: khugepaged otherwise
    // re-inflates the pages mimalloc returned). Kernels since 6.x show it in /proc (older ones
    // have no such line: nothing to check there).
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", proc.child.id())).unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    proc.signal("-INT");
    assert_eq!(proc.wait_exit().code(), Some(0));
}

#[test]
fn bad_configuration_is_reported_at_once_with_exit_64() {
    let out = hub_command(&[
        "--addr",
        "127.0.0.1:0",
        "--publisher-jwt-key",
        "a-publisher-secret-long-enough-0123456789",
        "--heartbeat",
        "soon",
        "--max-request-body-size",
        "lots",
        "--publisher-jwt-alg",
        "HS999",
    ])
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "--heartbeat",
        "--max-request-body-size",
        "--publisher-jwt-alg",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
}

#[test]
fn unknown_flag_exits_64_and_check_config_validates() {
    let out = hub_command(&["--no-such-flag"]).output().expect("run");
    assert_eq!(out.status.code(), Some(64));
    let out = hub_command(&[
        "--check-config",
        "--publisher-jwt-key",
        "a-publisher-secret-long-enough-0123456789",
        "--anonymous",
    ])
    .output()
    .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn first_try_mode_refuses_a_public_address() {
    let out = hub_command(&["--addr", "0.0.0.0:0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--publisher-jwt-key"));
}

/// Issue 3 kill test: publish from many concurrent publishers, SIGKILL the hub right after the
/// last of N acknowledgements (other publishes still in flight), restart it on the same data
/// directory: `earliest` replays every acknowledged update, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_update_survives_sigkill() {
    const N: usize = 2000;
    const SECRET: &str = "a-publisher-secret-long-enough-0123456789";
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--publisher-jwt-key",
        SECRET,
        "--issuer",
        ISSUER,
        "--resource-identifier",
        RESOURCE,
        "--anonymous",
    ];
    let dir = temp_data_dir("kill");
    let token = hs256_token(
        SECRET,
        claims(
            ISSUER,
            RESOURCE,
            unix_now() + 3600,
            serde_json::json!([publish_detail(&[("*", "")])]),
        ),
    );
    let mut proc = HubProcess::spawn_in(&args, dir.clone());
    proc.keep_data = true;
    let addr = proc.listening_addr();
    let client = std::sync::Arc::new(TestClient::connect(addr, Proto::H2c).await);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut publishers = Vec::new();
    for worker in 0..16 {
        let (client, acked, token, done_tx) = (
            client.clone(),
            acked.clone(),
            token.clone(),
            done_tx.clone(),
        );
        publishers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("w{worker}-{i}");
                let req = Request::post("/.well-known/mercure").bearer(&token).form(&[
                    ("topic", "https://example.com/kill"),
                    ("id", &id),
                    ("data", "x"),
                ]);
                let Ok(resp) = client.try_send(req).await else {
                    return;
                };
                if resp.status != StatusCode::OK {
                    return;
                }
                let mut acked = acked.lock().unwrap();
                acked.push(id);
                if acked.len() == N {
                    let _ = done_tx.try_send(());
                }
            }
        }));
    }
    done_rx.recv().await.expect("N acknowledgements");
    proc.signal("-KILL");
    let _ = proc.wait_exit();
    for p in publishers {
        let _ = p.await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= N);
    drop(proc);

    let proc = HubProcess::spawn_in(&args, dir);
    let addr = proc.listening_addr();
    let client = TestClient::connect(addr, Proto::H2c).await;
    let mut s = client
        .open_stream(Request::sse(
            "/.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fkill&last_event_id=earliest",
        ))
        .await;
    assert_eq!(s.status, StatusCode::OK);
    let mut missing: std::collections::HashSet<String> = acked.iter().cloned().collect();
    let mut seen = std::collections::HashSet::new();
    while !missing.is_empty() {
        let ev = s
            .next_event(DEADLINE)
            .await
            .unwrap_or_else(|| panic!("{} acknowledged updates lost after SIGKILL", missing.len()));
        let id = ev.id.unwrap_or_default();
        assert!(seen.insert(id.clone()), "{id} replayed twice");
        missing.remove(&id);
    }
}

/// Issue 5: "handles EMFILE gracefully (accept back-off, clear log line, no spin)". The hub runs
/// with 48 descriptors; 80 raw connections exhaust them (accept fails with EMFILE); once they
/// close, the hub serves again.
#[tokio::test]
async fn running_out_of_file_descriptors_is_survived() {
    let dir = temp_data_dir("emfile");
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "ulimit -n 48 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_quicksilver"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in CONFIG_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = lines(child.stderr.take().unwrap());
    let mut proc = HubProcess {
        child,
        data_dir: dir,
        keep_data: false,
        stdout: mpsc::channel().1,
        stderr,
    };
    let addr = proc.listening_addr();
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("the kernel accepts into the backlog"),
        );
    }
    // The hub says so (and backs off) instead of dying or spinning.
    loop {
        let line = proc
            .stderr
            .recv_timeout(DEADLINE)
            .expect("an accept failure is logged");
        if line.contains("accept failed") {
            assert!(
                line.to_lowercase().contains("too many open files"),
                "{line}"
            );
            break;
        }
    }
    drop(held);
    let client = TestClient::connect(addr, Proto::H1).await;
    let resp = client.send(Request::get("/healthz")).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "the hub is still running"
    );
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit().code(), Some(0));
}

/// Spec "Subscription Events" + issue 3: subscription events go through history. SIGTERM ends
/// the streams and commits their disconnect events before the process exits, so after a restart
/// the history never shows a subscription `active: true` without its `active: false`.
#[tokio::test]
async fn sigterm_commits_the_disconnect_events_of_the_streams_it_ends() {
    const SECRET: &str = "a-subscriber-secret-long-enough-0123456789";
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--publisher-jwt-key",
        "a-publisher-secret-long-enough-0123456789",
        "--subscriber-jwt-key",
        SECRET,
        "--issuer",
        ISSUER,
        "--resource-identifier",
        RESOURCE,
        "--subscriptions",
    ];
    let token = hs256_token(
        SECRET,
        claims(
            ISSUER,
            RESOURCE,
            unix_now() + 3600,
            serde_json::json!([subscribe_detail(&[("*", "")])]),
        ),
    );
    let dir = temp_data_dir("presence");
    let mut proc = HubProcess::spawn_in(&args, dir.clone());
    proc.keep_data = true;
    let addr = proc.listening_addr();
    let client = TestClient::connect(addr, Proto::H2c).await;
    // A watcher (its own event is under /subscriptions/urlpattern/, so it does not see itself).
    let mut watcher = client
        .open_stream(Request::sse("/.well-known/mercure?match_urlpattern=%2F.well-known%2Fmercure%2Fsubscriptions%2Fexact%2F*").bearer(&token))
        .await;
    assert_eq!(watcher.status, StatusCode::OK);
    let mut streams = Vec::new();
    for i in 0..20 {
        let target = format!("/.well-known/mercure?match=https%3A%2F%2Fexample.com%2F{i}");
        let s = client
            .open_stream(Request::sse(&target).bearer(&token))
            .await;
        assert_eq!(s.status, StatusCode::OK);
        streams.push(s);
    }
    // It sees the 20 arrivals live: they are committed.
    let mut arrivals = 0;
    while arrivals < 20 {
        let ev = watcher.next_event(DEADLINE).await.expect("arrival events");
        let doc: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        if doc["active"] == true {
            arrivals += 1;
        }
    }
    proc.signal("-TERM");
    for s in &mut streams {
        assert!(s.wait_end(DEADLINE).await);
    }
    assert_eq!(proc.wait_exit().code(), Some(0));
    drop(proc);

    let mut proc = HubProcess::spawn_in(&args, dir);
    let addr = proc.listening_addr();
    let client = TestClient::connect(addr, Proto::H2c).await;
    let mut replay = client
        .open_stream(
            Request::sse("/.well-known/mercure?match_urlpattern=%2F.well-known%2Fmercure%2Fsubscriptions%2Fexact%2F*&last_event_id=earliest")
                .bearer(&token),
        )
        .await;
    assert_eq!(replay.header("mercure-last-event-id"), Some("earliest"));
    let mut active = std::collections::HashMap::new();
    // 20 arrivals + 20 departures (+ the first watcher's own: it used a urlpattern matcher, so
    // its events are not under /subscriptions/exact/).
    for _ in 0..40 {
        let ev = replay
            .next_event(DEADLINE)
            .await
            .expect("replayed subscription events");
        let doc: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        let subscriber = doc["subscriber"].as_str().unwrap().to_owned();
        let is_active = doc["active"].as_bool().unwrap();
        let previous = active.insert(subscriber.clone(), is_active);
        assert_eq!(
            previous,
            if is_active { None } else { Some(true) },
            "{subscriber}"
        );
    }
    assert_eq!(active.len(), 20);
    assert!(
        active.values().all(|a| !a),
        "every arrival has its departure"
    );
    proc.keep_data = false;
}

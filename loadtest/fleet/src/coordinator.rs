//! The parent process: starts the worker processes (this binary re-executed with `--worker`),
//! grows the fleet step by step, samples server memory, runs the publish phases, waits (bounded)
//! for deliveries, merges the workers' reports and writes results, chart and a progress line.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ExitCode, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::cli::Args;
use crate::net::{raise_nofile, Endpoint};
use crate::proto::{Command, DeliveryReport, Event, WorkerSpec};
use crate::publisher::{run_phase, PubCounters};
use crate::stats::{
    cpu_seconds, merge_sparse, new_histogram, own_cpu_seconds, own_rss, server_memory, server_pids,
    summarize, Latency, Mem,
};

/// Connections one worker holds at most by default (the open-files cap here is 20,000).
const CONNS_PER_WORKER: u64 = 15_000;

#[derive(Debug, Default, Serialize)]
pub struct RunResult {
    pub label: String,
    pub target: String,
    pub url: String,
    pub http2: bool,
    pub streams_per_conn: u64,
    pub tls: bool,
    pub procs: usize,
    pub source_ips: u8,
    pub publishers: usize,
    pub rate: f64,
    pub size: usize,
    pub topics: u64,
    pub started_unix: u64,
    pub nofile_limit: Option<u64>,
    pub server_memory_before: Option<Mem>,
    pub steps: Vec<StepResult>,
    pub timed_out: bool,
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct StepResult {
    pub subscribers: u64,
    pub connections: u64,
    pub connected: u64,
    pub failed: u64,
    /// From the grow command to the last subscriber connected (or failed).
    pub connect_s: f64,
    pub connect_latency: Latency,
    pub server_memory_idle: Option<Mem>,
    /// (idle − before) / live subscribers.
    pub bytes_per_subscriber_rss: Option<f64>,
    pub bytes_per_subscriber_pss: Option<f64>,
    pub generator_rss: u64,
    pub publish: Option<PublishResult>,
    pub delivery: Option<DeliveryResult>,
}

#[derive(Debug, Default, Serialize)]
pub struct PublishResult {
    pub published: u64,
    pub acked: u64,
    pub failed: u64,
    pub elapsed_s: f64,
    pub rate: f64,
    pub latency: Latency,
    pub errors: Vec<String>,
    /// The server processes' user + system CPU over the publish phase (fan-out included when
    /// there are subscribers), per acknowledged publish.
    pub server_cpu_us_per_publish: Option<f64>,
    /// This process's CPU (the publishers; subscribers run in worker processes) over the phase,
    /// per acknowledged publish.
    pub generator_cpu_us_per_publish: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct DeliveryResult {
    pub expected: u64,
    pub unique: u64,
    pub deliveries: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub stale: u64,
    pub foreign: u64,
    pub unacked_delivered: u64,
    pub unexpected: u64,
    pub closed_subscribers: u64,
    /// Distinct deliveries per second, from the first publish to the last delivery.
    pub per_s: f64,
    pub drain_s: f64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    connected: u64,
    failed: u64,
    closed: u64,
    unique: u64,
    rss: u64,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
}

struct Fleet {
    args: Args,
    workers: Vec<Worker>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    progress: Vec<Progress>,
    gone: Vec<bool>,
    counters: Arc<PubCounters>,
    last_line: Instant,
    server_rss: u64,
}

impl Fleet {
    fn send(&mut self, command: &Command) {
        let Ok(line) = serde_json::to_string(command) else {
            return;
        };
        for w in &mut self.workers {
            let _ = writeln!(w.stdin, "{line}").and_then(|()| w.stdin.flush());
        }
    }

    fn live(&self) -> usize {
        self.gone.iter().filter(|g| !**g).count()
    }

    /// Next worker event; prints the progress line when one is due.
    async fn next(&mut self) -> Option<(usize, Event)> {
        loop {
            self.maybe_print();
            let wait = tokio::time::timeout(Duration::from_millis(250), self.events.recv()).await;
            match wait {
                Err(_) => continue,
                Ok(None) => return None,
                Ok(Some((i, event))) => {
                    match &event {
                        Event::Progress {
                            connected,
                            failed,
                            closed,
                            unique,
                            rss,
                        } => {
                            self.progress[i] = Progress {
                                connected: *connected,
                                failed: *failed,
                                closed: *closed,
                                unique: *unique,
                                rss: *rss,
                            };
                            continue;
                        }
                        Event::Gone => self.gone[i] = true,
                        _ => {}
                    }
                    return Some((i, event));
                }
            }
        }
    }

    /// Waits for one matching event from every live worker (`pick` returns Some for a match).
    async fn gather<T>(&mut self, mut pick: impl FnMut(Event) -> Option<T>) -> Vec<T> {
        let mut got: Vec<Option<T>> = (0..self.workers.len()).map(|_| None).collect();
        while got
            .iter()
            .zip(&self.gone)
            .any(|(g, gone)| g.is_none() && !gone)
        {
            let Some((i, event)) = self.next().await else {
                break;
            };
            if let Some(v) = pick(event) {
                got[i] = Some(v);
            }
        }
        got.into_iter().flatten().collect()
    }

    fn total(&self) -> Progress {
        self.progress
            .iter()
            .fold(Progress::default(), |a, p| Progress {
                connected: a.connected + p.connected,
                failed: a.failed + p.failed,
                closed: a.closed + p.closed,
                unique: a.unique + p.unique,
                rss: a.rss + p.rss,
            })
    }

    fn maybe_print(&mut self) {
        if self.args.quiet || self.last_line.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_line = Instant::now();
        if let Some(m) = server_memory(&self.args.server_pid, self.args.server_pid_cmd.as_deref()) {
            self.server_rss = m.rss;
        }
        let t = self.total();
        eprintln!(
            "[qs-fleet] live {} (failed {}, closed {}) | deliveries {} | publishes {} ok {} failed {} | server RSS {:.1} MiB | generator RSS {:.1} MiB | workers {}/{}",
            t.connected - t.closed,
            t.failed,
            t.closed,
            t.unique,
            self.counters.sent.load(Relaxed),
            self.counters.acked.load(Relaxed),
            self.counters.failed.load(Relaxed),
            self.server_rss as f64 / 1048576.0,
            (t.rss + own_rss()) as f64 / 1048576.0,
            self.live(),
            self.workers.len(),
        );
    }

    fn shutdown(&mut self) {
        self.send(&Command::Exit);
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in &mut self.workers {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = w.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = w.child.try_wait() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
    }
}

fn spawn_workers(args: &Args, count: usize) -> Result<Fleet, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let (tx, events) = mpsc::unbounded_channel();
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let spec = WorkerSpec {
            args: args.clone(),
            index,
            count,
        };
        let spec = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new(&exe)
            .arg("--worker")
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning worker {index}: {e}"))?;
        let stdin = child.stdin.take().ok_or("worker stdin")?;
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Event>(&line) {
                    Ok(ev) => {
                        if tx.send((index, ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("[qs-fleet] worker {index}: unreadable line ({e})"),
                }
            }
            let _ = tx.send((index, Event::Gone));
        });
        workers.push(Worker { child, stdin });
    }
    Ok(Fleet {
        args: args.clone(),
        progress: vec![Progress::default(); count],
        gone: vec![false; count],
        workers,
        events,
        counters: Arc::new(PubCounters::default()),
        last_line: Instant::now(),
        server_rss: 0,
    })
}

fn sample_memory(args: &Args) -> Option<Mem> {
    server_memory(&args.server_pid, args.server_pid_cmd.as_deref())
}

/// Median of three samples 300 ms apart (by RSS).
async fn sample_idle(args: &Args) -> Option<Mem> {
    let mut samples = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        samples.extend(sample_memory(args));
    }
    samples.sort_by_key(|m| m.rss);
    samples.get(samples.len() / 2).copied()
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qs-fleet: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> ExitCode {
    let (soft, _hard) = raise_nofile();
    let steps = args.step_list();
    let streams = args.streams();
    let max_conns = steps.iter().max().copied().unwrap_or(0).div_ceil(streams);
    let procs = if max_conns == 0 {
        0
    } else if args.procs > 0 {
        args.procs
    } else {
        (max_conns.div_ceil(CONNS_PER_WORKER) as usize).max(2)
    };
    let mut result = RunResult {
        label: args.label.clone(),
        target: format!("{:?}", args.target).to_lowercase(),
        url: args.url.clone(),
        http2: args.http2,
        streams_per_conn: streams,
        tls: args.is_tls(),
        procs,
        source_ips: args.source_ips,
        publishers: args.publishers,
        rate: args.rate,
        size: args.size,
        topics: args.topics,
        started_unix: crate::net::unix_nanos() / 1_000_000_000,
        nofile_limit: soft,
        ..RunResult::default()
    };
    let endpoint = match Endpoint::new(&args, b"http/1.1") {
        Ok(e) => e,
        Err(e) => {
            eprintln!("qs-fleet: {e}");
            return ExitCode::from(64);
        }
    };
    let mut fleet = match spawn_workers(&args, procs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("qs-fleet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let outcome = tokio::time::timeout(
        timeout,
        run_steps(&args, &endpoint, &mut fleet, &mut result, &steps),
    )
    .await;
    fleet.shutdown();
    let code = match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("qs-fleet: {e}");
            result.errors.push(e);
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "qs-fleet: --timeout {} s reached; reporting what was measured",
                args.timeout
            );
            result.timed_out = true;
            ExitCode::from(2)
        }
    };
    write_outputs(&args, &result);
    code
}

fn write_outputs(args: &Args, result: &RunResult) {
    if let Some(path) = &args.out {
        match serde_json::to_string_pretty(result) {
            Ok(json) => {
                if let Err(e) = std::fs::write(path, json + "\n") {
                    eprintln!("qs-fleet: writing {path}: {e}");
                }
            }
            Err(e) => eprintln!("qs-fleet: results: {e}"),
        }
    }
    if let Some(path) = &args.chart {
        if let Err(e) = crate::chart::draw(path, result) {
            eprintln!("qs-fleet: chart {path}: {e}");
        }
    }
}

async fn run_steps(
    args: &Args,
    endpoint: &Endpoint,
    fleet: &mut Fleet,
    result: &mut RunResult,
    steps: &[u64],
) -> Result<(), String> {
    let streams = args.streams();
    let before = sample_memory(args);
    result.server_memory_before = before;
    let mut epoch = 0u32;
    for &subscribers in steps {
        let conns = subscribers.div_ceil(streams);
        let mut step = StepResult {
            subscribers,
            connections: conns,
            ..StepResult::default()
        };
        if fleet.workers.is_empty() && subscribers > 0 {
            return Err("no workers for the subscribers".into());
        }
        if !fleet.workers.is_empty() {
            let started = Instant::now();
            fleet.send(&Command::Grow { conns });
            let grown = fleet
                .gather(|ev| match ev {
                    Event::Grown {
                        connected,
                        failed,
                        connect_us,
                        errors,
                        ..
                    } => Some((connected, failed, connect_us, errors)),
                    _ => None,
                })
                .await;
            step.connect_s = started.elapsed().as_secs_f64();
            let mut hist = new_histogram();
            for (connected, failed, connect_us, errors) in grown {
                step.connected += connected;
                step.failed += failed;
                merge_sparse(&mut hist, &connect_us);
                for e in errors {
                    if !result.errors.contains(&e) {
                        result.errors.push(e);
                    }
                }
            }
            step.connect_latency = summarize(&hist);
            tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
        }
        step.server_memory_idle = sample_idle(args).await;
        let live = fleet.total();
        let live_subs = step.connected.saturating_sub(live.closed);
        if let (Some(b), Some(idle)) = (before, step.server_memory_idle) {
            if live_subs > 0 {
                step.bytes_per_subscriber_rss =
                    Some((idle.rss as f64 - b.rss as f64) / live_subs as f64);
                step.bytes_per_subscriber_pss =
                    Some((idle.pss as f64 - b.pss as f64) / live_subs as f64);
            }
        }
        step.generator_rss = live.rss + own_rss();
        print_connect(&step);

        if args.is_publishing() {
            epoch += 1;
            fleet.send(&Command::Epoch { epoch });
            let ready = fleet
                .gather(|ev| match ev {
                    Event::EpochReady {
                        epoch: e,
                        topic_subs,
                    } if e == epoch => Some(topic_subs),
                    _ => None,
                })
                .await;
            let topics = args.topics.max(1) as usize;
            let mut topic_subs = vec![0u64; topics];
            for t in ready {
                for (sum, n) in topic_subs.iter_mut().zip(t) {
                    *sum += n;
                }
            }
            let pids = server_pids(&args.server_pid, args.server_pid_cmd.as_deref());
            let cpu_before = (cpu_seconds(&pids), own_cpu_seconds());
            let phase = run_phase(args, endpoint, epoch, fleet.counters.clone());
            tokio::pin!(phase);
            // Keep reading worker events (progress) while publishing.
            let outcome = loop {
                tokio::select! {
                    o = &mut phase => break o,
                    ev = fleet.next() => if ev.is_none() { break (&mut phase).await },
                }
            };
            let per_publish = |before: Option<f64>, after: Option<f64>| {
                let (b, a) = (before?, after?);
                (outcome.acked > 0).then(|| (a - b) * 1e6 / outcome.acked as f64)
            };
            let server_cpu = if pids.is_empty() {
                None
            } else {
                per_publish(cpu_before.0, cpu_seconds(&pids))
            };
            let generator_cpu = per_publish(cpu_before.1, own_cpu_seconds());
            let expected: u64 = (0..outcome.published)
                .filter(|s| outcome.unacked.binary_search(s).is_err())
                .map(|s| topic_subs[(s % topics as u64) as usize])
                .sum();
            // Bounded wait for in-flight deliveries.
            let drain_start = Instant::now();
            let mut last_unique = fleet.total().unique;
            let mut last_change = Instant::now();
            while fleet.total().unique < expected
                && drain_start.elapsed().as_secs_f64() < args.drain_max
                && last_change.elapsed().as_secs_f64() < args.drain_idle
                && fleet.live() > 0
            {
                let _ = tokio::time::timeout(Duration::from_millis(100), fleet.next()).await;
                let unique = fleet.total().unique;
                if unique != last_unique {
                    last_unique = unique;
                    last_change = Instant::now();
                }
            }
            let drain_s = drain_start.elapsed().as_secs_f64();
            let reports: Vec<DeliveryReport> = if fleet.workers.is_empty() {
                Vec::new()
            } else {
                fleet.send(&Command::Report {
                    epoch,
                    published: outcome.published,
                    unacked: outcome.unacked.clone(),
                });
                fleet
                    .gather(|ev| match ev {
                        Event::Report(r) if r.epoch == epoch => Some(*r),
                        _ => None,
                    })
                    .await
            };
            let mut hist = new_histogram();
            let mut d = DeliveryResult {
                expected,
                drain_s,
                ..DeliveryResult::default()
            };
            let mut last_ns = 0;
            for r in &reports {
                d.unique += r.unique;
                d.deliveries += r.deliveries;
                d.missing += r.missing;
                d.duplicates += r.duplicates;
                d.stale += r.stale;
                d.foreign += r.foreign;
                d.unacked_delivered += r.unacked_delivered;
                d.unexpected += r.unexpected;
                d.closed_subscribers += r.closed;
                last_ns = last_ns.max(r.last_ns);
                merge_sparse(&mut hist, &r.latency_us);
            }
            if last_ns > outcome.start_ns {
                d.per_s = d.unique as f64 / ((last_ns - outcome.start_ns) as f64 / 1e9);
            }
            d.latency = summarize(&hist);
            let elapsed_s = outcome.elapsed.as_secs_f64();
            let p = PublishResult {
                published: outcome.published,
                acked: outcome.acked,
                failed: outcome.published - outcome.acked,
                elapsed_s,
                rate: if elapsed_s > 0.0 {
                    outcome.acked as f64 / elapsed_s
                } else {
                    0.0
                },
                latency: summarize(&outcome.latency),
                errors: outcome.errors,
                server_cpu_us_per_publish: server_cpu,
                generator_cpu_us_per_publish: generator_cpu,
            };
            print_publish(&p, &d);
            step.publish = Some(p);
            step.delivery = Some(d);
        }
        result.steps.push(step);
        // Partial results survive a later timeout or crash.
        write_outputs(args, result);
    }
    Ok(())
}

fn print_connect(s: &StepResult) {
    let mem = match (s.bytes_per_subscriber_rss, s.server_memory_idle) {
        (Some(b), Some(m)) => format!(
            "; server RSS {:.1} MiB, {:.0} bytes/subscriber (PSS {:.0})",
            m.rss as f64 / 1048576.0,
            b,
            s.bytes_per_subscriber_pss.unwrap_or(0.0)
        ),
        _ => String::new(),
    };
    println!(
        "step {}: connected {} failed {} in {:.2} s (connect p50 {:.1} ms p99 {:.1} ms max {:.1} ms){mem}; generator RSS {:.1} MiB",
        s.subscribers,
        s.connected,
        s.failed,
        s.connect_s,
        s.connect_latency.p50_ms,
        s.connect_latency.p99_ms,
        s.connect_latency.max_ms,
        s.generator_rss as f64 / 1048576.0
    );
}

fn print_publish(p: &PublishResult, d: &DeliveryResult) {
    println!(
        "  publish: {} acked / {} in {:.2} s = {:.0}/s; publish latency p50 {:.2} ms p90 {:.2} p99 {:.2} max {:.2}{}",
        p.acked,
        p.published,
        p.elapsed_s,
        p.rate,
        p.latency.p50_ms,
        p.latency.p90_ms,
        p.latency.p99_ms,
        p.latency.max_ms,
        if p.errors.is_empty() { String::new() } else { format!(" errors {:?}", p.errors) }
    );
    let us = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} us"));
    println!(
        "  CPU per acked publish: server {}, generator {}",
        us(p.server_cpu_us_per_publish),
        us(p.generator_cpu_us_per_publish)
    );
    println!(
        "  delivery: {}/{} (missing {}, duplicates {}, stale {}, closed subscribers {}) {:.0}/s; latency p50 {:.2} ms p90 {:.2} p99 {:.2} max {:.2}; drain {:.2} s",
        d.unique,
        d.expected,
        d.missing,
        d.duplicates,
        d.stale,
        d.closed_subscribers,
        d.per_s,
        d.latency.p50_ms,
        d.latency.p90_ms,
        d.latency.p99_ms,
        d.latency.max_ms,
        d.drain_s
    );
}

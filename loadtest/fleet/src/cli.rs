//! Command-line options of `qs-fleet`, shared verbatim with the worker processes (serialised as
//! JSON in their `--worker` argument). Validation only; no I/O.
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Target {
    /// Mercure hub: `GET /.well-known/mercure?match=<topic>`, form `POST` with a bearer token.
    Mercure,
    /// nginx + nchan: `GET /sub/<channel>` (EventSource), `POST /pub/<channel>` raw body.
    Nchan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum ConnectedOn {
    /// `headers` for nchan, `body` for mercure (Quicksilver sends a `:` preamble at once).
    Auto,
    /// The 200 response head arrived.
    Headers,
    /// The head and the first body bytes arrived.
    Body,
}

/// SSE fleet generator: many subscribers (HTTP/1.1 or HTTP/2, optional TLS) spread over worker
/// processes and source addresses, paced or back-to-back publishers, delivery latency and loss,
/// server memory per subscriber. Bounded by --timeout.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(name = "qs-fleet", version, args_override_self = true)]
pub struct Args {
    /// Server kind
    #[arg(long, value_enum, default_value = "mercure")]
    pub target: Target,
    /// Server base URL (scheme, IP or localhost, port): http://127.0.0.1:3000
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Use TLS (also implied by an https:// URL)
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) trusted for --tls
    #[arg(long)]
    pub ca: Option<String>,
    /// Subscribers (ignored when --steps is given)
    #[arg(long, default_value_t = 0)]
    pub subscribers: u64,
    /// Ramp: grow to each subscriber count in turn, measuring at each (e.g. 1000,5000,10000)
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<u64>,
    /// Subscribe over HTTP/2 (h2c prior knowledge, or ALPN h2 with --tls)
    #[arg(long)]
    pub http2: bool,
    /// SSE streams per HTTP/2 connection
    #[arg(long, default_value_t = 100)]
    pub streams_per_conn: u64,
    /// Spread connections over source addresses 127.0.0.1 ..= 127.0.0.K
    #[arg(long, default_value_t = 4)]
    pub source_ips: u8,
    /// Worker processes holding the subscribers (0: one per 15,000 connections, at least 2)
    #[arg(long, default_value_t = 0)]
    pub procs: usize,
    /// Connections being opened at once per worker (0: all at once, unpaced)
    #[arg(long, default_value_t = 0)]
    pub connect_concurrency: usize,
    /// When a subscriber counts as connected
    #[arg(long, value_enum, default_value = "auto")]
    pub connected_on: ConnectedOn,
    /// Distinct topics (channels); subscriber i and publish i use topic i mod T
    #[arg(long, default_value_t = 1)]
    pub topics: u64,
    /// Topic prefix (mercure) or channel prefix (nchan); the topic index is appended
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// Query parameter naming the topic on subscribe (mercure): `match` (draft 08) or `topic` (0.x)
    #[arg(long, default_value = "match")]
    pub sub_param: String,
    /// Subscriber token (mercure), sent as `Authorization: Bearer`
    #[arg(long)]
    pub sub_token: Option<String>,
    /// Publisher token (mercure), sent as `Authorization: Bearer`
    #[arg(long)]
    pub pub_token: Option<String>,
    /// Keep-alive publisher connections (0: no publishing)
    #[arg(long, default_value_t = 0)]
    pub publishers: usize,
    /// Publishes per second in total (0: back to back)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Publishes per measurement (per step)
    #[arg(long)]
    pub count: Option<u64>,
    /// Publish phase length in seconds (per step)
    #[arg(long)]
    pub duration: Option<f64>,
    /// Update data size in bytes (padded JSON)
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Longest wait for in-flight deliveries after the publish phase, seconds
    #[arg(long, default_value_t = 30.0)]
    pub drain_max: f64,
    /// Stop waiting for deliveries after this long without progress, seconds
    #[arg(long, default_value_t = 3.0)]
    pub drain_idle: f64,
    /// Pause before the idle memory samples, seconds
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Server process ids whose VmRSS is summed (nginx: master and workers)
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Shell command printing the server pids (e.g. `pgrep -f 'nginx: '`), run at each sample
    #[arg(long)]
    pub server_pid_cmd: Option<String>,
    /// Give up after this many seconds: report what was measured and exit non-zero
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Results JSON file
    #[arg(long)]
    pub out: Option<String>,
    /// SVG chart of p99 latency and memory per subscriber versus subscribers (ramps)
    #[arg(long)]
    pub chart: Option<String>,
    /// Free-form label stored in the results
    #[arg(long, default_value = "")]
    pub label: String,
    /// No progress line on stderr
    #[arg(long)]
    pub quiet: bool,
    /// Internal: run as worker process (JSON spec)
    #[arg(long, hide = true)]
    pub worker: Option<String>,
}

impl Args {
    pub fn is_tls(&self) -> bool {
        self.tls || self.url.starts_with("https://")
    }

    /// Subscriber counts to grow to, in order.
    pub fn step_list(&self) -> Vec<u64> {
        if self.steps.is_empty() {
            vec![self.subscribers]
        } else {
            self.steps.clone()
        }
    }

    pub fn streams(&self) -> u64 {
        if self.http2 {
            self.streams_per_conn.max(1)
        } else {
            1
        }
    }

    pub fn is_publishing(&self) -> bool {
        self.publishers > 0 && (self.count.is_some() || self.duration.is_some())
    }

    pub fn connected_on_body(&self) -> bool {
        match self.connected_on {
            ConnectedOn::Headers => false,
            ConnectedOn::Body => true,
            ConnectedOn::Auto => self.target == Target::Mercure,
        }
    }

    pub fn topic_name(&self, index: u64) -> String {
        let prefix = match (&self.topic_prefix, self.target) {
            (Some(p), _) => p.as_str(),
            (None, Target::Mercure) => "https://example.com/fleet/",
            (None, Target::Nchan) => "fleet-",
        };
        format!("{prefix}{index}")
    }

    /// Problems with the options, all at once.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.topics == 0 {
            errors.push("--topics must be at least 1".into());
        }
        if self.source_ips == 0 || self.source_ips > 254 {
            errors.push("--source-ips must be 1..=254".into());
        }
        if !self.steps.windows(2).all(|w| w[0] <= w[1]) {
            errors.push("--steps must not decrease".into());
        }
        if self.publishers > 0 && self.count.is_none() && self.duration.is_none() {
            errors.push("--publishers needs --count or --duration (bounded load)".into());
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            errors.push("--rate must be >= 0".into());
        }
        if self.target == Target::Mercure && self.publishers > 0 && self.pub_token.is_none() {
            errors.push("--target mercure with --publishers needs --pub-token".into());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            errors.push("--url must start with http:// or https://".into());
        }
        if self.timeout <= 0.0 || !self.timeout.is_finite() {
            errors.push("--timeout must be > 0".into());
        }
        errors
    }
}

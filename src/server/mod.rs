//! Listeners and connections: plain (HTTP/1.1 + h2c prior knowledge) and TLS (ALPN `h2`,
//! `http/1.1`, rustls with the ring provider), served by hyper-util's auto builder; bounded
//! graceful shutdown that ends SSE streams first (hyper alone would wait on them forever).
mod fast;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::auth::Verifier;
use crate::config::{Config, HistoryConfig};
use crate::history::{History, LogHistory, MemoryHistory, NoHistory};
use crate::http::{self, AppState, ConnInfo};
use crate::hub::{Hub, HubOptions};
use crate::subscriber::ConnectionKill;
use crate::topic::{HubUrl, MatcherEngine};

/// Why the hub could not start. Context-rich: shown to the operator once.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("keys: {}", .0.join("; "))]
    Keys(Vec<String>),
    #[error("no listener configured")]
    NoListener,
    #[error("cannot start the delivery runtime: {0}")]
    Runtime(std::io::Error),
    #[error("history log in {}: {source}", dir.display())]
    History {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A started hub: its bound addresses and the handle to stop it.
#[derive(Debug)]
pub struct RunningHub {
    /// The plain listener's bound address (port resolved when configured as 0).
    pub addr: Option<SocketAddr>,
    /// The TLS listener's bound address.
    pub tls_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
    delivery: DeliveryRuntime,
}

/// The runtime that runs the streams of HTTP/1.1 subscribers (the fast path), apart from the one
/// that accepts connections and answers requests. A broadcast wakes thousands of streams at
/// once; on one runtime, a publish arriving meanwhile queued behind all of their writes (publish
/// p99 15 ms with 10,000 subscribers vs 1.2 ms with none). With its own threads, the OS
/// scheduler interleaves the two. Shut down without blocking when the hub goes.
#[derive(Debug)]
struct DeliveryRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl DeliveryRuntime {
    fn new() -> Result<Self, StartupError> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("qs-delivery")
            .on_thread_start(lower_priority)
            .on_thread_park(crate::alloc::on_thread_park)
            .enable_all()
            .build()
            .map(|rt| Self {
                handle: rt.handle().clone(),
                runtime: Some(rt),
            })
            .map_err(StartupError::Runtime)
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

/// Delivery threads yield to the request threads under CPU contention (nice +5 = about a third
/// of the weight): a publish, a connect or an API call is answered while a broadcast is being
/// written. Failure to lower (never expected) only costs that preference.
const DELIVERY_NICE: i32 = 5;

fn lower_priority() {
    // On Linux, PRIO_PROCESS with no id is the calling thread (elsewhere it is the whole
    // process, so nothing is done there).
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, DELIVERY_NICE) {
        tracing::debug!(error = %e, "cannot lower the delivery thread's priority");
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Builds the hub from `config`, binds its listeners and starts serving.
pub async fn start(config: Config) -> Result<RunningHub, StartupError> {
    let engine = Arc::new(MatcherEngine::new(
        HubUrl::new(&config.hub_url),
        config.matcher_cache_size,
    ));
    let verifier = Verifier::new(&config.issuers, Arc::clone(&engine))
        .map_err(StartupError::Keys)?
        .with_compat(config.compat_any());
    // HTTPS JWK Sets: wait for the first fetch (bounded); a failure is logged and retried.
    verifier.jwks_fetched().await;
    let history = open_history(&config.history)?;
    let options = HubOptions {
        subscription_events: config
            .subscriptions
            .then(|| crate::http::HUB_PATH.to_owned()),
    };
    let hub = Arc::new(Hub::with_options(
        engine,
        history,
        config.subscriber_queue_capacity,
        options,
    ));
    let tls_acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let plain = match config.addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let secure = match &config.tls {
        Some(t) => Some(bind(t.addr).await?),
        None => None,
    };
    if plain.is_none() && secure.is_none() {
        return Err(StartupError::NoListener);
    }
    let state = Arc::new(AppState {
        hub,
        verifier,
        config,
    });
    let (stop, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = mpsc::channel(1);
    let builder = Arc::new(builder());
    let delivery = DeliveryRuntime::new()?;
    let conns = Connections {
        builder,
        delivery: delivery.handle(),
    };
    tokio::spawn(reaper(Arc::clone(&state), stop_rx.clone()));
    let mut running = RunningHub {
        addr: None,
        tls_addr: None,
        state: Arc::clone(&state),
        stop,
        done_tx: done_tx.clone(),
        done_rx,
        delivery,
    };
    if let Some(listener) = plain {
        running.addr = listener.local_addr().ok();
        if let Some(a) = running.addr {
            tracing::info!(addr = %a, "listening (HTTP/1.1, h2c)");
        }
        tokio::spawn(accept_loop(
            listener,
            None,
            Arc::clone(&state),
            stop_rx.clone(),
            done_tx.clone(),
            conns.clone(),
        ));
    }
    if let (Some(listener), Some(acceptor)) = (secure, tls_acceptor) {
        running.tls_addr = listener.local_addr().ok();
        if let Some(a) = running.tls_addr {
            tracing::info!(addr = %a, "listening (TLS: h2, http/1.1)");
        }
        tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            state,
            stop_rx,
            done_tx,
            conns,
        ));
    }
    Ok(running)
}

impl RunningHub {
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting, ends every SSE stream, lets connections finish their responses, and
    /// returns once they are closed or the grace period is over.
    pub async fn shutdown(self) {
        let Self {
            state,
            stop,
            done_tx,
            mut done_rx,
            delivery,
            ..
        } = self;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        state.hub.shutdown();
        drop(done_tx);
        let grace = state.config.shutdown_grace;
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            tracing::warn!(grace = ?grace, "connections still open after the grace period; closing them");
        }
        // The streams that just ended queued their subscription events: commit them before
        // the process goes, so history never keeps an `active: true` without its `false`.
        if tokio::time::timeout(grace, state.hub.flush())
            .await
            .is_err()
        {
            tracing::warn!("history writer not drained within the grace period");
        }
        drop(delivery);
    }
}

/// Runs until `signal` resolves, then shuts down gracefully.
pub async fn run(
    config: Config,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), StartupError> {
    let running = start(config).await?;
    signal.await;
    running.shutdown().await;
    Ok(())
}

fn open_history(config: &HistoryConfig) -> Result<Box<dyn History>, StartupError> {
    Ok(match config {
        HistoryConfig::Memory { capacity } => Box::new(MemoryHistory::new(*capacity)),
        HistoryConfig::None => Box::new(NoHistory::default()),
        HistoryConfig::Log { dir, retention } => {
            let (log, report) = LogHistory::open(dir.clone(), *retention).map_err(|source| {
                StartupError::History {
                    dir: dir.clone(),
                    source,
                }
            })?;
            tracing::info!(
                dir = %dir.display(),
                events = report.events,
                segments = report.segments,
                last_seq = ?report.last_seq,
                truncated_bytes = report.truncated_bytes,
                "history log opened"
            );
            if report.truncated_bytes > 0 || report.damaged_segments > 0 {
                tracing::warn!(
                    truncated_bytes = report.truncated_bytes,
                    damaged_segments = report.damaged_segments,
                    "history log recovered from a torn or damaged tail (records after the last complete one were never acknowledged)"
                );
            }
            Box::new(log)
        }
    })
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`). mio's
/// default of 128 overflowed under 10,000 unpaced connects: the dropped SYNs were retried by
/// clients a second later.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(LISTEN_BACKLOG)
        })
        .map_err(|source| StartupError::Bind { addr, source })
}

const H2_MAX_STREAMS: u32 = 1000;
const H2_SEND_BUFFER: usize = 64 * 1024;

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    // HTTP/2 carries many SSE streams per connection (browsers behind an h2 proxy or CDN, IoT
    // gateways): up to 1,000 concurrent streams, and at most 64 KiB buffered per stream for a
    // client that does not read (h2's default, 400 KiB, times 1,000 streams is 400 MiB for one
    // stalled connection; the subscriber queue and history hold the rest).
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_SEND_BUFFER);
    b
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
    conns: Connections,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning on a full table.
                tracing::warn!(error = %e, retry_in = ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let task = ConnTask {
            state: Arc::clone(&state),
            stop: stop.clone(),
            conns: conns.clone(),
            _done: done.clone(),
        };
        match &tls {
            None => {
                tokio::spawn(task.serve(stream, false, false));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls_stream)) => {
                            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            task.serve(tls_stream, true, h2).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// What every connection task needs to serve: hyper's builder and where streams run.
#[derive(Clone)]
struct Connections {
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// The delivery runtime's handle (spawning after it shut down drops the task).
    delivery: tokio::runtime::Handle,
}

/// One connection's task. Holding `_done` keeps shutdown waiting until the connection closes.
struct ConnTask {
    state: Arc<AppState>,
    stop: watch::Receiver<bool>,
    conns: Connections,
    _done: mpsc::Sender<()>,
}

impl ConnTask {
    /// Serves one connection: the fast path while its requests are HTTP/1.1 subscriptions (a
    /// refused one keeps the connection for the next request) or publishes, hyper from the
    /// first request that is anything else.
    async fn serve<I>(mut self, mut io: I, tls: bool, h2_alpn: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let kill = Arc::new(ConnectionKill::default());
        let info = ConnInfo {
            tls,
            kill: Arc::clone(&kill),
        };
        let prefix = if h2_alpn {
            bytes::Bytes::new()
        } else {
            let mut opening = true;
            loop {
                let state = Arc::clone(&self.state);
                let first = fast::first(&mut io, state, info.clone(), &mut self.stop, opening);
                match Box::pin(first).await {
                    fast::First::KeepAlive => {
                        opening = false;
                        continue;
                    }
                    fast::First::Close => return,
                    fast::First::Hyper(prefix) => break prefix,
                    fast::First::Stream(head, body) => {
                        // A task of its own, sized for streaming only (this one ends).
                        let done = self._done.clone();
                        let stream = fast::Streaming::new(io, head, body, kill, done);
                        self.conns.delivery.spawn(stream);
                        return;
                    }
                }
            }
        };
        // Boxed: hyper's connection state is large and only some connections need it.
        Box::pin(self.serve_hyper(fast::Prefixed::new(prefix, io), info, kill)).await;
    }

    async fn serve_hyper<I>(mut self, io: I, info: ConnInfo, kill: Arc<ConnectionKill>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        // Boxed: hyper keeps an HTTP/2 stream's service future inline in the stream's task for
        // the stream's life; boxed, the handler's large state is freed once it answered.
        let service =
            service_fn(move |req| Box::pin(http::handle(Arc::clone(&state), info.clone(), req)));
        let conn = self
            .conns
            .builder
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            _ = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            () = kill.killed() => {
                // A stream on this connection stopped reading past its deadline. Let the other
                // streams (h2) finish briefly, then drop the connection, which closes the socket.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(KILL_GRACE, conn.as_mut()).await;
            }
        }
    }
}

/// A client that has not sent a complete request head by then is dropped.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a killed connection's other streams get before the socket is closed.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(1);
/// How often the reaper looks for overdue streams and due heartbeats (a heartbeat goes out up to
/// this late), and how late overdue streams may be.
const REAP_EVERY: Duration = Duration::from_millis(200);
const REAP_GRACE: Duration = Duration::from_millis(500);
/// The reaper's tick for very short heartbeats (tests).
const MIN_REAP_EVERY: Duration = Duration::from_millis(10);
/// A lagging stream on an HTTP/2 connection shares it with others that may be healthy: it is
/// already out of the index (no more queueing), so the connection is only closed after this.
const SHARED_LAG_GRACE: Duration = Duration::from_secs(30);

/// Periodically ends the connections of streams that cannot end by themselves, and wakes the
/// streams whose heartbeat is due.
async fn reaper(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    // Heartbeats are sent when the reaper wakes quiet streams: tick at least that often.
    let heartbeat = state.config.heartbeat;
    let every = heartbeat.map_or(REAP_EVERY, |h| h.clamp(MIN_REAP_EVERY, REAP_EVERY));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tick.tick() => {
                state.hub.reap(tokio::time::Instant::now(), REAP_GRACE, SHARED_LAG_GRACE, heartbeat);
            }
        }
    }
}

/// Resolves once shutdown is signalled (or the sender is gone). Returns nothing so no watch
/// guard is held across later awaits.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

//! HTTPS JWK Set sources (issue 6): a background task fetches the set at start, on an interval
//! and on a `kid` miss (rate-limited), keeping the last good set when a fetch fails. SSRF guard:
//! `https://` only, no redirects, a 1 MiB body and 10 s per fetch; rustls on `ring`.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HOST, USER_AGENT};
use http::StatusCode;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::jwks::{parse, unix_now, verify_in, Jwk, JwksStatus};
use super::{Algorithm, JwksUrl};

/// Largest JWK Set body read.
const MAX_BODY: usize = 1 << 20;
/// Bound on one fetch: connect, TLS, request and body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest periodic refresh (a zero interval would spin).
const MIN_PERIOD: Duration = Duration::from_secs(1);
/// Retry period after a failed fetch (bounded below by the rate limit, above by the interval).
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    keys: Arc<Vec<Jwk>>,
    error: Option<String>,
    loads: u64,
    last_success: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    url: String,
    state: Mutex<State>,
    /// Signalled on a `kid` miss; the refresher fetches when the rate limit allows.
    refresh: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Where to connect and what to ask for.
#[derive(Debug)]
struct Target {
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
    server_name: ServerName<'static>,
}

/// A JWK Set fetched over HTTPS by a task this value owns (aborted when dropped).
#[derive(Debug)]
pub(crate) struct UrlKeys {
    shared: Arc<Shared>,
    first: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for UrlKeys {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UrlKeys {
    /// Checks the configuration and starts the refresher (which fetches at once). A fetch
    /// failure is not an error here: the hub starts and retries in the background.
    pub(crate) fn start(config: &JwksUrl) -> Result<Self, String> {
        let target = target(&config.url)?;
        let connector = TlsConnector::from(Arc::new(client_config(config.ca_file.as_deref())?));
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "an HTTPS JWK Set needs a running tokio runtime".to_owned())?;
        let shared = Arc::new(Shared {
            url: config.url.clone(),
            state: Mutex::new(State {
                keys: Arc::new(Vec::new()),
                error: Some("not fetched yet".to_owned()),
                loads: 0,
                last_success: None,
            }),
            refresh: Notify::new(),
        });
        let (first_tx, first) = watch::channel(false);
        let task = runtime.spawn(refresher(
            Arc::clone(&shared),
            target,
            connector,
            config.refresh_interval.max(MIN_PERIOD),
            config.refresh_min_interval,
            first_tx,
        ));
        Ok(Self {
            shared,
            first,
            task,
        })
    }

    /// Resolves once the first fetch attempt has finished (successful or not).
    pub(crate) async fn first_attempt(&self) {
        let mut first = self.first.clone();
        let _ = first.wait_for(|done| *done).await;
    }

    /// Verifies with the current set; a `kid` miss fails at once and asks the refresher for a
    /// new set, so a rotated key verifies once that fetch has completed.
    pub(crate) fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        let (keys, error) = {
            let state = self.shared.lock();
            (Arc::clone(&state.keys), state.error.clone())
        };
        if let Some(result) = verify_in(&keys, kid, alg, message, signature) {
            return result;
        }
        self.shared.refresh.notify_one();
        match (keys.is_empty(), error) {
            (true, Some(error)) => Err(format!("JWK Set not available: {error}")),
            _ => Err("no JWK with this kid; refresh requested".to_owned()),
        }
    }

    pub(crate) fn status(&self) -> JwksStatus {
        let state = self.shared.lock();
        JwksStatus {
            source: self.shared.url.clone(),
            keys: state.keys.len(),
            loads: state.loads,
            error: state.error.clone(),
            last_success: state.last_success,
        }
    }
}

/// Fetches, then waits for the interval (or the retry period after a failure) or a `kid`
/// miss, never fetching twice within `min_interval`.
async fn refresher(
    shared: Arc<Shared>,
    target: Target,
    connector: TlsConnector,
    interval: Duration,
    min_interval: Duration,
    first: watch::Sender<bool>,
) {
    let retry = RETRY.max(min_interval).min(interval);
    loop {
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(FETCH_TIMEOUT, fetch(&target, &connector)).await {
            Ok(Ok(body)) => std::str::from_utf8(&body)
                .map_err(|_| "body is not UTF-8".to_owned())
                .and_then(parse),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("timed out after {}s", FETCH_TIMEOUT.as_secs())),
        };
        let ok = result.is_ok();
        {
            let mut state = shared.lock();
            match result {
                Ok(keys) => {
                    tracing::info!(url = %shared.url, keys = keys.len(), "JWK Set fetched");
                    state.keys = Arc::new(keys);
                    state.error = None;
                    state.loads += 1;
                    state.last_success = Some(unix_now());
                }
                Err(e) => {
                    if state.loads == 0 {
                        tracing::error!(url = %shared.url, error = %e, "JWK Set fetch failed; its tokens are rejected until a fetch succeeds");
                    } else {
                        tracing::warn!(url = %shared.url, error = %e, "JWK Set fetch failed; keeping the last good set");
                    }
                    state.error = Some(e);
                }
            }
        }
        first.send_replace(true);
        let wait = if ok { interval } else { retry };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.refresh.notified() => {}
        }
        tokio::time::sleep_until(started + min_interval).await;
    }
}

fn target(url: &str) -> Result<Target, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err("only https:// JWK Set URLs are fetched".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in a JWK Set URL are not supported".to_owned());
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL has no host".to_owned())?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_name =
        ServerName::try_from(bare.clone()).map_err(|e| format!("invalid host {host}: {e}"))?;
    let port = parsed.port().unwrap_or(443);
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut path_and_query = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    Ok(Target {
        host: bare,
        port,
        authority,
        path_and_query,
        server_name,
    })
}

/// The platform's trust roots plus the PEM certificates of `ca_file`.
fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A platform certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate in the CA file {}", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificate (set jwks_ca_file)".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Ends the connection task when the fetch ends (or is dropped by the timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One GET; anything but 200 (redirects included) is a failure.
async fn fetch(target: &Target, connector: &TlsConnector) -> Result<Bytes, String> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let tls = connector
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = http::Request::get(target.path_and_query.as_str())
        .header(HOST, target.authority.as_str())
        .header(ACCEPT, "application/jwk-set+json, application/json")
        .header(USER_AGENT, "quicksilver")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!(
            "HTTP status {} (redirects are not followed)",
            response.status()
        ));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("body (at most {MAX_BODY} bytes): {e}"))?;
    Ok(body.to_bytes())
}

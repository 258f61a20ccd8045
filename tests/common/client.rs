//! The test HTTP client: raw hyper 1.x client connections over TCP or rustls (ring, trusting only
//! `certs-dev/ca.pem`), HTTP/1.1 (a new connection per request) or HTTP/2 (one shared connection).
//! Every wait is bounded by a deadline; nothing here sleeps.
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::sse::SseStream;

/// Upper bound for connecting, for a whole `send`, and for `open_stream` to get headers. A
/// failure bound only: reaching it fails the test, nothing ever waits for it to pass.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_H1: &[u8] = b"http/1.1";

/// The RFC 9113 default stream window instead of hyper's 2 MiB, so a stream the test stops
/// reading pushes back on the server after ~64 KiB, as a stalled browser tab would.
const H2_STREAM_WINDOW: u32 = 65_535;
const H2_CONN_WINDOW: u32 = 4 * 1024 * 1024;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Transport and HTTP version of a `TestClient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// HTTP/1.1 over plain TCP.
    H1,
    /// HTTP/2 over plain TCP with prior knowledge (no upgrade).
    H2c,
    /// HTTP/2 over TLS, ALPN `h2`.
    TlsH2,
    /// HTTP/1.1 over TLS, ALPN `http/1.1`.
    TlsH1,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::H1, Proto::H2c, Proto::TlsH2, Proto::TlsH1];

    pub fn is_tls(self) -> bool {
        matches!(self, Proto::TlsH2 | Proto::TlsH1)
    }
    pub fn is_h2(self) -> bool {
        matches!(self, Proto::H2c | Proto::TlsH2)
    }
    /// The HTTP version requests and responses carry.
    pub fn version(self) -> Version {
        if self.is_h2() {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        }
    }
    pub fn scheme(self) -> &'static str {
        if self.is_tls() {
            "https"
        } else {
            "http"
        }
    }
    fn alpn(self) -> Option<&'static [u8]> {
        match self {
            Proto::H1 | Proto::H2c => None,
            Proto::TlsH2 => Some(ALPN_H2),
            Proto::TlsH1 => Some(ALPN_H1),
        }
    }
}

/// `certs-dev/` of this package (dev CA, `localhost` certificate and key).
pub fn certs_dev_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs-dev")
}

/// The `QUERY` method (safe, idempotent, with a body).
pub fn query_method() -> Method {
    Method::from_bytes(b"QUERY").expect("QUERY is a valid method token")
}

/// A request to send: method, origin-form target (`/path?query`), headers, body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub target: String,
    /// Sent as given (duplicates allowed). A `host` here also becomes the h2 `:authority`.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn new(method: Method, target: &str) -> Self {
        Self {
            method,
            target: target.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }
    pub fn get(target: &str) -> Self {
        Self::new(Method::GET, target)
    }
    pub fn post(target: &str) -> Self {
        Self::new(Method::POST, target)
    }
    pub fn query(target: &str) -> Self {
        Self::new(query_method(), target)
    }
    /// `GET` with `Accept: text/event-stream`, what an `EventSource` sends.
    pub fn sse(target: &str) -> Self {
        Self::get(target).header("accept", "text/event-stream")
    }
    /// Appends a header (an existing one of that name is kept).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_str(value).expect("valid header value");
        self.headers.append(name, value);
        self
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
    /// An `application/x-www-form-urlencoded` body; repeated keys stay repeated.
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }

    fn into_http(
        self,
        proto: Proto,
        default_authority: &str,
    ) -> Result<http::Request<Full<Bytes>>, BoxError> {
        let Request {
            method,
            target,
            mut headers,
            body,
        } = self;
        let authority = match headers.get(HOST) {
            Some(host) => host.to_str()?.to_owned(),
            None => default_authority.to_owned(),
        };
        let uri: Uri = if proto.is_h2() {
            // h2 needs :scheme and :authority; hyper takes them from an absolute URI. Host goes
            // into :authority rather than being sent twice.
            headers.remove(HOST);
            format!("{}://{}{}", proto.scheme(), authority, target).parse()?
        } else {
            // hyper's http1 connection writes the URI as given: keep origin-form plus Host.
            if !headers.contains_key(HOST) {
                headers.insert(HOST, HeaderValue::from_str(&authority)?);
            }
            target.parse()?
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .version(proto.version())
            .body(Full::new(body))?;
        *req.headers_mut() = headers;
        Ok(req)
    }
}

/// A complete response (body collected within `DEADLINE`).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }
    /// The body as UTF-8 (panics otherwise).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("response body is UTF-8")
    }
    /// The body as JSON (panics otherwise).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("response body is JSON")
    }
}

/// A byte stream to the hub: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}
pub type BoxIo = Box<dyn Io>;
type ConnFuture = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// A response body plus, for HTTP/1.1, the connection that feeds it. The h1 connection is
/// polled only inside `next_chunk`, so unread bytes stay in the kernel's socket buffers and a
/// caller that stops reading really stops reading.
pub(crate) struct BodyReader {
    body: Incoming,
    conn: Option<ConnFuture>,
    conn_error: Option<String>,
    /// Keeps the shared h2 connection alive while this stream is, even if the client is dropped.
    _h2: Option<http2::SendRequest<Full<Bytes>>>,
}

impl BodyReader {
    /// The next non-empty data chunk; `Ok(None)` at a clean end. Cancel-safe (used under timeouts).
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, BoxError> {
        loop {
            let frame = match self.conn.as_mut() {
                Some(conn) => {
                    tokio::select! {
                        frame = self.body.frame() => frame,
                        done = conn.as_mut() => {
                            // Frames already queued stay readable; an error is reported once
                            // the body runs dry (hyper may end an h1 body without one).
                            self.conn = None;
                            if let Err(e) = done {
                                self.conn_error = Some(e.to_string());
                            }
                            continue;
                        }
                    }
                }
                None => self.body.frame().await,
            };
            match frame {
                None => {
                    return match self.conn_error.take() {
                        Some(e) => Err(format!("connection failed: {e}").into()),
                        None => Ok(None),
                    };
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                    // Trailers and empty frames: keep reading.
                }
            }
        }
    }

    async fn collect(mut self) -> Result<Bytes, BoxError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.into())
    }
}

/// A client bound to one server address and protocol.
pub struct TestClient {
    addr: SocketAddr,
    proto: Proto,
    h2: Option<http2::SendRequest<Full<Bytes>>>,
    /// HTTP/1.1: the connection opened by `connect`, used by the first request.
    h1_first: Mutex<Option<BoxIo>>,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("addr", &self.addr)
            .field("proto", &self.proto)
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// Connects (TCP, TLS with the ALPN check, h2 handshake) or panics. HTTP/1.1 clients keep
    /// this connection for their first request and open a new one for each later request.
    pub async fn connect(addr: SocketAddr, proto: Proto) -> TestClient {
        match Self::try_connect(addr, proto).await {
            Ok(client) => client,
            Err(e) => panic!("connect {proto:?} to {addr}: {}", error_chain(&*e)),
        }
    }

    /// `connect` for tests that expect the connection to be refused.
    pub async fn try_connect(addr: SocketAddr, proto: Proto) -> Result<TestClient, BoxError> {
        timeout(DEADLINE, async {
            let io = open_io(addr, proto).await?;
            let mut client = TestClient {
                addr,
                proto,
                h2: None,
                h1_first: Mutex::new(None),
            };
            if proto.is_h2() {
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(H2_STREAM_WINDOW)
                    .initial_connection_window_size(H2_CONN_WINDOW)
                    .handshake(TokioIo::new(io))
                    .await?;
                // The h2 connection multiplexes every stream, so it must run on its own; it ends
                // when the client and all its streams are dropped, or the server closes.
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client.h2 = Some(send);
            } else {
                client.h1_first = Mutex::new(Some(io));
            }
            Ok(client)
        })
        .await
        .map_err(|_| format!("connect {proto:?} to {addr}: no connection within {DEADLINE:?}"))?
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `host:port` this client sends as `Host` / `:authority`: `localhost:<port>` over TLS (the
    /// certificate's name), the socket address otherwise.
    pub fn authority(&self) -> String {
        if self.proto.is_tls() {
            format!("localhost:{}", self.addr.port())
        } else {
            self.addr.to_string()
        }
    }
    /// `scheme://authority`, e.g. to build the audience `<base_url>/.well-known/mercure`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.proto.scheme(), self.authority())
    }

    /// Sends `req` and collects the whole response within `DEADLINE`, or panics.
    pub async fn send(&self, req: Request) -> Response {
        let what = format!("{} {}", req.method, req.target);
        match self.try_send(req).await {
            Ok(resp) => resp,
            Err(e) => panic!("{:?} {what}: {}", self.proto, error_chain(&*e)),
        }
    }

    pub async fn try_send(&self, req: Request) -> Result<Response, BoxError> {
        timeout(DEADLINE, async {
            let (parts, reader) = self.start(req).await?;
            let body = reader.collect().await?;
            Ok(Response {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                body,
            })
        })
        .await
        .map_err(|_| format!("no complete response within {DEADLINE:?}"))?
    }

    /// Sends `req` and returns as soon as the response headers arrive (within `DEADLINE`, or
    /// panics); the body is read only through the returned stream's methods.
    pub async fn open_stream(&self, req: Request) -> SseStream {
        let what = format!("{} {}", req.method, req.target);
        match self.try_open_stream(req).await {
            Ok(stream) => stream,
            Err(e) => panic!("{:?} {what}: {}", self.proto, error_chain(&*e)),
        }
    }

    pub async fn try_open_stream(&self, req: Request) -> Result<SseStream, BoxError> {
        let (parts, reader) = timeout(DEADLINE, self.start(req))
            .await
            .map_err(|_| format!("no response headers within {DEADLINE:?}"))??;
        Ok(SseStream::new(parts, reader))
    }

    async fn start(&self, req: Request) -> Result<(http::response::Parts, BodyReader), BoxError> {
        let req = req.into_http(self.proto, &self.authority())?;
        if let Some(send) = &self.h2 {
            let mut send = send.clone();
            send.ready().await?;
            let (parts, body) = send.send_request(req).await?.into_parts();
            return Ok((
                parts,
                BodyReader {
                    body,
                    conn: None,
                    conn_error: None,
                    _h2: Some(send),
                },
            ));
        }

        let first = self.h1_first.lock().expect("h1_first lock").take();
        let io = match first {
            Some(io) => io,
            None => open_io(self.addr, self.proto).await?,
        };
        let (mut send, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(io)).await?;
        let mut conn: Option<ConnFuture> = Some(Box::pin(conn));
        // Queued synchronously (a fresh connection accepts one message without `ready`);
        // dropping the sender lets the connection close once this exchange is over.
        let response = send.send_request(req);
        drop(send);
        tokio::pin!(response);
        let mut conn_error = None;
        let response = loop {
            match conn.as_mut() {
                Some(c) => {
                    tokio::select! {
                        r = &mut response => break r,
                        done = c.as_mut() => {
                            conn = None;
                            if let Err(e) = done {
                                conn_error = Some(e.to_string());
                            }
                        }
                    }
                }
                None => break response.as_mut().await,
            }
        };
        let response = match (response, &conn_error) {
            (Ok(r), _) => r,
            (Err(e), Some(c)) => return Err(format!("{e} (connection: {c})").into()),
            (Err(e), None) => return Err(e.into()),
        };
        let (parts, body) = response.into_parts();
        Ok((
            parts,
            BodyReader {
                body,
                conn,
                conn_error,
                _h2: None,
            },
        ))
    }
}

/// A connection to `addr` speaking `proto`'s transport (TLS with its one ALPN protocol).
pub async fn open_io(addr: SocketAddr, proto: Proto) -> Result<BoxIo, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let Some(alpn) = proto.alpn() else {
        return Ok(Box::new(tcp));
    };
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(alpn)?);
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let negotiated = tls.get_ref().1.alpn_protocol();
    if negotiated != Some(alpn) {
        return Err(format!(
            "ALPN: asked for {:?}, server chose {:?}",
            String::from_utf8_lossy(alpn),
            negotiated.map(String::from_utf8_lossy)
        )
        .into());
    }
    Ok(Box::new(tls))
}

/// rustls with the ring provider, trusting only the dev CA, offering exactly one ALPN protocol.
fn tls_client_config(alpn: &[u8]) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs_dev_dir().join("ca.pem"))? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// `e` and its sources joined with `: ` (hyper's own messages omit the cause).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! Routing on (method, path) and the shared request context. Handlers live in submodules;
//! `response` is the one place errors become responses.
mod body;
mod cors;
pub mod form;
mod metadata;
mod publish;
pub mod response;
mod subscribe;
mod subscriptions;

pub use body::HubBody;

use std::sync::Arc;

use http::header::{HeaderValue, HOST};
use http::{Method, Request, Response, StatusCode};

use crate::auth::Verifier;
use crate::config::Config;
use crate::error::HubError;
use crate::hub::Hub;

/// The hub's fixed route.
pub const HUB_PATH: &str = "/.well-known/mercure";
/// RFC 9728 metadata for the hub resource.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

/// A request body the handlers accept: hyper's `Incoming`, or `Empty` for the requests the
/// server's HTTP/1.1 fast path parsed itself.
pub trait RequestBody: http_body::Body<Data = bytes::Bytes, Error = Self::E> + Send {
    type E: std::error::Error + Send + Sync + 'static;
}

impl<B> RequestBody for B
where
    B: http_body::Body<Data = bytes::Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type E = B::Error;
}

/// Everything handlers share, built once at start.
#[derive(Debug)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub verifier: Verifier,
    pub config: Config,
}

/// Facts about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub tls: bool,
    /// Ends this connection (used for streams that stopped reading).
    pub kill: Arc<crate::subscriber::ConnectionKill>,
}

/// Per-request facts derived once: the origin the client contacted, the expected audience and
/// the metadata URL for challenges.
#[derive(Debug)]
pub struct RequestContext {
    /// `scheme://host[:port]` as contacted.
    pub origin: String,
    pub audience: String,
    pub resource_metadata: String,
}

impl RequestContext {
    fn new<B>(req: &Request<B>, conn: &ConnInfo, config: &Config) -> Self {
        let scheme = if conn.tls { "https" } else { "http" };
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "localhost".to_owned());
        let origin = format!("{scheme}://{}", host.to_ascii_lowercase());
        let (audience, resource_metadata) = match &config.resource_identifier {
            Some(id) => (id.clone(), metadata_url_for(id)),
            None => (
                format!("{origin}{HUB_PATH}"),
                format!("{origin}{METADATA_PATH}"),
            ),
        };
        Self {
            origin,
            audience,
            resource_metadata,
        }
    }
}

/// RFC 9728 §3.1: the metadata URL inserts `/.well-known/oauth-protected-resource` between the
/// host and the path of the resource identifier.
fn metadata_url_for(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => {
            let mut origin = u.origin().ascii_serialization();
            origin.push_str("/.well-known/oauth-protected-resource");
            if u.path() != "/" {
                origin.push_str(u.path());
            }
            origin
        }
        Err(_) => resource.to_owned(),
    }
}

/// Handles one request. Never fails: every error is mapped to a response here.
pub async fn handle<B: RequestBody>(
    state: Arc<AppState>,
    conn: ConnInfo,
    req: Request<B>,
) -> Result<Response<HubBody>, std::convert::Infallible> {
    let ctx = RequestContext::new(&req, &conn, &state.config);
    let cors = cors::Cors::for_request(&req, &state.config.cors_origins);
    let is_head = req.method() == Method::HEAD;
    let path = req.uri().path();
    let result = match (path, req.method()) {
        (HUB_PATH, &Method::OPTIONS) => Ok(cors.preflight(&req)),
        (HUB_PATH, &Method::POST) => publish::handle(&state, &ctx, req).await,
        (HUB_PATH, m) if m == Method::GET || m == Method::HEAD || m.as_str() == "QUERY" => {
            subscribe::handle(&state, &ctx, &conn, req).await
        }
        (HUB_PATH, _) => Err(HubError::MethodNotAllowed(
            "GET, HEAD, POST, QUERY, OPTIONS",
        )),
        (METADATA_PATH, &Method::GET | &Method::HEAD) => Ok(metadata::handle(&state, &ctx)),
        (METADATA_PATH, _) => Err(HubError::MethodNotAllowed("GET, HEAD")),
        ("/", &Method::GET | &Method::HEAD) => Ok(welcome(&ctx)),
        ("/healthz", &Method::GET | &Method::HEAD) => Ok(health(&state)),
        (p, m) if state.hub.subscription_events() && subscriptions::is_api_path(p) => {
            if m == Method::OPTIONS {
                Ok(cors.preflight(&req))
            } else {
                subscriptions::handle(&state, &ctx, m, p, req.headers()).await
            }
        }
        _ => Err(HubError::NotFound),
    };
    let mut resp = result.unwrap_or_else(|e| response::error(&e, &ctx.resource_metadata));
    if is_head {
        strip_body(&mut resp);
    }
    cors.apply(&mut resp);
    secure_headers(&mut resp);
    Ok(resp)
}

/// RFC 9110 §9.3.2: a HEAD response carries the headers of GET but no content. hyper drops the
/// body for HTTP/1.1 only; over HTTP/2 it would send it, which clients treat as a protocol error.
fn strip_body(resp: &mut Response<HubBody>) {
    use http_body::Body;
    // An empty body (the SSE HEAD case) gets no length: its GET is an unbounded stream.
    if let Some(len) = resp.body().size_hint().exact().filter(|&l| l > 0) {
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    *resp.body_mut() = HubBody::empty();
}

fn secure_headers(resp: &mut Response<HubBody>) {
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
}

/// `GET /`: a small page naming the hub, its version and the hub URL.
fn welcome(ctx: &RequestContext) -> Response<HubBody> {
    let hub_url = format!("{}{HUB_PATH}", ctx.origin);
    let escaped = hub_url
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Quicksilver</title></head>\n\
         <body><h1>Quicksilver {version}</h1>\n<p>A <a href=\"https://mercure.rocks\">Mercure</a> hub. \
         Hub URL: <code id=\"hub-url\">{escaped}</code></p></body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    let mut resp = response::full(StatusCode::OK, "text/html; charset=utf-8", page);
    if let Ok(link) = HeaderValue::from_str(&format!("<{HUB_PATH}>; rel=\"mercure\"")) {
        resp.headers_mut().insert(http::header::LINK, link);
    }
    resp
}

/// `GET /healthz`: 200 when the hub can accept publishes, 503 while shutting down or while
/// history appends fail (the hub keeps serving subscribers meanwhile).
fn health(state: &AppState) -> Response<HubBody> {
    let history_error = state.hub.history_error();
    let (status, label) = if state.hub.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else if history_error.is_some() {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    let mut body = serde_json::json!({
        "status": label,
        "subscribers": state.hub.connected_subscribers(),
        "history": if history_error.is_some() { "error" } else { "ok" },
    });
    if let Some(e) = history_error {
        body["history_error"] = e.into();
    }
    // JWK Set sources: a failed re-read keeps the last good set, and shows here.
    let jwks: Vec<serde_json::Value> = state
        .verifier
        .jwks_status()
        .into_iter()
        .map(|(issuer, role, s)| {
            serde_json::json!({
                "issuer": issuer, "role": role.name(), "source": s.source, "keys": s.keys,
                "loads": s.loads, "error": s.error, "last_success": s.last_success,
            })
        })
        .collect();
    if !jwks.is_empty() {
        body["jwks"] = jwks.into();
    }
    response::full(status, "application/json", format!("{body}\n"))
}

/// The request's token as the configuration allows presenting it: the header or the cookie, and
/// in compatibility mode also the `authorization` query parameter and the 0.x cookie.
pub(crate) fn credential<'a>(
    config: &Config,
    parts: &'a http::request::Parts,
) -> Result<Option<crate::auth::Credential<'a>>, crate::auth::AuthError> {
    if config.compat_any() {
        crate::auth::extract_token_compat(
            &parts.headers,
            parts.uri.query().unwrap_or(""),
            &config.cookie_name,
        )
    } else {
        crate::auth::extract_token(&parts.headers, &config.cookie_name)
    }
}

/// Reads a request body within `limit` bytes (413 beyond) and a time bound (a stalled upload
/// must not pin a task forever).
pub(crate) async fn read_body<B: RequestBody>(
    body: B,
    limit: Option<usize>,
) -> Result<bytes::Bytes, HubError> {
    use http_body_util::{BodyExt, Limited};
    const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    let limited = Limited::new(body, limit.unwrap_or(usize::MAX));
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(HubError::bad_request("request body not received in time")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(HubError::too_large(format!(
                "request body larger than {} bytes",
                limit.unwrap_or(usize::MAX)
            )))
        }
        Ok(Err(e)) => Err(HubError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

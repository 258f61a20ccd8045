//! CORS for browser subscribers and publishers: an explicit origin allowlist with credentials.
//! Never `*` with credentials and never reflecting an unlisted origin (spec "Subscription").
use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{Request, Response, StatusCode};

use super::{response, HubBody};

const ALLOW_METHODS: &str = "GET, HEAD, POST, QUERY, OPTIONS";
const ALLOW_HEADERS: &str = "authorization, cache-control, last-event-id, content-type";
const EXPOSE_HEADERS: &str = "Link, Mercure-Last-Event-ID";

/// The CORS decision for one request.
#[derive(Debug)]
pub struct Cors {
    /// Some CORS policy is configured (responses then vary by `Origin`).
    enabled: bool,
    /// The request's origin, when it is on the allowlist.
    allowed: Option<HeaderValue>,
}

impl Cors {
    pub fn for_request<B>(req: &Request<B>, origins: &[String]) -> Self {
        let allowed = req.headers().get(ORIGIN).and_then(|o| {
            let s = o.to_str().ok()?;
            origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(s))
                .then(|| o.clone())
        });
        Self {
            enabled: !origins.is_empty(),
            allowed,
        }
    }

    /// Adds the CORS response headers (on every response, errors included, so a browser can
    /// read the failure).
    pub fn apply(&self, resp: &mut Response<HubBody>) {
        let h = resp.headers_mut();
        if self.enabled {
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = &self.allowed {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }

    /// Answers an `OPTIONS` preflight on the hub route.
    pub fn preflight<B>(&self, req: &Request<B>) -> Response<HubBody> {
        if self.allowed.is_none() {
            let reason = if req.headers().contains_key(ORIGIN) {
                "origin not allowed by --cors-origins\n"
            } else {
                "CORS preflight without Origin\n"
            };
            return response::text(StatusCode::FORBIDDEN, reason);
        }
        let mut resp = Response::new(HubBody::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        resp
    }
}

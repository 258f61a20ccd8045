//! `GET` / `HEAD` / `QUERY /.well-known/mercure` (spec "Subscription", "Matcher Types",
//! "Reconnection"): parse matchers and the cursor, authorize, register, and answer the SSE
//! stream.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, EXPIRES, PRAGMA};
use http::{Method, Request, Response, StatusCode};
use rand::Rng;

use super::form::pairs;
use super::{read_body, unix_now, AppState, ConnInfo, HubBody, RequestContext};
use crate::auth::{AuthError, Role};
use crate::error::HubError;
use crate::hub::{CursorRequest, StreamOptions};
use crate::sse::SseBody;
use crate::topic::{MatcherType, TopicError, MAX_PATTERN_LEN};

/// Most matchers one subscribe request may carry (spec "Subscription": implementation limit).
pub const MAX_MATCHERS: usize = 100;

/// The subscription parameters, united from the query and (for `QUERY`) the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SubscribeParams {
    pub matchers: Vec<(MatcherType, String)>,
    /// First `last_event_id` (the query's wins over the body's, as it comes first); in
    /// compatibility mode, else the first `lastEventID`, else (7) the first `Last-Event-ID`.
    pub last_event_id: Option<String>,
}

/// Sorts parameters into matchers and the cursor. Any other name in the case-insensitive
/// `match` namespace is rejected; unrelated parameters are ignored.
#[cfg(test)]
pub fn parse_params(
    pairs: impl Iterator<Item = Result<(String, String), HubError>>,
) -> Result<SubscribeParams, HubError> {
    parse_params_compat(pairs, None)
}

/// `parse_params` under `--protocol-version-compatibility` `compat` (reference hub §4): `topic`
/// is a 0.x selector (exact, then URI Template), and the 0.x cursor parameters are read after
/// `last_event_id`.
pub fn parse_params_compat(
    pairs: impl Iterator<Item = Result<(String, String), HubError>>,
    compat: Option<u8>,
) -> Result<SubscribeParams, HubError> {
    let mut params = SubscribeParams::default();
    let (mut legacy_cursor, mut v7_cursor) = (None, None);
    for pair in pairs {
        let (name, value) = pair?;
        let kind = match name.as_str() {
            "topic" if compat.is_some() => Some(MatcherType::Template),
            "lastEventID" if compat.is_some() => {
                legacy_cursor.get_or_insert(value);
                continue;
            }
            "Last-Event-ID" if compat == Some(7) => {
                v7_cursor.get_or_insert(value);
                continue;
            }
            "match" | "match_exact" => Some(MatcherType::Exact),
            "match_urlpattern" => Some(MatcherType::UrlPattern),
            "last_event_id" => {
                params.last_event_id.get_or_insert(value);
                continue;
            }
            "topic" => {
                return Err(HubError::bad_request(
                    "the \"topic\" parameter is from Mercure 0.x: use \"match\" or \"match_urlpattern\"",
                ))
            }
            n if n.len() >= 5 && n.as_bytes()[..5].eq_ignore_ascii_case(b"match") => {
                return Err(HubError::bad_request(format!(
                    "unknown topic matcher parameter {:?} (supported: match, match_exact, match_urlpattern)",
                    name
                )))
            }
            _ => None,
        };
        if let Some(kind) = kind {
            if params.matchers.len() == MAX_MATCHERS {
                return Err(HubError::bad_request(format!(
                    "too many matchers (max {MAX_MATCHERS})"
                )));
            }
            params.matchers.push((kind, value));
        }
    }
    if params.matchers.is_empty() {
        return Err(HubError::bad_request(
            "missing \"match\" subscription parameter",
        ));
    }
    params.last_event_id = params.last_event_id.or(legacy_cursor).or(v7_cursor);
    Ok(params)
}

pub async fn handle<B: super::RequestBody>(
    state: &AppState,
    ctx: &RequestContext,
    conn: &ConnInfo,
    req: Request<B>,
) -> Result<Response<HubBody>, HubError> {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").as_bytes().to_vec();
    let body_bytes = if parts.method.as_str() == "QUERY" {
        read_body(body, state.config.max_request_body_size).await?
    } else {
        drop(body);
        bytes::Bytes::new()
    };
    let params = parse_params_compat(
        pairs(&query).chain(pairs(&body_bytes)),
        state.config.protocol_version_compatibility,
    )?;

    // Spec "Reconnection": the header takes precedence over the parameter.
    let header_cursor = match parts.headers.get("last-event-id") {
        Some(v) => Some(
            String::from_utf8(v.as_bytes().to_vec())
                .map_err(|_| HubError::bad_request("Last-Event-ID must be valid UTF-8"))?,
        ),
        None => None,
    };
    let cursor = match (header_cursor, params.last_event_id) {
        (Some(h), _) if !h.is_empty() => CursorRequest::from_value(h),
        (_, Some(p)) if !p.is_empty() => CursorRequest::from_value(p),
        (None, None) => CursorRequest::None,
        _ => CursorRequest::Empty,
    };

    let claims = if state.verifier.has_role(Role::Subscriber) {
        match super::credential(&state.config, &parts)? {
            Some(cred) => Some(state.verifier.verify(
                cred.token,
                Role::Subscriber,
                &ctx.audience,
                unix_now(),
            )?),
            None if state.config.anonymous => None,
            None => return Err(AuthError::Missing.into()),
        }
    } else {
        None
    };

    let engine = state.hub.engine();
    let mut matchers = Vec::with_capacity(params.matchers.len());
    for (kind, pattern) in &params.matchers {
        matchers.push(engine.compile(*kind, pattern).map_err(|e| {
            tracing::debug!(pattern = %pattern.escape_debug(), error = ?e, "invalid matcher");
            HubError::bad_request(match e {
                TopicError::ForbiddenCharacter => {
                    "topic matchers must be valid UTF-8 without control or format characters"
                        .to_owned()
                }
                TopicError::TooLong(_) => format!("pattern too long (max {MAX_PATTERN_LEN} bytes)"),
                TopicError::InvalidPattern | TopicError::UnknownMatcherType => {
                    "invalid topic matcher pattern".to_owned()
                }
            })
        })?);
    }

    let deadline = deadline(state, claims.as_ref().map(|c| c.exp));
    let grants = claims.map(|c| c.grants);
    let stream = StreamOptions {
        deadline,
        connection: Some(Arc::clone(&conn.kill)),
        shared_connection: parts.version >= http::Version::HTTP_2,
        announce: parts.method != Method::HEAD,
    };
    let subscription = state.hub.subscribe(matchers, grants, cursor, stream)?;
    let last_event_id = subscription.last_event_id.clone();
    tracing::debug!(subscriber = %subscription.subscriber.id, "new subscriber");

    let body = if parts.method == Method::HEAD {
        state.hub.unsubscribe(&subscription.subscriber);
        HubBody::empty()
    } else {
        HubBody::Sse(Box::new(SseBody::new(
            Arc::clone(&state.hub),
            subscription,
            state.config.heartbeat,
        )))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(EXPIRES, HeaderValue::from_static("0"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = last_event_id {
        // Ids passed the character rules (no controls), so this only fails on exotic bytes.
        if let Ok(v) = HeaderValue::from_bytes(id.as_bytes()) {
            h.insert("mercure-last-event-id", v);
        }
    }
    Ok(resp)
}

/// When the stream must end: the token's `exp`, or the rotation deadline (`write_timeout`
/// jittered to 80–100 % so reconnects spread out), whichever comes first.
fn deadline(state: &AppState, exp: Option<u64>) -> Option<tokio::time::Instant> {
    let now = tokio::time::Instant::now();
    let rotation = state.config.write_timeout.map(|wt| {
        let factor: f64 = rand::rng().random_range(0.8..=1.0);
        now + wt.mul_f64(factor)
    });
    // A 0.x token without `exp` (compatibility mode) reads as `u64::MAX`: no expiry.
    let expiry = exp
        .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)))
        .map(|at| {
            now + at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
    match (rotation, expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: fixed test inputs
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<SubscribeParams, HubError> {
        parse_params(pairs(q.as_bytes()))
    }

    #[test]
    fn matcher_names() {
        let p = parse("match=a&match_exact=b&match_urlpattern=%2Fc%2F%3Aid&other=1&last_event_id=x&last_event_id=y").unwrap();
        assert_eq!(
            p.matchers,
            vec![
                (MatcherType::Exact, "a".into()),
                (MatcherType::Exact, "b".into()),
                (MatcherType::UrlPattern, "/c/:id".into())
            ]
        );
        assert_eq!(p.last_event_id.as_deref(), Some("x"));
    }

    #[test]
    fn match_namespace_is_reserved() {
        // Spec "Subscription": names beginning with `match` (case-insensitive) that are not a
        // supported matcher type → 400.
        for q in [
            "Match=a",
            "matches=a",
            "match_regex=a",
            "match_Exact=a",
            "MATCH_urlpattern=a",
        ] {
            assert!(matches!(parse(q), Err(HubError::BadRequest(_))), "{q}");
        }
        assert!(matches!(parse("topic=a"), Err(HubError::BadRequest(_))));
        assert!(
            matches!(parse("foo=a"), Err(HubError::BadRequest(_))),
            "no matcher"
        );
    }

    // Compatibility mode: `topic` is a 0.x selector (mixable with `match*`), `lastEventID` is read
    // after `last_event_id`, and only 7 reads a `Last-Event-ID` parameter.
    #[test]
    fn compat_params() {
        let run = |q: &str, c| parse_params_compat(pairs(q.as_bytes()), c);
        let p = run("topic=%2Fa%2F%7Bid%7D&match=b&lastEventID=x", Some(8)).unwrap();
        assert_eq!(
            p.matchers,
            vec![
                (MatcherType::Template, "/a/{id}".into()),
                (MatcherType::Exact, "b".into())
            ]
        );
        assert_eq!(p.last_event_id.as_deref(), Some("x"));
        let p = run("topic=a&lastEventID=x&last_event_id=y", Some(8)).unwrap();
        assert_eq!(p.last_event_id.as_deref(), Some("y"));
        let p = run("topic=a&Last-Event-ID=z", Some(8)).unwrap();
        assert_eq!(p.last_event_id, None);
        let p = run("topic=a&Last-Event-ID=z&lastEventID=x", Some(7)).unwrap();
        assert_eq!(p.last_event_id.as_deref(), Some("x"));
        let p = run("topic=a&Last-Event-ID=z", Some(7)).unwrap();
        assert_eq!(p.last_event_id.as_deref(), Some("z"));
        let p = run("match=a&lastEventID=x", None).unwrap();
        assert_eq!(p.last_event_id, None);
        assert!(run("topic=a", None).is_err());
    }

    #[test]
    fn matcher_limit() {
        let q: Vec<String> = (0..=MAX_MATCHERS).map(|i| format!("match=t{i}")).collect();
        assert!(matches!(parse(&q.join("&")), Err(HubError::BadRequest(_))));
        assert!(parse(&q[..MAX_MATCHERS].join("&")).is_ok());
    }
}

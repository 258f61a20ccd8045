//! `GET <hub path>/subscriptions[/{match_type}/{match}[/{subscriber}]]` (spec "Subscription API",
//! plus the v8 `/{topic}[/{subscriber}]` routes in compatibility mode): authorized by a `subscribe`
//! grant on the request path; a snapshot consistent with the events, its cursor in `Link`/`ETag`.
use std::fmt::Write as _;

use http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, ETAG, IF_NONE_MATCH, LINK};
use http::{Method, Response, StatusCode};
use percent_encoding::percent_decode_str;

use super::{response, unix_now, AppState, HubBody, RequestContext, HUB_PATH};
use crate::auth::{extract_token, AuthError, Role};
use crate::error::HubError;
use crate::hub::{SubscriptionQuery, SUBSCRIPTIONS_SEGMENT};
use crate::topic::MatcherType;

/// Whether `path` is under `<hub path>/subscriptions`.
pub fn is_api_path(path: &str) -> bool {
    path.strip_prefix(HUB_PATH)
        .and_then(|rest| rest.strip_prefix(SUBSCRIPTIONS_SEGMENT))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response<HubBody>, HubError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(HubError::MethodNotAllowed("GET, HEAD, OPTIONS"));
    }
    let query = parse_path(path, state.config.compat_any())?;
    authorize(state, ctx, headers, path)?;
    let snapshot = state
        .hub
        .subscriptions(&query)
        .await
        .ok_or(HubError::NotFound)?;
    let cursor = snapshot.last_event_id.as_deref().unwrap_or("earliest");
    let etag = etag(cursor);
    let body = match &query {
        SubscriptionQuery::One(..) => match snapshot.subscriptions.first() {
            Some(doc) => doc.to_json_string(true),
            None => return Err(HubError::NotFound),
        },
        _ => {
            let mut body = String::with_capacity(64 + snapshot.subscriptions.len() * 256);
            body.push_str("{\"id\":");
            body.push_str(&serde_json::Value::from(path).to_string());
            body.push_str(",\"type\":\"subscriptions\",\"subscriptions\":[");
            for (i, doc) in snapshot.subscriptions.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&doc.to_json_string(true));
            }
            body.push_str("]}");
            body
        }
    };
    if headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == etag || v == "*")
    {
        let mut resp = Response::new(HubBody::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        set_cursor_headers(resp.headers_mut(), cursor, &etag);
        return Ok(resp);
    }
    let mut resp = response::full(StatusCode::OK, "application/json", body + "\n");
    set_cursor_headers(resp.headers_mut(), cursor, &etag);
    Ok(resp)
}

/// The path segments after `<hub path>/subscriptions`, percent-decoded. A bad escape or an
/// unknown matcher type is a malformed request (400); any other shape does not exist (404).
/// With `compat` (0.x `topic=` selectors exist), the v8 routes too (reference hub §4):
/// `/{topic}` and `/{topic}/{subscriber}`; a two-segment path whose first segment is a matcher
/// type stays the modern per-matcher collection.
fn parse_path(path: &str, compat: bool) -> Result<SubscriptionQuery, HubError> {
    let rest = path
        .strip_prefix(HUB_PATH)
        .and_then(|r| r.strip_prefix(SUBSCRIPTIONS_SEGMENT))
        .ok_or(HubError::NotFound)?;
    if rest.is_empty() {
        return Ok(SubscriptionQuery::All);
    }
    let segments: Vec<&str> = rest[1..].split('/').collect();
    let shortest = if compat { 1 } else { 2 };
    if segments.len() < shortest || segments.len() > 3 || segments.iter().any(|s| s.is_empty()) {
        return Err(HubError::NotFound);
    }
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| HubError::bad_request("path segment is not valid percent-encoded UTF-8"))
    };
    let first = decode(segments[0])?;
    let kind = MatcherType::from_name(&first);
    if compat && segments.len() < 3 && (segments.len() == 1 || kind.is_none()) {
        return Ok(match segments.get(1) {
            None => SubscriptionQuery::Matcher(MatcherType::Template, first),
            Some(subscriber) => {
                SubscriptionQuery::One(MatcherType::Template, first, decode(subscriber)?)
            }
        });
    }
    let kind = kind.ok_or_else(|| HubError::bad_request("unknown matcher type"))?;
    let pattern = decode(segments[1])?;
    Ok(match segments.get(2) {
        None => SubscriptionQuery::Matcher(kind, pattern),
        Some(subscriber) => SubscriptionQuery::One(kind, pattern, decode(subscriber)?),
    })
}

/// Spec "Subscription API": when subscribers need tokens, a `subscribe` grant must match the
/// request path (its query excluded) used as a topic. A token is required even on an anonymous
/// hub; a hub without subscriber keys serves the API to anyone.
fn authorize(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    path: &str,
) -> Result<(), HubError> {
    if !state.verifier.has_role(Role::Subscriber) {
        return Ok(());
    }
    let cred = extract_token(headers, &state.config.cookie_name)?.ok_or(AuthError::Missing)?;
    let claims = state
        .verifier
        .verify(cred.token, Role::Subscriber, &ctx.audience, unix_now())?;
    if claims
        .grants
        .can_subscribe_any(state.hub.engine(), &[path.into()])
    {
        Ok(())
    } else {
        Err(AuthError::InsufficientScope(format!("no subscribe grant on {path}")).into())
    }
}

/// `"<cursor>"`, with the bytes an entity tag cannot hold (controls, space, `"`, DEL, non-ASCII)
/// and `%` percent-encoded.
fn etag(cursor: &str) -> String {
    let mut out = String::with_capacity(cursor.len() + 2);
    out.push('"');
    for b in cursor.bytes() {
        if b < 0x21 || b == b'"' || b == b'%' || b >= 0x7f {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out.push('"');
    out
}

fn set_cursor_headers(h: &mut HeaderMap, cursor: &str, etag: &str) {
    let escaped = cursor.replace('\\', "\\\\").replace('"', "\\\"");
    let link = format!(
        "<{HUB_PATH}>; rel=\"mercure\"; last-event-id=\"{escaped}\"; type=\"mercure\"; content-type=\"application/json\""
    );
    if let Ok(v) = HeaderValue::from_str(&link) {
        h.insert(LINK, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("must-revalidate"));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: fixed test inputs
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(is_api_path("/.well-known/mercure/subscriptions"));
        assert!(is_api_path("/.well-known/mercure/subscriptions/exact/a"));
        assert!(!is_api_path("/.well-known/mercure/subscriptionsx"));
        assert_eq!(
            parse_path("/.well-known/mercure/subscriptions", false).unwrap(),
            SubscriptionQuery::All
        );
        assert_eq!(
            parse_path(
                "/.well-known/mercure/subscriptions/urlpattern/%2Fa%2F%3Aid%20x%25",
                false
            )
            .unwrap(),
            SubscriptionQuery::Matcher(MatcherType::UrlPattern, "/a/:id x%".into())
        );
        assert_eq!(
            parse_path(
                "/.well-known/mercure/subscriptions/exact/a/urn%3Auuid%3A1",
                false
            )
            .unwrap(),
            SubscriptionQuery::One(MatcherType::Exact, "a".into(), "urn:uuid:1".into())
        );
        assert!(matches!(
            parse_path("/.well-known/mercure/subscriptions/regex/a", false),
            Err(HubError::BadRequest(_))
        ));
        assert!(matches!(
            parse_path("/.well-known/mercure/subscriptions/exact/%FF", false),
            Err(HubError::BadRequest(_))
        ));
        for p in ["/exact", "/exact/", "/exact/a/b/c", "/"] {
            let full = format!("/.well-known/mercure/subscriptions{p}");
            assert!(
                matches!(parse_path(&full, false), Err(HubError::NotFound)),
                "{p}"
            );
        }
    }

    #[test]
    fn v8_paths_in_compatibility_mode() {
        let p = |rest: &str| parse_path(&format!("/.well-known/mercure/subscriptions{rest}"), true);
        let t = MatcherType::Template;
        assert_eq!(p("").unwrap(), SubscriptionQuery::All);
        assert_eq!(
            p("/https%3A%2F%2Fex.com%2F%7Bid%7D").unwrap(),
            SubscriptionQuery::Matcher(t, "https://ex.com/{id}".into())
        );
        assert_eq!(
            p("/regex/urn%3Auuid%3A1").unwrap(),
            SubscriptionQuery::One(t, "regex".into(), "urn:uuid:1".into())
        );
        assert_eq!(
            p("/exact").unwrap(),
            SubscriptionQuery::Matcher(t, "exact".into())
        );
        // A matcher type first: still the modern per-matcher collection and single.
        assert_eq!(
            p("/exact/a").unwrap(),
            SubscriptionQuery::Matcher(MatcherType::Exact, "a".into())
        );
        assert_eq!(
            p("/urlpattern/a/b").unwrap(),
            SubscriptionQuery::One(MatcherType::UrlPattern, "a".into(), "b".into())
        );
        assert!(matches!(p("/regex/a/b"), Err(HubError::BadRequest(_))));
        assert!(matches!(p("/%FF"), Err(HubError::BadRequest(_))));
        for rest in ["/", "/a/", "//b", "/a/b/c/d"] {
            assert!(matches!(p(rest), Err(HubError::NotFound)), "{rest}");
        }
    }

    #[test]
    fn etag_escapes() {
        assert_eq!(etag("urn:uuid:1"), "\"urn:uuid:1\"");
        assert_eq!(etag("a b\"%"), "\"a%20b%22%25\"");
    }
}

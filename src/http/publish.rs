//! `POST /.well-known/mercure` (spec "Publication"): authorize the publisher, read the form
//! within limits, validate, check `publish` grants on every topic, publish, answer the id.
use http::header::{HeaderMap, CONTENT_TYPE, ORIGIN, REFERER};
use http::{Request, Response, StatusCode};

use super::form::{self, FormLimits};
use super::{read_body, response, unix_now, AppState, HubBody, RequestContext};
use crate::auth::{AuthError, Role, TokenSource};
use crate::config::Config;
use crate::error::HubError;
use crate::hub;

pub async fn handle<B: super::RequestBody>(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<B>,
) -> Result<Response<HubBody>, HubError> {
    let (parts, body) = req.into_parts();
    // Authorization first: an unauthenticated client learns nothing about limits or topics.
    let cred = super::credential(&state.config, &parts)?.ok_or(AuthError::Missing)?;
    if cred.source == TokenSource::Cookie {
        check_csrf(&parts.headers, ctx, &state.config)?;
    }
    let claims = state
        .verifier
        .verify(cred.token, Role::Publisher, &ctx.audience, unix_now())?;
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        let media = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(HubError::bad_request(
                "publish requests must be application/x-www-form-urlencoded",
            ));
        }
    }
    let bytes = read_body(body, state.config.max_request_body_size).await?;
    let limits = FormLimits {
        max_topics: state.config.max_topics_per_update,
        max_field_length: state.config.max_field_length,
    };
    let publication = form::parse_publication(&bytes, limits)?;
    let engine = state.hub.engine();
    let private = publication.private;
    let update = hub::validate(publication, engine.hub())?;
    // Spec "Publishers": every topic, canonical and alternate, needs a publish grant.
    // Compatibility 7 accepted public updates to any topic (reference hub §4).
    let ungranted = update
        .topics()
        .iter()
        .find(|t| !claims.grants.can_publish(engine, t));
    let v7_public = state.config.compat(7) && !private;
    if let (Some(topic), true) = (ungranted, v7_public) {
        tracing::warn!(
            topic = %topic.escape_debug(),
            "deprecated: public update to a topic the token does not grant (accepted by \
             --protocol-version-compatibility 7 only)"
        );
    } else if let Some(topic) = ungranted {
        return Err(AuthError::InsufficientScope(format!(
            "no publish grant for topic {:?}",
            &**topic
        ))
        .into());
    }
    let update = state.hub.publish(update).await?;
    tracing::debug!(id = %update.id, topics = update.topics.len(), private = update.private, "update published");
    Ok(response::text(StatusCode::OK, update.id.to_string()))
}

/// Spec "Security Considerations": cookie-authenticated publishing must come from an expected
/// origin (`Origin`, else the origin of `Referer`): the hub's own origin, a CORS-allowed one, or
/// one of `--publish-origins` (`*`, exact, or a `*` prefix/suffix wildcard).
fn check_csrf(headers: &HeaderMap, ctx: &RequestContext, config: &Config) -> Result<(), HubError> {
    let origin = match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) => Some(o.to_ascii_lowercase()),
        None => headers
            .get(REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .map(|u| u.origin().ascii_serialization()),
    };
    let Some(origin) = origin else {
        return Err(AuthError::InvalidRequest(
            "cookie-authenticated publish without Origin or Referer".into(),
        )
        .into());
    };
    if origin == ctx.origin
        || config
            .cors_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&origin))
        || config
            .publish_origins
            .iter()
            .any(|allowed| origin_allowed(allowed, &origin))
    {
        Ok(())
    } else {
        Err(AuthError::InvalidRequest(format!(
            "cookie-authenticated publish from a foreign origin {origin:?}"
        ))
        .into())
    }
}

/// One `--publish-origins` entry against a lower-cased origin.
fn origin_allowed(allowed: &str, origin: &str) -> bool {
    match allowed.split_once('*') {
        None => allowed.eq_ignore_ascii_case(origin),
        Some((prefix, suffix)) => {
            origin.len() >= prefix.len() + suffix.len()
                && origin.starts_with(prefix)
                && origin.ends_with(suffix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn publish_origin_patterns() {
        assert!(origin_allowed("*", "https://any.example"));
        assert!(origin_allowed("https://app.example", "https://app.example"));
        assert!(!origin_allowed(
            "https://app.example",
            "https://app.example.evil"
        ));
        assert!(origin_allowed(
            "https://*.example.com",
            "https://a.example.com"
        ));
        assert!(!origin_allowed(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!origin_allowed(
            "https://*.example.com",
            "http://a.example.com"
        ));
        assert!(origin_allowed("*.example.com", "http://a.example.com"));
        assert!(origin_allowed("https://app.*", "https://app.test"));
    }
}

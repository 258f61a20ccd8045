//! `authorization_details` (RFC 9396) → `Grants`: strict parsing of Mercure details under the
//! token caps, and the grant checks publish, private delivery and payload selection rely on.
//! Matching itself is `topic::MatcherEngine`'s; nothing here is async or logs.
use serde_json::{Map, Value};

use super::AuthError;
use crate::topic::{Matcher, MatcherEngine, MatcherType};

/// The authorization detail type this hub acts on, compared byte for byte.
pub const MERCURE_DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";
/// Most Mercure details one token may carry (over → invalid token).
pub const MAX_MERCURE_DETAILS: usize = 100;
/// Most topic matchers summed over a token's Mercure details (over → invalid token).
pub const MAX_DETAIL_TOPICS: usize = 100;

/// Grants carried by a validated token.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    publish: Vec<Matcher>,
    subscribe: Vec<SubscribeDetail>,
    // Shortcuts for the common `*` tokens, so the per-update checks skip matching entirely.
    publish_all: bool,
    subscribe_all: bool,
    has_payloads: bool,
    /// `mercure.payload` of a 0.x token: the payload when no matching entry carries one.
    fallback_payload: Option<Value>,
}

/// One `subscribe` authorization detail: its matchers and optional payload.
#[derive(Debug, Clone)]
pub struct SubscribeDetail {
    pub matchers: Vec<Matcher>,
    pub payload: Option<serde_json::Value>,
}

impl Grants {
    /// Whether some `publish` grant matches `topic`.
    pub fn can_publish(&self, engine: &MatcherEngine, topic: &str) -> bool {
        self.publish_all || self.publish.iter().any(|m| engine.matches(m, topic))
    }
    /// Whether some `subscribe` grant matches at least one of `topics`.
    pub fn can_subscribe_any(&self, engine: &MatcherEngine, topics: &[Box<str>]) -> bool {
        if self.subscribe_all {
            return !topics.is_empty();
        }
        self.subscribe
            .iter()
            .flat_map(|detail| &detail.matchers)
            .any(|m| engine.matches_any(m, topics))
    }
    /// Payload of the first `subscribe` detail whose topics match the subscription's own
    /// matcher string used as a topic (`*` matches every subscription). `None` when that first
    /// matching detail has none, or none matches.
    pub fn payload_for(
        &self,
        engine: &MatcherEngine,
        subscription: &str,
    ) -> Option<&serde_json::Value> {
        if !self.has_payloads {
            return None;
        }
        self.subscribe
            .iter()
            .find(|detail| {
                detail
                    .matchers
                    .iter()
                    .any(|m| m.is_wildcard() || engine.matches(m, subscription))
            })
            .and_then(|detail| detail.payload.as_ref())
            .or(self.fallback_payload.as_ref())
    }

    /// Grants nothing at all (no recognised action in any Mercure detail).
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty()
    }
    /// The `publish` matchers, in token order.
    pub fn publish_matchers(&self) -> &[Matcher] {
        &self.publish
    }
    /// The `subscribe` details, in token order.
    pub fn subscribe_details(&self) -> &[SubscribeDetail] {
        &self.subscribe
    }
    /// Whether a `publish` grant is the `*` wildcard (every topic may be published).
    pub fn can_publish_all(&self) -> bool {
        self.publish_all
    }
    /// Whether a `subscribe` grant is the `*` wildcard (every private update is readable).
    pub fn can_subscribe_all(&self) -> bool {
        self.subscribe_all
    }
    /// Whether any `subscribe` detail carries a payload; when not, `payload_for` is always
    /// `None` and callers may skip it.
    pub fn has_payloads(&self) -> bool {
        self.has_payloads
    }

    /// Parses an `authorization_details` claim value with the same rules as `Verifier::verify`
    /// (for callers holding claims from elsewhere, and tests).
    pub fn from_details(details: Value, engine: &MatcherEngine) -> Result<Self, AuthError> {
        parse(details, engine).map_err(AuthError::InvalidToken)
    }
}

/// Parses the claim. Every Mercure detail must be valid (spec, Authorization Details: no partial
/// acceptance); details of other types are skipped unread.
pub(crate) fn parse(details: Value, engine: &MatcherEngine) -> Result<Grants, String> {
    let Value::Array(entries) = details else {
        return Err("authorization_details is not an array".to_owned());
    };
    // The caps are checked on the raw shape before any pattern is compiled, so an oversized
    // token costs no compilation.
    let mut mercure = Vec::new();
    let mut topics_total = 0usize;
    for (index, entry) in entries.into_iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(format!("authorization_details[{index}] is not an object"));
        };
        match entry.get("type") {
            Some(Value::String(kind)) if kind == MERCURE_DETAIL_TYPE => {}
            Some(Value::String(_)) => continue,
            // RFC 9396 §2: `type` is a required string in every detail, whatever its type.
            Some(_) => {
                return Err(format!(
                    "authorization_details[{index}].type is not a string"
                ))
            }
            None => return Err(format!("authorization_details[{index}] has no type")),
        }
        if mercure.len() == MAX_MERCURE_DETAILS {
            return Err(format!(
                "more than {MAX_MERCURE_DETAILS} Mercure authorization details"
            ));
        }
        if let Some(Value::Array(topics)) = entry.get("topics") {
            topics_total += topics.len();
            if topics_total > MAX_DETAIL_TOPICS {
                return Err(format!(
                    "more than {MAX_DETAIL_TOPICS} topic matchers in Mercure authorization details"
                ));
            }
        }
        mercure.push((index, entry));
    }
    let mut grants = Grants::default();
    for (index, entry) in mercure {
        parse_detail(index, entry, engine, &mut grants)?;
    }
    Ok(grants)
}

fn parse_detail(
    index: usize,
    mut entry: Map<String, Value>,
    engine: &MatcherEngine,
    grants: &mut Grants,
) -> Result<(), String> {
    let at = |member: &str| format!("authorization_details[{index}].{member}");
    let (mut publish, mut subscribe) = (false, false);
    match entry.get("actions") {
        Some(Value::Array(actions)) if !actions.is_empty() => {
            for (i, action) in actions.iter().enumerate() {
                match action {
                    Value::String(a) if a == "publish" => publish = true,
                    Value::String(a) if a == "subscribe" => subscribe = true,
                    // Unknown actions grant nothing but keep the token valid (spec).
                    Value::String(_) => {}
                    _ => return Err(format!("{}[{i}] is not a string", at("actions"))),
                }
            }
        }
        Some(Value::Array(_)) => return Err(format!("{} is empty", at("actions"))),
        Some(_) => return Err(format!("{} is not an array", at("actions"))),
        None => return Err(format!("{} is missing", at("actions"))),
    }
    let matchers = match entry.get("topics") {
        Some(Value::Array(topics)) if !topics.is_empty() => {
            let mut matchers = Vec::with_capacity(topics.len());
            for (i, topic) in topics.iter().enumerate() {
                let at = format!("{}[{i}]", at("topics"));
                matchers.push(compile_topic(&at, topic, engine)?);
            }
            matchers
        }
        Some(Value::Array(_)) => return Err(format!("{} is empty", at("topics"))),
        Some(_) => return Err(format!("{} is not an array", at("topics"))),
        None => return Err(format!("{} is missing", at("topics"))),
    };
    let payload = match entry.remove("payload") {
        None | Some(Value::Null) => None,
        Some(payload) => Some(payload),
    };
    if publish {
        grants.publish_all |= matchers.iter().any(Matcher::is_wildcard);
        grants.publish.extend(matchers.iter().cloned());
    }
    if subscribe {
        grants.subscribe_all |= matchers.iter().any(Matcher::is_wildcard);
        grants.has_payloads |= payload.is_some();
        grants.subscribe.push(SubscribeDetail { matchers, payload });
    }
    Ok(())
}

/// Most entries in each `publish` / `subscribe` array of a 0.x `mercure` claim.
pub const MAX_LEGACY_ENTRIES: usize = 1000;

/// The 0.x `mercure` claim (compatibility mode, only when the token has no
/// `authorization_details`): `publish` / `subscribe` arrays of bare strings (exact-or-URI-template
/// selectors, `*`) or `{match, match_type, payload}` objects, and `payload` as the fallback
/// subscription payload.
pub(crate) fn parse_legacy(claim: &Value, engine: &MatcherEngine) -> Result<Grants, String> {
    let Value::Object(claim) = claim else {
        return Err("the mercure claim is not an object".to_owned());
    };
    let mut grants = Grants::default();
    for action in ["publish", "subscribe"] {
        let entries = match claim.get(action) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err(format!("mercure.{action} is not an array")),
        };
        if entries.len() > MAX_LEGACY_ENTRIES {
            return Err(format!(
                "mercure.{action} has more than {MAX_LEGACY_ENTRIES} entries"
            ));
        }
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("mercure.{action}[{i}]");
            let (matcher, payload) = match entry {
                Value::String(selector) => (
                    engine
                        .compile(MatcherType::Template, selector)
                        .map_err(|e| format!("{at}: {e}"))?,
                    None,
                ),
                Value::Object(object) => (
                    compile_topic(&at, entry, engine)?,
                    object.get("payload").filter(|p| !p.is_null()).cloned(),
                ),
                _ => return Err(format!("{at} is neither a string nor an object")),
            };
            if action == "publish" {
                grants.publish_all |= matcher.is_wildcard();
                grants.publish.push(matcher);
            } else {
                grants.subscribe_all |= matcher.is_wildcard();
                grants.has_payloads |= payload.is_some();
                grants.subscribe.push(SubscribeDetail {
                    matchers: vec![matcher],
                    payload,
                });
            }
        }
    }
    if let Some(payload) = claim.get("payload").filter(|p| !p.is_null()) {
        grants.has_payloads = true;
        grants.fallback_payload = Some(payload.clone());
    }
    Ok(grants)
}

/// One topic matcher object (spec, Topic Matcher List).
fn compile_topic(at: &str, topic: &Value, engine: &MatcherEngine) -> Result<Matcher, String> {
    let Value::Object(topic) = topic else {
        return Err(format!("{at} is not an object"));
    };
    let pattern = match topic.get("match") {
        Some(Value::String(pattern)) if !pattern.is_empty() => pattern,
        Some(Value::String(_)) => return Err(format!("{at}.match is empty")),
        Some(_) => return Err(format!("{at}.match is not a string")),
        None => return Err(format!("{at}.match is missing")),
    };
    let kind = match topic.get("match_type") {
        None => MatcherType::Exact,
        Some(Value::String(name)) => MatcherType::from_name(name)
            .ok_or_else(|| format!("{at}.match_type is not a supported matcher type"))?,
        Some(_) => return Err(format!("{at}.match_type is not a string")),
    };
    engine
        .compile(kind, pattern)
        .map_err(|e| format!("{at}.match: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test inputs are constants")]
mod tests {
    use super::*;
    use crate::topic::HubUrl;
    use serde_json::json;

    fn engine() -> MatcherEngine {
        let url = url::Url::parse("https://localhost/.well-known/mercure").unwrap();
        MatcherEngine::new(HubUrl::new(&url), 100)
    }

    // Compatibility mode: strings are exact-or-template selectors, objects carry match /
    // match_type / payload, and `mercure.payload` is the fallback subscription payload.
    #[test]
    fn legacy_claim() {
        let e = engine();
        let claim = json!({
            "publish": ["https://example.com/books/{id}"],
            "subscribe": [
                "https://example.com/books/{id}",
                {"match": "https://example.com/a/:x", "match_type": "urlpattern", "payload": {"p": 1}},
            ],
            "payload": {"user": "alice"},
        });
        let g = parse_legacy(&claim, &e).unwrap();
        assert!(g.can_publish(&e, "https://example.com/books/1"));
        assert!(!g.can_publish(&e, "https://example.com/a/1"));
        assert!(!g.can_publish_all());
        assert!(g.can_subscribe_any(&e, &["https://example.com/a/2".into()]));
        assert!(!g.can_subscribe_any(&e, &["https://example.com/b".into()]));
        assert_eq!(
            g.payload_for(&e, "https://example.com/books/2"),
            Some(&json!({"user": "alice"}))
        );
        assert_eq!(
            g.payload_for(&e, "https://example.com/a/2"),
            Some(&json!({"p": 1}))
        );
        assert_eq!(
            g.payload_for(&e, "https://example.com/other"),
            Some(&json!({"user": "alice"}))
        );
        let all = parse_legacy(&json!({"publish": ["*"], "subscribe": ["*"]}), &e).unwrap();
        assert!(all.can_publish_all() && all.can_subscribe_all());
        assert!(!all.has_payloads());
        assert!(parse_legacy(&json!({}), &e).unwrap().is_empty());
        for bad in [
            json!("x"),
            json!({"publish": "*"}),
            json!({"publish": [1]}),
            json!({"subscribe": [{"match": ""}]}),
            json!({"subscribe": [{"match": "x", "match_type": "regex"}]}),
            json!({"publish": vec!["x"; MAX_LEGACY_ENTRIES + 1]}),
        ] {
            assert!(parse_legacy(&bad, &e).is_err(), "{bad}");
        }
        assert!(parse_legacy(&json!({"publish": vec!["x"; MAX_LEGACY_ENTRIES]}), &e).is_ok());
    }
}

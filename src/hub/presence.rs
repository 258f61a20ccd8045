//! Active subscriptions (spec "Active Subscriptions"): subscription documents, their event topics
//! (RFC 6570 simple-string expansion, each variable encoded exactly once) and the registry the
//! Subscription API reads. Only the writer changes the registry, as it fans out each event.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::subscriber::Subscriber;
use crate::topic::{MatcherEngine, MatcherType};

/// The segment after the hub path that holds the subscription events and the API.
pub const SUBSCRIPTIONS_SEGMENT: &str = "/subscriptions";

/// RFC 6570 simple string expansion: only unreserved characters stay as they are.
const EXPAND: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `value` expanded per RFC 6570 `{var}` (every byte outside the unreserved set as `%XX`,
/// `%` included, so an already-encoded value is encoded again rather than passed through).
pub fn expand_into(out: &mut String, value: &str) {
    let _ = write!(out, "{}", utf8_percent_encode(value, EXPAND));
}

/// `<hub path>/subscriptions/{match_type}/{match}`, or the whole collection without a matcher.
/// A 0.x `topic=` selector (compatibility mode) has the v8 shape `<hub path>/subscriptions/{topic}`,
/// without a match type segment.
pub fn collection_topic(hub_path: &str, matcher: Option<(MatcherType, &str)>) -> String {
    let mut out = String::with_capacity(hub_path.len() + 64);
    out.push_str(hub_path);
    out.push_str(SUBSCRIPTIONS_SEGMENT);
    if let Some((kind, pattern)) = matcher {
        out.push('/');
        if kind != MatcherType::Template {
            out.push_str(kind.name());
            out.push('/');
        }
        expand_into(&mut out, pattern);
    }
    out
}

/// `<hub path>/subscriptions/{match_type}/{match}/{subscriber}` (v8 shape for a `topic=`
/// selector: `<hub path>/subscriptions/{topic}/{subscriber}`).
pub fn subscription_topic(
    hub_path: &str,
    kind: MatcherType,
    pattern: &str,
    subscriber: &str,
) -> String {
    let mut out = collection_topic(hub_path, Some((kind, pattern)));
    out.push('/');
    expand_into(&mut out, subscriber);
    out
}

/// One subscription: one matcher of one connection.
#[derive(Debug)]
pub struct SubscriptionDoc {
    /// The event topic, also the document's `id`.
    pub topic: Box<str>,
    pub match_type: MatcherType,
    pub pattern: Box<str>,
    pub subscriber: Box<str>,
    pub payload: Option<serde_json::Value>,
}

impl SubscriptionDoc {
    /// The JSON document (spec "Subscription Events"); a `topic=` selector's carries `topic`
    /// instead of `match_type` and `match` (v8 shape, otherwise modern).
    pub fn to_json(&self, active: bool) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("id".into(), (*self.topic).into());
        doc.insert("type".into(), "subscription".into());
        if self.match_type == MatcherType::Template {
            doc.insert("topic".into(), (*self.pattern).into());
        } else {
            doc.insert("match_type".into(), self.match_type.name().into());
            doc.insert("match".into(), (*self.pattern).into());
        }
        doc.insert("subscriber".into(), (*self.subscriber).into());
        doc.insert("active".into(), active.into());
        if let Some(p) = &self.payload {
            doc.insert("payload".into(), p.clone());
        }
        serde_json::Value::Object(doc)
    }

    /// The serialized document.
    pub fn to_json_string(&self, active: bool) -> String {
        self.to_json(active).to_string()
    }
}

/// The subscriptions of one connection: one per distinct matcher, with the payload of the first
/// `subscribe` detail of its token matching the matcher string used as a topic.
pub fn documents(
    hub_path: &str,
    engine: &MatcherEngine,
    sub: &Subscriber,
) -> Vec<Arc<SubscriptionDoc>> {
    let mut docs: Vec<Arc<SubscriptionDoc>> = Vec::with_capacity(sub.matchers().len());
    for m in sub.matchers() {
        let (kind, pattern) = (m.kind(), m.pattern());
        if docs
            .iter()
            .any(|d| d.match_type == kind && &*d.pattern == pattern)
        {
            continue;
        }
        let payload = sub
            .grants()
            .and_then(|g| g.payload_for(engine, pattern))
            .cloned();
        docs.push(Arc::new(SubscriptionDoc {
            topic: subscription_topic(hub_path, kind, pattern, &sub.id.to_string())
                .into_boxed_str(),
            match_type: kind,
            pattern: pattern.into(),
            subscriber: sub.id.to_string().into_boxed_str(),
            payload,
        }));
    }
    docs
}

/// A connection started or ended, queued for the writer.
#[derive(Debug)]
pub(crate) enum PresenceChange {
    Connected(Arc<Subscriber>),
    Disconnected(Arc<Subscriber>),
}

/// What fanning out one subscription event does to the registry.
#[derive(Debug)]
pub(crate) struct Effect {
    pub(crate) doc: Arc<SubscriptionDoc>,
    pub(crate) active: bool,
}

/// One matcher's subscriptions, by subscriber id.
type BySubscriber = HashMap<Box<str>, Arc<SubscriptionDoc>>;

/// Active subscriptions indexed by matcher, so one matcher's collection is read without scanning
/// every subscription. Guarded by the writer's dispatch lock.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_matcher: HashMap<MatcherType, HashMap<Box<str>, BySubscriber>>,
    len: usize,
}

impl Registry {
    pub(crate) fn apply(&mut self, effect: &Effect) {
        let doc = &effect.doc;
        if effect.active {
            let previous = self
                .by_matcher
                .entry(doc.match_type)
                .or_default()
                .entry(doc.pattern.clone())
                .or_default()
                .insert(doc.subscriber.clone(), Arc::clone(doc));
            if previous.is_none() {
                self.len += 1;
            }
            return;
        }
        let Some(patterns) = self.by_matcher.get_mut(&doc.match_type) else {
            return;
        };
        let Some(subs) = patterns.get_mut(&doc.pattern) else {
            return;
        };
        if subs.remove(&doc.subscriber).is_some() {
            self.len -= 1;
        }
        if subs.is_empty() {
            patterns.remove(&doc.pattern);
        }
    }

    pub(crate) fn select(&self, query: &SubscriptionQuery) -> Vec<Arc<SubscriptionDoc>> {
        match query {
            SubscriptionQuery::All => {
                let mut out = Vec::with_capacity(self.len);
                for patterns in self.by_matcher.values() {
                    for subs in patterns.values() {
                        out.extend(subs.values().cloned());
                    }
                }
                out
            }
            SubscriptionQuery::Matcher(kind, pattern) => self
                .by_matcher
                .get(kind)
                .and_then(|p| p.get(pattern.as_str()))
                .map(|subs| subs.values().cloned().collect())
                .unwrap_or_default(),
            SubscriptionQuery::One(kind, pattern, subscriber) => self
                .by_matcher
                .get(kind)
                .and_then(|p| p.get(pattern.as_str()))
                .and_then(|subs| subs.get(subscriber.as_str()))
                .cloned()
                .into_iter()
                .collect(),
        }
    }
}

/// Which active subscriptions to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionQuery {
    All,
    Matcher(MatcherType, String),
    One(MatcherType, String, String),
}

/// Active subscriptions read atomically with the fan-out, and the id of the last update fanned
/// out then (`None`: nothing yet, the cursor is `earliest`).
#[derive(Debug)]
pub struct SubscriptionSnapshot {
    pub subscriptions: Vec<Arc<SubscriptionDoc>>,
    pub last_event_id: Option<Box<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_encodes_reserved_characters_once() {
        let mut s = String::new();
        expand_into(&mut s, "https://ex.com/a b/%41:x~y_z-1.2");
        assert_eq!(s, "https%3A%2F%2Fex.com%2Fa%20b%2F%2541%3Ax~y_z-1.2");
        assert_eq!(
            subscription_topic(
                "/.well-known/mercure",
                MatcherType::UrlPattern,
                "/b/:id",
                "urn:uuid:1"
            ),
            "/.well-known/mercure/subscriptions/urlpattern/%2Fb%2F%3Aid/urn%3Auuid%3A1"
        );
        let mut u = String::new();
        expand_into(&mut u, "é");
        assert_eq!(u, "%C3%A9");
    }

    #[test]
    fn template_selectors_have_the_v8_shape() {
        let hub = "/.well-known/mercure";
        let topic = subscription_topic(hub, MatcherType::Template, "/b/{id}", "urn:uuid:1");
        assert_eq!(
            topic,
            "/.well-known/mercure/subscriptions/%2Fb%2F%7Bid%7D/urn%3Auuid%3A1"
        );
        assert_eq!(
            collection_topic(hub, Some((MatcherType::Template, "a b"))),
            "/.well-known/mercure/subscriptions/a%20b"
        );
        let doc = SubscriptionDoc {
            topic: topic.clone().into_boxed_str(),
            match_type: MatcherType::Template,
            pattern: "/b/{id}".into(),
            subscriber: "urn:uuid:1".into(),
            payload: None,
        };
        assert_eq!(
            doc.to_json(false),
            serde_json::json!({
                "id": topic,
                "type": "subscription",
                "topic": "/b/{id}",
                "subscriber": "urn:uuid:1",
                "active": false,
            })
        );
    }
}

//! Helpers for subscription-event tests (spec "Subscription Events"): the namespace, an RFC 6570
//! encoder written independently of the hub's, and readers of `event: mercure` events.
use serde_json::Value;

use super::{SseStream, DEADLINE};

/// The subscription namespace of the default hub URL.
pub const NS: &str = "/.well-known/mercure/subscriptions";
/// A URL pattern selecting every subscription event.
pub const ALL_EVENTS: &str = "/.well-known/mercure/subscriptions/*";

/// RFC 6570 simple-string expansion: unreserved characters kept, every other byte `%XX`.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A topic no other test uses.
pub fn unique(label: &str) -> String {
    format!("https://example.com/{label}/{}", uuid::Uuid::new_v4())
}

/// The next event, which must be a subscription event; returns (SSE id, JSON body).
pub async fn next_sub_event(s: &mut SseStream) -> (String, Value) {
    let ev = s
        .next_event(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("no event; raw: {}", s.raw_str()));
    assert_eq!(ev.event.as_deref(), Some("mercure"), "{ev:?}");
    let body: Value = serde_json::from_str(&ev.data).expect("JSON body");
    (ev.id.expect("event id"), body)
}

/// Reads subscription events until one whose `field` is `value` with `active`, skipping others.
pub async fn wait_for_sub_event(
    s: &mut SseStream,
    field: &str,
    value: &str,
    active: bool,
) -> (String, Value) {
    loop {
        let (id, body) = next_sub_event(s).await;
        if body[field] == value && body["active"] == active {
            return (id, body);
        }
    }
}

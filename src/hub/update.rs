//! `Update`: a published event with its sequence, topics, privacy flag and its SSE wire bytes,
//! encoded exactly once. `Publication` is the parsed publish form, validated per spec
//! "Publication" before it becomes an update.
use bytes::Bytes;

use crate::error::HubError;
use crate::sse::encode_event;
use crate::topic::{check_chars, HubUrl};

/// A published update, shared by reference with every subscriber and the history.
#[derive(Debug)]
pub struct Update {
    /// Hub-wide sequence (1, 2, …): orders history and deduplicates replay against live.
    pub seq: u64,
    pub id: Box<str>,
    /// Canonical topic first, then alternates.
    pub topics: Box<[Box<str>]>,
    pub private: bool,
    /// The complete SSE event (`event:`, `retry:`, `id:`, `data:` lines, blank line).
    pub frame: Bytes,
}

/// The fields of a publish request, as parsed from the form.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Publication {
    pub topics: Vec<String>,
    pub data: String,
    pub private: bool,
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub retry: Option<String>,
}

/// A publication that passed validation; `into_update` only assigns the sequence.
#[derive(Debug)]
pub struct ValidUpdate {
    id: Box<str>,
    topics: Box<[Box<str>]>,
    private: bool,
    frame: Bytes,
}

impl ValidUpdate {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn topics(&self) -> &[Box<str>] {
        &self.topics
    }
    /// A hub-generated subscription event (spec "Subscription Events"): private, SSE type
    /// `mercure`, a fresh id. Its topic is in the reserved namespace, so it bypasses `validate`.
    pub fn subscription_event(topic: Box<str>, data: &str) -> Self {
        let id = generate_id();
        let frame = encode_event(&id, Some("mercure"), None, data);
        Self {
            id: id.into_boxed_str(),
            topics: Box::new([topic]),
            private: true,
            frame,
        }
    }
    pub fn into_update(self, seq: u64) -> Update {
        Update {
            seq,
            id: self.id,
            topics: self.topics,
            private: self.private,
            frame: self.frame,
        }
    }
}

/// Validates a publication against every rule of spec "Publication" that does not depend on
/// the token: characters, `*`, reserved namespace, `type=mercure`, `id` rules, `retry` digits.
/// Generates `urn:uuid:<v7>` when no id is given, and encodes the SSE frame once.
pub fn validate(p: Publication, hub: &HubUrl) -> Result<ValidUpdate, HubError> {
    if p.topics.is_empty() {
        return Err(HubError::bad_request("missing \"topic\" field"));
    }
    for t in &p.topics {
        check_chars(t).map_err(|_| {
            HubError::bad_request("topic must not contain control or format characters")
        })?;
        if t == "*" {
            return Err(HubError::bad_request(
                "topic \"*\" is reserved for the wildcard matcher",
            ));
        }
        if hub.is_reserved(t) {
            return Err(HubError::bad_request(format!(
                "topic addresses the hub's reserved namespace ({})",
                hub.path()
            )));
        }
    }
    if let Some(t) = &p.event_type {
        check_chars(t).map_err(|_| {
            HubError::bad_request("type must not contain control or format characters")
        })?;
        if t == "mercure" {
            return Err(HubError::bad_request(
                "type \"mercure\" is reserved for the hub",
            ));
        }
    }
    let retry = match &p.retry {
        None => None,
        Some(r) => {
            if r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HubError::bad_request("retry must consist of ASCII digits"));
            }
            Some(
                r.parse::<u64>()
                    .map_err(|_| HubError::bad_request("retry is too large"))?,
            )
        }
    };
    let id = match p.id {
        Some(id) => {
            check_chars(&id).map_err(|_| {
                HubError::bad_request("id must not contain control or format characters")
            })?;
            if id.starts_with('#') {
                return Err(HubError::bad_request("id must not start with \"#\""));
            }
            if id == "earliest" {
                return Err(HubError::bad_request("id \"earliest\" is reserved"));
            }
            if id.is_empty() {
                generate_id()
            } else {
                id
            }
        }
        None => generate_id(),
    };
    let frame = encode_event(&id, p.event_type.as_deref(), retry, &p.data);
    Ok(ValidUpdate {
        id: id.into_boxed_str(),
        topics: p.topics.into_iter().map(String::into_boxed_str).collect(),
        private: p.private,
        frame,
    })
}

/// A time-ordered hub-generated id.
pub fn generate_id() -> String {
    const PREFIX: &str = "urn:uuid:";
    let mut id = String::with_capacity(PREFIX.len() + uuid::fmt::Hyphenated::LENGTH);
    id.push_str(PREFIX);
    // UUIDv7 (RFC 9562 §5.7): the millisecond clock, then 74 random bits from the thread-local
    // CSPRNG (`Uuid::now_v7` would make a getrandom system call per id).
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    id.push_str(
        uuid::Builder::from_unix_timestamp_millis(millis, &rand::random())
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    id
}

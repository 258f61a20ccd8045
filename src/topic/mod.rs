//! Topics and topic matchers: the spec's character rules, the reserved-namespace check, and the
//! `exact` / `urlpattern` / `*` matchers (and the 0.x URI-template selector) with bounded compile and result caches. Pure and sync.

mod chars;
mod matcher;
mod reserved;
pub mod template;

pub use chars::check_chars;
pub use matcher::{CacheStats, Matcher, MatcherEngine};
pub use reserved::HubUrl;

/// Why a protocol string (topic, matcher, id, type) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("must not contain control or format characters")]
    ForbiddenCharacter,
    #[error("invalid URL pattern")]
    InvalidPattern,
    #[error("pattern too long (max {0} bytes)")]
    TooLong(usize),
    #[error("unknown matcher type")]
    UnknownMatcherType,
}

/// Maximum matcher pattern length in bytes (query parameters and token topics).
pub const MAX_PATTERN_LEN: usize = 4096;

/// A matcher type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatcherType {
    Exact,
    UrlPattern,
    /// Mercure 0.x `topic=` selector (compatibility mode only): exact comparison first, then RFC
    /// 6570 URI Template matching. Never parsed from a `match_type`.
    Template,
}

impl MatcherType {
    /// The canonical name (`exact`, `urlpattern`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::UrlPattern => "urlpattern",
            Self::Template => "topic",
        }
    }
    /// Parses a canonical name, case-sensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "exact" => Some(Self::Exact),
            "urlpattern" => Some(Self::UrlPattern),
            _ => None,
        }
    }
}

//! Topics and topic matchers: the spec's character rules, the reserved-namespace check, and the
//! `exact` / `urlpattern` / `*` matchers with bounded compile and result caches. Pure and sync.

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

/// Checks the spec's character rules for topics, matchers, ids and types: no C0 (U+0000–U+001F),
/// DEL, C1 (U+0080–U+009F) or Unicode `Cf`. (UTF-8 validity is given by `&str`.)
pub fn check_chars(s: &str) -> Result<(), TopicError> {
    // TEMPORARY stub for the auth worktree (no Unicode Cf check).
    if s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{200b}' | '\u{202e}' | '\u{feff}'))
    {
        return Err(TopicError::ForbiddenCharacter);
    }
    Ok(())
}

/// The hub URL, used as the base for relative topics and patterns and to decide the reserved
/// namespace (`<hub path>` and `<hub path>/…`).
#[derive(Debug, Clone)]
pub struct HubUrl {
    url: String,
    path: String,
}

impl HubUrl {
    pub fn new(url: &url::Url) -> Self {
        Self {
            url: url.as_str().to_owned(),
            path: url.path().to_owned(),
        }
    }
    /// The full URL string, e.g. `https://localhost/.well-known/mercure`.
    pub fn as_str(&self) -> &str {
        &self.url
    }
    /// The path, e.g. `/.well-known/mercure`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Whether `topic`, resolved against the hub URL (WHATWG URL parser, dot segments removed,
    /// percent-encoded unreserved characters decoded, whatever the scheme or host), has a path
    /// equal to the hub path or under it. Unparsable topics are not reserved.
    pub fn is_reserved(&self, topic: &str) -> bool {
        let _ = topic;
        unimplemented!()
    }
}

/// A matcher type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatcherType {
    Exact,
    UrlPattern,
}

impl MatcherType {
    /// The canonical name (`exact`, `urlpattern`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::UrlPattern => "urlpattern",
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

/// A compiled topic matcher. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Matcher {
    kind: MatcherType,
    pattern: std::sync::Arc<str>,
}

impl Matcher {
    pub fn kind(&self) -> MatcherType {
        self.kind
    }
    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
    /// `*`: matches every topic whatever the type.
    pub fn is_wildcard(&self) -> bool {
        &*self.pattern == "*"
    }
}

/// Compiles matchers and evaluates them, with a bounded compiled-pattern cache and a bounded
/// (pattern, topic) → bool result cache. One per hub, shared.
#[derive(Debug)]
pub struct MatcherEngine {
    hub: HubUrl,
}

impl MatcherEngine {
    /// `cache_size` bounds the result cache; compiled patterns get a tenth of it (at least 1).
    /// `0` disables caching.
    pub fn new(hub: HubUrl, cache_size: usize) -> Self {
        let _ = cache_size;
        Self { hub }
    }
    pub fn hub(&self) -> &HubUrl {
        &self.hub
    }
    /// Validates (characters, length ≤ `MAX_PATTERN_LEN`, compilability) and compiles.
    pub fn compile(&self, kind: MatcherType, pattern: &str) -> Result<Matcher, TopicError> {
        // TEMPORARY stub: URL patterns match exactly; `(` marks an invalid pattern.
        check_chars(pattern)?;
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(TopicError::TooLong(MAX_PATTERN_LEN));
        }
        if kind == MatcherType::UrlPattern && pattern.contains('(') {
            return Err(TopicError::InvalidPattern);
        }
        Ok(Matcher {
            kind,
            pattern: pattern.into(),
        })
    }
    /// Whether `matcher` matches `topic`.
    pub fn matches(&self, matcher: &Matcher, topic: &str) -> bool {
        matcher.is_wildcard() || matcher.pattern() == topic
    }
    /// Whether `matcher` matches any of `topics`.
    pub fn matches_any(&self, matcher: &Matcher, topics: &[Box<str>]) -> bool {
        topics.iter().any(|t| self.matches(matcher, t))
    }
}

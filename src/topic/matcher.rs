//! Compiled topic matchers (`exact`, `urlpattern`, `*`) and the engine that compiles and evaluates
//! them with a bounded compiled-pattern cache and a bounded (pattern, topic) → bool result cache.
//! Sync and allocation-light on the hot path; never leaks pattern-compiler text.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Equivalent;
use urlpattern::{
    RegexSyntax, UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions,
};

use super::{check_chars, HubUrl, MatcherType, TopicError, MAX_PATTERN_LEN};

/// The spec's wildcard matcher value, recognised before the matcher type.
const WILDCARD: &str = "*";

/// Identities of compiled URL patterns, unique in the process so result-cache keys never need the
/// pattern text; a global counter also keeps matchers handed between engines from colliding.
static NEXT_PATTERN_ID: AtomicU64 = AtomicU64::new(0);

/// A compiled topic matcher. Cheap to clone.
#[derive(Clone)]
pub struct Matcher {
    inner: Arc<Inner>,
}

struct Inner {
    kind: MatcherType,
    pattern: Box<str>,
    compiled: Compiled,
}

enum Compiled {
    Wildcard,
    Exact,
    UrlPattern {
        id: u64,
        pattern: Box<UrlPattern>,
    },
    /// Exact first, then the compiled URI Template (`None`: not a valid template).
    Template {
        id: u64,
        regex: Option<regex::Regex>,
    },
}

impl Matcher {
    fn new(kind: MatcherType, pattern: &str, compiled: Compiled) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                pattern: pattern.into(),
                compiled,
            }),
        }
    }
    pub fn kind(&self) -> MatcherType {
        self.inner.kind
    }
    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.inner.pattern
    }
    /// `*`: matches every topic whatever the type.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.inner.compiled, Compiled::Wildcard)
    }
}

impl fmt::Debug for Matcher {
    // The compiled regexes are noise in logs; the type and pattern identify a matcher.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("kind", &self.kind().name())
            .field("pattern", &self.pattern())
            .finish()
    }
}

/// Two matchers are equal when they have the same type and pattern (what the spec's subscription
/// deduplication and the subscription API key on), whichever engine compiled them.
impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.pattern() == other.pattern()
    }
}

impl Eq for Matcher {}

impl Hash for Matcher {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind().hash(state);
        self.pattern().hash(state);
    }
}

/// Result-cache key. Looked up through [`ResultKeyRef`] so a hit allocates nothing.
#[derive(PartialEq, Eq)]
struct ResultKey {
    pattern_id: u64,
    topic: Box<str>,
}

struct ResultKeyRef<'a> {
    pattern_id: u64,
    topic: &'a str,
}

// Both key forms must hash identically for borrowed look-ups to find owned entries.
impl Hash for ResultKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.pattern_id);
        self.topic.hash(state);
    }
}

impl Hash for ResultKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.pattern_id);
        self.topic.hash(state);
    }
}

impl Equivalent<ResultKey> for ResultKeyRef<'_> {
    fn equivalent(&self, key: &ResultKey) -> bool {
        self.pattern_id == key.pattern_id && self.topic == &*key.topic
    }
}

/// Occupancy and bounds of the engine's caches (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub compiled_len: usize,
    pub compiled_capacity: usize,
    pub results_len: usize,
    pub results_capacity: usize,
}

/// Compiles matchers and evaluates them, with a bounded compiled-pattern cache and a bounded
/// (pattern, topic) → bool result cache. One per hub, shared.
#[derive(Debug)]
pub struct MatcherEngine {
    hub: HubUrl,
    /// URL-pattern text → compiled matcher. Only valid patterns enter, so a hit skips validation.
    compiled: Option<Cache<Box<str>, Matcher>>,
    /// Exact-topic text → its matcher, shared by the subscriptions to that topic (a broadcast
    /// topic's 10,000 subscribers hold one matcher, not 10,000).
    exact: Option<Cache<Box<str>, Matcher>>,
    /// URI-template text → compiled matcher (compatibility mode's `topic=` selectors).
    templates: Option<Cache<Box<str>, Matcher>>,
    results: Option<Cache<ResultKey, bool>>,
}

impl MatcherEngine {
    /// `cache_size` bounds the result cache; compiled patterns get a tenth of it (at least 1).
    /// `0` disables caching.
    pub fn new(hub: HubUrl, cache_size: usize) -> Self {
        let (compiled, exact, templates, results) = if cache_size == 0 {
            (None, None, None, None)
        } else {
            (
                Some(Cache::new((cache_size / 10).max(1))),
                Some(Cache::new((cache_size / 10).max(1))),
                Some(Cache::new((cache_size / 10).max(1))),
                Some(Cache::new(cache_size)),
            )
        };
        Self {
            hub,
            compiled,
            exact,
            templates,
            results,
        }
    }
    pub fn hub(&self) -> &HubUrl {
        &self.hub
    }
    /// Validates (characters, length ≤ `MAX_PATTERN_LEN`, compilability) and compiles.
    pub fn compile(&self, kind: MatcherType, pattern: &str) -> Result<Matcher, TopicError> {
        check_chars(pattern)?;
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(TopicError::TooLong(MAX_PATTERN_LEN));
        }
        if pattern == WILDCARD {
            return Ok(Matcher::new(kind, pattern, Compiled::Wildcard));
        }
        match kind {
            MatcherType::Exact => Ok(self.compile_exact(pattern)),
            MatcherType::UrlPattern => self.compile_url_pattern(pattern),
            MatcherType::Template => Ok(self.compile_template(pattern)),
        }
    }
    fn compile_exact(&self, pattern: &str) -> Matcher {
        let Ok(matcher) = cached::<std::convert::Infallible>(self.exact.as_ref(), pattern, || {
            Ok(Matcher::new(MatcherType::Exact, pattern, Compiled::Exact))
        });
        matcher
    }

    /// A 0.x selector: a value that is not a valid URI Template still matches exactly.
    fn compile_template(&self, pattern: &str) -> Matcher {
        let Ok(matcher) =
            cached::<std::convert::Infallible>(self.templates.as_ref(), pattern, || {
                let regex = if super::template::looks_like_template(pattern) {
                    super::template::compile(pattern)
                } else {
                    None
                };
                Ok(Matcher::new(
                    MatcherType::Template,
                    pattern,
                    Compiled::Template {
                        id: NEXT_PATTERN_ID.fetch_add(1, Ordering::Relaxed),
                        regex,
                    },
                ))
            });
        matcher
    }

    fn compile_url_pattern(&self, pattern: &str) -> Result<Matcher, TopicError> {
        cached(self.compiled.as_ref(), pattern, || {
            self.compile_url_pattern_uncached(pattern)
        })
    }

    fn compile_url_pattern_uncached(&self, pattern: &str) -> Result<Matcher, TopicError> {
        // Compiler errors can embed addresses and internals (reference hub §8 item 6): callers
        // only ever see `InvalidPattern`.
        let parse = |base| UrlPatternInit::parse_constructor_string::<regex::Regex>(pattern, base);
        let init = match parse(None) {
            // Only relative patterns take the hub URL as base (spec "URL Pattern"). Given a base,
            // the crate prefixes the base's directory to any pathname not starting with `/`, even
            // under an explicit scheme: `urn:*` would become `urn:` + `/.well-known/*` and never
            // match a URN topic.
            Err(urlpattern::Error::BaseUrlRequired) => parse(Some(self.hub.url().clone())),
            other => other,
        }
        .map_err(|_| TopicError::InvalidPattern)?;
        // The spec forbids `ignoreCase`; the Rust syntax keeps evaluation on the linear-time
        // `regex` engine (spec "URL-Pattern Denial of Service").
        let options = UrlPatternOptions {
            regex_syntax: RegexSyntax::Rust,
            ignore_case: false,
        };
        let compiled = UrlPattern::parse(init, options).map_err(|_| TopicError::InvalidPattern)?;
        Ok(Matcher::new(
            MatcherType::UrlPattern,
            pattern,
            Compiled::UrlPattern {
                id: NEXT_PATTERN_ID.fetch_add(1, Ordering::Relaxed),
                pattern: Box::new(compiled),
            },
        ))
    }
    /// Whether `matcher` matches `topic`.
    pub fn matches(&self, matcher: &Matcher, topic: &str) -> bool {
        match &matcher.inner.compiled {
            Compiled::Wildcard => true,
            // Spec "Exact Matching": byte-for-byte, no resolution, no normalisation.
            Compiled::Exact => matcher.pattern() == topic,
            Compiled::Template { regex: None, .. } => matcher.pattern() == topic,
            Compiled::Template {
                id,
                regex: Some(regex),
            } => matcher.pattern() == topic || self.cached(*id, topic, || regex.is_match(topic)),
            Compiled::UrlPattern { id, pattern } => {
                self.cached(*id, topic, || self.evaluate(pattern, topic))
            }
        }
    }
    /// `evaluate()` through the bounded (pattern id, topic) → bool result cache.
    fn cached(&self, pattern_id: u64, topic: &str, evaluate: impl FnOnce() -> bool) -> bool {
        let Some(cache) = &self.results else {
            return evaluate();
        };
        let key = ResultKeyRef { pattern_id, topic };
        if let Some(hit) = cache.get(&key) {
            return hit;
        }
        let matched = evaluate();
        cache.insert(
            ResultKey {
                pattern_id,
                topic: topic.into(),
            },
            matched,
        );
        matched
    }
    /// Whether `matcher` matches any of `topics`.
    pub fn matches_any(&self, matcher: &Matcher, topics: &[Box<str>]) -> bool {
        topics.iter().any(|t| self.matches(matcher, t))
    }
    /// Current occupancy and bounds of the caches (zeros when caching is disabled).
    pub fn cache_stats(&self) -> CacheStats {
        fn len_cap<K, V>(cache: Option<&Cache<K, V>>) -> (usize, usize)
        where
            K: Eq + Hash,
            V: Clone,
        {
            cache.map_or((0, 0), |c| {
                (c.len(), usize::try_from(c.capacity()).unwrap_or(usize::MAX))
            })
        }
        let (compiled_len, compiled_capacity) = len_cap(self.compiled.as_ref());
        let (results_len, results_capacity) = len_cap(self.results.as_ref());
        CacheStats {
            compiled_len,
            compiled_capacity,
            results_len,
            results_capacity,
        }
    }
    /// Spec "URL Pattern": relative topics resolve against the hub URL; a topic that cannot be
    /// parsed as a URL reference matches no pattern.
    fn evaluate(&self, pattern: &UrlPattern, topic: &str) -> bool {
        let Some(url) = self.hub.resolve(topic) else {
            return false;
        };
        pattern
            .test(UrlPatternMatchInput::Url(url))
            .unwrap_or(false)
    }
}

/// The matcher for `pattern` from `cache`, else made by `make` and kept there (only successes
/// enter; without a cache, made every time).
fn cached<E>(
    cache: Option<&Cache<Box<str>, Matcher>>,
    pattern: &str,
    make: impl FnOnce() -> Result<Matcher, E>,
) -> Result<Matcher, E> {
    if let Some(hit) = cache.and_then(|c| c.get(pattern)) {
        return Ok(hit);
    }
    let matcher = make()?;
    if let Some(c) = cache {
        c.insert(pattern.into(), matcher.clone());
    }
    Ok(matcher)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test inputs are constants")]
mod tests {
    use super::*;

    const HUB: &str = "https://localhost/.well-known/mercure";

    fn engine(cache_size: usize) -> MatcherEngine {
        MatcherEngine::new(HubUrl::new(&url::Url::parse(HUB).unwrap()), cache_size)
    }

    fn url_pattern(engine: &MatcherEngine, pattern: &str) -> Matcher {
        engine.compile(MatcherType::UrlPattern, pattern).unwrap()
    }

    #[test]
    fn matcher_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Matcher>();
        assert_send_sync::<MatcherEngine>();
        let engine = engine(100);
        let m = url_pattern(&engine, "/books/:id");
        let clone = m.clone();
        assert!(Arc::ptr_eq(&m.inner, &clone.inner));
        assert_eq!(clone.pattern(), "/books/:id");
        assert_eq!(clone.kind(), MatcherType::UrlPattern);
        assert!(!clone.is_wildcard());
        assert_eq!(
            format!("{m:?}"),
            r#"Matcher { kind: "urlpattern", pattern: "/books/:id" }"#
        );
    }

    // Matcher Types > Exact Matching: case-sensitive, byte-for-byte, no resolution against the hub
    // URL, no normalisation.
    #[test]
    fn exact_is_byte_for_byte() {
        let engine = engine(100);
        let m = engine.compile(MatcherType::Exact, "/foo").unwrap();
        assert!(engine.matches(&m, "/foo"));
        assert!(!engine.matches(&m, "https://localhost/foo"));
        assert!(!engine.matches(&m, "/FOO"));
        assert!(!engine.matches(&m, "/foo/"));
        assert!(!engine.matches(&m, "/./foo"));
        assert!(!engine.matches(&m, "/%66oo"));

        let m = engine
            .compile(MatcherType::Exact, "https://example.com/books/1")
            .unwrap();
        assert!(engine.matches(&m, "https://example.com/books/1"));
        assert!(!engine.matches(&m, "https://EXAMPLE.com/books/1"));
        assert!(!engine.matches(&m, "https://example.com:443/books/1"));

        // NFC "é" vs NFD "e" + U+0301: different bytes, so no match.
        let m = engine.compile(MatcherType::Exact, "caf\u{e9}").unwrap();
        assert!(engine.matches(&m, "caf\u{e9}"));
        assert!(!engine.matches(&m, "cafe\u{301}"));

        // A pattern-looking exact matcher is a literal.
        let m = engine.compile(MatcherType::Exact, "/books/:id").unwrap();
        assert!(engine.matches(&m, "/books/:id"));
        assert!(!engine.matches(&m, "/books/1"));
        assert_eq!(engine.cache_stats().results_len, 0);
        assert_eq!(engine.cache_stats().compiled_len, 0);
    }

    // Matcher Types: `*` matches every topic whatever the matcher type.
    #[test]
    fn wildcard_matches_everything() {
        let engine = engine(100);
        for kind in [MatcherType::Exact, MatcherType::UrlPattern] {
            let m = engine.compile(kind, "*").unwrap();
            assert!(m.is_wildcard());
            assert_eq!(m.kind(), kind);
            assert_eq!(m.pattern(), "*");
            for topic in ["", "*", "foo", "https://example.com/x", "http://[bad"] {
                assert!(engine.matches(&m, topic));
            }
        }
        assert!(!engine
            .compile(MatcherType::Exact, "**")
            .unwrap()
            .is_wildcard());
        assert_eq!(engine.cache_stats().results_len, 0);
    }

    // Matcher Types > URL Pattern: relative patterns and relative topics both resolve against the
    // hub URL, so every combination of absolute and relative matches.
    #[test]
    fn url_pattern_absolute_and_relative() {
        let engine = engine(100);
        for pattern in ["/books/:id", "https://localhost/books/:id"] {
            let m = url_pattern(&engine, pattern);
            for topic in [
                "https://localhost/books/1",
                "/books/1",
                "../books/1",
                "books/../../books/1",
            ] {
                assert!(engine.matches(&m, topic), "{pattern} should match {topic}");
            }
            for topic in [
                "https://example.com/books/1",
                "http://localhost/books/1",
                "https://localhost/books/1/2",
                "https://localhost/books/",
                "/authors/1",
                "books/1",
                "urn:books:1",
            ] {
                assert!(
                    !engine.matches(&m, topic),
                    "{pattern} should not match {topic}"
                );
            }
        }

        // Spec example: hub-relative subscription-event topics.
        let m = url_pattern(
            &engine,
            "/.well-known/mercure/subscriptions/exact/:topic/:subscriber",
        );
        assert!(engine.matches(
            &m,
            "/.well-known/mercure/subscriptions/exact/foo/urn:uuid:1"
        ));
        assert!(engine.matches(
            &m,
            "https://localhost/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Ffoo/urn:uuid:1"
        ));

        // Relative topics resolve against the hub URL, not the pattern's host.
        let m = url_pattern(&engine, "https://example.com/books/:id");
        assert!(engine.matches(&m, "https://example.com/books/1"));
        assert!(!engine.matches(&m, "/books/1"));
    }

    // Matcher Types > URL Pattern: host components are case-insensitive, everything else
    // case-sensitive; `ignoreCase` is never enabled.
    #[test]
    fn url_pattern_case_rules() {
        let engine = engine(100);
        let m = url_pattern(&engine, "https://Example.COM/Books/:id");
        assert!(engine.matches(&m, "https://example.com/Books/1"));
        assert!(engine.matches(&m, "https://EXAMPLE.com/Books/1"));
        assert!(!engine.matches(&m, "https://example.com/books/1"));
        assert!(!engine.matches(&m, "https://example.com/BOOKS/1"));
    }

    // Matcher Types > URL Pattern: the URL Pattern Living Standard's syntax (wildcards, groups,
    // default ports, canonicalised topics).
    #[test]
    fn url_pattern_syntax() {
        let engine = engine(100);
        let m = url_pattern(&engine, "https://example.com/books/*");
        assert!(engine.matches(&m, "https://example.com/books/1/chapters/2"));
        assert!(engine.matches(&m, "https://example.com:443/books/1"));
        assert!(!engine.matches(&m, "https://example.com:8443/books/1"));

        let m = url_pattern(&engine, "https://example.com/books/:id(\\d+)");
        assert!(engine.matches(&m, "https://example.com/books/42"));
        assert!(!engine.matches(&m, "https://example.com/books/abc"));

        let m = url_pattern(&engine, "*://*/books/:id");
        assert!(engine.matches(&m, "http://a.example/books/1"));
        assert!(engine.matches(&m, "/books/1"));

        // Topics are canonicalised by the URL parser before matching.
        let m = url_pattern(&engine, "https://example.com/a/b");
        assert!(engine.matches(&m, "https://example.com/a/./x/../b"));
    }

    // Matcher Types > URL Pattern: the hub URL is the base of relative patterns only. Absolute
    // patterns compile as on their own, so opaque-path schemes (URNs) keep working instead of
    // getting the hub's directory glued to their path.
    #[test]
    fn url_pattern_base_only_for_relative_patterns() {
        let engine = engine(100);
        let m = url_pattern(&engine, "urn:*");
        assert!(engine.matches(&m, "urn:example:books:1"));
        assert!(!engine.matches(&m, "https://localhost/urn"));
        let m = url_pattern(&engine, "urn\\:example\\:books\\:*");
        assert!(engine.matches(&m, "urn:example:books:1"));
        assert!(!engine.matches(&m, "urn:example:authors:1"));
        let m = url_pattern(&engine, "mailto:*@example.com");
        assert!(engine.matches(&m, "mailto:alice@example.com"));
        assert!(!engine.matches(&m, "mailto:alice@example.org"));

        // A relative pathname without a leading `/` is relative to the hub URL's directory.
        let m = url_pattern(&engine, "books/:id");
        assert!(engine.matches(&m, "https://localhost/.well-known/books/1"));
        assert!(engine.matches(&m, "books/1"));
        assert!(!engine.matches(&m, "/books/1"));

        // Components the pattern leaves out are wildcards, not the hub URL's.
        let m = url_pattern(&engine, "/books/:id");
        assert!(engine.matches(&m, "/books/1?page=2"));
        assert!(engine.matches(&m, "/books/1#top"));
        let m = url_pattern(&engine, "https://example.com");
        assert!(engine.matches(&m, "https://example.com/anything?x"));
        // `?` right after a name is the optional modifier; an escaped one starts the search.
        let m = url_pattern(&engine, "/books/:id\\?lang=fr");
        assert!(engine.matches(&m, "/books/1?lang=fr"));
        assert!(!engine.matches(&m, "/books/1?lang=en"));
    }

    // Matcher Types > URL Pattern: a topic that cannot be parsed as a URL reference against the
    // hub URL matches no URL pattern.
    #[test]
    fn url_pattern_unparsable_topic_never_matches() {
        let engine = engine(100);
        let m = url_pattern(&engine, "*://*/*");
        assert!(engine.matches(&m, "/anything"));
        assert!(!engine.matches(&m, "http://[::1"));
        assert!(!engine.matches(&m, "https://exa mple.com/x"));
        assert!(!engine.matches(&m, "https://h:99999/x"));
    }

    // Subscription: a value that is not a well-formed URL Pattern is invalid, with a fixed message
    // (reference hub §8 item 6: no compiler text).
    #[test]
    fn invalid_patterns() {
        let engine = engine(100);
        for pattern in [
            "/(unclosed",
            "/:",
            "/(a",
            "https://exa mple.com/x",
            "/books/:id([",
        ] {
            let err = engine
                .compile(MatcherType::UrlPattern, pattern)
                .unwrap_err();
            assert_eq!(err, TopicError::InvalidPattern, "{pattern}");
            assert_eq!(err.to_string(), "invalid URL pattern");
        }
        // Not a valid URL Pattern, but a valid exact matcher.
        assert!(engine.compile(MatcherType::Exact, "/(unclosed").is_ok());
        assert_eq!(engine.cache_stats().compiled_len, 0);
    }

    // Spec "URL-Pattern Denial of Service": patterns run on the linear-time `regex` engine, so a
    // classic catastrophic-backtracking shape evaluates quickly (or fails to compile).
    #[test]
    fn pathological_pattern_is_linear() {
        let engine = engine(0);
        // URL Pattern forbids capturing groups inside a regexp group, hence `(?:…)`.
        let m = url_pattern(&engine, "/:x((?:a+)+b)");
        assert!(engine.matches(&m, "/aaab"));
        let topic = format!("/{}c", "a".repeat(20_000));
        let started = std::time::Instant::now();
        assert!(!engine.matches(&m, &topic));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    // Subscription: character rules apply to matcher values; Resource Limits: pattern length.
    #[test]
    fn validation() {
        let engine = engine(100);
        for kind in [MatcherType::Exact, MatcherType::UrlPattern] {
            assert_eq!(
                engine.compile(kind, "/books/\u{202e}1").unwrap_err(),
                TopicError::ForbiddenCharacter
            );
            assert_eq!(
                engine.compile(kind, "/books/\n").unwrap_err(),
                TopicError::ForbiddenCharacter
            );
            let long = format!("/{}", "a".repeat(MAX_PATTERN_LEN));
            assert_eq!(
                engine.compile(kind, &long).unwrap_err(),
                TopicError::TooLong(MAX_PATTERN_LEN)
            );
            let max = format!("/{}", "a".repeat(MAX_PATTERN_LEN - 1));
            assert!(engine.compile(kind, &max).is_ok());
        }
    }

    #[test]
    fn equality_is_type_and_pattern() {
        let engine = engine(0);
        let a = url_pattern(&engine, "/books/:id");
        let b = url_pattern(&engine, "/books/:id");
        assert!(!Arc::ptr_eq(&a.inner, &b.inner));
        assert_eq!(a, b);
        assert_ne!(a, engine.compile(MatcherType::Exact, "/books/:id").unwrap());
    }

    // Compiled patterns are shared through the cache and results are remembered per
    // (pattern, topic).
    #[test]
    fn caches_are_used() {
        let engine = engine(1000);
        let a = url_pattern(&engine, "/books/:id");
        let b = url_pattern(&engine, "/books/:id");
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert!(engine.matches(&a, "/books/1"));
        assert!(engine.matches(&b, "/books/1"));
        assert!(!engine.matches(&a, "/authors/1"));
        let stats = engine.cache_stats();
        assert_eq!(stats.compiled_len, 1);
        assert_eq!(stats.results_len, 2);
        assert_eq!(stats.compiled_capacity, 100);
        assert_eq!(stats.results_capacity, 1000);
        assert!(engine.matches_any(&a, &["/x".into(), "/books/2".into()]));
        assert!(!engine.matches_any(&a, &["/x".into(), "/y".into()]));
        assert!(!engine.matches_any(&a, &[]));
    }

    // Resource Limits: both caches stay within their bounds however many distinct patterns and
    // topics pass through, and answers stay right after evictions.
    #[test]
    fn caches_are_bounded() {
        let engine = engine(50);
        let mut matchers = Vec::new();
        for i in 0..40 {
            let m = url_pattern(&engine, &format!("/p{i}/:id"));
            for j in 0..20 {
                assert!(engine.matches(&m, &format!("/p{i}/{j}")));
                assert!(!engine.matches(&m, &format!("/q{i}/{j}")));
            }
            matchers.push(m);
            let stats = engine.cache_stats();
            assert!(stats.compiled_len <= stats.compiled_capacity, "{stats:?}");
            assert!(stats.results_len <= stats.results_capacity, "{stats:?}");
        }
        let stats = engine.cache_stats();
        assert_eq!(stats.compiled_capacity, 5);
        assert_eq!(stats.results_capacity, 50);
        for (i, m) in matchers.iter().enumerate() {
            assert!(engine.matches(m, &format!("/p{i}/x")));
            assert!(!engine.matches(m, &format!("/p{}/x", i + 1)));
        }

        let tiny = self::engine(1);
        assert_eq!(tiny.cache_stats().compiled_capacity, 1);
    }

    #[test]
    fn cache_size_zero_disables_caching() {
        let engine = engine(0);
        let a = url_pattern(&engine, "/books/:id");
        let b = url_pattern(&engine, "/books/:id");
        assert!(!Arc::ptr_eq(&a.inner, &b.inner));
        for _ in 0..3 {
            assert!(engine.matches(&a, "/books/1"));
            assert!(engine.matches(&a, "https://localhost/books/1"));
            assert!(!engine.matches(&a, "/books"));
        }
        assert_eq!(
            engine.cache_stats(),
            CacheStats {
                compiled_len: 0,
                compiled_capacity: 0,
                results_len: 0,
                results_capacity: 0,
            }
        );
    }

    #[test]
    fn shared_across_threads() {
        let engine = Arc::new(engine(1000));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let engine = Arc::clone(&engine);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let m = url_pattern(&engine, &format!("/t{}/:id", i % 7));
                        assert!(engine.matches(&m, &format!("/t{}/{t}", i % 7)));
                        assert!(!engine.matches(&m, &format!("/u/{t}")));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    // Compatibility mode's 0.x `topic=` selector: exact first, then the URI Template; not a
    // template → exact only; compiled once and cached.
    #[test]
    fn template_selector() {
        let engine = engine(100);
        let m = engine
            .compile(MatcherType::Template, "https://example.com/books/{id}")
            .unwrap();
        assert_eq!(m.kind(), MatcherType::Template);
        assert!(engine.matches(&m, "https://example.com/books/{id}"));
        assert!(engine.matches(&m, "https://example.com/books/1"));
        assert!(!engine.matches(&m, "https://example.com/books/1/2"));
        assert!(
            !engine.matches(&m, "/books/1"),
            "no resolution against the hub URL"
        );
        let again = engine
            .compile(MatcherType::Template, "https://example.com/books/{id}")
            .unwrap();
        assert!(Arc::ptr_eq(&m.inner, &again.inner));
        let broken = engine.compile(MatcherType::Template, "/books/{id").unwrap();
        assert!(engine.matches(&broken, "/books/{id"));
        assert!(!engine.matches(&broken, "/books/1"));
        let plain = engine.compile(MatcherType::Template, "/books/1").unwrap();
        assert!(engine.matches(&plain, "/books/1"));
        assert!(!engine.matches(&plain, "/books/2"));
        assert!(engine
            .compile(MatcherType::Template, "*")
            .unwrap()
            .is_wildcard());
        assert!(engine.compile(MatcherType::Template, "a\u{7f}b").is_err());
    }
}

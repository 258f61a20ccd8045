//! The hub URL and the reserved-namespace test (spec "Publication", "Security Considerations >
//! Reserved Hub Namespace"). Decides from the resolved, normalised path only: never from a
//! leading substring of the raw topic, never from scheme or host.

use std::borrow::Cow;

/// The hub URL, used as the base for relative topics and patterns and to decide the reserved
/// namespace (`<hub path>` and `<hub path>/…`).
#[derive(Debug, Clone)]
pub struct HubUrl {
    url: url::Url,
    /// The hub path normalised like a topic path, without a trailing `/`, so that the subtree test
    /// is `path == reserved || path.starts_with(reserved + "/")` whatever the configured spelling.
    reserved: Box<str>,
}

impl HubUrl {
    pub fn new(url: &url::Url) -> Self {
        let reserved = normalize_path(url.path());
        let reserved = reserved.strip_suffix('/').unwrap_or(&reserved).into();
        Self {
            url: url.clone(),
            reserved,
        }
    }
    /// The full URL string, e.g. `https://localhost/.well-known/mercure`.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
    /// The path, e.g. `/.well-known/mercure`.
    pub fn path(&self) -> &str {
        self.url.path()
    }
    /// The parsed hub URL (the base for relative topics and patterns).
    pub fn url(&self) -> &url::Url {
        &self.url
    }
    /// Resolves `topic` as a URL reference against the hub URL (WHATWG parser); `None` when it
    /// cannot be parsed, which the spec treats as "not a URL": not reserved, matched by no pattern.
    pub fn resolve(&self, topic: &str) -> Option<url::Url> {
        self.url.join(topic).ok()
    }
    /// Whether `topic`, resolved against the hub URL (WHATWG URL parser, dot segments removed,
    /// percent-encoded unreserved characters decoded, whatever the scheme or host), has a path
    /// equal to the hub path or under it. Unparsable topics are not reserved.
    pub fn is_reserved(&self, topic: &str) -> bool {
        let Some(resolved) = self.resolve(topic) else {
            return false;
        };
        let path = normalize_path(resolved.path());
        match path.strip_prefix(&*self.reserved) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// RFC 3986 normalisation of a path the WHATWG parser already produced: decode `%XX` of
/// unreserved characters (so `%6Dercure` is `mercure`), uppercase the hex digits of the other
/// escapes, then remove the dot segments decoding may have revealed.
fn normalize_path(path: &str) -> Cow<'_, str> {
    // The WHATWG parser has removed dot segments (`%2e` spellings included); only a `%` can hide
    // anything further.
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    if decoded.split('/').any(|s| s == "." || s == "..") {
        Cow::Owned(remove_dot_segments(&decoded))
    } else {
        Cow::Owned(decoded)
    }
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) else {
            // A stray `%` stays as it is.
            i += 1;
            continue;
        };
        // `%` is ASCII, so slicing at `copied..i` lands on char boundaries.
        out.push_str(&path[copied..i]);
        let octet = (hi << 4) | lo;
        if is_unreserved(octet) {
            out.push(char::from(octet));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(hi)]));
            out.push(char::from(HEX_UPPER[usize::from(lo)]));
        }
        i += 3;
        copied = i;
    }
    out.push_str(&path[copied..]);
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Dot-segment removal with the WHATWG parser's results (`/a/b/..` → `/a/`, `/..` → `/`).
/// Opaque paths (no leading `/`) have no segments and are returned as they are.
fn remove_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return path.to_owned();
    };
    let mut out: Vec<&str> = Vec::new();
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    let mut result = String::with_capacity(path.len());
    for segment in out {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test inputs are constants")]
mod tests {
    use super::*;

    fn hub() -> HubUrl {
        HubUrl::new(&url::Url::parse("https://localhost/.well-known/mercure").unwrap())
    }

    #[test]
    fn accessors() {
        let hub = hub();
        assert_eq!(hub.as_str(), "https://localhost/.well-known/mercure");
        assert_eq!(hub.path(), "/.well-known/mercure");
        assert_eq!(hub.url().host_str(), Some("localhost"));
    }

    // Publication: every topic resolving into `<hub path>` or `<hub path>/…` is reserved,
    // regardless of scheme or authority, after dot-segment removal and decoding of unreserved
    // percent-escapes; reference hub §1.3 and §8 item 31.
    #[test]
    fn reserved_topics() {
        let hub = hub();
        for topic in [
            "/.well-known/mercure",
            "/.well-known/mercure/",
            "/.well-known/mercure/subscriptions/foo",
            "/.well-known/mercure?x=1",
            "/.well-known/mercure#frag",
            "https://localhost/.well-known/mercure",
            "https://example.com/.well-known/mercure/x",
            "https://any.host:8443/.well-known/mercure/subscriptions/exact/a/b",
            "http://hub.example.com/.well-known/mercure/subscriptions/x",
            "//other.example/.well-known/mercure/x",
            // Relative to the hub URL, so it lands under the hub path.
            "mercure/subscriptions/foo",
            "mercure",
            "./mercure/x",
            // Percent-encoded unreserved characters, lower- and upper-case hex.
            "/.well-known/%6Dercure/x",
            "/.well-known/%6dercure/x",
            "/%2Ewell-known/mercure",
            "/.well%2Dknown/mercure",
            "/.well-known/mercur%65",
            // Dot segments, plain and encoded.
            "/.well-known/mercure/../mercure/x",
            "/foo/../.well-known/mercure",
            "/foo/./../.well-known/./mercure/x",
            "/foo/%2E%2E/.well-known/mercure",
            "/foo/%2e%2E/.well-known/mercure",
            "/foo/.%2E/.well-known/mercure",
            "/a/b/%2E%2E/%2e%2e/.well-known/mercure/x",
            // Backslashes are separators for special schemes.
            "\\.well-known\\mercure\\x",
            "https://h/.well-known\\mercure",
            "https://h\\.well-known\\mercure",
            // Non-special schemes still have a hierarchical path.
            "foo://x/.well-known/mercure/a",
            "foo:/.well-known/mercure",
            "file:///.well-known/mercure/x",
            "wss://h/.well-known/mercure",
            // The empty reference is the hub URL itself.
            "",
        ] {
            assert!(hub.is_reserved(topic), "{topic:?} should be reserved");
        }
    }

    // Publication and Security Considerations > Reserved Hub Namespace: only the path subtree is
    // reserved, not look-alikes; unparsable topics cannot name a hub path.
    #[test]
    fn unreserved_topics() {
        let hub = hub();
        for topic in [
            "/foo/.well-known/mercure/bar",
            "/.well-known/mercure-dashboard",
            "/.well-known/mercurex/y",
            "/.well-known/MERCURE",
            "/.well-known",
            "/.well-known/",
            "urn:example:mercure",
            "urn:example:/.well-known/mercure",
            "https://example.com/books/1",
            "https://example.com/?p=/.well-known/mercure",
            "https://example.com/#/.well-known/mercure",
            "books/1",
            "mercure-dashboard",
            // `/` is reserved in RFC 3986, so `%2F` is not a separator.
            "/.well-known%2Fmercure",
            "/.well-known/mercure%2Fx",
            "*",
            // Unparsable references: invalid host, invalid port.
            "https://exa mple.com/.well-known/mercure",
            "http://[::1/.well-known/mercure",
            "https://h:99999/.well-known/mercure",
        ] {
            assert!(!hub.is_reserved(topic), "{topic:?} should not be reserved");
        }
    }

    // Security Considerations > Reserved Hub Namespace: the subtree follows the hub URL's path,
    // however the hub URL spells it.
    #[test]
    fn reserved_follows_the_hub_path() {
        let hub = HubUrl::new(&url::Url::parse("https://h.example/hub/").unwrap());
        assert!(hub.is_reserved("/hub"));
        assert!(hub.is_reserved("/hub/subscriptions/x"));
        assert!(hub.is_reserved(""));
        assert!(!hub.is_reserved("/.well-known/mercure"));
        assert!(!hub.is_reserved("/hubs/x"));

        let hub = HubUrl::new(&url::Url::parse("https://h.example/%6Dy%2fhub").unwrap());
        assert!(hub.is_reserved("/my%2Fhub/x"));
        assert!(hub.is_reserved("/%6Dy%2Fhub"));
        assert!(!hub.is_reserved("/my/hub"));
    }

    #[test]
    fn normalisation_helpers() {
        assert_eq!(decode_unreserved("/a%7e%41%2f%2F%zz%"), "/a~A%2F%2F%zz%");
        assert_eq!(decode_unreserved("/é%C3%A9"), "/é%C3%A9");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(remove_dot_segments("/a/./b"), "/a/b");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments("/../../x"), "/x");
        assert_eq!(remove_dot_segments("/a/../"), "/");
        assert_eq!(remove_dot_segments("/a//b/../c"), "/a//c");
        assert_eq!(remove_dot_segments("opaque"), "opaque");
    }
}

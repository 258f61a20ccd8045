//! Pure parsers for single configuration values (booleans, durations, byte sizes, listener
//! addresses, CORS origins, URLs, algorithm names). No I/O and no layering: each returns the
//! value or a reason that `load` files under the setting's key.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::auth::Algorithm;

/// `true/false`, `1/0`, `yes/no`, `on/off`, case-insensitive.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{s:?} is not a boolean (use true/false, 1/0, yes/no or on/off)"
        )),
    }
}

/// Human durations (`40s`, `10m`, `1h30m`, `500ms`); a unit is required except for `0`.
/// Callers decide what zero means (usually "disabled").
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    humantime::parse_duration(t).map_err(|e| {
        format!("{t:?} is not a duration (expected e.g. 40s, 10m, 1h30m; 0 disables): {e}")
    })
}

/// Byte sizes: plain bytes (`1048576`), `B`, `KB`/`MB`/`GB` (powers of 1000) and
/// `KiB`/`MiB`/`GiB` (powers of 1024), units case-insensitive, optional space before the unit.
///
/// A hand-written parser rather than a crate (`bytesize`, `byte-unit`): it is twenty lines, the
/// accepted grammar is exactly the documented one (the crates disagree on whether `KB` means 1000
/// or 1024 and accept fractions), and it keeps the dependency list short.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let bad = || {
        format!("{t:?} is not a size (expected bytes or a number with KB, MB, GB, KiB, MiB or GiB, e.g. 1MiB)")
    };
    if number.is_empty() {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| format!("{t:?} is too large"))?;
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("{t:?} is too large"))
}

/// A plain non-negative integer (a count, not a size).
pub(crate) fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{t:?} is not a non-negative integer"));
    }
    t.parse().map_err(|_| format!("{t:?} is too large"))
}

/// A listener address `IP:port`. `none` or an empty value disables the listener (`Ok(None)`);
/// `localhost:<port>` is accepted as `127.0.0.1:<port>`. Names are not resolved.
pub(crate) fn parse_listen_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if let Some(port) = t.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        }
    }
    if let Some(port) = t.strip_prefix(':') {
        return Err(format!(
            "{t:?} has no IP; write 0.0.0.0:{port} (all IPv4), [::]:{port} (all IPv6) or 127.0.0.1:{port} (loopback)"
        ));
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!("{t:?} is not an IP:port address (e.g. 127.0.0.1:3000, [::1]:3000, 0.0.0.0:443; `none` disables)")
    })
}

/// One CORS origin, normalised to lower-case `scheme://host[:port]` (default ports dropped, as
/// browsers do in `Origin`).
pub(crate) fn parse_origin(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t == "*" {
        return Err(
            "`*` is refused: the hub always allows credentials (cookies, Authorization) \
                    for CORS, and browsers reject a wildcard origin with credentials; list each \
                    origin instead, e.g. https://app.example.com"
                .to_owned(),
        );
    }
    if t.eq_ignore_ascii_case("null") {
        return Err(
            "`null` is refused: sandboxed iframes and file: pages all send `Origin: null`, \
                    so allowing it with credentials would let any of them read the streams"
                .to_owned(),
        );
    }
    let Some((scheme, rest)) = t.split_once("://") else {
        return Err(format!(
            "{t:?} is not an origin (expected scheme://host[:port], e.g. https://example.com)"
        ));
    };
    if scheme.is_empty() || rest.is_empty() {
        return Err(format!(
            "{t:?} is not an origin (expected scheme://host[:port])"
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "{t:?} must be scheme://host[:port] only: no path (not even a trailing `/`), query or fragment"
        ));
    }
    if rest.contains('@') {
        return Err(format!("{t:?} must not contain user information"));
    }
    if rest.contains('*') {
        return Err(format!(
            "{t:?}: wildcards are not supported; list each origin"
        ));
    }
    let url = url::Url::parse(t).map_err(|e| format!("{t:?} is not an origin: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{t:?} has no host"))?;
    let mut origin = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    Ok(origin.to_ascii_lowercase())
}

/// Splits a list of origins given as one value: separated by commas and/or whitespace.
pub(crate) fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
}

/// An absolute URL with a host and no fragment (the `aud` the hub expects).
pub(crate) fn parse_resource_identifier(s: &str) -> Result<url::Url, String> {
    let t = s.trim();
    let url = url::Url::parse(t).map_err(|e| format!("{t:?} is not an absolute URL: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{t:?} has no host"));
    }
    if url.fragment().is_some() {
        return Err(format!("{t:?} must not have a fragment"));
    }
    Ok(url)
}

/// The public hub URL: absolute `http` or `https`, with a host, no query and no fragment.
pub(crate) fn parse_hub_url(s: &str) -> Result<url::Url, String> {
    let t = s.trim();
    let url = url::Url::parse(t).map_err(|e| format!("{t:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{t:?} must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{t:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{t:?} must not have a query or a fragment"));
    }
    Ok(url)
}

/// JOSE algorithm names, exactly as written in a JWS header.
const ALGORITHMS: [(&str, Algorithm); 12] = [
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// A JOSE algorithm name (case-sensitive, as in a JWS header; a case-insensitive match is
/// suggested). Kept here rather than calling `Algorithm::from_name` so configuration errors can
/// list the supported names.
pub(crate) fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    let t = s.trim();
    if let Some((_, alg)) = ALGORITHMS.iter().find(|(name, _)| *name == t) {
        return Ok(*alg);
    }
    let supported = ALGORITHMS.map(|(name, _)| name).join(", ");
    match ALGORITHMS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(t))
    {
        Some((name, _)) => Err(format!(
            "unknown algorithm {t:?} (names are case-sensitive: did you mean {name}?)"
        )),
        None => Err(format!("unknown algorithm {t:?} (supported: {supported})")),
    }
}

/// A cookie name: an RFC 6265 token (visible ASCII without separators).
pub(crate) fn parse_cookie_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    let is_token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if t.is_empty() || !t.chars().all(is_token_char) {
        return Err(format!(
            "{t:?} is not a valid cookie name (visible ASCII without separators such as ;,=\" or spaces)"
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: tests assert on known-good inputs
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for s in ["true", "1", "yes", "on", "TRUE", " On "] {
            assert_eq!(parse_bool(s), Ok(true), "{s}");
        }
        for s in ["false", "0", "no", "off", "False"] {
            assert_eq!(parse_bool(s), Ok(false), "{s}");
        }
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("40").is_err(), "a unit is required");
        assert!(parse_duration("4x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1mb"), Ok(1_000_000));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "1 MiBs",
            "-1",
            "1TiB",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(
            parse_size("99999999999GiB").is_err(),
            "overflow is an error"
        );
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("100000"), Ok(100_000));
        assert_eq!(parse_count("0"), Ok(0));
        assert!(parse_count("-1").is_err());
        assert!(parse_count("1k").is_err());
        assert!(parse_count("").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:3000"),
            Ok(Some("127.0.0.1:3000".parse().unwrap()))
        );
        assert_eq!(
            parse_listen_addr("[::1]:80"),
            Ok(Some("[::1]:80".parse().unwrap()))
        );
        assert_eq!(
            parse_listen_addr("localhost:8080"),
            Ok(Some("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(parse_listen_addr("none"), Ok(None));
        assert_eq!(parse_listen_addr(""), Ok(None));
        assert!(parse_listen_addr(":3000")
            .unwrap_err()
            .contains("0.0.0.0:3000"));
        assert!(parse_listen_addr("example.com:80").is_err());
        assert!(parse_listen_addr("127.0.0.1").is_err());
        assert!(parse_listen_addr("127.0.0.1:99999").is_err());
    }

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("https://Example.COM"),
            Ok("https://example.com".to_owned())
        );
        assert_eq!(
            parse_origin("http://localhost:8080"),
            Ok("http://localhost:8080".to_owned())
        );
        assert_eq!(
            parse_origin("https://a.example:443"),
            Ok("https://a.example".to_owned())
        );
        assert_eq!(
            parse_origin("capacitor://LocalHost"),
            Ok("capacitor://localhost".to_owned())
        );
        assert!(parse_origin("*").unwrap_err().contains("credentials"));
        assert!(parse_origin("null").is_err());
        assert!(parse_origin("https://example.com/")
            .unwrap_err()
            .contains("path"));
        assert!(parse_origin("https://example.com/app").is_err());
        assert!(parse_origin("https://example.com?x").is_err());
        assert!(parse_origin("https://example.com#x").is_err());
        assert!(parse_origin("https://user@example.com").is_err());
        assert!(parse_origin("https://*.example.com").is_err());
        assert!(parse_origin("example.com").is_err());
        assert!(parse_origin("https://").is_err());
        assert_eq!(
            split_list("https://a.example, https://b.example  https://c.example,,")
                .collect::<Vec<_>>(),
            [
                "https://a.example",
                "https://b.example",
                "https://c.example"
            ]
        );
    }

    #[test]
    fn urls() {
        assert!(parse_resource_identifier("https://example.com/.well-known/mercure").is_ok());
        assert!(parse_resource_identifier("/.well-known/mercure").is_err());
        assert!(parse_resource_identifier("https://example.com/#frag").is_err());
        assert!(
            parse_resource_identifier("urn:example:hub").is_err(),
            "no host"
        );
        assert!(parse_hub_url("https://hub.example/.well-known/mercure").is_ok());
        assert!(parse_hub_url("ftp://hub.example/").is_err());
        assert!(parse_hub_url("https://hub.example/?q=1").is_err());
        assert!(parse_hub_url("hub.example").is_err());
    }

    #[test]
    fn algorithms() {
        assert_eq!(parse_algorithm("HS256"), Ok(Algorithm::HS256));
        assert_eq!(parse_algorithm("EdDSA"), Ok(Algorithm::EdDSA));
        assert_eq!(parse_algorithm("ES384"), Ok(Algorithm::ES384));
        assert!(parse_algorithm("hs256")
            .unwrap_err()
            .contains("did you mean HS256"));
        assert!(parse_algorithm("none").unwrap_err().contains("supported"));
        assert!(parse_algorithm("ES512").is_err());
    }

    #[test]
    fn cookie_names() {
        assert_eq!(
            parse_cookie_name("mercureAuthorization"),
            Ok("mercureAuthorization".to_owned())
        );
        assert!(parse_cookie_name("__Secure-mercure_access_token").is_ok());
        assert!(parse_cookie_name("a b").is_err());
        assert!(parse_cookie_name("a;b").is_err());
        assert!(parse_cookie_name("").is_err());
    }
}

//! Token presentation (spec, Presenting the Access Token): the `Authorization: Bearer` header,
//! else the configured cookie; compatibility mode adds the `authorization` query parameter and
//! the `mercureAuthorization` cookie. Errors never quote the token.
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};

use super::{AuthError, Credential, TokenSource};

/// Shortest plausible compact JWS: the reference hub's bound, below which a header token is an
/// `invalid_request` rather than an `invalid_token`.
pub const MIN_COMPACT_JWS_LEN: usize = 41;

/// Extracts the token: the `Authorization` header wins (exactly one, scheme `Bearer`
/// case-insensitive, a plausible compact JWS, else `InvalidRequest`); otherwise the cookie named
/// `cookie_name`; otherwise `None`. Never reads the query string.
pub fn extract_token<'a>(
    headers: &'a HeaderMap,
    cookie_name: &str,
) -> Result<Option<Credential<'a>>, AuthError> {
    extract(headers, None, &[cookie_name])
}

/// The 0.x cookie, read in compatibility mode when the configured cookie is absent.
pub const LEGACY_COOKIE_NAME: &str = "mercureAuthorization";

/// Compatibility mode (reference hub §3): the header, else the `authorization` query parameter
/// (exactly one value of at least `MIN_COMPACT_JWS_LEN` characters, otherwise silently skipped),
/// else the cookie `cookie_name`, else the `mercureAuthorization` cookie. `query` is the raw
/// query string; a token in it is never percent-decoded (a compact JWS needs no encoding).
pub fn extract_token_compat<'a>(
    headers: &'a HeaderMap,
    query: &'a str,
    cookie_name: &str,
) -> Result<Option<Credential<'a>>, AuthError> {
    extract(headers, Some(query), &[cookie_name, LEGACY_COOKIE_NAME])
}

fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    cookie_names: &[&str],
) -> Result<Option<Credential<'a>>, AuthError> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        // A header, even malformed, excludes the cookie: the spec ignores the ambient cookie
        // whenever the client chose the header.
        if authorization.next().is_some() {
            return Err(invalid_request("more than one Authorization header"));
        }
        return bearer_token(value).map(|token| {
            Some(Credential {
                token,
                source: TokenSource::Header,
            })
        });
    }
    if let Some(token) = query.and_then(query_token) {
        return Ok(Some(Credential {
            token,
            source: TokenSource::Query,
        }));
    }
    for cookie_name in cookie_names {
        for value in headers.get_all(COOKIE) {
            if let Some(token) = find_cookie(value.as_bytes(), cookie_name.as_bytes()) {
                let token = std::str::from_utf8(token).map_err(|_| {
                    AuthError::InvalidToken("the token cookie is not UTF-8".to_owned())
                })?;
                return Ok(Some(Credential {
                    token,
                    source: TokenSource::Cookie,
                }));
            }
        }
    }
    Ok(None)
}

/// The single `authorization` query parameter value, if plausible (reference hub §3 item 2).
fn query_token(query: &str) -> Option<&str> {
    let mut values = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(name, _)| *name == "authorization")
        .map(|(_, value)| value);
    let value = values.next()?;
    (values.next().is_none() && value.len() >= MIN_COMPACT_JWS_LEN).then_some(value)
}

fn invalid_request(reason: &str) -> AuthError {
    AuthError::InvalidRequest(reason.to_owned())
}

fn bearer_token(value: &HeaderValue) -> Result<&str, AuthError> {
    let value = value
        .to_str()
        .map_err(|_| invalid_request("Authorization header is not visible ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| invalid_request("Authorization header has no credentials"))?;
    // RFC 9110 §11.1: auth schemes are case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid_request("Authorization scheme is not Bearer"));
    }
    if !looks_like_compact_jws(token) {
        return Err(invalid_request("Bearer credentials are not a compact JWS"));
    }
    Ok(token)
}

/// Three base64url parts, at least `MIN_COMPACT_JWS_LEN` long; the real checks come later.
/// (On every authenticated request: one table lookup per byte.)
fn looks_like_compact_jws(token: &str) -> bool {
    /// 0: not allowed, 1: base64url, 2: `.`.
    const CLASS: [u8; 256] = {
        let mut class = [0; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
                class[b] = 1;
            }
            b += 1;
        }
        class[b'.' as usize] = 2;
        class
    };
    if token.len() < MIN_COMPACT_JWS_LEN {
        return false;
    }
    let (mut invalid, mut dots) = (false, 0usize);
    for b in token.bytes() {
        let class = CLASS[b as usize];
        invalid |= class == 0;
        dots += usize::from(class == 2);
    }
    !invalid && dots == 2
}

/// The first non-empty value of cookie `name` in one `Cookie` header (`a=b; c=d`, RFC 6265 §4.2).
/// An empty value is how browsers keep a cleared cookie, so it counts as absent.
fn find_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        if key != name {
            return None;
        }
        // RFC 6265 allows the value to be wrapped in double quotes.
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        };
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on bad fixtures")]
    use super::*;

    const COOKIE_NAME: &str = "mercureAccess";
    // 3 parts, 47 chars.
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl";
    const OTHER: &str = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ5In0.c2lnbmF0dXJl";

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn extract(
        pairs: &[(&'static str, String)],
    ) -> Result<Option<(String, TokenSource)>, AuthError> {
        let map = headers(pairs);
        extract_token(&map, COOKIE_NAME).map(|c| c.map(|c| (c.token.to_owned(), c.source)))
    }

    #[test]
    fn compact_jws_shape() {
        assert!(looks_like_compact_jws(TOKEN));
        let pad = "a".repeat(MIN_COMPACT_JWS_LEN);
        for bad in [
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0c2lnbmF0dXJl", // two parts
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0.dXJl", // four
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl=", // padding
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0d+Jl", // base64, not base64url
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dé",  // non-ASCII
            "a.b.c",                                            // too short
        ] {
            assert!(!looks_like_compact_jws(bad), "{bad}");
        }
        assert!(looks_like_compact_jws(&format!("{pad}.-_.0Z")));
    }

    // Spec "Presenting the Access Token": the header wins over the cookie.
    #[test]
    fn header_wins_over_cookie() {
        let got = extract(&[
            ("cookie", format!("{COOKIE_NAME}={OTHER}")),
            ("authorization", format!("Bearer {TOKEN}")),
        ]);
        assert_eq!(got, Ok(Some((TOKEN.to_owned(), TokenSource::Header))));
    }

    // Spec "Authorization HTTP Header": scheme matched case-insensitively (RFC 9110).
    #[test]
    fn scheme_case_insensitive() {
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            let got = extract(&[("authorization", format!("{scheme} {TOKEN}"))]);
            assert_eq!(got, Ok(Some((TOKEN.to_owned(), TokenSource::Header))));
        }
    }

    // Reference hub §1.9: presentation defects are 400 invalid_request, no cookie fallback.
    #[test]
    fn header_defects_are_invalid_requests() {
        let cookie = ("cookie", format!("{COOKIE_NAME}={TOKEN}"));
        let cases = [
            vec![
                ("authorization", "Basic dXNlcjpwYXNz".to_owned()),
                cookie.clone(),
            ],
            vec![("authorization", "Bearer x".to_owned()), cookie.clone()],
            vec![("authorization", "Bearer".to_owned())],
            vec![("authorization", String::new()), cookie.clone()],
            vec![("authorization", format!("Bearer  {TOKEN}"))],
            vec![("authorization", format!("Bearer {TOKEN}.x"))],
            vec![(
                "authorization",
                format!("Bearer {}", TOKEN.replace('.', "_")),
            )],
            vec![("authorization", format!("Bearer {TOKEN}="))],
            vec![
                ("authorization", format!("Bearer {TOKEN}")),
                ("authorization", format!("Bearer {TOKEN}")),
            ],
        ];
        for case in cases {
            assert!(
                matches!(extract(&case), Err(AuthError::InvalidRequest(_))),
                "{case:?}"
            );
        }
        let mut map = HeaderMap::new();
        map.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert!(matches!(
            extract_token(&map, COOKIE_NAME),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn error_never_quotes_the_token() {
        let got = extract(&[("authorization", format!("Basic {TOKEN}"))]);
        let Err(e) = got else {
            panic!("expected an error")
        };
        assert!(!e.to_string().contains(TOKEN));
    }

    // Spec "Cookie": used when no Authorization header is present; HTTP/2 may split it.
    #[test]
    fn cookie_found_among_several() {
        let got = extract(&[
            ("cookie", "a=1; b=2".to_owned()),
            ("cookie", format!("x=y;{COOKIE_NAME}={TOKEN}; z=w")),
        ]);
        assert_eq!(got, Ok(Some((TOKEN.to_owned(), TokenSource::Cookie))));
        let got = extract(&[(
            "cookie",
            format!("{COOKIE_NAME}=; {COOKIE_NAME}=\"{TOKEN}\""),
        )]);
        assert_eq!(got, Ok(Some((TOKEN.to_owned(), TokenSource::Cookie))));
        // Names are case-sensitive and must match entirely.
        let got = extract(&[(
            "cookie",
            format!("mercureaccess={TOKEN}; x{COOKIE_NAME}={TOKEN}; {COOKIE_NAME}x={TOKEN}"),
        )]);
        assert_eq!(got, Ok(None));
    }

    // Compatibility mode: header > `authorization` query parameter (one value, ≥ 41 chars) >
    // configured cookie > `mercureAuthorization` cookie.
    #[test]
    fn compat_sources() {
        let run = |pairs: &[(&'static str, String)], query: &str| {
            let map = headers(pairs);
            extract_token_compat(&map, query, COOKIE_NAME)
                .map(|c| c.map(|c| (c.token.to_owned(), c.source)))
        };
        let q = format!("topic=x&authorization={TOKEN}");
        assert_eq!(
            run(&[("authorization", format!("Bearer {OTHER}"))], &q),
            Ok(Some((OTHER.to_owned(), TokenSource::Header)))
        );
        let legacy = ("cookie", format!("{LEGACY_COOKIE_NAME}={OTHER}"));
        assert_eq!(
            run(std::slice::from_ref(&legacy), &q),
            Ok(Some((TOKEN.to_owned(), TokenSource::Query)))
        );
        let twice = format!("{q}&authorization={OTHER}");
        assert_eq!(
            run(std::slice::from_ref(&legacy), &twice),
            Ok(Some((OTHER.to_owned(), TokenSource::Cookie)))
        );
        assert_eq!(
            run(std::slice::from_ref(&legacy), "authorization=short"),
            Ok(Some((OTHER.to_owned(), TokenSource::Cookie)))
        );
        assert_eq!(
            run(&[legacy, ("cookie", format!("{COOKIE_NAME}={TOKEN}"))], ""),
            Ok(Some((TOKEN.to_owned(), TokenSource::Cookie)))
        );
        assert_eq!(run(&[], "access_token=x"), Ok(None));
        // Modern mode reads neither.
        let map = headers(&[("cookie", format!("{LEGACY_COOKIE_NAME}={OTHER}"))]);
        assert!(extract_token(&map, COOKIE_NAME).unwrap().is_none());
    }

    #[test]
    fn nothing_presented() {
        assert_eq!(extract(&[]), Ok(None));
        assert_eq!(extract(&[("cookie", "a=b".to_owned())]), Ok(None));
        assert_eq!(extract(&[("cookie", format!("{COOKIE_NAME}="))]), Ok(None));
    }
}

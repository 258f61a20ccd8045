//! `application/x-www-form-urlencoded` parsing (WHATWG URL "urlencoded parser") with strict
//! UTF-8, and the publish form with its limits. Pure; no I/O.
use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::error::HubError;
use crate::hub::Publication;

/// Limits applied while parsing a publish form.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    /// Maximum `topic` fields (over → 413).
    pub max_topics: usize,
    /// Maximum bytes of any decoded value other than `data` (over → 413).
    pub max_field_length: usize,
}

/// Decoded name/value pairs of a form or query string, in order. A value that is not valid
/// UTF-8 after percent-decoding is an error (the spec requires UTF-8; replacing bytes with
/// U+FFFD would silently change topics and ids).
pub fn pairs(input: &[u8]) -> impl Iterator<Item = Result<(String, String), HubError>> + '_ {
    input
        .split(|&b| b == b'&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| {
            let (name, value) = match seg.iter().position(|&b| b == b'=') {
                Some(i) => (&seg[..i], &seg[i + 1..]),
                None => (seg, &b""[..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
}

fn decode(raw: &[u8]) -> Result<String, HubError> {
    let plus_decoded: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Cow<'_, [u8]> = percent_decode(&plus_decoded).into();
    String::from_utf8(bytes.into_owned())
        .map_err(|_| HubError::bad_request("form fields must be valid UTF-8"))
}

/// Parses a publish form (spec "Publication"). Unknown fields are ignored; `private` counts by
/// presence alone. Character and semantic rules are checked later by `hub::validate`.
pub fn parse_publication(body: &[u8], limits: FormLimits) -> Result<Publication, HubError> {
    let mut p = Publication::default();
    let mut seen_data = false;
    for pair in pairs(body) {
        let (name, value) = pair?;
        if name != "data" && value.len() > limits.max_field_length {
            return Err(HubError::too_large(format!(
                "field \"{}\" is longer than {} bytes",
                name.escape_debug(),
                limits.max_field_length
            )));
        }
        match name.as_str() {
            "topic" => {
                if p.topics.len() == limits.max_topics {
                    return Err(HubError::too_large(format!(
                        "more than {} topics in one update",
                        limits.max_topics
                    )));
                }
                p.topics.push(value);
            }
            // A repeated single-valued field keeps its first value, as the reference hub does.
            "data" if !seen_data => {
                p.data = value;
                seen_data = true;
            }
            "private" => p.private = true,
            "id" if p.id.is_none() => p.id = Some(value),
            "type" if p.event_type.is_none() => p.event_type = Some(value),
            "retry" if p.retry.is_none() => p.retry = Some(value),
            _ => {}
        }
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: test inputs are fixed
mod tests {
    use super::*;

    const LIMITS: FormLimits = FormLimits {
        max_topics: 3,
        max_field_length: 16,
    };

    #[test]
    fn parses_repeated_topics_and_fields() {
        let p = parse_publication(
            b"topic=https%3A%2F%2Fa%2F1&topic=b&data=x+y%0Az&private&id=i&type=t&retry=10&zzz=1",
            LIMITS,
        )
        .unwrap();
        assert_eq!(p.topics, vec!["https://a/1", "b"]);
        assert_eq!(p.data, "x y\nz");
        assert!(p.private);
        assert_eq!(p.id.as_deref(), Some("i"));
        assert_eq!(p.event_type.as_deref(), Some("t"));
        assert_eq!(p.retry.as_deref(), Some("10"));
    }

    #[test]
    fn private_by_presence_even_empty() {
        // Spec "Publication": presence of the field name marks the update private.
        assert!(
            parse_publication(b"topic=a&private=", LIMITS)
                .unwrap()
                .private
        );
        assert!(
            parse_publication(b"topic=a&private=off", LIMITS)
                .unwrap()
                .private
        );
        assert!(!parse_publication(b"topic=a", LIMITS).unwrap().private);
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let err = parse_publication(b"topic=%FF", LIMITS).unwrap_err();
        assert!(matches!(err, HubError::BadRequest(_)));
    }

    #[test]
    fn limits_are_413() {
        // Spec "Publication": per-request limits answer 413.
        let err = parse_publication(b"topic=a&topic=b&topic=c&topic=d", LIMITS).unwrap_err();
        assert!(matches!(err, HubError::TooLarge(_)));
        let err = parse_publication(b"topic=aaaaaaaaaaaaaaaaaaaaaaaaa", LIMITS).unwrap_err();
        assert!(matches!(err, HubError::TooLarge(_)));
        // `data` is bounded by the body size only.
        assert!(parse_publication(b"topic=a&data=aaaaaaaaaaaaaaaaaaaaaaaaaaaa", LIMITS).is_ok());
    }

    #[test]
    fn repeated_single_valued_fields_keep_the_first() {
        let p = parse_publication(
            b"topic=a&data=1&data=2&id=x&id=y&type=s&type=t&retry=1&retry=2",
            LIMITS,
        )
        .unwrap();
        assert_eq!(
            (
                p.data.as_str(),
                p.id.as_deref(),
                p.event_type.as_deref(),
                p.retry.as_deref()
            ),
            ("1", Some("x"), Some("s"), Some("1"))
        );
    }

    #[test]
    fn broken_escape_kept_literally() {
        // WHATWG urlencoded parser: a `%` not followed by two hex digits stays as is.
        let p = parse_publication(b"topic=a%zz&data=%", LIMITS).unwrap();
        assert_eq!(p.topics, vec!["a%zz"]);
        assert_eq!(p.data, "%");
    }
}

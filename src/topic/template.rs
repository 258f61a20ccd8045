//! RFC 6570 URI Templates (levels 1–4) compiled to an anchored `regex::Regex` that matches the
//! URIs the template can expand to: the Mercure 0.x `topic=` selector of compatibility mode.
//! Pure; the `regex` engine keeps matching linear-time.

use regex::Regex;

/// Largest `:n` prefix compiled as a bounded repetition; longer prefixes match any length (the
/// RFC allows up to 9999, which would bloat the compiled program for no practical gain).
const MAX_BOUNDED_PREFIX: usize = 1000;

/// Largest compiled program accepted (bytes), so a hostile template cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One RFC 6570 §2.2 operator's expansion rules (§A table).
struct Operator {
    first: &'static str,
    sep: &'static str,
    named: bool,
    /// `;` expands an empty value to `;name`, `?`/`&` to `name=`.
    empty_keeps_equals: bool,
    allow_reserved: bool,
}

fn operator(op: Option<char>) -> Option<Operator> {
    let (first, sep, named, empty_keeps_equals, allow_reserved) = match op {
        None => ("", ",", false, false, false),
        Some('+') => ("", ",", false, false, true),
        Some('#') => ("#", ",", false, false, true),
        Some('.') => (".", ".", false, false, false),
        Some('/') => ("/", "/", false, false, false),
        Some(';') => (";", ";", true, false, false),
        Some('?') => ("?", "&", true, true, false),
        Some('&') => ("&", "&", true, true, false),
        _ => return None,
    };
    Some(Operator {
        first,
        sep,
        named,
        empty_keeps_equals,
        allow_reserved,
    })
}

/// A variable specification: name and modifier.
struct VarSpec<'a> {
    name: &'a str,
    explode: bool,
    prefix: Option<usize>,
}

/// Whether `pattern` contains an expression at all (a `{`): only such values are templates.
pub fn looks_like_template(pattern: &str) -> bool {
    pattern.contains('{')
}

/// Compiles `template` to an anchored regex; `None` when it is not a valid RFC 6570 template.
pub fn compile(template: &str) -> Option<Regex> {
    let mut re = String::with_capacity(template.len() * 4 + 2);
    re.push('^');
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return None;
        }
        re.push_str(&regex::escape(&rest[..open]));
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        expression(&after[..close], &mut re)?;
        rest = &after[close + 1..];
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    regex::RegexBuilder::new(&re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// Appends the regex of one `{…}` expression body.
fn expression(body: &str, re: &mut String) -> Option<()> {
    let (op, list) = match body.chars().next()? {
        c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&') => (Some(c), &body[1..]),
        // Reserved for future extensions (RFC 6570 §2.2): not a valid template today.
        '=' | ',' | '!' | '@' | '|' => return None,
        _ => (None, body),
    };
    let op = operator(op)?;
    let specs = list.split(',').map(varspec).collect::<Option<Vec<_>>>()?;
    let items: Vec<String> = specs.iter().map(|spec| item(&op, spec)).collect();
    // Undefined variables are omitted and an expression whose variables are all undefined
    // expands to nothing: any non-empty run of items, joined by the separator, after `first`.
    let any = format!("(?:{})", items.join("|"));
    re.push_str(&format!(
        "(?:{}{any}(?:{}{any})*)?",
        regex::escape(op.first),
        regex::escape(op.sep)
    ));
    Some(())
}

/// Parses `varname [ ":" max-length | "*" ]` (RFC 6570 §2.3, §2.4).
fn varspec(spec: &str) -> Option<VarSpec<'_>> {
    let (name, explode, prefix) = if let Some(name) = spec.strip_suffix('*') {
        (name, true, None)
    } else if let Some((name, len)) = spec.split_once(':') {
        let valid = !len.is_empty() && len.len() <= 4 && len.bytes().all(|b| b.is_ascii_digit());
        let n: usize = len.parse().ok().filter(|&n| valid && n > 0)?;
        (name, false, Some(n))
    } else {
        (spec, false, None)
    };
    valid_varname(name).then_some(VarSpec {
        name,
        explode,
        prefix,
    })
}

/// `varchar *( ["."] varchar )` with `varchar = ALPHA / DIGIT / "_" / pct-encoded`.
fn valid_varname(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b[0] == b'.' || b[b.len() - 1] == b'.' {
        return false;
    }
    let mut i = 0;
    let mut last_dot = false;
    while i < b.len() {
        match b[i] {
            b'.' if last_dot => return false,
            b'.' => last_dot = true,
            c if c.is_ascii_alphanumeric() || c == b'_' => last_dot = false,
            b'%' if b.len() > i + 2
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                i += 2;
                last_dot = false;
            }
            _ => return false,
        }
        i += 1;
    }
    true
}

const PCT: &str = "%[0-9A-Fa-f]{2}";
const UNRESERVED: &str = r"A-Za-z0-9\-._~";
const RESERVED: &str = r":/?#\[\]@!$&'()*+,;=";

/// One expanded character of a value: unreserved (plus reserved for `+`/`#`) or pct-encoded.
fn value_char(op: &Operator) -> String {
    if op.allow_reserved {
        format!("(?:[{UNRESERVED}{RESERVED}]|{PCT})")
    } else {
        format!("(?:[{UNRESERVED}]|{PCT})")
    }
}

/// The regex of one defined variable's expansion within its expression.
fn item(op: &Operator, spec: &VarSpec<'_>) -> String {
    let c = value_char(op);
    let value = match spec.prefix {
        Some(n) if n <= MAX_BOUNDED_PREFIX => format!("{c}{{0,{n}}}"),
        _ => format!("{c}*"),
    };
    // A list value joins its members with `,` (non-exploded), so a value may hold commas.
    let list = if spec.prefix.is_some() {
        value.clone()
    } else {
        format!("{value}(?:,{value})*")
    };
    let key = format!("(?:[{UNRESERVED}]|{PCT})+");
    let sep = regex::escape(op.sep);
    let name = regex::escape(spec.name);
    match (op.named, spec.explode) {
        (false, false) => list,
        // Exploded lists join members with the separator; associative arrays as `key=value`.
        (false, true) => format!("(?:{key}=)?{value}(?:{sep}(?:{key}=)?{value})*"),
        (true, false) if op.empty_keeps_equals => format!("{name}={list}"),
        (true, false) => format!("{name}(?:={list})?"),
        // Exploded named expansions repeat the name (lists) or use each key (maps).
        (true, true) => {
            let pair = if op.empty_keeps_equals {
                format!("{key}={value}")
            } else {
                format!("{key}(?:={value})?")
            };
            format!("{pair}(?:{sep}{pair})*")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test inputs are constants")]
mod tests {
    use super::*;

    fn matches(template: &str, uri: &str) -> bool {
        compile(template).unwrap().is_match(uri)
    }

    // RFC 6570 §1.2 level 1: simple string expansion of unreserved characters.
    #[test]
    fn level1() {
        let t = "https://example.com/books/{id}";
        assert!(matches(t, "https://example.com/books/1"));
        assert!(matches(t, "https://example.com/books/caf%C3%A9"));
        assert!(matches(t, "https://example.com/books/"));
        assert!(!matches(t, "https://example.com/books/1/2"));
        assert!(!matches(t, "https://example.com/books/1?x"));
        assert!(!matches(t, "https://example.com/authors/1"));
        assert!(!matches(t, "xhttps://example.com/books/1"));
        // Literals are literal, `.` included.
        assert!(!matches(
            "https://example.com/{id}",
            "https://exampleXcom/1"
        ));
    }

    // Level 2: reserved (`+`) and fragment (`#`) expansion keep reserved characters.
    #[test]
    fn level2() {
        assert!(matches("{+path}/here", "/foo/bar/here"));
        assert!(!matches("{path}/here", "/foo/bar/here"));
        assert!(matches("X{#var}", "X#hello"));
        assert!(matches("X{#var}", "X"));
        assert!(matches("X{#path}", "X#/foo/bar"));
    }

    // Level 3: multiple variables and the `.`, `/`, `;`, `?`, `&` operators.
    #[test]
    fn level3() {
        assert!(matches("map?{x,y}", "map?1024,768"));
        assert!(matches("{/var,x}/here", "/value/1024/here"));
        assert!(matches("{/var}", ""));
        assert!(matches("X{.var}", "X.value"));
        assert!(matches("{;x,y}", ";x=1024;y=768"));
        assert!(matches("{;x,y,empty}", ";x=1024;y=768;empty"));
        assert!(matches(
            "https://e.com/s{?q,lang}",
            "https://e.com/s?q=cat&lang=en"
        ));
        assert!(matches("https://e.com/s{?q,lang}", "https://e.com/s"));
        assert!(!matches("https://e.com/s{?q,lang}", "https://e.com/s?z=1"));
        assert!(matches("?fixed=yes{&x}", "?fixed=yes&x=1024"));
    }

    // Level 4: prefix and explode modifiers, lists and associative arrays.
    #[test]
    fn level4() {
        assert!(matches("{var:3}", "val"));
        assert!(!matches("{var:3}", "valu"));
        assert!(matches("{/list*}", "/red/green/blue"));
        assert!(matches("{list}", "red,green,blue"));
        assert!(matches("{keys*}", "semi=%3B,dot=.,comma=%2C"));
        assert!(matches("{?list*}", "?list=red&list=green"));
        assert!(matches("{?keys*}", "?semi=%3B&dot=."));
        assert!(matches("{;list*}", ";list=red;list=green"));
        assert!(matches("{.list*}", ".red.green"));
        assert!(matches("{var:9999}", "x"));
    }

    #[test]
    fn invalid_templates() {
        for t in [
            "{",
            "}",
            "a{b",
            "a}b",
            "{}",
            "{=x}",
            "{!x}",
            "{x y}",
            "{x:0}",
            "{x:10000}",
            "{x:}",
            "{.}",
            "{x..y}",
            "{x*:3}",
            "{x,}",
            "{%zz}",
        ] {
            assert!(compile(t).is_none(), "{t}");
        }
        assert!(compile("{a.b,c_d,%41}").is_some());
        assert!(looks_like_template("/books/{id}"));
        assert!(!looks_like_template("/books/1"));
    }

    // Regex special characters in literals and names cannot inject syntax.
    #[test]
    fn literals_are_escaped() {
        assert!(matches("a+b(c)[d]$^{x}", "a+b(c)[d]$^1"));
        assert!(!matches("a+b{x}", "aab1"));
    }

    use proptest::prelude::*;

    /// RFC 6570 §3.2.1 percent-encoding for the given allowed set (unreserved, plus reserved).
    fn encode(value: &str, allow_reserved: bool) -> String {
        let mut out = String::new();
        for b in value.bytes() {
            let c = b as char;
            if c.is_ascii_alphanumeric()
                || "-._~".contains(c)
                || (allow_reserved && ":/?#[]@!$&'()*+,;=".contains(c))
            {
                out.push(c);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        // Any input compiles or is refused without panicking.
        #[test]
        fn never_panics(template in "\\PC{0,40}") {
            let _ = compile(&template);
        }

        // A template matches every expansion a level 1–3 expander produces for it.
        #[test]
        fn matches_its_expansions(
            prefix in "[a-z:/.]{0,12}",
            op in prop::sample::select(vec!["", "+", "#", ".", "/", ";", "?", "&"]),
            values in prop::collection::vec(prop::option::of("\\PC{0,8}"), 1..4),
            suffix in "[a-z/]{0,6}",
        ) {
            let names: Vec<String> = (0..values.len()).map(|i| format!("v{i}")).collect();
            let template = format!("{prefix}{{{op}{}}}{suffix}", names.join(","));
            let (first, sep, named, ifemp, reserved) = match op {
                "" => ("", ",", false, "", false),
                "+" => ("", ",", false, "", true),
                "#" => ("#", ",", false, "", true),
                "." => (".", ".", false, "", false),
                "/" => ("/", "/", false, "", false),
                ";" => (";", ";", true, "", false),
                "?" => ("?", "&", true, "=", false),
                _ => ("&", "&", true, "=", false),
            };
            let items: Vec<String> = names
                .iter()
                .zip(&values)
                .filter_map(|(name, value)| {
                    let value = value.as_ref()?;
                    let encoded = encode(value, reserved);
                    Some(match (named, value.is_empty()) {
                        (false, _) => encoded,
                        (true, true) => format!("{name}{ifemp}"),
                        (true, false) => format!("{name}={encoded}"),
                    })
                })
                .collect();
            let expansion = if items.is_empty() {
                String::new()
            } else {
                format!("{first}{}", items.join(sep))
            };
            let uri = format!("{prefix}{expansion}{suffix}");
            let regex = compile(&template).unwrap();
            prop_assert!(regex.is_match(&uri), "{} should match {}", template, uri);
        }
    }
}

//! SSE field framing per the HTML spec: `event:`, `retry:`, `id:` and one `data:` per line of
//! data (CR, LF and CRLF all split), so no value can inject a field. Pure; no I/O.
use bytes::{BufMut, Bytes, BytesMut};

/// The comment sent first on every stream, flushed at once so headers reach the client.
pub const PREAMBLE: &[u8] = b":\n";
/// The keep-alive comment sent after an idle period.
pub const HEARTBEAT: &[u8] = b":\n";

/// Encodes one event. `id`, `event_type` must already satisfy the spec's character rules (no
/// CR/LF/NUL), which publication validation guarantees; `data` may contain any line breaks.
pub fn encode_event(id: &str, event_type: Option<&str>, retry: Option<u64>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + id.len() + 32);
    if let Some(t) = event_type {
        out.put_slice(b"event: ");
        out.put_slice(t.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(r) = retry {
        out.put_slice(b"retry: ");
        out.put_slice(r.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"id: ");
    out.put_slice(id.as_bytes());
    out.put_u8(b'\n');
    for line in split_lines(data) {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// Splits on CRLF, LF or CR (a CRLF counts once). Always yields at least one (possibly empty)
/// line, so empty data still produces a `data:` field and the event is dispatched.
fn split_lines(data: &str) -> impl Iterator<Item = &str> {
    let bytes = data.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    let line = &data[start..i];
                    i += 1;
                    start = i;
                    return Some(line);
                }
                b'\r' => {
                    let line = &data[start..i];
                    i += if bytes.get(i + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    start = i;
                    return Some(line);
                }
                _ => i += 1,
            }
        }
        done = true;
        Some(&data[start..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(data: &str) -> String {
        String::from_utf8_lossy(&encode_event("x", None, None, data)).into_owned()
    }

    #[test]
    fn full_event_field_order() {
        let got = encode_event("urn:a", Some("book"), Some(5000), "hello");
        assert_eq!(
            &got[..],
            b"event: book\nretry: 5000\nid: urn:a\ndata: hello\n\n"
        );
    }

    #[test]
    fn splits_lf_cr_crlf() {
        // Spec "Publication": one `data:` field per line, splitting on CR, LF or CRLF.
        assert_eq!(
            enc("a\nb\rc\r\nd"),
            "id: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(enc("a\n\nb"), "id: x\ndata: a\ndata: \ndata: b\n\n");
        assert_eq!(enc("a\r\n"), "id: x\ndata: a\ndata: \n\n");
        assert_eq!(enc("\r\r"), "id: x\ndata: \ndata: \ndata: \n\n");
    }

    #[test]
    fn empty_data_still_dispatches() {
        assert_eq!(enc(""), "id: x\ndata: \n\n");
    }

    #[test]
    fn injection_attempt_stays_in_data() {
        // Spec "Server-Sent Events Field Injection".
        let got = enc("ok\nid: forged\nevent: mercure\r\n\r\ndata: evil");
        assert_eq!(
            got,
            "id: x\ndata: ok\ndata: id: forged\ndata: event: mercure\ndata: \ndata: data: evil\n\n"
        );
        // Every line of the frame is a field we wrote, none forged at line start.
        for line in got.lines().filter(|l| !l.is_empty()) {
            assert!(line.starts_with("data: ") || line == "id: x", "{line}");
        }
    }
}

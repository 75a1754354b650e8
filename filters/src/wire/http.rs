//! HTTP details the codecs and the shell share.

/// `Host` header value: IPv6 literals bracketed, the port only when it is
/// not the scheme's default.
pub fn host_header(host: &str, port: u16, tls: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == if tls { 443 } else { 80 } {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// `s` as one URL path segment: everything but RFC 3986 unreserved
/// characters and the sub-delimiters model names use (`;`, `=`, `@`, `+`,
/// `,`) percent-encoded, so a model name can never add a path segment or
/// start a query.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~;=@+,!*'()$&".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes a path segment or query value; `None` when the result
/// is not UTF-8. A `%` not followed by two hex digits is kept as it is.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `name` in a query string, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_and_queries() {
        assert_eq!(path_segment("mock;calls=3"), "mock;calls=3");
        assert_eq!(path_segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(percent_decode("a%20b%2Fc%zz").as_deref(), Some("a b/c%zz"));
        assert_eq!(percent_decode("%FF"), None);
        for s in ["gemini-2.5-pro", "mock;calls=2;tool=x", "ünï code/?#%"] {
            assert_eq!(percent_decode(&path_segment(s)).as_deref(), Some(s));
        }
        assert_eq!(
            query_param("alt=sse&key=k%2B1", "key").as_deref(),
            Some("k+1")
        );
        assert_eq!(query_param("alt=sse", "key"), None);
        assert_eq!(query_param("key", "key").as_deref(), Some(""));
    }

    #[test]
    fn default_ports_are_left_out_and_ipv6_is_bracketed() {
        assert_eq!(host_header("api.openai.com", 443, true), "api.openai.com");
        assert_eq!(host_header("127.0.0.1", 9000, false), "127.0.0.1:9000");
        assert_eq!(host_header("::1", 80, false), "[::1]");
        assert_eq!(host_header("::1", 8001, false), "[::1]:8001");
    }
}

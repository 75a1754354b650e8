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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_left_out_and_ipv6_is_bracketed() {
        assert_eq!(host_header("api.openai.com", 443, true), "api.openai.com");
        assert_eq!(host_header("127.0.0.1", 9000, false), "127.0.0.1:9000");
        assert_eq!(host_header("::1", 80, false), "[::1]");
        assert_eq!(host_header("::1", 8001, false), "[::1]:8001");
    }
}

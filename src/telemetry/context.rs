//! W3C Trace Context: the `traceparent` a client sends, so the gateway's
//! spans join the caller's trace, and whether the caller sampled it.
//!
//! `version-traceid-parentid-flags`, lowercase hex: `00-<32>-<16>-<2>`.
//! Version `ff` is invalid; a later version may append fields after a `-`,
//! which are ignored (the spec's rule for forward compatibility). An
//! all-zero trace or parent id is invalid. Anything invalid is treated as
//! no parent at all: the request starts a trace of its own.

/// The caller's span, parsed from `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller recorded its span (flag bit 0): the gateway follows.
    pub sampled: bool,
}

/// The length of a version-00 header.
const LEN_V00: usize = 55;

impl TraceParent {
    pub fn parse(header: &str) -> Option<Self> {
        // Optional whitespace around a header value is not part of it.
        let h = header.trim_matches([' ', '\t']).as_bytes();
        if h.len() < LEN_V00 {
            return None;
        }
        let version = hex_byte(&h[0..2])?;
        if version == 0xff || h[2] != b'-' {
            return None;
        }
        // Version 00 is exactly 55 characters; a later one may go on, but
        // only after a separator.
        if (version == 0 && h.len() != LEN_V00) || (h.len() > LEN_V00 && h[LEN_V00] != b'-') {
            return None;
        }
        if h[35] != b'-' || h[52] != b'-' {
            return None;
        }
        let trace_id: [u8; 16] = hex_array(&h[3..35])?;
        let span_id: [u8; 8] = hex_array(&h[36..52])?;
        let flags = hex_byte(&h[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex_array<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = hex_byte(pair)?;
    }
    Some(out)
}

/// One byte from two lowercase hex digits (the spec refuses uppercase).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

/// Lowercase hex, as OTLP/JSON writes trace and span ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

//! The rate-limit headers clients' SDKs read, from a `Headroom`: OpenAI's
//! `x-ratelimit-*` (reset as a duration, `6m0s`) and Anthropic's
//! `anthropic-ratelimit-*` (reset as an RFC 3339 time).

use super::{DimensionStatus, Headroom};

pub type Headers = Vec<(&'static str, String)>;

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
pub fn openai(h: &Headroom) -> Headers {
    let mut out = Vec::new();
    let mut add = |s: Option<DimensionStatus>, names: [&'static str; 3]| {
        if let Some(s) = s {
            out.push((names[0], number(s.limit)));
            out.push((names[1], number(s.remaining)));
            out.push((names[2], duration(s.reset_ms)));
        }
    };
    add(
        h.requests,
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
    );
    add(
        h.tokens,
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    );
    out
}

/// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`.
pub fn anthropic(h: &Headroom, now_ms: u64) -> Headers {
    let mut out = Vec::new();
    let mut add = |s: Option<DimensionStatus>, names: [&'static str; 3]| {
        if let Some(s) = s {
            out.push((names[0], number(s.limit)));
            out.push((names[1], number(s.remaining)));
            out.push((names[2], time(now_ms.saturating_add(s.reset_ms))));
        }
    };
    add(
        h.requests,
        [
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ],
    );
    add(
        h.tokens,
        [
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ],
    );
    out
}

/// A duration as OpenAI writes it: `20ms`, `1s`, `6.5s`, `6m0s`, `1h2m3s`.
/// Written digit by digit: `format!` was most of a limited request's
/// header cost (callgrind).
pub fn duration(ms: u64) -> String {
    let mut out = String::with_capacity(12);
    if ms < 1000 {
        push_u64(&mut out, ms);
        out.push_str("ms");
        return out;
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    if h > 0 {
        push_u64(&mut out, h);
        out.push('h');
    }
    if h > 0 || m > 0 {
        push_u64(&mut out, m);
        out.push('m');
    }
    push_u64(&mut out, rest / 1000);
    let frac = rest % 1000;
    if frac > 0 {
        // Three digits, trailing zeros dropped: 500 → ".5", 50 → ".05".
        let digits = [frac / 100, frac / 10 % 10, frac % 10];
        let mut len = 3;
        while digits[len - 1] == 0 {
            len -= 1;
        }
        out.push('.');
        for d in &digits[..len] {
            out.push(char::from(b'0' + *d as u8));
        }
    }
    out.push('s');
    out
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn number(n: u64) -> String {
    let mut s = String::with_capacity(20);
    push_u64(&mut s, n);
    s
}

/// Unix milliseconds → RFC 3339 (UTC, whole seconds rounded up: the
/// limit is back by then).
pub fn time(ms: u64) -> String {
    let secs = i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX);
    crate::auth::format_rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::super::Dimension;
    use super::*;

    #[test]
    fn durations_read_like_openais() {
        for (ms, want) in [
            (0, "0ms"),
            (20, "20ms"),
            (1000, "1s"),
            (6500, "6.5s"),
            (6250, "6.25s"),
            (6205, "6.205s"),
            (60_050, "1m0.05s"),
            (u64::MAX, "5124095576030h25m51.615s"),
            (360_000, "6m0s"),
            (3_723_000, "1h2m3s"),
        ] {
            assert_eq!(duration(ms), want);
        }
    }

    #[test]
    fn both_header_families() {
        let s = |dimension, limit, remaining, reset_ms| {
            Some(DimensionStatus {
                dimension,
                limit,
                used: limit - remaining,
                remaining,
                reset_ms,
            })
        };
        let h = Headroom {
            requests: s(Dimension::Rpm, 10, 9, 60_000),
            tokens: s(Dimension::Tpm, 1000, 400, 1_500),
        };
        let o = openai(&h);
        assert_eq!(o[0], ("x-ratelimit-limit-requests", "10".into()));
        assert_eq!(o[1], ("x-ratelimit-remaining-requests", "9".into()));
        assert_eq!(o[2], ("x-ratelimit-reset-requests", "1m0s".into()));
        assert_eq!(o[5], ("x-ratelimit-reset-tokens", "1.5s".into()));
        let now = 1_796_256_000_000; // 2026-12-03T00:00:00Z
        let a = anthropic(&h, now);
        assert_eq!(
            a[2],
            (
                "anthropic-ratelimit-requests-reset",
                "2026-12-03T00:01:00Z".into()
            )
        );
        assert_eq!(a[4], ("anthropic-ratelimit-tokens-remaining", "400".into()));
        assert!(openai(&Headroom::default()).is_empty());
    }
}

//! The SSE decoder does not care how a stream is cut into reads: fed in
//! two pieces at every split point, or in any chunking, it yields exactly
//! the events of a one-shot feed. Any bytes at all never panic it.
//!
//! `PROPTEST_CASES` overrides each property's case count (`make fuzz`).

use filters::wire::sse::{SseDecoder, SseEvent};
use proptest::prelude::*;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn decode(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        d.feed(p, &mut out);
    }
    d.finish(&mut out);
    out
}

/// `bytes` cut before each of `cuts` (indices into it, any order); a
/// repeated cut makes an empty read, which must change nothing either.
fn chunks<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at.into_iter().chain([bytes.len()]) {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out
}

/// One line of a loosely framed stream: the field names upstreams send,
/// values with colons, spaces, multi-byte and invalid UTF-8, comments.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(&b"data"[..]),
        Just(&b"event"[..]),
        Just(&b"id"[..]),
        Just(&b"retry"[..]),
        Just(&b""[..]),
        Just(&b"dat"[..]),
    ];
    let value = proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(&b"ab{}\":, x"[..]),
            1 => proptest::sample::select(
                &[0xC3u8, 0xA9, 0xE2, 0x82, 0xAC, 0xFF, 0xEF, 0xBB, 0xBF][..]
            ),
        ],
        0..12,
    );
    prop_oneof![
        8 => (field, any::<u8>(), value.clone()).prop_map(|(f, sep, v)| {
            // No colon, a bare colon, or colon-space.
            let mut l = f.to_vec();
            match sep % 3 {
                0 => {}
                1 => l.push(b':'),
                _ => l.extend_from_slice(b": "),
            }
            l.extend(v);
            l
        }),
        1 => value.prop_map(|v| [&b":"[..], &v].concat()),
        2 => Just(Vec::new()),
    ]
}

fn terminator() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec((line(), terminator()), 0..24),
        any::<bool>(),
    )
        .prop_map(|(bom, lines, cut_last)| {
            let mut out = Vec::new();
            if bom {
                out.extend_from_slice(b"\xEF\xBB\xBF");
            }
            for (l, t) in &lines {
                out.extend_from_slice(l);
                out.extend_from_slice(t);
            }
            if cut_last {
                // The final terminator missing, as some upstreams do.
                while out.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    out.pop();
                }
            }
            out
        })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn every_split_point_gives_the_one_shot_events(bytes in stream()) {
        let whole = decode(&[&bytes]);
        for at in 0..=bytes.len() {
            let split = decode(&[&bytes[..at], &bytes[at..]]);
            let text = String::from_utf8_lossy(&bytes);
            prop_assert_eq!(&split, &whole, "split at {}: {:?}", at, text);
        }
    }

    #[test]
    fn any_chunking_gives_the_one_shot_events(
        bytes in stream(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let whole = decode(&[&bytes]);
        prop_assert_eq!(decode(&chunks(&bytes, &cuts)), whole);
    }

    #[test]
    fn byte_at_a_time_gives_the_one_shot_events(bytes in stream()) {
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(decode(&ones), decode(&[&bytes]));
    }

    #[test]
    fn any_bytes_in_any_chunking_never_panic(
        bytes in any_bytes(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let whole = decode(&[&bytes]);
        prop_assert_eq!(decode(&chunks(&bytes, &cuts)), whole);
    }

    #[test]
    fn a_size_limit_only_ever_truncates(
        bytes in stream(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        limit in 0usize..64,
    ) {
        // Under a limit the decoder may stop early, but what it yields is
        // always the start of what an unlimited decoder yields.
        let whole = decode(&[&bytes]);
        let mut d = SseDecoder::with_limit(limit);
        let mut out = Vec::new();
        for piece in chunks(&bytes, &cuts) {
            d.feed(piece, &mut out);
        }
        d.finish(&mut out);
        prop_assert!(out.len() <= whole.len());
        prop_assert_eq!(&whole[..out.len()], &out[..]);
        if !d.overflowed() {
            prop_assert_eq!(out, whole);
        }
    }
}

use proptest::prelude::*;

use super::*;

fn table() -> PriceTable {
    PriceTable::shipped().unwrap()
}

fn price(model: &str) -> Price {
    table().lookup(model).unwrap().clone()
}

fn usage(
    input_uncached: u64,
    cache_read: u64,
    cache_write: u64,
    output_total: u64,
    reasoning: u64,
) -> Usage {
    Usage {
        input_uncached,
        cache_read,
        cache_write,
        output_total,
        reasoning,
    }
}

/// Specs from a TOML snippet, through the same reader as the shipped file.
fn specs(toml: &str) -> Vec<PriceSpec> {
    read_price_file(toml).unwrap()
}

fn override_errors(toml: &str) -> Vec<String> {
    PriceTable::with_overrides(&specs(toml)).unwrap_err()
}

fn sum_of_buckets(c: &Cost) -> u64 {
    c.input + c.cache_read + c.cache_write + c.output + c.reasoning
}

// --- the shipped table -----------------------------------------------------

#[test]
fn shipped_table_parses_with_no_error() {
    let specs = read_price_file(SHIPPED).unwrap();
    assert_eq!(
        specs.len(),
        SHIPPED.lines().filter(|l| l.trim() == "[[prices]]").count()
    );
    let table = table();
    assert_eq!(table.entries().count(), specs.len());
    for spec in &specs {
        let p = table.lookup(&spec.model).unwrap();
        assert!(p.source.is_some(), "{} has no source", spec.model);
    }
}

/// Every number as written in the file (not as it went through `f64`) is a
/// whole number of micro-units per 1M tokens.
#[test]
fn every_shipped_price_is_exact_in_micros() {
    let mut seen = 0;
    for line in SHIPPED.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let key = line.trim_start();
        if ["source", "model", "vendor", "currency"]
            .iter()
            .any(|k| key.starts_with(k))
        {
            continue;
        }
        for token in line.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            if token.contains('.') {
                let p = PerMillion::parse(token).unwrap_or_else(|e| panic!("{line}: {e}"));
                // Exact: printing it back gives the written digits, zeros trimmed.
                let written = token.trim_end_matches('0').trim_end_matches('.');
                assert_eq!(p.to_string(), written, "{line}");
                seen += 1;
            }
        }
    }
    assert!(seen > 300, "only {seen} decimals found");
    // And through the f64 route the reader takes, each literal survives too.
    for spec in read_price_file(SHIPPED).unwrap() {
        let mut lits = vec![&spec.input, &spec.output];
        lits.extend(
            [
                &spec.cache_read,
                &spec.cache_write,
                &spec.cache_write_1h,
                &spec.reasoning,
            ]
            .into_iter()
            .flatten(),
        );
        for lit in lits {
            assert!(
                PerMillion::parse(lit.as_str()).is_ok(),
                "{}: {lit:?}",
                spec.model
            );
        }
    }
}

/// A glob that an earlier glob (or an exact name) already covers is dead
/// data: each glob, with `*` matching nothing, must find itself.
#[test]
fn no_shipped_entry_is_shadowed() {
    let table = table();
    for p in table.entries() {
        let name = p.model.replace('*', "");
        let found = table.lookup(&name).unwrap();
        assert!(
            found.model == p.model || (!glob::is_glob(&found.model) && found.model == name),
            "{} is shadowed by {}",
            p.model,
            found.model
        );
    }
}

#[test]
fn anthropic_long_context_cache_writes_keep_their_multiples() {
    // The file's comment: premium 5m / 1h writes would be 7.50 / 12.00.
    let sonnet4 = price("claude-sonnet-4-20250514");
    let tier = sonnet4.long_context.unwrap().rates;
    assert_eq!(tier.cache_write, PerMillion::from_micros(7_500_000));
    assert_eq!(tier.cache_write_1h, PerMillion::from_micros(12_000_000));
    assert_eq!(tier.cache_read, PerMillion::from_micros(600_000));
    // And Haiku 5.5's >100K band: 0.625 / 1.00.
    let haiku = price("claude-haiku-5-5").long_context.unwrap().rates;
    assert_eq!(haiku.cache_write, PerMillion::from_micros(625_000));
    assert_eq!(haiku.cache_write_1h, PerMillion::from_micros(1_000_000));
    // OpenAI: "2x input and cached input" carries to cache writes.
    let terra = price("gpt-5.6-terra").long_context.unwrap().rates;
    assert_eq!(terra.cache_write, PerMillion::from_micros(5_000_000));
}

// --- lookup ---------------------------------------------------------------

#[test]
fn exact_names_win_over_globs() {
    let t = table();
    // Exact `gpt-4o-2024-05-13` (launch price) before the `gpt-4o-20*` glob.
    assert_eq!(
        t.lookup("gpt-4o-2024-05-13").unwrap().base.input.micros(),
        5_000_000
    );
    let dated = t.lookup("gpt-4o-2024-08-06").unwrap();
    assert_eq!(dated.model, "gpt-4o-20*");
    assert_eq!(dated.base.input.micros(), 2_500_000);
    assert!(t.lookup("gpt-4o-audio-preview").is_none());
    assert!(t.lookup("no-such-model").is_none());
    // Case matters: upstream names are matched as sent.
    assert!(t.lookup("GPT-4o").is_none());
}

#[test]
fn globs_match_in_file_order() {
    let t = table();
    // `claude-opus-5-5*` comes first and is the only glob that fits.
    assert_eq!(
        t.lookup("claude-opus-5-5-20261001").unwrap().model,
        "claude-opus-5-5*"
    );
    assert_eq!(t.lookup("claude-opus-5").unwrap().model, "claude-opus-5");

    let layered = PriceTable::with_overrides(&specs(
        r#"
[[prices]]
model = "acme-*-large"
currency = "USD"
input = 1
output = 2

[[prices]]
model = "acme-*"
currency = "USD"
input = 3
output = 4
"#,
    ))
    .unwrap();
    assert_eq!(
        layered.lookup("acme-x-large").unwrap().model,
        "acme-*-large"
    );
    assert_eq!(layered.lookup("acme-x-small").unwrap().model, "acme-*");
}

#[test]
fn overrides_win_over_shipped_entries() {
    let t = PriceTable::with_overrides(&specs(
        r#"
[[prices]]
model = "gpt-4o"
currency = "USD"
input = 1
output = 1

[[prices]]
# A glob override beats even a shipped exact name.
model = "claude-opus-*"
currency = "EUR"
input = 9
output = 9
"#,
    ))
    .unwrap();
    assert_eq!(t.lookup("gpt-4o").unwrap().base.input.micros(), 1_000_000);
    assert_eq!(t.lookup("claude-opus-5").unwrap().currency.as_str(), "EUR");
    // Everything else still comes from the shipped table.
    assert_eq!(
        t.lookup("gpt-4o-mini").unwrap().base.input.micros(),
        150_000
    );
    assert_eq!(t.lookup("claude-sonnet-5").unwrap().currency, Currency::USD);
}

// --- cost -----------------------------------------------------------------

#[test]
fn openai_cached_input() {
    // gpt-4o: 2.50 in, 1.25 cached, 10.00 out.
    let c = cost(&price("gpt-4o"), &usage(1000, 2000, 0, 500, 0));
    assert_eq!(c.input, 2_500_000);
    assert_eq!(c.cache_read, 2_500_000);
    assert_eq!(c.cache_write, 0);
    assert_eq!(c.output, 5_000_000);
    assert_eq!(c.total, 10_000_000);
    assert_eq!(format_nanos(c.total, c.currency), "0.01 USD");
    assert!(!c.long_context);

    // o4-mini: reasoning is inside output and billed at the output price, once.
    let c = cost(&price("o4-mini"), &usage(10, 0, 0, 1000, 900));
    assert_eq!(c.output, 440_000);
    assert_eq!(c.reasoning, 3_960_000);
    assert_eq!(c.output + c.reasoning, 1000 * 4_400_000 / 1000);
}

#[test]
fn anthropic_5m_and_1h_cache_writes_and_reasoning() {
    // claude-opus-4-5: 5 in, 25 out, 0.50 read, 6.25 5m write, 10 1h write.
    let p = price("claude-opus-4-5-20251101");
    let u = usage(100, 10_000, 3000, 2000, 1500);
    let c = cost_with_1h_writes(&p, &u, 1000);
    assert_eq!(c.input, 500_000);
    assert_eq!(c.cache_read, 5_000_000);
    assert_eq!(c.cache_write, 2000 * 6_250 + 1000 * 10_000);
    assert_eq!(c.output, 500 * 25_000);
    assert_eq!(c.reasoning, 1500 * 25_000);
    assert_eq!(c.total, 78_000_000);
    assert_eq!(format_nanos(c.total, c.currency), "0.078 USD");

    // Without the split every write is a 5-minute one.
    let c5 = cost(&p, &u);
    assert_eq!(c5.cache_write, 3000 * 6_250);
    // A 1h count above the writes is clamped to them.
    assert_eq!(
        cost_with_1h_writes(&p, &u, u64::MAX).cache_write,
        3000 * 10_000
    );
}

#[test]
fn reasoning_priced_separately_when_the_entry_says_so() {
    let t = PriceTable::with_overrides(&specs(
        "[[prices]]\nmodel = \"r\"\ncurrency = \"USD\"\ninput = 1\noutput = 2\nreasoning = 3\n",
    ))
    .unwrap();
    let c = cost(t.lookup("r").unwrap(), &usage(0, 0, 0, 1_000_000, 400_000));
    assert_eq!(c.output, 600_000 * 2_000);
    assert_eq!(c.reasoning, 400_000 * 3_000);
    // More reasoning than output (an upstream's slip) is capped, not double-billed.
    let c = cost(t.lookup("r").unwrap(), &usage(0, 0, 0, 10, 50));
    assert_eq!((c.output, c.reasoning), (0, 10 * 3_000));
}

#[test]
fn gemini_2_5_pro_below_and_above_its_200k_tier() {
    let p = price("gemini-2.5-pro");
    // Exactly 200k input is not above the threshold.
    let below = cost(&p, &usage(150_000, 50_000, 0, 1000, 800));
    assert!(!below.long_context);
    assert_eq!(below.input, 187_500_000);
    assert_eq!(below.cache_read, 6_250_000);
    assert_eq!(below.output, 2_000_000);
    assert_eq!(below.reasoning, 8_000_000);
    assert_eq!(below.total, 203_750_000);

    // One more token and the whole request moves to 2.50 / 0.25 / 15.00.
    let above = cost(&p, &usage(150_001, 50_000, 0, 1000, 800));
    assert!(above.long_context);
    assert_eq!(above.input, 375_002_500);
    assert_eq!(above.cache_read, 12_500_000);
    assert_eq!(above.output, 3_000_000);
    assert_eq!(above.reasoning, 12_000_000);
    assert_eq!(above.total, 402_502_500);
    assert_eq!(format_nanos(above.total, above.currency), "0.4025025 USD");
}

#[test]
fn cny_entries_keep_their_currency() {
    let p = price("qwen-max");
    assert_eq!(p.currency, Currency::CNY);
    let c = cost(&p, &usage(1_000_000, 0, 0, 1_000_000, 0));
    assert_eq!(c.currency, Currency::CNY);
    assert_eq!(format_nanos(c.total, c.currency), "12 CNY");
    assert_eq!(price("glm-5.3").currency.to_string(), "CNY");
}

#[test]
fn rounding_is_half_up_once_per_bucket() {
    // Shipped prices have at most three decimals, so every one is a whole
    // number of nanos per token; finer overrides round per bucket.
    let t = PriceTable::with_overrides(&specs(
        "[[prices]]\nmodel = \"fine\"\ncurrency = \"USD\"\ninput = 0.000499\noutput = 0.0005\n",
    ))
    .unwrap();
    let p = t.lookup("fine").unwrap();
    // 0.499 nanos per input token, 0.5 per output token.
    assert_eq!(cost(p, &usage(1, 0, 0, 0, 0)).input, 0);
    assert_eq!(cost(p, &usage(2, 0, 0, 0, 0)).input, 1);
    assert_eq!(cost(p, &usage(0, 0, 0, 1, 0)).output, 1);
    assert_eq!(cost(p, &usage(0, 0, 0, 3, 0)).output, 2);
    // Input and cache reads are separate buckets, each rounded once.
    let c = cost(p, &usage(1, 1, 1, 1, 1));
    assert_eq!(
        (c.input, c.cache_read, c.cache_write, c.output, c.reasoning),
        (0, 0, 0, 0, 1)
    );
    assert_eq!(c.total, 1);
}

#[test]
fn huge_token_counts_saturate() {
    let max = u64::MAX;
    let dear = price("claude-opus-4-1");
    let c = cost_with_1h_writes(&dear, &usage(max, max, max, max, max), max / 2);
    assert_eq!(c.total, u64::MAX);
    assert_eq!(c.input, u64::MAX);
    assert_eq!(worst_case(&dear, max, max), u64::MAX);

    let absurd = Price {
        base: Rates {
            input: PerMillion::from_micros(max),
            output: PerMillion::from_micros(max),
            cache_read: PerMillion::from_micros(max),
            cache_write: PerMillion::from_micros(max),
            cache_write_1h: PerMillion::from_micros(max),
            reasoning: PerMillion::from_micros(max),
        },
        ..dear
    };
    let c = cost(&absurd, &usage(max, max, max, max, max));
    assert_eq!(c.total, u64::MAX);
    assert_eq!(worst_case(&absurd, max, max), u64::MAX);
    // The input total saturates too, and still selects the long tier.
    assert_eq!(
        cost(&price("gemini-2.5-pro"), &usage(max, max, 0, 0, 0)).total,
        u64::MAX
    );
}

#[test]
fn worst_case_uses_the_tier_only_when_the_estimate_crosses_it() {
    let p = price("gemini-2.5-pro");
    // 200k in at 1.25 + 1k out at 10, plus the rounding allowance.
    assert_eq!(worst_case(&p, 200_000, 1000), 250_000_000 + 10_000_000 + 2);
    assert_eq!(worst_case(&p, 200_001, 1000), 500_002_500 + 15_000_000 + 2);
    // Anthropic: the dearest input-side price is the 1h write (2x input).
    let opus = price("claude-opus-4-5");
    assert_eq!(worst_case(&opus, 1000, 0), 1000 * 10_000 + 2);
}

// --- specs that are refused -------------------------------------------------

#[test]
fn bad_specs_are_refused_with_their_entry_named() {
    let errors = override_errors(
        r#"
[[prices]]
model = "fine"
currency = "USD"
input = 1
output = 2

[[prices]]
model = "negative"
currency = "USD"
input = -1.5
output = 2

[[prices]]
model = "seven-decimals"
currency = "USD"
input = 1
output = 2
cache_read = 0.1234567

[[prices]]
model = "lowercase-currency"
currency = "usd"
input = 1
output = 2

[[prices]]
model = "bad-tier"
currency = "CNY"
input = 1
output = 2
long_context = { above = 10, input = "x", output = 0.00000001 }

[[prices]]
model = "fine"
currency = "USD"
input = 1
output = 2
"#,
    );
    let expect = [
        "prices[1].input: -1.5 is negative",
        "prices[2].cache_read: 0.1234567 has more than 6 decimals",
        "prices[3].currency: \"usd\" is not a currency code",
        "prices[4].long_context.input: \"x\" is not a plain decimal",
        "prices[4].long_context.output: 0.00000001 has more than 6 decimals",
        "prices[5].model: \"fine\" is already priced by prices[0]",
    ];
    for e in expect {
        assert!(
            errors.iter().any(|got| got.starts_with(e)),
            "{e:?} not in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    assert!(errors[0].ends_with("(model \"negative\")"), "{}", errors[0]);
}

#[test]
fn unknown_fields_are_refused_with_their_entry_named() {
    let err = read_price_file(
        "[[prices]]\nmodel = \"a\"\ncurrency = \"USD\"\ninput = 1\noutput = 1\n\n\
         [[prices]]\nmodel = \"b\"\ncurrency = \"USD\"\ninput = 1\noutput = 1\ndiscount = 0.5\n",
    )
    .unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err[0].starts_with("prices[1]"), "{err:?}");
    assert!(err[0].contains("unknown field `discount`"), "{err:?}");

    let err = read_price_file(
        "[[prices]]\nmodel = \"a\"\ncurrency = \"USD\"\ninput = 1\noutput = 1\n\
         long_context = { above = 5, input = 1, output = 1, cache_write_5m = 2 }\n",
    )
    .unwrap_err();
    assert!(err[0].starts_with("prices[0].long_context"), "{err:?}");
    assert!(err[0].contains("unknown field `cache_write_5m`"), "{err:?}");

    // A missing required field, and a wrong type.
    let err =
        read_price_file("[[prices]]\nmodel = \"a\"\ncurrency = \"USD\"\ninput = 1\n").unwrap_err();
    assert!(err[0].contains("missing field `output`"), "{err:?}");
    let err =
        read_price_file("[[prices]]\nmodel = 4.5\ncurrency = \"USD\"\ninput = 1\noutput = 1\n")
            .unwrap_err();
    assert!(err[0].starts_with("prices[0].model"), "{err:?}");
}

#[test]
fn empty_model_and_empty_table_are_refused() {
    let errors =
        override_errors("[[prices]]\nmodel = \" \"\ncurrency = \"USD\"\ninput = 1\noutput = 1\n");
    assert!(
        errors[0].starts_with("prices[0].model: must not be empty"),
        "{errors:?}"
    );
}

// --- units ----------------------------------------------------------------

#[test]
fn decimals_parse_exactly() {
    for (text, micros) in [
        ("2.5", 2_500_000),
        ("2.50", 2_500_000),
        ("0.0375", 37_500),
        ("8", 8_000_000),
        ("0", 0),
        ("0.000001", 1),
        ("0.10", 100_000),
        ("18446744073709.551615", u64::MAX),
    ] {
        assert_eq!(
            PerMillion::parse(text),
            Ok(PerMillion::from_micros(micros)),
            "{text}"
        );
    }
    for bad in [
        "",
        ".5",
        "5.",
        "1.2.3",
        "1e-3",
        "+1",
        "NaN",
        "inf",
        " -0",
        "1_000",
        "18446744073709.551616",
    ] {
        assert!(PerMillion::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn toml_floats_keep_their_written_digits() {
    for (json, text) in [
        ("0.0375", "0.0375"),
        ("2.50", "2.5"),
        ("10.00", "10"),
        ("8", "8"),
        ("\"0.125\"", "0.125"),
    ] {
        let lit: PriceLiteral = serde_json::from_str(json).unwrap();
        assert_eq!(lit.as_str(), text);
    }
    let lit: PriceLiteral = serde_json::from_str("0.0000001").unwrap();
    assert!(PerMillion::parse(lit.as_str())
        .unwrap_err()
        .contains("more than 6 decimals"));
    assert!(serde_json::from_str::<PriceLiteral>("true").is_err());
}

#[test]
fn currency_codes() {
    assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
    for bad in ["usd", "US", "USDT", "U$D", "ÜSD", ""] {
        assert!(Currency::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn nanos_display() {
    let usd = Currency::USD;
    assert_eq!(format_nanos(1_234_000, usd), "0.001234 USD");
    assert_eq!(format_nanos(0, usd), "0 USD");
    assert_eq!(format_nanos(1, usd), "0.000000001 USD");
    assert_eq!(format_nanos(1_500_000_000, usd), "1.5 USD");
    assert_eq!(
        format_nanos(u64::MAX, Currency::CNY),
        "18446744073.709551615 CNY"
    );
    assert_eq!(PerMillion::from_micros(37_500).to_string(), "0.0375");
}

// --- the shipped-file reader ----------------------------------------------------

#[test]
fn reader_handles_the_toml_a_price_file_needs() {
    let specs = specs(
        "# comment\n[[prices]]  # trailing\nmodel = 'lit#eral'\n  vendor = \"q\\\"\\u00e9 # not a comment\" # one\n\
         currency = \"USD\"\ninput = 1_000.5\noutput = +2\n",
    );
    assert_eq!(specs[0].model, "lit#eral");
    assert_eq!(specs[0].vendor.as_deref(), Some("q\"é # not a comment"));
    assert_eq!(specs[0].input.as_str(), "1000.5");
    assert_eq!(specs[0].output.as_str(), "2");
}

#[test]
fn a_file_that_is_not_a_price_list_is_refused() {
    for text in [
        "model = \"x\"\n",
        "[[models]]\nname = \"x\"\n",
        "[[prices]]\nmodel = \"open\n",
        "[[prices]]\nmodel = \"a\"\nmodel = \"b\"\n",
    ] {
        let errors = read_price_file(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
    }
}

// --- properties -----------------------------------------------------------

/// A price with arbitrary rates and an arbitrary tier, cheaper or dearer.
fn any_price() -> impl Strategy<Value = Price> {
    let rates = || {
        proptest::array::uniform6(0u64..100_000_000).prop_map(|r| Rates {
            input: PerMillion::from_micros(r[0]),
            output: PerMillion::from_micros(r[1]),
            cache_read: PerMillion::from_micros(r[2]),
            cache_write: PerMillion::from_micros(r[3]),
            cache_write_1h: PerMillion::from_micros(r[4]),
            reasoning: PerMillion::from_micros(r[5]),
        })
    };
    let shipped: Vec<Price> = table().entries().cloned().collect();
    prop_oneof![
        proptest::sample::select(shipped),
        (rates(), proptest::option::of((0u64..2_000_000, rates()))).prop_map(|(base, tier)| {
            Price {
                model: "any".into(),
                vendor: None,
                currency: Currency::USD,
                base,
                long_context: tier.map(|(above, rates)| LongContext { above, rates }),
                source: None,
            }
        }),
    ]
}

/// A usage within `input_estimate` and `max_output`, split every which way.
fn usage_within(input_estimate: u64, max_output: u64, split: [u64; 6]) -> (Usage, u64) {
    let part =
        |total: u64, per_mille: u64| total / 1000 * per_mille + total % 1000 * per_mille / 1000;
    let input_uncached = part(input_estimate, split[0]);
    let cache_read = part(input_estimate - input_uncached, split[1]);
    let cache_write = part(input_estimate - input_uncached - cache_read, split[2]);
    let output_total = part(max_output, split[3]);
    let reasoning = part(output_total, split[4]);
    let write_1h = part(cache_write, split[5]);
    (
        usage(
            input_uncached,
            cache_read,
            cache_write,
            output_total,
            reasoning,
        ),
        write_1h,
    )
}

proptest! {
    #[test]
    fn worst_case_bounds_any_usage_within_it(
        p in any_price(),
        input_estimate in prop_oneof![0u64..3_000_000, any::<u64>()],
        max_output in prop_oneof![0u64..200_000, any::<u64>()],
        split in proptest::array::uniform6(0u64..=1000),
    ) {
        let (u, write_1h) = usage_within(input_estimate, max_output, split);
        let c = cost_with_1h_writes(&p, &u, write_1h);
        prop_assert!(worst_case(&p, input_estimate, max_output) >= c.total, "{u:?} {c:?}");
    }

    #[test]
    fn buckets_sum_to_the_total_exactly(
        p in any_price(),
        tokens in proptest::array::uniform6(0u64..10_000_000_000),
    ) {
        let u = usage(tokens[0], tokens[1], tokens[2], tokens[3], tokens[4]);
        let c = cost_with_1h_writes(&p, &u, tokens[5]);
        prop_assert_eq!(sum_of_buckets(&c), c.total);
        prop_assert_eq!(c.currency, p.currency);
    }

    #[test]
    fn any_token_counts_never_panic(
        p in any_price(),
        tokens in proptest::array::uniform6(any::<u64>()),
    ) {
        let u = usage(tokens[0], tokens[1], tokens[2], tokens[3], tokens[4]);
        let c = cost_with_1h_writes(&p, &u, tokens[5]);
        prop_assert!(c.total >= c.input.max(c.cache_read).max(c.cache_write).max(c.output).max(c.reasoning));
        let _ = worst_case(&p, tokens[0], tokens[1]);
    }

    #[test]
    fn any_decimal_with_six_places_round_trips(whole in 0u64..100_000_000, frac in 0u64..1_000_000) {
        let text = format!("{whole}.{frac:06}");
        let p = PerMillion::parse(&text).unwrap();
        prop_assert_eq!(p.micros(), whole * 1_000_000 + frac);
        prop_assert_eq!(PerMillion::parse(&p.to_string()).unwrap(), p);
        // Through f64 the way a TOML number arrives, the same digits come back.
        let lit: PriceLiteral = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(PerMillion::parse(lit.as_str()).unwrap(), p);
    }
}

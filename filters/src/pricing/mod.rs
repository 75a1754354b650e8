//! What a request cost, exactly, from its usage: the price table per
//! upstream model and the arithmetic over the canonical usage buckets.
//!
//! Money is integer nano-currency ([`Nanos`]) and prices are integer
//! micro-currency per 1M tokens ([`PerMillion`]), so a price written with up
//! to six decimals is held exactly and a request's cost is a few integer
//! products rounded once per bucket: usage rows add up to the same total
//! whatever order they are summed in, which `f64` would not give.
//!
//! The table is the shipped `prices.toml` (compiled in) under the gateway
//! config's `[[prices]]` entries, which have the same shape ([`PriceSpec`]).
//! Entries are matched by the *upstream* model name only; `vendor` says
//! whose price list an entry comes from and is never used to match, because
//! a model served by a partner host or a compatible proxy is still priced by
//! its name, and an operator whose host bills differently overrides it.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use crate::canonical::Usage;
use crate::glob;

/// Money in billionths of a currency unit (nano-USD, nano-CNY): exact
/// integer sums, no float drift. `u64` holds about 18 billion units.
pub type Nanos = u64;

/// The shipped table. Checked by this module's tests: it parses, every price
/// is exact, and no glob is shadowed by an earlier one.
const SHIPPED: &str = include_str!("prices.toml");

// ---------------------------------------------------------------------------
// Units

/// A price per 1,000,000 tokens in micro-units of its currency (the same
/// number is nano-units per 1,000 tokens). Six decimals of the written price
/// are kept exactly; more are refused rather than rounded, since a price
/// silently rounded is a bill silently wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PerMillion(u64);

/// Micro-units in one currency unit: the six decimals a price may have.
const MICROS_PER_UNIT: u64 = 1_000_000;
const PRICE_DECIMALS: usize = 6;

impl PerMillion {
    pub const ZERO: Self = Self(0);

    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    pub const fn micros(self) -> u64 {
        self.0
    }

    /// A plain non-negative decimal as written in a price file: `8`, `2.5`,
    /// `0.0375`. No sign, exponent or separators.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(format!("{t} is negative"));
        }
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
            return Err(format!("{t:?} is not a plain decimal number (like 2.5)"));
        }
        if frac.len() > PRICE_DECIMALS {
            return Err(format!(
                "{t} has more than {PRICE_DECIMALS} decimals (prices are kept to a millionth per 1M tokens)"
            ));
        }
        let too_large = || format!("{t} is too large");
        let whole: u64 = int.parse().map_err(|_| too_large())?;
        // Right-pad the fraction to six digits: "0375" → "037500" micro-units.
        let frac_micros: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<PRICE_DECIMALS$}")
                .parse()
                .map_err(|_| too_large())?
        };
        whole
            .checked_mul(MICROS_PER_UNIT)
            .and_then(|m| m.checked_add(frac_micros))
            .map(Self)
            .ok_or_else(too_large)
    }

    /// The exact cost of `tokens` at this price in pico-units (10⁻¹²): one
    /// micro-unit per 1M tokens is one pico-unit per token. Cannot overflow:
    /// u64 × u64 fits u128.
    fn picos(self, tokens: u64) -> u128 {
        u128::from(tokens) * u128::from(self.0)
    }
}

impl fmt::Display for PerMillion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(
            f,
            self.0 / MICROS_PER_UNIT,
            self.0 % MICROS_PER_UNIT,
            PRICE_DECIMALS,
        )
    }
}

/// `whole.frac` with the fraction zero-padded to `width` and then trimmed.
fn write_decimal(f: &mut impl fmt::Write, whole: u64, frac: u64, width: usize) -> fmt::Result {
    write!(f, "{whole}")?;
    if frac != 0 {
        let digits = format!("{frac:0width$}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    Ok(())
}

/// An ISO 4217-shaped currency code: three uppercase ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Self = Self(*b"USD");
    pub const CNY: Self = Self(*b"CNY");

    pub fn parse(code: &str) -> Result<Self, String> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(format!(
                "{code:?} is not a currency code (three uppercase letters, like USD or CNY)"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII: `parse` and the constants admit nothing else.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `0.001234 USD`: the amount in currency units, trailing zeros trimmed, up
/// to nine decimals (every nano shown).
pub fn format_nanos(n: Nanos, currency: Currency) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_decimal(&mut s, n / 1_000_000_000, n % 1_000_000_000, 9);
    s.push(' ');
    s.push_str(currency.as_str());
    s
}

// ---------------------------------------------------------------------------
// The file's shape

/// A price as written in a price file, kept as decimal text so validation
/// can refuse a seventh decimal and name the entry. TOML numbers reach serde
/// as `f64`; Rust prints an `f64` as the shortest decimal that reads back to
/// it, which is the literal as written for anything up to 15 significant
/// digits, so `0.0375` stays `0.0375` (a longer price can be a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceLiteral(String);

impl PriceLiteral {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PriceLiteral {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PriceLiteral;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price per 1M tokens (a number like 2.5, or a decimal string)")
            }
            fn visit_u64<E>(self, v: u64) -> Result<PriceLiteral, E> {
                Ok(PriceLiteral(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<PriceLiteral, E> {
                Ok(PriceLiteral(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<PriceLiteral, E> {
                // NaN and infinities print as words that `PerMillion::parse` refuses.
                Ok(PriceLiteral(format!("{v}")))
            }
            fn visit_str<E>(self, v: &str) -> Result<PriceLiteral, E> {
                Ok(PriceLiteral(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One `[[prices]]` entry, in `prices.toml` or the gateway config. Prices
/// are per 1,000,000 tokens in `currency`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    /// Whose price list this is (`openai`, `anthropic`, …). Documentation
    /// only: never used to match (see the module docs).
    pub vendor: Option<String>,
    /// The upstream model name, exact or with `*` globs.
    pub model: String,
    pub currency: String,
    /// Uncached input.
    pub input: PriceLiteral,
    /// Output, visible and reasoning alike unless `reasoning` is given.
    pub output: PriceLiteral,
    /// Cache hits; absent: `input`.
    pub cache_read: Option<PriceLiteral>,
    /// Cache writes (Anthropic's 5-minute ones); absent: `input`.
    pub cache_write: Option<PriceLiteral>,
    /// Anthropic's 1-hour cache writes; absent: `cache_write`.
    pub cache_write_1h: Option<PriceLiteral>,
    /// Reasoning tokens; absent: `output`.
    pub reasoning: Option<PriceLiteral>,
    pub long_context: Option<LongContextSpec>,
    /// Where the numbers come from.
    pub source: Option<String>,
}

/// Prices for the whole request once its input (uncached + cache reads +
/// cache writes) exceeds `above` tokens, as Gemini 2.5 Pro and Claude Sonnet
/// 4 bill. A field left out keeps the base entry's ratio to input (cache
/// prices) or to output (`reasoning`): vendors state cache prices as
/// multiples of input, and those multiples hold in the long tier too
/// (Anthropic: "caching multipliers apply on top"; OpenAI: "2x input and
/// cached input").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextSpec {
    pub above: u64,
    pub input: PriceLiteral,
    pub output: PriceLiteral,
    pub cache_read: Option<PriceLiteral>,
    pub cache_write: Option<PriceLiteral>,
    pub cache_write_1h: Option<PriceLiteral>,
    pub reasoning: Option<PriceLiteral>,
}

// ---------------------------------------------------------------------------
// Validated prices

/// One set of rates with every fallback resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: PerMillion,
    pub output: PerMillion,
    pub cache_read: PerMillion,
    pub cache_write: PerMillion,
    pub cache_write_1h: PerMillion,
    pub reasoning: PerMillion,
}

impl Rates {
    /// The dearest way one input token can be billed.
    fn max_input(&self) -> PerMillion {
        self.input
            .max(self.cache_read)
            .max(self.cache_write)
            .max(self.cache_write_1h)
    }

    /// The dearest way one output token can be billed.
    fn max_output(&self) -> PerMillion {
        self.output.max(self.reasoning)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    /// The tier applies when the request's total input exceeds this.
    pub above: u64,
    pub rates: Rates,
}

/// A validated price entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// The name or glob it was matched by.
    pub model: String,
    pub vendor: Option<String>,
    pub currency: Currency,
    pub base: Rates,
    pub long_context: Option<LongContext>,
    pub source: Option<String>,
}

impl Price {
    /// Validates one entry. Errors are `field: reason`, every field checked.
    pub fn from_spec(spec: &PriceSpec) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        if spec.model.trim().is_empty() {
            errors.push("model: must not be empty".to_owned());
        }
        let currency = Currency::parse(&spec.currency)
            .map_err(|e| errors.push(format!("currency: {e}")))
            .ok();
        let e = &mut errors;
        let input = parse_rate(e, "input", &spec.input);
        let output = parse_rate(e, "output", &spec.output);
        let cache_write = parse_optional(e, "cache_write", &spec.cache_write).unwrap_or(input);
        let base = Rates {
            input,
            output,
            cache_read: parse_optional(e, "cache_read", &spec.cache_read).unwrap_or(input),
            cache_write,
            cache_write_1h: parse_optional(e, "cache_write_1h", &spec.cache_write_1h)
                .unwrap_or(cache_write),
            reasoning: parse_optional(e, "reasoning", &spec.reasoning).unwrap_or(output),
        };
        let long_context = spec.long_context.as_ref().map(|tier| {
            let input = parse_rate(e, "long_context.input", &tier.input);
            let output = parse_rate(e, "long_context.output", &tier.output);
            let mut by_input = |name: &str, lit: &Option<PriceLiteral>, base_rate: PerMillion| {
                parse_optional(e, name, lit).unwrap_or_else(|| scale(base_rate, input, base.input))
            };
            let cache_read = by_input("long_context.cache_read", &tier.cache_read, base.cache_read);
            let cache_write = by_input(
                "long_context.cache_write",
                &tier.cache_write,
                base.cache_write,
            );
            let cache_write_1h = by_input(
                "long_context.cache_write_1h",
                &tier.cache_write_1h,
                base.cache_write_1h,
            );
            let reasoning = parse_optional(e, "long_context.reasoning", &tier.reasoning)
                .unwrap_or_else(|| scale(base.reasoning, output, base.output));
            LongContext {
                above: tier.above,
                rates: Rates {
                    input,
                    output,
                    cache_read,
                    cache_write,
                    cache_write_1h,
                    reasoning,
                },
            }
        });
        match currency {
            Some(currency) if errors.is_empty() => Ok(Self {
                model: spec.model.clone(),
                vendor: spec.vendor.clone(),
                currency,
                base,
                long_context,
                source: spec.source.clone(),
            }),
            _ => Err(errors),
        }
    }

    /// The rates a request with `input_total` input tokens is billed at, and
    /// whether they are the long-context tier's.
    pub fn rates_for(&self, input_total: u64) -> (&Rates, bool) {
        match &self.long_context {
            Some(tier) if input_total > tier.above => (&tier.rates, true),
            _ => (&self.base, false),
        }
    }
}

/// Parses one price; a failure is recorded and stands in as zero, since the
/// entry is refused anyway.
fn parse_rate(errors: &mut Vec<String>, name: &str, lit: &PriceLiteral) -> PerMillion {
    PerMillion::parse(lit.as_str())
        .map_err(|e| errors.push(format!("{name}: {e}")))
        .unwrap_or_default()
}

fn parse_optional(
    errors: &mut Vec<String>,
    name: &str,
    lit: &Option<PriceLiteral>,
) -> Option<PerMillion> {
    lit.as_ref().map(|lit| parse_rate(errors, name, lit))
}

/// `rate × new_ref / old_ref`, rounded half-up to a micro-unit: a base price
/// carried into the long tier at the same multiple of its reference price.
/// With a free reference there is no multiple, so the tier's own reference
/// price is used.
fn scale(rate: PerMillion, new_ref: PerMillion, old_ref: PerMillion) -> PerMillion {
    if old_ref.0 == 0 {
        return new_ref;
    }
    let num = u128::from(rate.0) * u128::from(new_ref.0);
    let den = u128::from(old_ref.0);
    PerMillion(saturate((num + den / 2) / den))
}

fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// The table

/// Every price, looked up by upstream model name: overrides (exact names,
/// then globs in their order) before the shipped table (exact names, then
/// globs in file order). An override therefore wins over any shipped entry,
/// even a shipped exact name against an override glob, so a config line
/// like `model = "claude-*"` means what it says.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: Layer,
    shipped: Layer,
}

#[derive(Debug, Clone, Default)]
struct Layer {
    prices: Vec<Price>,
    /// Name → index into `prices`, for entries without `*`.
    exact: HashMap<String, usize>,
    /// Indexes into `prices` of glob entries, in file order.
    globs: Vec<usize>,
}

impl PriceTable {
    /// The shipped table alone.
    pub fn shipped() -> Result<Self, Vec<String>> {
        Self::with_overrides(&[])
    }

    /// The shipped table under the config's `[[prices]]`. Errors name the
    /// entry (`prices[3].cache_read: …`); errors in the shipped file are
    /// prefixed with its name (a bug in this build, not in the config).
    pub fn with_overrides(overrides: &[PriceSpec]) -> Result<Self, Vec<String>> {
        let shipped = read_price_file(SHIPPED)
            .and_then(|specs| Layer::build(&specs))
            .map_err(|errs| {
                errs.into_iter()
                    .map(|e| format!("shipped prices.toml: {e}"))
            });
        let overrides = Layer::build(overrides);
        match (overrides, shipped) {
            (Ok(overrides), Ok(shipped)) => Ok(Self { overrides, shipped }),
            (overrides, shipped) => {
                let mut errors = overrides.err().unwrap_or_default();
                errors.extend(shipped.err().into_iter().flatten());
                Err(errors)
            }
        }
    }

    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.overrides
            .lookup(model)
            .or_else(|| self.shipped.lookup(model))
    }

    /// Every entry in lookup order (overrides first), for listings.
    pub fn entries(&self) -> impl Iterator<Item = &Price> {
        self.overrides.prices.iter().chain(&self.shipped.prices)
    }
}

impl Layer {
    fn build(specs: &[PriceSpec]) -> Result<Self, Vec<String>> {
        let mut layer = Self::default();
        let mut errors = Vec::new();
        // Model → its entry's index: a repeated name could never be reached,
        // so it is refused rather than left to silently lose.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            if let Some(j) = seen.get(spec.model.as_str()) {
                errors.push(format!(
                    "prices[{i}].model: {:?} is already priced by prices[{j}]",
                    spec.model
                ));
                continue;
            }
            seen.insert(&spec.model, i);
            match Price::from_spec(spec) {
                Ok(price) => {
                    let index = layer.prices.len();
                    if glob::is_glob(&price.model) {
                        layer.globs.push(index);
                    } else {
                        layer.exact.insert(price.model.clone(), index);
                    }
                    layer.prices.push(price);
                }
                Err(errs) => errors.extend(
                    errs.into_iter()
                        .map(|e| format!("prices[{i}].{e} (model {:?})", spec.model)),
                ),
            }
        }
        if errors.is_empty() {
            Ok(layer)
        } else {
            Err(errors)
        }
    }

    fn lookup(&self, model: &str) -> Option<&Price> {
        let index = self.exact.get(model).copied().or_else(|| {
            self.globs.iter().copied().find(|&i| {
                self.prices
                    .get(i)
                    .is_some_and(|p| glob::matches(&p.model, model))
            })
        })?;
        self.prices.get(index)
    }
}

// ---------------------------------------------------------------------------
// Cost

/// What one request cost, per bucket. `total` is the sum of the five
/// buckets (saturating at `u64::MAX` nanos, some 18 billion units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub currency: Currency,
    pub total: Nanos,
    /// Uncached input.
    pub input: Nanos,
    pub cache_read: Nanos,
    /// 5-minute and 1-hour writes together.
    pub cache_write: Nanos,
    /// Visible output: `output_total − reasoning`.
    pub output: Nanos,
    pub reasoning: Nanos,
    /// Whether the long-context tier priced this request.
    pub long_context: bool,
}

/// The cost of `usage`, every cache write billed as a 5-minute one.
pub fn cost(price: &Price, usage: &Usage) -> Cost {
    cost_with_1h_writes(price, usage, 0)
}

/// The cost of `usage` when `cache_write_1h` of its `cache_write` tokens
/// were 1-hour writes (Anthropic's `cache_creation.ephemeral_1h_input_tokens`;
/// clamped to `cache_write`); the rest are billed as 5-minute writes.
///
/// The usage buckets are PROTOCOLS.md §4.3's: `output_total` includes
/// `reasoning`, so reasoning tokens are billed once, at the reasoning price,
/// and only the rest of the output at the output price. A `reasoning` above
/// `output_total` (an upstream's inconsistency) is capped to it: the output
/// count is what the vendor bills.
pub fn cost_with_1h_writes(price: &Price, usage: &Usage, cache_write_1h: u64) -> Cost {
    let (rates, long_context) = price.rates_for(usage.input_total());
    let write_1h = cache_write_1h.min(usage.cache_write);
    let write_5m = usage.cache_write - write_1h;
    let reasoning = usage.reasoning.min(usage.output_total);
    let visible = usage.output_total - reasoning;

    let input = round(rates.input.picos(usage.input_uncached));
    let cache_read = round(rates.cache_read.picos(usage.cache_read));
    let cache_write = round(
        rates
            .cache_write
            .picos(write_5m)
            .saturating_add(rates.cache_write_1h.picos(write_1h)),
    );
    let output = round(rates.output.picos(visible));
    let reasoning = round(rates.reasoning.picos(reasoning));
    let total = [cache_read, cache_write, output, reasoning]
        .into_iter()
        .fold(input, u64::saturating_add);
    Cost {
        currency: price.currency,
        total,
        input,
        cache_read,
        cache_write,
        output,
        reasoning,
        long_context,
    }
}

/// Pico-units to nanos, half-up.
fn round(picos: u128) -> Nanos {
    saturate(picos.saturating_add(500) / 1000)
}

/// The most a request with about `input_estimate` input tokens and at most
/// `max_output` output tokens can cost: what a budget reserves at admission,
/// so in-flight requests never overshoot it.
///
/// Every input token at the dearest input-side price (cache writes can cost
/// more than plain input), every output token at the dearer of output and
/// reasoning, over the long-context tier too when the estimate crosses it.
/// Plus 2.5 nanos: each of [`Cost`]'s five buckets rounds half-up once, so a
/// billed total can exceed the exact amount by up to half a nano per bucket.
pub fn worst_case(price: &Price, input_estimate: u64, max_output: u64) -> Nanos {
    let tier = price
        .long_context
        .as_ref()
        .filter(|t| input_estimate > t.above)
        .map(|t| &t.rates);
    let (mut input, mut output) = (price.base.max_input(), price.base.max_output());
    if let Some(tier) = tier {
        input = input.max(tier.max_input());
        output = output.max(tier.max_output());
    }
    let picos = input
        .picos(input_estimate)
        .saturating_add(output.picos(max_output))
        .saturating_add(2500);
    saturate(picos / 1000)
}

// ---------------------------------------------------------------------------
// Reading prices.toml

/// The shipped file: a list of `[[prices]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    prices: Vec<PriceSpec>,
}

/// Reads a file of `[[prices]]` tables into specs; errors name the entry
/// (`prices[3].cache_read: …`).
fn read_price_file(text: &str) -> Result<Vec<PriceSpec>, Vec<String>> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, PriceFile>(de)
        .map(|f| f.prices)
        .map_err(|e| {
            let path = e.path().to_string();
            vec![format!("{path}: {}", e.into_inner().message())]
        })
}

#[cfg(test)]
mod tests;

//! Budgets: money a key, a model or a provider may spend per calendar day
//! and per calendar month, in the gateway's one budget currency
//! (`[budgets] currency`), with the rates that bring other price
//! currencies into it (`[budgets] rates`).
//!
//! Amounts are exact: written as decimals (`5`, `"100.50"`), held as
//! integer nanos like every cost (`pricing::Nanos`), converted with rates
//! of at most six decimals in integer arithmetic. A reservation is
//! converted rounding up (it must cover the real cost), a settled cost to
//! the nearest nano.

use crate::pricing::{Currency, Nanos, PerMillion, PriceLiteral};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Nanos in one currency unit.
const NANOS_PER_UNIT: u64 = 1_000_000_000;
const AMOUNT_DECIMALS: usize = 9;

/// The largest budget accepted: a billion currency units (10^18 nanos),
/// so a day's or month's total plus one request's worst case stays far
/// inside `u64` and Redis's 64-bit integers.
pub const MAX_BUDGET_UNITS: u64 = 1_000_000_000;
pub const MAX_BUDGET: Nanos = MAX_BUDGET_UNITS * NANOS_PER_UNIT;

/// Money per day and per month; `None` is no budget for that period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    pub daily: Option<Nanos>,
    pub monthly: Option<Nanos>,
}

impl Budget {
    pub fn is_empty(&self) -> bool {
        self.daily.is_none() && self.monthly.is_none()
    }

    /// Zero (which would refuse every priced request; disable the key
    /// instead) and absurd amounts, by field name.
    pub fn problems(&self) -> Vec<String> {
        [("daily", self.daily), ("monthly", self.monthly)]
            .into_iter()
            .filter_map(|(name, v)| match v {
                Some(0) => Some(format!(
                    "{name}: must be more than 0 (leave it out for no budget)"
                )),
                Some(n) if n > MAX_BUDGET => Some(format!("{name}: at most {MAX_BUDGET_UNITS}")),
                _ => None,
            })
            .collect()
    }
}

/// The file's shape: `{ daily = 5, monthly = "100.50" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetSpec {
    daily: Option<PriceLiteral>,
    monthly: Option<PriceLiteral>,
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let spec = BudgetSpec::deserialize(d)?;
        let amount = |name: &str, lit: Option<PriceLiteral>| {
            lit.map(|l| {
                parse_amount(l.as_str()).map_err(|e| D::Error::custom(format!("{name}: {e}")))
            })
            .transpose()
        };
        let budget = Self {
            daily: amount("daily", spec.daily)?,
            monthly: amount("monthly", spec.monthly)?,
        };
        if budget.is_empty() {
            return Err(D::Error::custom(
                "a budget needs daily, monthly or both (leave it out for no budget)",
            ));
        }
        Ok(budget)
    }
}

/// As decimal strings in currency units (`"100.5"`): exact, and read back
/// by `Deserialize`.
impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        if let Some(n) = self.daily {
            map.serialize_entry("daily", &decimal(n))?;
        }
        if let Some(n) = self.monthly {
            map.serialize_entry("monthly", &decimal(n))?;
        }
        map.end()
    }
}

/// A plain non-negative decimal in currency units (`5`, `100.50`,
/// `0.000000001`) → nanos. More than nine decimals are refused rather than
/// rounded.
pub fn parse_amount(text: &str) -> Result<Nanos, String> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
        return Err(format!(
            "{t:?} is not a plain decimal amount (like 5 or \"100.50\")"
        ));
    }
    if frac.len() > AMOUNT_DECIMALS {
        return Err(format!(
            "{t} has more than {AMOUNT_DECIMALS} decimals (amounts are kept to a billionth)"
        ));
    }
    let too_large = || format!("{t} is too large (at most {MAX_BUDGET_UNITS})");
    let whole: u64 = int.parse().map_err(|_| too_large())?;
    let frac_nanos: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<AMOUNT_DECIMALS$}")
            .parse()
            .map_err(|_| too_large())?
    };
    whole
        .checked_mul(NANOS_PER_UNIT)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(too_large)
}

/// Nanos as a decimal in currency units, trailing zeros trimmed (`100.5`).
pub fn decimal(n: Nanos) -> String {
    let (whole, frac) = (n / NANOS_PER_UNIT, n % NANOS_PER_UNIT);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:0AMOUNT_DECIMALS$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Nanos as money in messages: at least two decimals (`5.00 USD`,
/// `0.125 USD`), every nano that is there.
pub fn money(n: Nanos, currency: Currency) -> String {
    let mut s = decimal(n);
    match s.find('.') {
        None => s.push_str(".00"),
        Some(dot) if s.len() - dot == 2 => s.push('0'),
        Some(_) => {}
    }
    format!("{s} {currency}")
}

/// The budget currency and the rates into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub currency: Currency,
    /// Units of `currency` per unit of each other currency, in micro-units.
    rates: HashMap<Currency, PerMillion>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new(Currency::USD)
    }
}

/// A price in a currency the budget currency has no rate for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRate {
    pub from: Currency,
    pub to: Currency,
}

impl fmt::Display for NoRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prices in {from} cannot be counted against budgets in {to}: add a rate to the gateway config, [budgets] rates = {{ {from} = \"…\" }} ({to} per {from})",
            from = self.from,
            to = self.to
        )
    }
}

impl Exchange {
    pub fn new(currency: Currency) -> Self {
        Self {
            currency,
            rates: HashMap::new(),
        }
    }

    /// `rate` units of the budget currency buy one unit of `from`.
    pub fn with_rate(mut self, from: Currency, rate: PerMillion) -> Self {
        self.rates.insert(from, rate);
        self
    }

    /// Every rate, for listings.
    pub fn rates(&self) -> impl Iterator<Item = (Currency, PerMillion)> + '_ {
        self.rates.iter().map(|(c, r)| (*c, *r))
    }

    fn rate(&self, from: Currency) -> Result<u128, NoRate> {
        if from == self.currency {
            return Ok(1_000_000);
        }
        self.rates
            .get(&from)
            .map(|r| u128::from(r.micros()))
            .ok_or(NoRate {
                from,
                to: self.currency,
            })
    }

    /// `amount` of `from` in the budget currency, rounded up: what a
    /// reservation holds, so it always covers the cost.
    pub fn up(&self, amount: Nanos, from: Currency) -> Result<Nanos, NoRate> {
        let rate = self.rate(from)?;
        Ok(saturate((u128::from(amount) * rate).div_ceil(1_000_000)))
    }

    /// `amount` of `from` in the budget currency, to the nearest nano
    /// (half up): what a settled cost counts.
    pub fn nearest(&self, amount: Nanos, from: Currency) -> Result<Nanos, NoRate> {
        let rate = self.rate(from)?;
        Ok(saturate((u128::from(amount) * rate + 500_000) / 1_000_000))
    }
}

fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(parse_amount("5"), Ok(5 * NANOS_PER_UNIT));
        assert_eq!(parse_amount("100.50"), Ok(100_500_000_000));
        assert_eq!(parse_amount("0.000000001"), Ok(1));
        assert!(parse_amount("0.0000000001")
            .unwrap_err()
            .contains("decimals"));
        for bad in ["", "-1", "1e3", "1.", ".5", "five", "1,5"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert!(parse_amount("99999999999999999999").is_err());
        assert_eq!(decimal(100_500_000_000), "100.5");
        assert_eq!(decimal(5 * NANOS_PER_UNIT), "5");
        assert_eq!(money(5 * NANOS_PER_UNIT, Currency::USD), "5.00 USD");
        assert_eq!(money(100_500_000_000, Currency::CNY), "100.50 CNY");
        assert_eq!(money(125_000_000, Currency::USD), "0.125 USD");
        assert_eq!(money(1, Currency::USD), "0.000000001 USD");
    }

    #[test]
    fn budgets_read_numbers_and_strings_and_refuse_empty_or_zero() {
        let b: Budget = serde_json::from_str(r#"{"daily": 5, "monthly": "100.50"}"#).unwrap();
        assert_eq!(
            b,
            Budget {
                daily: Some(5 * NANOS_PER_UNIT),
                monthly: Some(100_500_000_000)
            }
        );
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"daily":"5","monthly":"100.5"}"#
        );
        let b: Budget = serde_json::from_str(r#"{"daily": 0.25}"#).unwrap();
        assert_eq!((b.daily, b.monthly), (Some(250_000_000), None));
        let empty = serde_json::from_str::<Budget>("{}").unwrap_err();
        assert!(
            empty.to_string().contains("daily, monthly or both"),
            "{empty}"
        );
        assert!(serde_json::from_str::<Budget>(r#"{"weekly": 1}"#).is_err());
        let precise = serde_json::from_str::<Budget>(r#"{"daily": "0.0000000001"}"#).unwrap_err();
        assert!(precise.to_string().starts_with("daily: "), "{precise}");
        let zero: Budget =
            serde_json::from_str(r#"{"daily": 0, "monthly": "2000000000"}"#).unwrap();
        assert_eq!(
            zero.problems(),
            vec![
                "daily: must be more than 0 (leave it out for no budget)".to_owned(),
                format!("monthly: at most {MAX_BUDGET_UNITS}"),
            ]
        );
    }

    #[test]
    fn conversion_rounds_reservations_up_and_costs_to_nearest() {
        let x = Exchange::new(Currency::USD)
            .with_rate(Currency::CNY, PerMillion::parse("0.138").unwrap());
        // 1 CNY = 0.138 USD.
        assert_eq!(x.up(NANOS_PER_UNIT, Currency::CNY), Ok(138_000_000));
        assert_eq!(x.nearest(NANOS_PER_UNIT, Currency::CNY), Ok(138_000_000));
        // 7 nano-CNY = 0.966 nano-USD: a reservation holds 1, a cost counts 1.
        assert_eq!(x.up(7, Currency::CNY), Ok(1));
        assert_eq!(x.nearest(7, Currency::CNY), Ok(1));
        // 3 nano-CNY = 0.414: reserved as 1, counted as 0.
        assert_eq!(
            (x.up(3, Currency::CNY), x.nearest(3, Currency::CNY)),
            (Ok(1), Ok(0))
        );
        assert_eq!(x.up(42, Currency::USD), Ok(42));
        let eur = Currency::parse("EUR").unwrap();
        let e = x.up(1, eur).unwrap_err();
        assert_eq!(
            e,
            NoRate {
                from: eur,
                to: Currency::USD
            }
        );
        assert!(e.to_string().contains("[budgets] rates = { EUR = "), "{e}");
    }
}

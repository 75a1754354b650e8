use super::budget::Budget;
use super::day::{day_of, month_of, zone, DaySpan};
use super::*;

/// Day 1 spans the first 24 hours, month 1 the first 30 days.
fn clock(now_ms: u64) -> Clock {
    Clock {
        now_ms,
        day: DaySpan {
            id: 1,
            start_ms: 0,
            end_ms: 86_400_000,
        },
        month: DaySpan {
            id: 1,
            start_ms: 0,
            end_ms: 30 * 86_400_000,
        },
    }
}

fn tokens(n: u64) -> Amounts {
    Amounts {
        tokens: n,
        spend: 0,
    }
}

fn spend(n: Nanos) -> Amounts {
    Amounts {
        tokens: 0,
        spend: n,
    }
}

fn one(limits: &Limits, c: &mut Counters, n: u64, at: &Clock) -> Result<Ticket, Refusal> {
    one_of(limits, c, tokens(n), at)
}

fn one_of(
    limits: &Limits,
    c: &mut Counters,
    amounts: Amounts,
    at: &Clock,
) -> Result<Ticket, Refusal> {
    admit(
        &mut [Subject {
            scope: Scope::Key,
            name: "k",
            limits,
            counters: c,
        }],
        amounts,
        at,
    )
}

fn settle(c: &mut Counters, limits: &Limits, t: &Ticket, n: u64) {
    c.settle(limits, t, tokens(n));
}

#[test]
fn rpm_admits_exactly_the_limit_in_any_minute() {
    let limits = Limits {
        rpm: Some(10),
        ..Limits::default()
    };
    let mut c = Counters::default();
    let t0 = 5_500;
    let admitted = (0..100)
        .filter(|_| one(&limits, &mut c, 0, &clock(t0)).is_ok())
        .count();
    assert_eq!(admitted, 10);
    let refusal = one(&limits, &mut c, 0, &clock(t0)).unwrap_err();
    assert_eq!(
        (refusal.scope, refusal.dimension, refusal.limit),
        (Scope::Key, Dimension::Rpm, 10)
    );
    // Counted as if at the end of second 5: free again at 66 s, not before.
    assert_eq!(refusal.retry_after_ms, Some(66_000 - t0));
    assert!(one(&limits, &mut c, 0, &clock(65_999)).is_err());
    assert!(one(&limits, &mut c, 0, &clock(66_000)).is_ok());
    assert_eq!(refusal.retry_after_secs(), 61);
    assert!(refusal.message().contains("key 'k': rpm = 10"));
}

#[test]
fn no_sixty_second_span_ever_holds_more_than_the_limit() {
    // Requests every 137 ms for five minutes against rpm = 7: every
    // admitted instant's preceding 60 s holds at most 7 admissions.
    let limits = Limits {
        rpm: Some(7),
        ..Limits::default()
    };
    let mut c = Counters::default();
    let mut admitted = Vec::new();
    let mut t = 0;
    while t < 300_000 {
        if one(&limits, &mut c, 0, &clock(t)).is_ok() {
            admitted.push(t);
        }
        t += 137;
    }
    for (i, &at) in admitted.iter().enumerate() {
        let in_window = admitted[..=i].iter().filter(|&&x| x + 60_000 > at).count();
        assert!(in_window <= 7, "{in_window} in the minute before {at}");
    }
    // And not far below: about 7 per 61 s over five minutes.
    assert!(admitted.len() >= 30, "{}", admitted.len());
}

#[test]
fn tokens_reserve_then_settle_to_real_usage() {
    let limits = Limits {
        tpm: Some(1000),
        ..Limits::default()
    };
    let mut c = Counters::default();
    let a = one(&limits, &mut c, 600, &clock(1_000)).unwrap();
    // 600 reserved: 500 more do not fit while the first is in flight.
    let r = one(&limits, &mut c, 500, &clock(2_000)).unwrap_err();
    assert_eq!(r.dimension, Dimension::Tpm);
    assert!(!r.too_large);
    settle(&mut c, &limits, &a, 200);
    assert_eq!(c.tokens.used(), 200);
    let b = one(&limits, &mut c, 500, &clock(2_000)).unwrap();
    settle(&mut c, &limits, &b, 800);
    assert_eq!(c.tokens.used(), 1000);
    assert_eq!(c.in_flight, 0);
    // Exact after settlement: nothing more this minute.
    assert!(one(&limits, &mut c, 1, &clock(3_000)).is_err());
    // A request larger than the limit can never be admitted.
    let big = one(&limits, &mut c, 1001, &clock(200_000)).unwrap_err();
    assert!(big.too_large && big.retry_after_ms.is_none());
    assert!(big.message().contains("lower max_tokens"));
}

#[test]
fn settling_after_the_window_moved_on_changes_nothing_past() {
    let limits = Limits {
        tpm: Some(1000),
        tpd: Some(5000),
        ..Limits::default()
    };
    let mut c = Counters::default();
    let a = one(&limits, &mut c, 100, &clock(1_000)).unwrap();
    let _b = one(&limits, &mut c, 100, &clock(90_000)).unwrap();
    settle(&mut c, &limits, &a, 700);
    // a's second has left the minute; the day still counts it.
    assert_eq!(c.tokens.used(), 100);
    assert_eq!(c.tokens_day.used(), 800);
}

#[test]
fn days_reset_at_the_configured_midnight() {
    let limits = Limits {
        rpd: Some(2),
        ..Limits::default()
    };
    let tz = zone("Asia/Shanghai").unwrap();
    let at = |s: &str| {
        let ms = u64::try_from(s.parse::<jiff::Timestamp>().unwrap().as_millisecond()).unwrap();
        Clock {
            now_ms: ms,
            day: day_of(&tz, ms),
            month: month_of(&tz, ms),
        }
    };
    let mut c = Counters::default();
    assert!(one(&limits, &mut c, 0, &at("2026-12-03T10:00:00Z")).is_ok());
    assert!(one(&limits, &mut c, 0, &at("2026-12-03T12:00:00Z")).is_ok());
    let r = one(&limits, &mut c, 0, &at("2026-12-03T15:59:00Z")).unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms),
        (Dimension::Rpd, Some(60_000))
    );
    // Midnight in Shanghai is 16:00 UTC.
    assert!(one(&limits, &mut c, 0, &at("2026-12-03T16:00:00Z")).is_ok());
}

#[test]
fn concurrency_counts_requests_in_flight() {
    let limits = Limits {
        concurrency: Some(2),
        ..Limits::default()
    };
    let mut c = Counters::default();
    let a = one(&limits, &mut c, 0, &clock(0)).unwrap();
    let _b = one(&limits, &mut c, 0, &clock(0)).unwrap();
    let r = one(&limits, &mut c, 0, &clock(0)).unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms),
        (Dimension::Concurrency, None)
    );
    settle(&mut c, &limits, &a, 0);
    assert!(one(&limits, &mut c, 0, &clock(0)).is_ok());
}

#[test]
fn a_refusal_by_one_subject_uses_nothing_of_another() {
    let key = Limits {
        rpm: Some(5),
        ..Limits::default()
    };
    let model = Limits {
        rpm: Some(1),
        ..Limits::default()
    };
    let (mut kc, mut mc) = (Counters::default(), Counters::default());
    let subjects = |kc: &mut Counters, mc: &mut Counters| {
        admit(
            &mut [
                Subject {
                    scope: Scope::Key,
                    name: "k",
                    limits: &key,
                    counters: kc,
                },
                Subject {
                    scope: Scope::Model,
                    name: "m",
                    limits: &model,
                    counters: mc,
                },
            ],
            Amounts::ZERO,
            &clock(0),
        )
    };
    assert!(subjects(&mut kc, &mut mc).is_ok());
    let r = subjects(&mut kc, &mut mc).unwrap_err();
    assert_eq!((r.scope, r.subject.as_str()), (Scope::Model, "m"));
    assert_eq!(kc.requests.used(), 1);
}

#[test]
fn status_and_headroom_report_the_tightest_limit() {
    let limits = Limits {
        rpm: Some(10),
        rpd: Some(3),
        tpm: Some(100),
        ..Limits::default()
    };
    let mut c = Counters::default();
    let t = one(&limits, &mut c, 40, &clock(10_000)).unwrap();
    settle(&mut c, &limits, &t, 30);
    let statuses = c.status(&limits, &clock(10_500));
    let mut h = Headroom::default();
    h.add(&statuses);
    let req = h.requests.unwrap();
    assert_eq!(
        (req.dimension, req.limit, req.remaining),
        (Dimension::Rpd, 3, 2)
    );
    let tok = h.tokens.unwrap();
    assert_eq!((tok.limit, tok.used, tok.remaining), (100, 30, 70));
    assert_eq!(tok.reset_ms, 71_000 - 10_500);
}

#[test]
fn limits_read_earlier_systems_names_and_refuse_zero() {
    let l: Limits = serde_json::from_str(r#"{"rate_limit": 60, "daily_limit": 1000}"#).unwrap();
    assert_eq!((l.rpm, l.rpd), (Some(60), Some(1000)));
    let zero = Limits {
        tpm: Some(0),
        concurrency: Some(MAX_LIMIT + 1),
        ..Limits::default()
    };
    assert_eq!(
        zero.problems(),
        vec![
            "tpm: must be at least 1 (leave it out for no limit)".to_owned(),
            format!("concurrency: at most {MAX_LIMIT}")
        ]
    );
    assert!(serde_json::from_str::<Limits>(r#"{"rpx": 1}"#).is_err());
}

fn budget(daily: Option<Nanos>, monthly: Option<Nanos>) -> Limits {
    Limits {
        budget: Budget { daily, monthly },
        ..Limits::default()
    }
}

const UNIT: Nanos = 1_000_000_000;

#[test]
fn a_budget_reserves_the_worst_case_and_settles_to_the_real_cost() {
    let limits = budget(Some(5 * UNIT), None);
    let mut c = Counters::default();
    // Three requests that may cost 2 each: the third would overshoot.
    let a = one_of(&limits, &mut c, spend(2 * UNIT), &clock(1_000)).unwrap();
    let b = one_of(&limits, &mut c, spend(2 * UNIT), &clock(1_000)).unwrap();
    let r = one_of(&limits, &mut c, spend(2 * UNIT), &clock(1_000)).unwrap_err();
    assert_eq!(
        (r.dimension, r.limit, r.too_large),
        (Dimension::DailyBudget, 5 * UNIT, false)
    );
    assert_eq!(r.retry_after_ms, Some(86_400_000 - 1_000));
    // They cost 0.5 each: room again, exactly.
    c.settle(&limits, &a, spend(UNIT / 2));
    c.settle(&limits, &b, spend(UNIT / 2));
    assert_eq!(c.spend_day.used(), UNIT);
    assert_eq!(c.spend_month.used(), UNIT);
    let d = one_of(&limits, &mut c, spend(4 * UNIT), &clock(2_000)).unwrap();
    assert!(one_of(&limits, &mut c, spend(1), &clock(2_000)).is_err());
    // An unpriced request (worst case 0) passes a full budget.
    assert!(one_of(&limits, &mut c, spend(0), &clock(2_000)).is_ok());
    c.settle(&limits, &d, spend(4 * UNIT));
    let status = c.status(&limits, &clock(3_000));
    assert_eq!(status.len(), 1);
    assert_eq!(
        (status[0].dimension, status[0].used, status[0].remaining),
        (Dimension::DailyBudget, 5 * UNIT, 0)
    );
    // Budgets add no rate-limit headers.
    let mut h = Headroom::default();
    h.add(&status);
    assert!(h.is_empty());
    assert!(Headroom::exhausted(&r).is_empty());
}

#[test]
fn a_request_dearer_than_the_whole_budget_is_too_large() {
    let limits = budget(Some(5 * UNIT), Some(100 * UNIT));
    let mut c = Counters::default();
    let r = one_of(&limits, &mut c, spend(5 * UNIT + 1), &clock(0)).unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms, r.too_large),
        (Dimension::DailyBudget, None, true)
    );
    let mut r = r;
    r.currency = Some(crate::pricing::Currency::USD);
    assert_eq!(
        r.message(),
        "this request may cost more than the key 'k' may spend: its daily budget is 5.00 USD (spend per day); lower max_tokens"
    );
    assert!(one_of(&limits, &mut c, spend(5 * UNIT), &clock(0)).is_ok());
    assert_eq!(c.in_flight, 1);
}

#[test]
fn budget_refusals_name_the_budget_and_its_currency() {
    let r = Refusal {
        scope: Scope::Key,
        subject: "ci".into(),
        dimension: Dimension::DailyBudget,
        limit: 5 * UNIT,
        retry_after_ms: Some(1000),
        too_large: false,
        currency: Some(crate::pricing::Currency::USD),
    };
    assert_eq!(
        r.message(),
        "budget reached for key 'ci': daily budget 5.00 USD (spend per day)"
    );
    let monthly = Refusal {
        scope: Scope::Provider,
        dimension: Dimension::MonthlyBudget,
        limit: 100_500_000_000,
        currency: Some(crate::pricing::Currency::CNY),
        ..r
    };
    assert_eq!(
        monthly.message(),
        "budget reached for provider 'ci': monthly budget 100.50 CNY (spend per month)"
    );
}

#[test]
fn a_month_budget_resets_on_the_first_in_the_configured_zone() {
    let limits = budget(Some(3 * UNIT), Some(4 * UNIT));
    let tz = zone("Asia/Shanghai").unwrap();
    let at = |s: &str| {
        let ms = u64::try_from(s.parse::<jiff::Timestamp>().unwrap().as_millisecond()).unwrap();
        Clock {
            now_ms: ms,
            day: day_of(&tz, ms),
            month: month_of(&tz, ms),
        }
    };
    let mut c = Counters::default();
    // 30 November, then 31 December (local): the month is what runs out.
    one_of(
        &limits,
        &mut c,
        spend(3 * UNIT),
        &at("2026-11-30T15:00:00Z"),
    )
    .unwrap();
    one_of(
        &limits,
        &mut c,
        spend(3 * UNIT),
        &at("2026-12-01T15:00:00Z"),
    )
    .unwrap();
    let late = at("2026-12-31T15:00:00Z");
    let t = one_of(&limits, &mut c, spend(UNIT), &late).unwrap();
    let r = one_of(&limits, &mut c, spend(1), &late).unwrap_err();
    // Midnight on 1 January in Shanghai is 16:00 UTC: an hour away.
    assert_eq!(
        (r.dimension, r.retry_after_ms),
        (Dimension::MonthlyBudget, Some(3_600_000))
    );
    let new_year = at("2026-12-31T16:00:00Z");
    let first = one_of(&limits, &mut c, spend(3 * UNIT), &new_year).unwrap();
    assert_eq!(first.month, 202701);
    // December's request settles in December, not in January.
    c.settle(&limits, &t, spend(0));
    let status = c.status(&limits, &new_year);
    assert_eq!(
        status
            .iter()
            .map(|s| (s.dimension, s.used, s.reset_ms))
            .collect::<Vec<_>>(),
        vec![
            (Dimension::DailyBudget, 3 * UNIT, 86_400_000),
            (Dimension::MonthlyBudget, 3 * UNIT, 31 * 86_400_000),
        ]
    );
}

#[test]
fn spend_is_counted_only_where_a_budget_is() {
    let (key, model) = (budget(Some(10 * UNIT), None), Limits::default());
    let (mut kc, mut mc) = (Counters::default(), Counters::default());
    let t = admit(
        &mut [
            Subject {
                scope: Scope::Key,
                name: "k",
                limits: &key,
                counters: &mut kc,
            },
            Subject {
                scope: Scope::Model,
                name: "m",
                limits: &model,
                counters: &mut mc,
            },
        ],
        Amounts {
            tokens: 10,
            spend: 2 * UNIT,
        },
        &clock(0),
    )
    .unwrap();
    assert_eq!(
        t.reserved(),
        Amounts {
            tokens: 10,
            spend: 2 * UNIT
        }
    );
    kc.settle(&key, &t, spend(3 * UNIT));
    mc.settle(&model, &t, spend(3 * UNIT));
    assert_eq!((kc.spend_day.used(), mc.spend_day.used()), (3 * UNIT, 0));
    assert_eq!(mc.spend_month.used(), 0);
}

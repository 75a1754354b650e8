use super::*;
use crate::config::LimitSettings;
use filters::limits::budget::{Budget, Exchange};
use filters::limits::Dimension;
use filters::pricing::PerMillion;

fn settings(zone: &str) -> LimitSettings {
    LimitSettings {
        timezone: filters::limits::day::zone(zone).unwrap(),
        timezone_name: zone.to_owned(),
        default_reserve_output: 4096,
        allow_on_backend_error: true,
        redis_timeout: Duration::from_millis(200),
        budgets: Arc::new(
            Exchange::new(Currency::USD)
                .with_rate(Currency::CNY, PerMillion::parse("0.138").unwrap()),
        ),
    }
}

fn tokens(n: u64) -> Amounts {
    Amounts {
        tokens: n,
        spend: 0,
    }
}

fn used(n: u64) -> Option<Used> {
    Some(Used {
        tokens: n,
        cost: None,
    })
}

fn subject(scope: Scope, limits: Limits, counters: &Arc<Mutex<Counters>>) -> Subject {
    Subject {
        scope,
        name: Arc::from("s"),
        limits,
        counters: counters.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_concurrent_requests_admits_exactly_rpm() {
    let limiter = Arc::new(Limiter::memory());
    let counters = Arc::new(Mutex::new(Counters::default()));
    let limits = Limits {
        rpm: Some(10),
        ..Limits::default()
    };
    let s = settings("UTC");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (limiter, counters, s) = (limiter.clone(), counters.clone(), s.clone());
            tokio::spawn(async move {
                let subj = subject(Scope::Key, limits, &counters);
                match limiter
                    .admit(
                        vec![subj],
                        Amounts::ZERO,
                        &s,
                        Duration::from_secs(60),
                        &format!("r{i}"),
                    )
                    .await
                {
                    Ok(hold) => {
                        hold.release(used(0)).await;
                        true
                    }
                    Err(_) => false,
                }
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 10);
}

#[tokio::test(start_paused = true)]
async fn a_day_limit_resets_at_midnight_in_the_configured_zone() {
    // 23:59:00 in Shanghai (15:59:00 UTC).
    let start = u64::try_from(filters::auth::parse_rfc3339("2026-12-03T15:59:00Z").unwrap())
        .unwrap()
        * 1000;
    let limiter = Arc::new(Limiter::starting_at(start));
    let counters = Arc::new(Mutex::new(Counters::default()));
    let limits = Limits {
        rpd: Some(1),
        ..Limits::default()
    };
    let s = settings("Asia/Shanghai");
    let ask = || {
        limiter.admit(
            vec![subject(Scope::Key, limits, &counters)],
            Amounts::ZERO,
            &s,
            Duration::from_secs(60),
            "r",
        )
    };
    ask().await.unwrap().release(used(0)).await;
    match ask().await {
        Err(Refused::Limit(r)) => {
            assert_eq!(r.dimension, Dimension::Rpd);
            assert_eq!(r.retry_after_ms, Some(60_000));
        }
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(ask().await.is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(ask().await.is_ok(), "a new day in Shanghai");
    // In UTC it is still the same day.
    let utc = settings("UTC");
    let other = Arc::new(Mutex::new(Counters::default()));
    let ask_utc = || {
        limiter.admit(
            vec![subject(Scope::Key, limits, &other)],
            Amounts::ZERO,
            &utc,
            Duration::from_secs(60),
            "r",
        )
    };
    ask_utc().await.unwrap().release(used(0)).await;
    assert!(ask_utc().await.is_err());
}

#[tokio::test]
async fn holds_settle_to_real_usage_and_free_their_place_when_dropped() {
    let limiter = Arc::new(Limiter::memory());
    let counters = Arc::new(Mutex::new(Counters::default()));
    let limits = Limits {
        tpm: Some(1000),
        concurrency: Some(1),
        ..Limits::default()
    };
    let s = settings("UTC");
    let ask = |tokens| {
        limiter.admit(
            vec![subject(Scope::Key, limits, &counters)],
            self::tokens(tokens),
            &s,
            Duration::from_secs(60),
            "r",
        )
    };
    let hold = ask(900).await.unwrap();
    assert_eq!(hold.headroom.tokens.unwrap().remaining, 100);
    match ask(10).await {
        Err(Refused::Limit(r)) => assert_eq!(r.dimension, Dimension::Concurrency),
        other => panic!("{other:?}"),
    }
    hold.release(used(300)).await;
    let hold = ask(700).await.unwrap();
    // Dropped without a usage report: the reservation stands.
    drop(hold);
    assert_eq!(counters.lock().unwrap().tokens.used(), 1000);
    assert_eq!(counters.lock().unwrap().in_flight, 0);
    let e = refusal_error(&match ask(1).await {
        Err(Refused::Limit(r)) => r,
        other => panic!("{other:?}"),
    });
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.contains("key 's': tpm = 1000"), "{}", e.message);
    assert!(e.retry_after.is_some());
}

const UNIT: u64 = 1_000_000_000;

fn budgeted(daily: u64) -> Limits {
    Limits {
        budget: Budget {
            daily: Some(daily),
            monthly: None,
        },
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_budget_settles_to_the_real_cost_converted_to_its_currency() {
    let limiter = Arc::new(Limiter::memory());
    let counters = Arc::new(Mutex::new(Counters::default()));
    let s = settings("UTC");
    let ask = |spend| {
        limiter.admit(
            vec![subject(Scope::Key, budgeted(UNIT), &counters)],
            Amounts { tokens: 0, spend },
            &s,
            Duration::from_secs(60),
            "r",
        )
    };
    let hold = ask(UNIT / 2).await.unwrap();
    assert_eq!(hold.reserved().spend, UNIT / 2);
    // Budgets add no rate-limit headers.
    assert!(hold.headroom.is_empty());
    // 1 CNY at 0.138 USD.
    hold.release(Some(Used {
        tokens: 10,
        cost: Some((UNIT, Currency::CNY)),
    }))
    .await;
    assert_eq!(counters.lock().unwrap().spend_day.used(), 138_000_000);
    // A cost in a currency without a rate keeps what was reserved.
    let hold = ask(UNIT / 4).await.unwrap();
    let eur = Currency::parse("EUR").unwrap();
    hold.release(Some(Used {
        tokens: 10,
        cost: Some((1, eur)),
    }))
    .await;
    assert_eq!(counters.lock().unwrap().spend_day.used(), 388_000_000);
    // Unknown usage (the client left): the reservation stands; so does a
    // hold dropped unsettled.
    ask(UNIT / 4).await.unwrap().release(None).await;
    drop(ask(UNIT / 4).await.unwrap());
    assert_eq!(counters.lock().unwrap().spend_day.used(), 888_000_000);
    // An unpriced model costs nothing.
    ask(UNIT / 10).await.unwrap().release(used(5)).await;
    assert_eq!(counters.lock().unwrap().spend_day.used(), 888_000_000);
    let r = match ask(UNIT / 5).await {
        Err(Refused::Limit(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.currency, Some(Currency::USD));
    let e = refusal_error(&r);
    assert_eq!(
        e.message,
        "budget reached for key 's': daily budget 1.00 USD (spend per day)"
    );
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.code.as_deref(), Some("budget_exceeded"));
    assert!(e.retry_after.is_some() && e.final_answer);
    let status = limiter
        .status(&subject(Scope::Key, budgeted(UNIT), &counters), &s)
        .await;
    assert_eq!(
        (status[0].dimension, status[0].used, status[0].remaining),
        (Dimension::DailyBudget, 888_000_000, 112_000_000)
    );
}

#[tokio::test(start_paused = true)]
async fn a_monthly_budget_comes_back_on_the_first_of_the_month() {
    // 23:59:00 on 31 December in Shanghai (15:59:00 UTC).
    let start = u64::try_from(filters::auth::parse_rfc3339("2026-12-31T15:59:00Z").unwrap())
        .unwrap()
        * 1000;
    let limiter = Arc::new(Limiter::starting_at(start));
    let counters = Arc::new(Mutex::new(Counters::default()));
    let limits = Limits {
        budget: Budget {
            daily: None,
            monthly: Some(UNIT),
        },
        ..Limits::default()
    };
    let s = settings("Asia/Shanghai");
    let ask = || {
        limiter.admit(
            vec![subject(Scope::Model, limits, &counters)],
            Amounts {
                tokens: 0,
                spend: UNIT,
            },
            &s,
            Duration::from_secs(60),
            "r",
        )
    };
    let hold = ask().await.unwrap();
    match ask().await {
        Err(Refused::Limit(r)) => {
            assert_eq!(r.dimension, Dimension::MonthlyBudget);
            assert_eq!(r.retry_after_ms, Some(60_000));
            assert!(r.message().contains("model 's': monthly budget 1.00 USD"));
        }
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    // Settled in December after midnight: January keeps its whole budget.
    hold.release(used(0)).await;
    ask().await.unwrap().release(None).await;
    assert!(ask().await.is_err());
}

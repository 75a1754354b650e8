use super::*;
use crate::config::LimitSettings;
use filters::limits::Dimension;

fn settings(zone: &str) -> LimitSettings {
    LimitSettings {
        timezone: filters::limits::day::zone(zone).unwrap(),
        timezone_name: zone.to_owned(),
        default_reserve_output: 4096,
        allow_on_backend_error: true,
        redis_timeout: Duration::from_millis(200),
    }
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
                    .admit(vec![subj], 0, &s, Duration::from_secs(60), &format!("r{i}"))
                    .await
                {
                    Ok(hold) => {
                        hold.release(Some(0)).await;
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
            0,
            &s,
            Duration::from_secs(60),
            "r",
        )
    };
    ask().await.unwrap().release(Some(0)).await;
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
            0,
            &utc,
            Duration::from_secs(60),
            "r",
        )
    };
    ask_utc().await.unwrap().release(Some(0)).await;
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
            tokens,
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
    hold.release(Some(300)).await;
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

//! The queue, the spill file and its replay against real SQLite files.

use super::*;
use std::io::Write;
use std::sync::atomic::AtomicU64;

fn temp_db(tag: &str) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-usage-{tag}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("keys.db")
}

fn row(id: &str) -> UsageRow {
    UsageRow {
        ts: 1_700_000_000_000,
        request_id: id.into(),
        key_name: Some("k".into()),
        dialect: Some("openai".into()),
        endpoint: "/v1/chat/completions".into(),
        model: Some("m".into()),
        provider: Some("p".into()),
        upstream_model: Some("um".into()),
        attempts: r#"[{"provider":"p","model":"um","outcome":"ok","key":0}]"#.into(),
        status: 200,
        stream: false,
        input_uncached: 10,
        cache_read: 2,
        cache_write: 1,
        output: 7,
        reasoning: 3,
        cost_nanos: None,
        currency: None,
        latency_ms: 1.5,
        ttfb_ms: Some(1.0),
        overhead_ms: Some(0.5),
        bytes_in: Some(100),
        bytes_out: Some(200),
        client_addr: Some("127.0.0.1:1".into()),
        user_agent: Some("t".into()),
        session_id: None,
        routed_model: None,
        routed_by: None,
        scene: None,
        error: None,
    }
}

fn open(tag: &str, capacity: usize) -> (UsageSink, std::path::PathBuf) {
    let db = temp_db(tag);
    let store = KeyStore::open(&db).unwrap();
    (UsageSink::with_capacity(store, &db, capacity), db)
}

#[tokio::test]
async fn a_full_queue_spills_and_the_spill_is_replayed() {
    let (sink, _db) = open("spill", 2);
    for i in 0..5 {
        sink.record(row(&format!("req_{i}")));
    }
    assert_eq!(sink.queued(), 2);
    assert_eq!(sink.spilled(), 3);
    let text = std::fs::read_to_string(sink.spill.path()).unwrap();
    assert_eq!(text.lines().count(), 3);
    let back: UsageRow = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(back, row("req_2"));
    // The queue first, then (queue empty) the spill file.
    assert_eq!(sink.step().await.unwrap(), Step::Wrote(2));
    assert_eq!(sink.step().await.unwrap(), Step::Wrote(3));
    assert!(!sink.spill.path().exists());
    assert_eq!(sink.step().await.unwrap(), Step::Idle);
    assert_eq!(sink.store.usage_count().await.unwrap(), 5);
}

#[tokio::test]
async fn a_malformed_spill_line_is_skipped() {
    let (sink, _db) = open("malformed", 4);
    sink.spill.write(&row("req_a"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(sink.spill.path())
        .unwrap();
    f.write_all(b"{not json\n\n").unwrap();
    drop(f);
    sink.spill.write(&row("req_b"));
    assert_eq!(sink.spill.replay(&sink.store).await.unwrap(), 2);
    assert_eq!(sink.store.usage_count().await.unwrap(), 2);
}

#[tokio::test]
async fn a_replay_done_twice_counts_each_row_once() {
    let (sink, db) = open("twice", 4);
    for i in 0..3 {
        sink.spill.write(&row(&format!("req_{i}")));
    }
    let copy = db.with_extension("copy");
    std::fs::copy(sink.spill.path(), &copy).unwrap();
    assert_eq!(sink.spill.replay(&sink.store).await.unwrap(), 3);
    // A replay cut short before its file was removed: the leftover
    // `.replaying` file is replayed at the next start, inserting nothing.
    let mut replaying = sink.spill.path().as_os_str().to_owned();
    replaying.push(".replaying");
    std::fs::rename(&copy, &replaying).unwrap();
    let again = Spill::beside(&db);
    assert!(again.pending());
    assert_eq!(again.replay(&sink.store).await.unwrap(), 0);
    assert!(!std::path::Path::new(&replaying).exists());
    assert_eq!(sink.store.usage_count().await.unwrap(), 3);
}

#[tokio::test]
async fn finish_writes_the_queue_and_spill_and_later_rows_spill() {
    let (sink, _db) = open("finish", 2);
    for i in 0..4 {
        sink.record(row(&format!("req_{i}")));
    }
    sink.finish().await.unwrap();
    assert_eq!(sink.store.usage_count().await.unwrap(), 4);
    // After the queue closed, nothing is dropped: it spills.
    sink.record(row("req_late"));
    assert_eq!(sink.step().await.unwrap(), Step::Closed);
    assert!(sink.spill.path().exists());
}

#[test]
fn at_exit_a_writer_stuck_in_the_store_loses_no_queued_row() {
    let (sink, _db) = open("stuck", 100);
    for i in 0..5 {
        sink.record(row(&format!("req_{i}")));
    }
    // The writer is inside the store and never comes back.
    let stuck = sink.writer.try_lock().unwrap();
    flush_now(&sink, Duration::from_millis(200));
    drop(stuck);
    let text = std::fs::read_to_string(sink.spill.path()).unwrap();
    assert_eq!(
        text.lines().count(),
        5,
        "every queued row is in the spill file"
    );
    // And what comes after the exit flush spills too.
    sink.record(row("req_late"));
    let text = std::fs::read_to_string(sink.spill.path()).unwrap();
    assert_eq!(text.lines().count(), 6);
}

#[test]
fn client_text_loses_its_nul_characters() {
    assert_eq!(super::row::no_nul("a\0b\0".into()), "ab");
    assert_eq!(super::row::no_nul("plain".into()), "plain");
}

#[test]
fn a_row_carries_the_session_and_routing_the_request_path_found() {
    use std::sync::Arc;
    let mut rec = crate::record::RequestRecord::new("req_r".into());
    rec.client.key_name = Some("k".into());
    rec.client.session = Some(Arc::from("sess-1"));
    rec.client.routed = crate::record::Routed {
        model: Some(Arc::from("big")),
        by: Some(Arc::from("scene")),
        scene: Some(Arc::from("co\0de")),
    };
    let client = super::row::Client {
        session_id: Some("from-header".into()),
        ..Default::default()
    };
    let row = UsageRow::from_record(&rec, client, std::time::Duration::from_millis(5));
    // The request path's session wins over the row's own header read.
    assert_eq!(row.session_id.as_deref(), Some("sess-1"));
    assert_eq!(row.routed_model.as_deref(), Some("big"));
    assert_eq!(row.routed_by.as_deref(), Some("scene"));
    // No NUL reaches a text column (PostgreSQL refuses them).
    assert_eq!(row.scene.as_deref(), Some("code"));

    rec.client.session = None;
    rec.client.routed = crate::record::Routed::default();
    let client = super::row::Client {
        session_id: Some("from-header".into()),
        ..Default::default()
    };
    let row = UsageRow::from_record(&rec, client, std::time::Duration::from_millis(5));
    assert_eq!(row.session_id.as_deref(), Some("from-header"));
    assert_eq!(
        (row.routed_model, row.routed_by, row.scene),
        (None, None, None)
    );
}

#[test]
fn a_spill_line_written_before_the_routing_columns_still_reads() {
    let mut v = serde_json::to_value(row("req_old")).unwrap();
    let m = v.as_object_mut().unwrap();
    for f in ["routed_model", "routed_by", "scene"] {
        assert!(m.remove(f).is_some(), "{f}");
    }
    let back: UsageRow = serde_json::from_value(v).unwrap();
    assert_eq!(back, row("req_old"));
}

//! The key store against real SQLite files in the temp dir.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// A database path in a fresh directory of its own.
pub(super) fn temp_db(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir()
        .join(format!(
            "modelswitch-store-{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
        .join("keys.db")
}

fn limited(name: &str, rpm: u64) -> KeySpec {
    let mut spec = KeySpec::named(name);
    spec.limits.rpm = Some(rpm);
    spec.roles = vec!["admin".into()];
    spec.allowed_models = Some(vec!["gpt-*".into()]);
    spec
}

#[tokio::test]
async fn create_list_get_update_delete() {
    let store = KeyStore::open(&temp_db("crud")).unwrap();
    assert_eq!(store.version().await.unwrap(), 0);
    let (made, secret) = store.create(limited("alice", 10)).await.unwrap();
    assert!(filters::auth::is_minted(&secret));
    assert_eq!(made.hash, filters::auth::key_hash(&secret));
    assert_eq!(made.prefix, filters::auth::display_prefix(&secret));
    store.create(KeySpec::named("bob")).await.unwrap();
    assert_eq!(store.version().await.unwrap(), 2);

    let names: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.spec.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let got = store.get("alice").await.unwrap().unwrap();
    assert_eq!(got, made);
    let key = got.client_key().unwrap();
    assert_eq!(key.prefix.as_deref(), Some(made.prefix.as_str()));
    assert!(key.allows_model("gpt-4o") && !key.allows_model("claude"));
    assert_eq!(store.get("nobody").await.unwrap(), None);

    let updated = store.update("alice", limited("alice", 5)).await.unwrap();
    assert_eq!(updated.hash, made.hash);
    assert_eq!(updated.created_at, made.created_at);
    assert_eq!(
        store.get("alice").await.unwrap().unwrap().spec.limits.rpm,
        Some(5)
    );
    assert_eq!(store.version().await.unwrap(), 3);

    assert!(store.delete("alice").await.unwrap());
    assert!(!store.delete("alice").await.unwrap());
    assert_eq!(store.version().await.unwrap(), 4);
    assert_eq!(store.get("alice").await.unwrap(), None);
}

#[tokio::test]
async fn refuses_duplicates_renames_unknown_names_and_invalid_specs() {
    let store = KeyStore::open(&temp_db("refuse")).unwrap();
    store.create(KeySpec::named("a")).await.unwrap();
    assert_eq!(
        store.create(KeySpec::named("a")).await.unwrap_err(),
        StoreError::Conflict("a".into())
    );
    assert!(matches!(
        store.update("a", KeySpec::named("b")).await,
        Err(StoreError::Invalid(e)) if e[0].starts_with("name:")
    ));
    assert_eq!(
        store.update("zz", KeySpec::named("zz")).await.unwrap_err(),
        StoreError::NotFound("zz".into())
    );
    let mut bad = KeySpec::named("c");
    bad.roles = vec!["root".into()];
    assert!(matches!(
        store.create(bad).await,
        Err(StoreError::Invalid(e)) if e[0].starts_with("roles[0]")
    ));
    // Refusals change nothing.
    assert_eq!(store.version().await.unwrap(), 1);
}

#[tokio::test]
async fn touch_records_use_without_bumping_the_version() {
    let store = KeyStore::open(&temp_db("touch")).unwrap();
    store.create(KeySpec::named("a")).await.unwrap();
    let v = store.version().await.unwrap();
    store
        .touch(vec![("a".into(), 100), ("cfg".into(), 50)])
        .await
        .unwrap();
    store.touch(vec![("a".into(), 90)]).await.unwrap();
    assert_eq!(
        store.last_used().await.unwrap(),
        [("a".into(), 100), ("cfg".into(), 50)].into()
    );
    assert_eq!(store.version().await.unwrap(), v);
    // A new key under a revoked key's name starts unused.
    store.delete("a").await.unwrap();
    store.create(KeySpec::named("a")).await.unwrap();
    assert!(!store.last_used().await.unwrap().contains_key("a"));
}

#[tokio::test]
async fn the_file_never_holds_the_secret() {
    let path = temp_db("secret");
    let store = KeyStore::open(&path).unwrap();
    let (made, secret) = store.create(limited("s", 1)).await.unwrap();
    store.update("s", limited("s", 2)).await.unwrap();
    drop(store);
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        bytes.extend(std::fs::read(&p).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(&filters::auth::hex(&made.hash)),
        "read the wrong file"
    );
    assert!(!text.contains(&secret));
    assert!(
        !text.contains(&secret[10..]),
        "part of the secret is stored"
    );
}

#[tokio::test]
async fn two_opens_of_one_file_see_each_others_changes() {
    let path = temp_db("shared");
    let a = KeyStore::open(&path).unwrap();
    let b = KeyStore::open(&path).unwrap();
    a.create(KeySpec::named("from-a")).await.unwrap();
    assert!(b.get("from-a").await.unwrap().is_some());
    b.update("from-a", limited("from-a", 7)).await.unwrap();
    assert_eq!(
        a.get("from-a").await.unwrap().unwrap().spec.limits.rpm,
        Some(7)
    );
    assert_eq!(a.version().await.unwrap(), b.version().await.unwrap());
    assert_eq!(
        b.create(KeySpec::named("from-a")).await.unwrap_err(),
        StoreError::Conflict("from-a".into())
    );
}

#[test]
fn usable_from_a_plain_thread_and_from_other_runtimes() {
    let store = KeyStore::open(&temp_db("runtimes")).unwrap();
    let rt = |s: KeyStore, name: &'static str| {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(s.create(KeySpec::named(name)))
                .unwrap()
        })
    };
    let (one, two) = (rt(store.clone(), "one"), rt(store.clone(), "two"));
    one.join().unwrap();
    two.join().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(store.list()).unwrap().len(), 2);
}

#[test]
fn the_database_is_in_wal_mode_with_a_busy_timeout() {
    let path = temp_db("wal");
    drop(KeyStore::open(&path).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Sqlite::connect(&path).await.unwrap();
        assert_eq!(db.pragma("journal_mode").await.unwrap(), "wal");
        assert_eq!(db.pragma("busy_timeout").await.unwrap(), "5000");
        assert_eq!(db.pragma("foreign_keys").await.unwrap(), "1");
        db.close().await;
    });
    // The file itself says WAL (header bytes 18 and 19 are 2): every later
    // connection, whatever its options, uses it.
    let header = std::fs::read(&path).unwrap();
    assert_eq!(&header[18..20], &[2, 2]);
}

#[test]
fn errors_name_no_secret_and_read_well() {
    assert_eq!(
        StoreError::Conflict("a".into()).to_string(),
        "a key named 'a' exists"
    );
    assert_eq!(
        StoreError::NotFound("a".into()).to_string(),
        "no key named 'a'"
    );
    assert_eq!(
        StoreError::Invalid(vec!["x: 1".into(), "y: 2".into()]).to_string(),
        "x: 1; y: 2"
    );
}

fn ui_session(hash_of: &str, via: &str, expires_at: i64) -> UiSession {
    UiSession {
        hash: filters::auth::key_hash_hex(hash_of),
        user: if via == "password" {
            "(password)"
        } else {
            "ops"
        }
        .into(),
        role: "admin".into(),
        via: via.into(),
        key_fingerprint: (via == "key").then(|| "0123456789abcdef".to_owned()),
        created_at: 100,
        last_seen_at: 100,
        expires_at,
    }
}

#[tokio::test]
async fn sessions_round_trip_touch_and_revoke() {
    sessions_round_trip(&KeyStore::open(&temp_db("sessions")).unwrap()).await;
}

/// Sessions and the password setting on an empty store, any backend.
pub(super) async fn sessions_round_trip(store: &KeyStore) {
    let a = ui_session("token-a", "key", 1_000);
    let b = ui_session("token-b", "password", 2_000);
    let old = ui_session("token-old", "key", 50);
    for s in [&a, &b, &old] {
        store.create_session(s.clone()).await.unwrap();
    }
    assert_eq!(store.session(&a.hash).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.session("nope").await.unwrap(), None);
    assert_eq!(store.sessions().await.unwrap().len(), 3);
    // Sessions are not keys: the keys' version stays.
    assert_eq!(store.version().await.unwrap(), 0);

    store.touch_session(&a.hash, 500).await.unwrap();
    store.touch_session(&a.hash, 400).await.unwrap();
    assert_eq!(
        store.session(&a.hash).await.unwrap().unwrap().last_seen_at,
        500
    );

    assert_eq!(
        store
            .revoke_sessions(SessionMatch::ExpiredAt(60))
            .await
            .unwrap(),
        1
    );
    // An id is a prefix of the hash, and nothing but hex digits.
    assert_eq!(
        store
            .revoke_sessions(SessionMatch::Id("%".into()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .revoke_sessions(SessionMatch::Id(a.id().to_owned()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session(&a.hash).await.unwrap(), None);
    assert_eq!(store.setting(ADMIN_PASSWORD).await.unwrap(), None);
    // A new password ends the password sessions, in the same transaction.
    assert_eq!(
        store
            .set_admin_password("$argon2id$x".into())
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session(&b.hash).await.unwrap(), None);
    assert_eq!(
        store
            .set_admin_password("$argon2id$y".into())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.setting(ADMIN_PASSWORD).await.unwrap().as_deref(),
        Some("$argon2id$y")
    );
    assert_eq!(
        store
            .revoke_sessions(SessionMatch::Hash(b.hash.clone()))
            .await
            .unwrap(),
        0
    );
}

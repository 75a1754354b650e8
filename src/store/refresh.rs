//! Keeps the in-memory key table current with the store: a change made by
//! any process (the `keys` CLI, the admin API, another gateway) is served
//! within a second, and last-use times go back to the store in batches.
//! The request path never waits on the database; while it fails, the last
//! good table keeps serving.

use super::{KeyStore, StoreError, StoredKey};
use crate::state::keys::{Keys, StoreKey};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the store's version is read: one integer, cheap.
const POLL: Duration = Duration::from_millis(250);
/// How often last-use times are written.
const FLUSH: Duration = Duration::from_secs(5);
/// At most one warning per this while the database keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(30);

pub struct KeyRefresh {
    pub store: KeyStore,
    pub keys: Arc<Keys>,
}

/// Loads every store key into `keys` once; returns the version loaded.
pub async fn load_into(store: &KeyStore, keys: &Keys) -> Result<i64, StoreError> {
    // The version before the rows: a change landing between the two reads
    // is then loaded again at the next poll, never missed.
    let version = store.version().await?;
    let rows = store.list().await?;
    keys.set_store(servable(rows));
    Ok(version)
}

fn servable(rows: Vec<StoredKey>) -> Vec<StoreKey> {
    rows.into_iter()
        .filter_map(|row| match row.client_key() {
            Ok(key) => Some(StoreKey {
                hash: row.hash,
                key: Arc::new(key),
            }),
            Err(errs) => {
                log::warn!(
                    "store key '{}' is not served: {}",
                    row.spec.name,
                    errs.join("; ")
                );
                None
            }
        })
        .collect()
}

/// Writes the last uses that moved since the previous flush. `flushed`
/// holds what the store has (by name); a failed write is retried next time.
pub async fn flush_last_used(
    store: &KeyStore,
    keys: &Keys,
    flushed: &mut HashMap<String, i64>,
) -> Result<(), StoreError> {
    let mut current = HashMap::new();
    let mut moved = Vec::new();
    for entry in keys.all() {
        let at = entry.runtime.last_used.load(Ordering::Relaxed);
        if at == 0 {
            continue;
        }
        if flushed.get(&entry.key.name) != Some(&at) {
            moved.push((entry.key.name.clone(), at));
        }
        current.insert(entry.key.name.clone(), at);
    }
    store.touch(moved).await?;
    // Keys that are gone leave the map with their entries.
    *flushed = current;
    Ok(())
}

/// Writes every key's last use, blocking for at most `within`: for the
/// moment before the process exits, when no runtime is left to run the
/// refresh service's last flush.
pub fn flush_now(store: &KeyStore, keys: &Keys, within: std::time::Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::warn!("key store: last uses not written at exit: {e}");
            return;
        }
    };
    let mut flushed = HashMap::new();
    // The timer is made inside the runtime: outside, tokio panics.
    let done = rt.block_on(async {
        tokio::time::timeout(within, flush_last_used(store, keys, &mut flushed)).await
    });
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("key store: last uses not written at exit: {e}"),
        Err(_) => {
            log::warn!("key store: last uses not written at exit: the store did not answer in time")
        }
    }
}

/// Warns about a failing operation at most once per `WARN_EVERY`, and says
/// when it works again.
struct Trouble {
    what: &'static str,
    since: Option<Instant>,
}

impl Trouble {
    fn new(what: &'static str) -> Self {
        Self { what, since: None }
    }

    fn note(&mut self, result: Result<(), StoreError>) {
        match result {
            Ok(()) => {
                if self.since.take().is_some() {
                    log::info!("{}: the key store works again", self.what);
                }
            }
            Err(e) => {
                if self.since.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    log::warn!("{}: {e}", self.what);
                    self.since = Some(Instant::now());
                }
            }
        }
    }
}

impl KeyRefresh {
    async fn poll(&self, loaded: &mut Option<i64>) -> Result<(), StoreError> {
        if *loaded != Some(self.store.version().await?) {
            *loaded = Some(load_into(&self.store, &self.keys).await?);
        }
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for KeyRefresh {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut loaded = None;
        let mut flushed = HashMap::new();
        let mut last_flush = Instant::now();
        let mut loading = Trouble::new("loading store keys");
        let mut flushing = Trouble::new("recording key use");
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
            }
            loading.note(self.poll(&mut loaded).await);
            if last_flush.elapsed() >= FLUSH {
                last_flush = Instant::now();
                flushing.note(flush_last_used(&self.store, &self.keys, &mut flushed).await);
            }
        }
        // Uses since the last flush are not lost on a clean shutdown.
        flushing.note(flush_last_used(&self.store, &self.keys, &mut flushed).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_db;
    use filters::auth::{ClientKey, KeySource, KeySpec};

    #[tokio::test]
    async fn changes_from_another_handle_are_served_within_a_second() {
        let path = temp_db("refresh");
        let store = KeyStore::open(&path).unwrap();
        let keys = Arc::new(Keys::default());
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let refresh = KeyRefresh {
            store: store.clone(),
            keys: keys.clone(),
        };
        let running = tokio::spawn(async move { refresh.start(shutdown).await });
        // "Another process": a second open of the same file.
        let other = KeyStore::open(&path).unwrap();
        let (_, secret) = other.create(KeySpec::named("late")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while keys.find(&secret).is_none() {
            assert!(Instant::now() < deadline, "not served within 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        other.delete("late").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while keys.find(&secret).is_some() {
            assert!(
                Instant::now() < deadline,
                "still served 1 s after revocation"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        running.await.unwrap();
    }

    #[tokio::test]
    async fn last_uses_of_store_and_config_keys_are_flushed_once() {
        let store = KeyStore::open(&temp_db("flush")).unwrap();
        store.create(KeySpec::named("stored")).await.unwrap();
        let keys = Keys::default();
        let config = ClientKey::from_spec(KeySpec::named("cfg"), KeySource::Config, None).unwrap();
        keys.set_config(&[("sk-config".to_owned(), Arc::new(config))].into());
        load_into(&store, &keys).await.unwrap();
        let version = store.version().await.unwrap();
        keys.by_name("stored").unwrap().runtime.touch(100);
        keys.by_name("cfg").unwrap().runtime.touch(200);
        let mut flushed = HashMap::new();
        flush_last_used(&store, &keys, &mut flushed).await.unwrap();
        let used = store.last_used().await.unwrap();
        assert_eq!(used, [("stored".into(), 100), ("cfg".into(), 200)].into());
        assert_eq!(store.version().await.unwrap(), version);
        // Nothing moved: nothing to write, and an older time never wins.
        store.touch(vec![("cfg".into(), 150)]).await.unwrap();
        flush_last_used(&store, &keys, &mut flushed).await.unwrap();
        assert_eq!(store.last_used().await.unwrap()["cfg"], 200);
    }
}

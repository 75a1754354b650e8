//! Active health checks for the replica pools of whatever config is live.
//! Each health-checked pool runs Pingora's load-balancer loop (checks at
//! the configured interval) from when a config brings it in until a reload
//! drops it; a pool a reload kept keeps its loop and its health.

use super::replicas::ReplicaPool;
use super::LiveStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How soon a pool that a reload brought in starts being checked.
const RESCAN: Duration = Duration::from_millis(500);

pub struct HealthChecks {
    pub store: LiveStore,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Pool address → the pool (held, so the address stays its own) and
        // the stop signal of its check loop.
        let mut running: HashMap<usize, (Arc<ReplicaPool>, watch::Sender<bool>)> = HashMap::new();
        loop {
            let live = self.store.load_full();
            let mut current = HashMap::new();
            for (_, state) in live.providers() {
                let Some(pool) = &state.replicas else {
                    continue;
                };
                let Some(lb) = pool.health_service() else {
                    continue;
                };
                let id = Arc::as_ptr(pool) as usize;
                let entry = running.remove(&id).unwrap_or_else(|| {
                    let (tx, rx) = watch::channel(false);
                    tokio::spawn(async move { lb.start(rx).await });
                    (pool.clone(), tx)
                });
                current.insert(id, entry);
            }
            // Pools the live config no longer has: stop their checks.
            for (_, (_, stop)) in running.drain() {
                let _ = stop.send(true);
            }
            running = current;
            drop(live);
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(RESCAN) => {}
            }
        }
        for (_, (_, stop)) in running {
            let _ = stop.send(true);
        }
    }
}

//! Several base URLs behind one provider (self-hosted vLLM, Ollama or
//! LM Studio replicas), or one URL with an active health check: selection and
//! health through `pingora-load-balancing`. Unhealthy replicas are skipped;
//! a provider with none healthy is skipped like an open breaker.

use crate::config::{Balance, Replicas};
use http::{HeaderName, HeaderValue};
use pingora::lb::discovery::Static;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr as LbAddr;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct ReplicaPool {
    lb: Arc<LoadBalancer<RoundRobin>>,
    balance: Balance,
    /// (host name, `Host` header) per replica address.
    hosts: HashMap<SocketAddr, (String, String)>,
    inflight: Arc<HashMap<SocketAddr, AtomicUsize>>,
    /// How long an all-unhealthy pool waits before it is worth a new look.
    pub recheck: Duration,
    tie_break: AtomicUsize,
    checked: bool,
}

impl std::fmt::Debug for ReplicaPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaPool")
            .field("replicas", &self.hosts)
            .field("balance", &self.balance)
            .field("health_checked", &self.checked)
            .finish()
    }
}

/// Decrements a replica's in-flight count when the call ends.
pub struct InFlight {
    counts: Arc<HashMap<SocketAddr, AtomicUsize>>,
    addr: SocketAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = self.counts.get(&self.addr) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub struct Chosen {
    pub addr: SocketAddr,
    /// For TLS SNI.
    pub host: String,
    pub host_header: String,
    pub guard: InFlight,
}

fn std_addr(a: &LbAddr) -> Option<SocketAddr> {
    match a {
        LbAddr::Inet(a) => Some(*a),
        _ => None,
    }
}

impl ReplicaPool {
    /// Resolves each replica once (replicas are usually fixed addresses)
    /// and prepares selection; `health` adds an active check.
    /// `auth`: the headers a health check sends (the provider's first
    /// key), so a check of an authenticated endpoint is not a 401.
    pub fn build(
        replicas: &Replicas,
        tls: bool,
        auth: &[(HeaderName, HeaderValue)],
    ) -> Result<Self, String> {
        let specs = &replicas.specs;
        let balance = replicas.balance;
        let health = replicas.health.as_ref();
        let mut backends = BTreeSet::new();
        let mut hosts = HashMap::new();
        for s in specs {
            let addr = resolve_once(&s.host, s.port)?;
            backends.insert(
                Backend::new_with_weight(&addr.to_string(), s.weight.max(1))
                    .map_err(|e| e.to_string())?,
            );
            let header = filters::wire::http::host_header(&s.host, s.port, tls);
            hosts.insert(addr, (s.host.clone(), header));
        }
        let mut lb =
            LoadBalancer::<RoundRobin>::from_backends(Backends::new(Static::new(backends)));
        if let Some(h) = health {
            let first = specs.first().map(|s| s.host.as_str()).unwrap_or_default();
            let mut hc = HttpHealthCheck::new(first, tls);
            let mut req = pingora::http::RequestHeader::build("GET", h.path.as_bytes(), None)
                .map_err(|e| e.to_string())?;
            for (k, v) in auth {
                req.insert_header(k.clone(), v.clone())
                    .map_err(|e| e.to_string())?;
            }
            req.insert_header("Host", first)
                .map_err(|e| e.to_string())?;
            hc.req = req;
            hc.consecutive_success = h.healthy_threshold.max(1);
            hc.consecutive_failure = h.unhealthy_threshold.max(1);
            hc.peer_template.options.connection_timeout = Some(h.timeout);
            hc.peer_template.options.read_timeout = Some(h.timeout);
            lb.set_health_check(Box::new(hc));
            lb.health_check_frequency = Some(h.interval);
        }
        // Fill the selector now, so the first request finds the replicas
        // before the background service's first round.
        // Static discovery completes at once, so this blocks for nothing, and
        // unlike a nested tokio runtime it is safe inside one (config reloads).
        futures::executor::block_on(lb.update()).map_err(|e| e.to_string())?;
        let inflight = hosts.keys().map(|a| (*a, AtomicUsize::new(0))).collect();
        Ok(Self {
            lb: Arc::new(lb),
            balance,
            hosts,
            inflight: Arc::new(inflight),
            recheck: health.map_or(Duration::from_secs(1), |h| h.interval),
            tie_break: AtomicUsize::new(0),
            checked: health.is_some(),
        })
    }

    /// The load balancer, for the service that runs its health checks.
    pub fn health_service(&self) -> Option<Arc<LoadBalancer<RoundRobin>>> {
        self.checked.then(|| self.lb.clone())
    }

    /// Each replica: its address, host name, health and calls in flight,
    /// for the admin API.
    pub fn report(&self) -> Vec<(SocketAddr, String, bool, usize)> {
        let backends = self.lb.backends();
        let mut out: Vec<_> = backends
            .get_backend()
            .iter()
            .filter_map(|b| {
                let addr = std_addr(&b.addr)?;
                let host = self
                    .hosts
                    .get(&addr)
                    .map(|h| h.0.clone())
                    .unwrap_or_default();
                let busy = self
                    .inflight
                    .get(&addr)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                Some((addr, host, backends.ready(b), busy))
            })
            .collect();
        out.sort_by_key(|r| r.0);
        out
    }

    pub fn any_healthy(&self) -> bool {
        let backends = self.lb.backends();
        backends.get_backend().iter().any(|b| backends.ready(b))
    }

    /// `preferred` when it is one of the replicas and healthy (a session's
    /// replica, whose prompt cache is warm), else the balanced pick. A
    /// preferred pick leaves the rotation where it was.
    pub fn select(&self, preferred: Option<SocketAddr>) -> Option<Chosen> {
        let sticky = preferred.filter(|want| {
            let backends = self.lb.backends();
            backends
                .get_backend()
                .iter()
                .any(|b| std_addr(&b.addr) == Some(*want) && backends.ready(b))
        });
        let addr = match (sticky, self.balance) {
            (Some(addr), _) => addr,
            (None, Balance::RoundRobin) => {
                self.lb.select(b"", 256).and_then(|b| std_addr(&b.addr))?
            }
            (None, Balance::LeastInFlight) => {
                let backends = self.lb.backends();
                let healthy: Vec<SocketAddr> = backends
                    .get_backend()
                    .iter()
                    .filter(|b| backends.ready(b))
                    .filter_map(|b| std_addr(&b.addr))
                    .collect();
                let load = |a: &SocketAddr| {
                    self.inflight
                        .get(a)
                        .map_or(0, |c| c.load(Ordering::Relaxed))
                };
                let least = healthy.iter().map(load).min()?;
                let tied: Vec<SocketAddr> =
                    healthy.into_iter().filter(|a| load(a) == least).collect();
                let turn = self.tie_break.fetch_add(1, Ordering::Relaxed);
                *tied.get(turn % tied.len().max(1))?
            }
        };
        if let Some(c) = self.inflight.get(&addr) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let (host, host_header) = self.hosts.get(&addr).cloned().unwrap_or_default();
        Some(Chosen {
            addr,
            host,
            host_header,
            guard: InFlight {
                counts: self.inflight.clone(),
                addr,
            },
        })
    }
}

fn resolve_once(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no addresses"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::ReplicaSpec;

    fn specs(ports: &[(u16, usize)], balance: Balance) -> Replicas {
        Replicas {
            specs: ports
                .iter()
                .map(|&(port, weight)| ReplicaSpec {
                    host: "127.0.0.1".into(),
                    port,
                    weight,
                })
                .collect(),
            balance,
            health: None,
        }
    }

    #[tokio::test]
    async fn builds_inside_a_runtime_too() {
        let pool =
            ReplicaPool::build(&specs(&[(7001, 1)], Balance::RoundRobin), false, &[]).unwrap();
        assert_eq!(pool.select(None).unwrap().addr.port(), 7001);
    }

    #[test]
    fn weighted_round_robin_follows_the_weights() {
        let pool = ReplicaPool::build(
            &specs(&[(7001, 3), (7002, 1)], Balance::RoundRobin),
            false,
            &[],
        )
        .unwrap();
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for _ in 0..400 {
            let c = pool.select(None).unwrap();
            *counts.entry(c.addr.port()).or_default() += 1;
        }
        assert_eq!(counts[&7001], 300);
        assert_eq!(counts[&7002], 100);
        assert!(pool.any_healthy());
    }

    #[test]
    fn a_preferred_replica_is_chosen_without_moving_the_rotation() {
        for balance in [Balance::RoundRobin, Balance::LeastInFlight] {
            let pool =
                ReplicaPool::build(&specs(&[(7001, 1), (7002, 1)], balance), false, &[]).unwrap();
            let want: SocketAddr = "127.0.0.1:7002".parse().unwrap();
            let held: Vec<Chosen> = (0..3).map(|_| pool.select(Some(want)).unwrap()).collect();
            assert!(held.iter().all(|c| c.addr == want), "{balance:?}");
            assert_eq!(
                pool.select(None).unwrap().addr.port(),
                7001,
                "{balance:?}: the balanced pick is untouched"
            );
            let elsewhere: SocketAddr = "127.0.0.1:7999".parse().unwrap();
            assert!(pool.select(Some(elsewhere)).is_some(), "not a replica");
        }
    }

    #[test]
    fn least_in_flight_prefers_the_idle_replica_and_rotates_ties() {
        let pool = ReplicaPool::build(
            &specs(&[(7001, 1), (7002, 1)], Balance::LeastInFlight),
            false,
            &[],
        )
        .unwrap();
        let busy = pool.select(None).unwrap();
        for _ in 0..5 {
            let c = pool.select(None).unwrap();
            assert_ne!(c.addr, busy.addr, "the busy replica is avoided");
            assert_eq!(c.host_header, format!("127.0.0.1:{}", c.addr.port()));
        }
        drop(busy);
        let a = pool.select(None).unwrap().addr;
        let b = pool.select(None).unwrap().addr;
        assert_ne!(a, b, "idle ties rotate");
    }
}

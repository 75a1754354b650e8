//! TLS on the client side: the certificates the TLS listeners serve,
//! chosen by SNI (`sni`), read from PEM files (`files`) and read again
//! when a file is replaced, for new connections, without a restart.
//!
//! The files are looked at (two `stat`s per pair) at most once a second,
//! from a handshake: no watcher thread, and a gateway nobody connects to
//! reads nothing. A pair that does not load (a certificate renamed in
//! before its key, a truncated file) leaves the previous one served and
//! is warned about once; it is tried again when a file changes again.

pub mod files;
pub mod sni;

use crate::config::{CertFiles, Tls};
use arc_swap::ArcSwap;
use files::{PairError, PairId};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the files may be looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The certificates in use: `sni::DEFAULT` first, then
/// `[[server.tls.certificates]]` in order.
pub struct Certificates {
    pairs: Vec<CertFiles>,
    served: ArcSwap<Served>,
    /// Milliseconds after `epoch` before which the files are not looked at.
    next_check: AtomicU64,
    epoch: Instant,
    watch: Mutex<Watch>,
}

/// What handshakes read: one certificate per pair and the names table.
struct Served {
    keys: Vec<Arc<CertifiedKey>>,
    names: sni::Table,
}

/// Per pair: the files as last loaded, and as last refused (so a bad pair
/// is warned about once, not on every check).
struct Watch {
    loaded: Vec<PairId>,
    refused: Vec<Option<PairId>>,
    /// The names of each pair's certificate (or its configured ones).
    names: Vec<Vec<String>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("pairs", &self.pairs)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Every pair of `[server.tls]` loaded, or every problem, each naming
    /// its TOML path and file.
    pub fn load(tls: &Tls) -> Result<Self, Vec<String>> {
        let pairs: Vec<CertFiles> = std::iter::once(tls.default.clone())
            .chain(tls.sni.iter().cloned())
            .collect();
        let mut errs = Vec::new();
        let mut keys = Vec::new();
        let mut names = Vec::new();
        let mut loaded = Vec::new();
        for (i, pair) in pairs.iter().enumerate() {
            let id = PairId::of(&pair.cert, &pair.key);
            match files::load(&pair.cert, &pair.key) {
                Ok(l) => {
                    let served = served_names(pair, l.san_names);
                    if i != sni::DEFAULT && served.is_empty() {
                        errs.push(format!(
                            "{}.cert_path: {}: names no DNS name (subject alternative names) \
                             to be chosen by; set names = [...]",
                            pair.at,
                            pair.cert.display()
                        ));
                    }
                    keys.push(l.key);
                    names.push(served);
                    loaded.push(id);
                }
                Err(PairError { field, message }) => {
                    errs.push(format!("{}.{field}: {message}", pair.at));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let served = Served {
            names: table(&names),
            keys,
        };
        Ok(Self {
            served: ArcSwap::from_pointee(served),
            next_check: AtomicU64::new(0),
            epoch: Instant::now(),
            watch: Mutex::new(Watch {
                refused: vec![None; pairs.len()],
                loaded,
                names,
            }),
            pairs,
        })
    }

    /// The certificate for a client asking for `sni`.
    fn select(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.check_due();
        let served = self.served.load();
        served.keys.get(served.names.select(sni)).cloned()
    }

    /// Looks at the files if a second has passed since the last look; one
    /// handshake looks, the others go on with what is served.
    fn check_due(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_check.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(CHECK_EVERY.as_millis() as u64);
        if self
            .next_check
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if let Ok(mut watch) = self.watch.try_lock() {
            self.reload_changed(&mut watch);
        }
    }

    /// Loads each pair whose files changed; publishes the set if any did.
    fn reload_changed(&self, watch: &mut Watch) {
        let mut keys: Option<Vec<Arc<CertifiedKey>>> = None;
        let state = watch
            .loaded
            .iter_mut()
            .zip(&mut watch.refused)
            .zip(&mut watch.names);
        for (i, (pair, ((loaded, refused), names))) in self.pairs.iter().zip(state).enumerate() {
            let id = PairId::of(&pair.cert, &pair.key);
            if *loaded == id || *refused == Some(id) {
                continue;
            }
            let l = match files::load(&pair.cert, &pair.key) {
                Ok(l) => l,
                Err(PairError { field, message }) => {
                    log::warn!(
                        "{}.{field}: {message}; still serving the previous certificate",
                        pair.at
                    );
                    *refused = Some(id);
                    continue;
                }
            };
            let new_names = served_names(pair, l.san_names);
            if i != sni::DEFAULT && new_names.is_empty() {
                log::warn!(
                    "{}.cert_path: {}: the new certificate names no DNS name; \
                     still serving the previous one",
                    pair.at,
                    pair.cert.display()
                );
                *refused = Some(id);
                continue;
            }
            let keys = keys.get_or_insert_with(|| self.served.load().keys.clone());
            let Some(slot) = keys.get_mut(i) else {
                continue;
            };
            log::info!(
                "{}: serving the new certificate in {} to new connections",
                pair.at,
                pair.cert.display()
            );
            *slot = l.key;
            *names = new_names;
            *loaded = id;
            *refused = None;
        }
        if let Some(keys) = keys {
            self.served.store(Arc::new(Served {
                names: table(&watch.names),
                keys,
            }));
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name())
    }
}

/// The names a pair is chosen by: the configured ones, else its own.
fn served_names(pair: &CertFiles, san: Vec<String>) -> Vec<String> {
    pair.names.clone().unwrap_or(san)
}

/// Configured certificates before the default: a name two certificates
/// claim goes to the one listed for it.
fn table(names: &[Vec<String>]) -> sni::Table {
    let order = (1..names.len()).chain(std::iter::once(sni::DEFAULT));
    sni::Table::new(
        order
            .filter_map(|i| Some(names.get(i)?.iter().map(move |n| (i, n.as_str()))))
            .flatten(),
    )
}

/// Pingora's settings for a TLS listener: the certificates chosen per
/// handshake by `certs`, HTTP/2 offered by ALPN when `http2`.
pub fn listener_settings(
    certs: Arc<Certificates>,
    http2: bool,
) -> pingora::Result<pingora::listeners::tls::TlsSettings> {
    // With a resolver, Pingora reads no file (and cannot panic on one).
    let mut settings = pingora::listeners::tls::TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(certs);
    if http2 {
        settings.enable_h2();
    }
    Ok(settings)
}

#[cfg(test)]
mod tests;

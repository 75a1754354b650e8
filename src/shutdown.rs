//! Graceful shutdown. SIGTERM and SIGINT stop the listeners and give the
//! requests in flight `shutdown_grace`; streams still running at its end
//! get the dialect's in-stream error (never a silent cut) and their
//! access-log line, and the process exits as soon as nothing is in flight
//! (at the latest a second past the grace). SIGQUIT keeps Pingora's
//! graceful-upgrade handoff of the listening sockets to a new process.

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Shared by the signal watch, the request path and the exit watchdog.
#[derive(Default)]
pub struct Drain {
    /// When streams still running are ended; set once, at the signal.
    deadline: OnceLock<Instant>,
    /// Wakes `ended` waiters when the deadline is set.
    signal: tokio::sync::Notify,
    in_flight: AtomicUsize,
    /// Run, in order, once the last request is answered and before the
    /// process exits: what is kept in memory for a store (last uses,
    /// queued usage rows) is written out, each bounded by its own timeout.
    on_exit: std::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("deadline", &self.deadline)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// Counts one request as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drain {
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `flush` runs after the last request and before the exit.
    pub fn on_exit(&self, flush: Box<dyn FnOnce() + Send>) {
        self.on_exit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(flush);
    }

    fn run_exit_hooks(&self) {
        let hooks = std::mem::take(
            &mut *self
                .on_exit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for hook in hooks {
            hook();
        }
    }

    /// When streams still running are ended, once a signal has come.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    /// Resolves a little after the grace ends (never, before a signal):
    /// for waits that have not reached the client yet. A committed stream
    /// ends itself at `deadline` (it wakes for keep-alives anyway). No
    /// timer until a signal: a short timer per request made tokio wake its
    /// own driver with a syscall each time (measured).
    pub async fn ended(&self) {
        loop {
            let signalled = self.signal.notified();
            if let Some(at) = self.deadline.get() {
                let at = *at + Duration::from_millis(250);
                return tokio::time::sleep_until(at.into()).await;
            }
            signalled.await;
        }
    }

    /// Resolves once a shutdown has begun (never, before a signal): for
    /// long-lived connections that close themselves between requests
    /// (the Responses WebSocket).
    pub async fn begun(&self) {
        loop {
            let signalled = self.signal.notified();
            if self.deadline.get().is_some() {
                return;
            }
            signalled.await;
        }
    }

    fn begin(self: &Arc<Self>, grace: Duration) {
        let deadline = Instant::now() + grace;
        if self.deadline.set(deadline).is_err() {
            return; // a second signal changes nothing
        }
        self.signal.notify_waiters();
        log::info!(
            "shutting down: {} requests in flight, grace {grace:?}",
            self.in_flight.load(Ordering::Acquire)
        );
        let drain = self.clone();
        // Pingora waits out the whole grace period; exit as soon as the
        // last request has been answered and logged instead.
        let _ = std::thread::Builder::new()
            .name("shutdown".into())
            .spawn(move || loop {
                let idle = drain.in_flight.load(Ordering::Acquire) == 0;
                if idle || Instant::now() > deadline + Duration::from_secs(1) {
                    drain.run_exit_hooks();
                    log::info!("shutdown complete");
                    log::logger().flush();
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            });
    }
}

/// Pingora's signal watch, with SIGINT graceful like SIGTERM.
pub struct Signals {
    pub drain: Arc<Drain>,
    pub grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            log::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => {
                self.drain.begin(self.grace);
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => {
                self.drain.begin(self.grace);
                ShutdownSignal::GracefulTerminate
            }
        }
    }
}

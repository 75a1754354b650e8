//! The typed record of one request: who asked for what, every attempt and
//! its outcome, who served it, what it used, how it ended. The access log
//! reads it today; usage rows and metric labels read the same values, so
//! they always agree.

use crate::config::{Provider, Target};
use crate::shutdown::InFlight;
use filters::canonical::Usage;
use filters::failure::FailureKind;
use filters::Dialect;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request context, in small parts.
#[derive(Debug)]
pub struct RequestRecord {
    pub id: String,
    pub started: Instant,
    pub client: ClientSide,
    pub attempts: Vec<Attempt>,
    /// The attempt that tried the session's sticky target (affinity).
    pub sticky: Option<usize>,
    pub result: Outcome,
    /// Counts the request for graceful shutdown until the record drops.
    pub in_flight: Option<InFlight>,
    /// Limiter holds (the key's and model's, each served provider's),
    /// settled with the real usage when the request ends.
    pub holds: Vec<crate::limits::Admission>,
    /// The rate-limit headers for this client's SDK.
    pub limit_headers: Vec<(&'static str, String)>,
    /// The request and answer kept for the conversation log; `None` when
    /// this request is not logged (the capture hooks then do nothing).
    pub conversation: Option<Box<crate::journal::Capture>>,
    /// A read of the admin plane (the UI polls several a second): when it
    /// succeeds, no usage row and no access-log line, so neither the
    /// Requests page nor the Logs tail fills with the UI's own calls.
    /// Changes, and refused or failed reads, are recorded.
    pub quiet: bool,
}

/// What the client sent and who it is.
#[derive(Debug, Default)]
pub struct ClientSide {
    pub dialect: Option<Dialect>,
    pub key_name: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    /// The conversation the client says this request belongs to
    /// (`filters::session`): usage is grouped by it, routing sticks to it.
    pub session: Option<Arc<str>>,
    pub routed: Routed,
}

/// How the requested name became the configured model that served it,
/// when it was not that model's own name.
#[derive(Debug, Default, Clone)]
pub struct Routed {
    /// The configured model chosen.
    pub model: Option<Arc<str>>,
    /// What chose it: `alias`, `glob`, `default`, `rule#N`, `tags`,
    /// `scene` (the classifier).
    pub by: Option<Arc<str>>,
    /// The classifier's scene, when it chose.
    pub scene: Option<Arc<str>>,
}

/// How the request ended for the client.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The status sent (0 before anything was; 499 when the client left).
    pub status: u16,
    /// The attempt that answered, as an index into `attempts`.
    pub served_by: Option<usize>,
    pub usage: Option<Usage>,
    /// What the usage cost at the served upstream model's price; `None`
    /// when nothing was served, the usage is unknown or the model has no
    /// price. Set by `price` when the request ends.
    pub cost: Option<filters::pricing::Cost>,
    /// The limit that turned the request away (metrics label it).
    pub refused: Option<(filters::limits::Scope, filters::limits::Dimension)>,
    pub error: Option<String>,
}

/// One target tried.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub provider: Arc<Provider>,
    pub model: Arc<str>,
    /// Which of the provider's keys carried it.
    pub key: Option<usize>,
    pub outcome: AttemptOutcome,
    /// From sending the request to the upstream's status line.
    pub to_status: Option<Duration>,
    /// From sending the request to the first real event (or whole body).
    pub to_first_event: Option<Duration>,
    /// When the target was tried (or skipped) and when that ended: the
    /// attempt's trace span.
    pub started: Instant,
    pub ended: Instant,
}

/// What became of one attempt: a closed set, so it can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Ok,
    /// Not sent: the target's breaker is open.
    CircuitOpen,
    /// Not sent: no replica passes its health check.
    Unhealthy,
    /// Not sent: every key is resting after rate limits.
    KeysCooling,
    /// Not sent: the provider's own limit (`[[providers]] limits`) is reached.
    ProviderLimit,
    /// Not sent: the client key may not use this provider.
    NotAllowed,
    /// Not sent: the target cannot take the request (`capabilities`).
    Lacks(filters::routing::Lack),
    /// The client left before anything was sent to it.
    ClientLeft,
    /// The upstream failed (`503`, `connect`, `timeout-first-event`, …).
    Failed(FailureKind),
}

impl Attempt {
    /// A target skipped without a call.
    pub fn untried(target: &Target, outcome: AttemptOutcome) -> Self {
        let now = Instant::now();
        Self {
            provider: target.provider.clone(),
            model: target.model.clone(),
            key: None,
            outcome,
            to_status: None,
            to_first_event: None,
            started: now,
            ended: now,
        }
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::CircuitOpen => "circuit-open",
            Self::Unhealthy => "unhealthy",
            Self::KeysCooling => "keys-cooling",
            Self::ProviderLimit => "provider-limit",
            Self::NotAllowed => "not-allowed",
            Self::ClientLeft => "client-left",
            Self::Lacks(lack) => lack.label(),
            Self::Failed(kind) => return kind.fmt(f),
        })
    }
}

impl RequestRecord {
    pub fn new(id: String) -> Self {
        Self {
            id,
            started: Instant::now(),
            client: ClientSide::default(),
            attempts: Vec::new(),
            sticky: None,
            result: Outcome::default(),
            in_flight: None,
            holds: Vec::new(),
            limit_headers: Vec::new(),
            conversation: None,
            quiet: false,
        }
    }

    /// Prices the served usage: the upstream model's entry in `prices`,
    /// every cache write billed as a 5-minute one (the usage does not say
    /// which writes were 1-hour ones).
    pub fn price(&mut self, prices: &filters::pricing::PriceTable) {
        let Some(usage) = &self.result.usage else {
            return;
        };
        let Some(served) = self.served_by() else {
            return;
        };
        self.result.cost = prices
            .lookup(&served.model)
            .map(|p| filters::pricing::cost(p, usage));
    }

    /// Ends the request's limiter holds: the real usage and its cost
    /// (`result.cost`, set by `price` before this; none: an unpriced model,
    /// free) when the usage is known; nothing when no upstream was asked or
    /// every one failed; the reservation when an upstream may have worked
    /// for it without a usage report (it served without one, or the client
    /// left while it ran).
    pub async fn settle_limits(&mut self) {
        if self.holds.is_empty() {
            return;
        }
        let client_left = self
            .attempts
            .iter()
            .any(|a| a.outcome == AttemptOutcome::ClientLeft);
        let actual = match (&self.result.usage, self.result.served_by) {
            (Some(u), _) => Some(crate::limits::Used {
                tokens: u.input_total().saturating_add(u.output_total),
                cost: self.result.cost.map(|c| (c.total, c.currency)),
            }),
            (None, Some(_)) => None,
            (None, None) if client_left => None,
            (None, None) => Some(crate::limits::Used::NOTHING),
        };
        for hold in self.holds.drain(..) {
            hold.release(actual).await;
        }
    }

    pub fn served_by(&self) -> Option<&Attempt> {
        self.result.served_by.and_then(|i| self.attempts.get(i))
    }

    /// `x-modelswitch-attempts`: `provider/model=outcome key#N` for each
    /// target tried, in order; first, when the requested name was routed
    /// to another model, `route=MODEL by=HOW[ scene=SCENE]`.
    pub fn attempts_header(&self) -> String {
        let mut s = String::new();
        let _ = self.write_attempts(&mut s);
        s
    }

    /// The same, written into `out` (the access log writes it in place).
    pub fn write_attempts(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        let routed = &self.client.routed;
        if let (Some(model), Some(by)) = (&routed.model, &routed.by) {
            write!(out, "route={model} by={by}")?;
            if let Some(scene) = &routed.scene {
                write!(out, " scene={scene}")?;
            }
            if !self.attempts.is_empty() {
                out.write_str(", ")?;
            }
        }
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                out.write_str(", ")?;
            }
            write!(out, "{}/{}={}", a.provider.name, a.model, a.outcome)?;
            // Keys by index: clients never see a fragment of a provider key.
            if let Some(k) = a.key {
                write!(out, " key#{k}")?;
            }
            if self.sticky == Some(i) {
                out.write_str(" sticky")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_render_in_order_with_labels() {
        let snap = crate::config::parse(
            r#"
            [[providers]]
            name = "a"
            type = "openai"
            base_url = "http://127.0.0.1:9/v1"
            api_keys = ["sk-key-number-one", "sk-key-number-two"]

            [[models]]
            name = "m"
            targets = [{ provider = "a", model = "m" }]

            [[api_keys]]
            key = "sk-client-key"
            name = "c"
            "#,
        )
        .unwrap();
        let p = &snap.providers[0];
        let mut r = RequestRecord::new("req_1".into());
        let attempt = |outcome, key| Attempt {
            provider: p.clone(),
            model: Arc::from("m"),
            key,
            outcome,
            to_status: None,
            to_first_event: None,
            started: r.started,
            ended: r.started,
        };
        r.attempts.push(attempt(AttemptOutcome::CircuitOpen, None));
        let failed = AttemptOutcome::Failed(FailureKind::Status(503));
        r.attempts.push(attempt(failed, Some(1)));
        r.attempts.push(attempt(AttemptOutcome::Ok, Some(0)));
        r.result.served_by = Some(2);
        assert_eq!(
            r.attempts_header(),
            "a/m=circuit-open, a/m=503 key#1, a/m=ok key#0"
        );
        r.sticky = Some(1);
        assert_eq!(
            r.attempts_header(),
            "a/m=circuit-open, a/m=503 key#1 sticky, a/m=ok key#0"
        );
        assert_eq!(r.served_by().and_then(|a| a.key), Some(0));
    }
}

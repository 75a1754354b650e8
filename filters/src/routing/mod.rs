//! Routing decisions that need no socket: which configured model a
//! requested name reaches (`names`), which rule re-routes a request
//! (`rules`), which model a `tags:` query picks (`tags`), what the
//! classifier is asked and how its answer is read (`classifier`), and
//! whether a target can take a request at all (here).
//!
//! The shell (`src/proxy/route.rs`) reads a request's `Facts` once and
//! asks these in order: rules, classifier, names.

pub mod classifier;
pub mod facts;
pub mod invoke;
pub mod names;
pub mod rules;
pub mod tags;
pub mod ttl_map;

/// What a target can take (`[[models]] capabilities`, a target's own
/// over them). Unset in the config: it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Input tokens the model reads at most.
    pub context_window: Option<u64>,
    pub vision: bool,
    pub tools: bool,
    pub reasoning: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            context_window: None,
            vision: true,
            tools: true,
            reasoning: true,
        }
    }
}

/// What a request needs of its target, read once from the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub images: bool,
    pub tools: bool,
    pub thinking: bool,
    /// Estimated input tokens (0: not estimated).
    pub input_tokens: u64,
}

/// Why a target cannot take a request: shown as `=lacks-vision` etc.
/// (Reasoning is never a lack: see `Capabilities::lacks`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lack {
    Vision,
    Tools,
    Context,
}

impl Lack {
    pub fn label(self) -> &'static str {
        match self {
            Self::Vision => "lacks-vision",
            Self::Tools => "lacks-tools",
            Self::Context => "lacks-context",
        }
    }

    /// What about the request needs it, for the client's error.
    pub fn why(self) -> &'static str {
        match self {
            Self::Vision => "it holds images",
            Self::Tools => "it offers tools",
            Self::Context => "its input is longer than every context window",
        }
    }
}

impl Capabilities {
    /// The first thing the request needs that this target lacks.
    /// `emulates_tools`: the target takes tools through its prompt.
    /// Reasoning is not a lack: a model without it answers without
    /// thinking, which is what every translation of it does anyway; it is
    /// a routing condition (`thinking`), not a refusal.
    pub fn lacks(&self, needs: &Needs, emulates_tools: bool) -> Option<Lack> {
        if needs.images && !self.vision {
            return Some(Lack::Vision);
        }
        if needs.tools && !self.tools && !emulates_tools {
            return Some(Lack::Tools);
        }
        match self.context_window {
            Some(window) if needs.input_tokens > window => Some(Lack::Context),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lacks_in_order_and_emulation_covers_tools() {
        let caps = Capabilities {
            context_window: Some(1000),
            vision: false,
            tools: false,
            reasoning: false,
        };
        let mut needs = Needs {
            images: true,
            tools: true,
            thinking: true,
            input_tokens: 2000,
        };
        assert_eq!(caps.lacks(&needs, false), Some(Lack::Vision));
        needs.images = false;
        assert_eq!(caps.lacks(&needs, false), Some(Lack::Tools));
        assert_eq!(caps.lacks(&needs, true), Some(Lack::Context));
        needs.input_tokens = 1000;
        assert_eq!(caps.lacks(&needs, true), None, "thinking is not a lack");
        assert_eq!(Capabilities::default().lacks(&needs, false), None);
        assert_eq!(Lack::Context.label(), "lacks-context");
    }
}

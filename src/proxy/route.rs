//! Which configured model serves a request: `[[routing.rules]]` first,
//! then the classifier, then the name itself (exact, alias, glob,
//! `tags:`, `[routing] default_model`). The decisions are
//! `filters::routing`'s; this shell reads the request for them and, for
//! the classifier, makes the one upstream call.
//!
//! Without rules or a classifier a request pays two hash lookups here.

use crate::config::{Classifier, Route, Snapshot};
use crate::record::{RequestRecord, Routed};
use crate::state::Live;
use crate::upstream::UpstreamClient;
use filters::auth::ClientKey;
use filters::canonical::{Message, Part, Request, Role, TextPart};
use filters::error::{ApiError, ErrorKind};
use filters::routing::facts::BodyFacts;
use filters::routing::names::Found;
use filters::routing::rules::{Facts, Use};
use filters::routing::Needs;
use filters::Dialect;
use std::sync::Arc;

/// The model chosen, and how.
pub struct Chosen {
    /// The configured model's own name.
    pub name: Arc<str>,
    pub route: Arc<Route>,
    pub routed: Routed,
    /// The requested name alone may authorise it: the model's own name, an
    /// alias, or an admin's rule. A glob, the default, a `tags:` query or
    /// the classifier (which the prompt steers) must be allowed by the
    /// model's own names.
    pub trusted: bool,
}

impl Chosen {
    fn new(
        route: &Arc<Route>,
        by: Option<Arc<str>>,
        scene: Option<Arc<str>>,
        trusted: bool,
    ) -> Self {
        Self {
            name: route.name.clone(),
            routed: Routed {
                model: by.is_some().then(|| route.name.clone()),
                by,
                scene,
            },
            route: route.clone(),
            trusted,
        }
    }
}

/// The key may use `route` by one of its own names (its name, an alias).
pub fn may_use(key: &ClientKey, route: &Route) -> bool {
    key.allows_model(&route.name) || route.aliases.iter().any(|a| key.allows_model(a))
}

/// What a generation request is, for rules and capabilities.
pub struct Asked<'a> {
    pub dialect: Dialect,
    /// The name the client asked for.
    pub requested: &'a str,
    pub key: &'a ClientKey,
    pub body: &'a [u8],
    pub headers: &'a http::HeaderMap,
    /// Read only where a rule or a capability needs it (`body_facts`).
    pub facts: Option<BodyFacts>,
    pub session: Option<&'a str>,
}

/// Whether the body must be read for facts: some rule reads them, or
/// some model's targets differ in what they take.
pub fn wants_facts(snap: &Snapshot) -> bool {
    !snap.routing.rules.is_empty() || snap.routing.any_varies
}

/// A generation request's model: rules, the classifier, then its name.
/// Also what the request needs of a target, where the chosen route's
/// targets differ.
pub async fn decide(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    asked: &Asked<'_>,
) -> Result<(Chosen, Needs), ApiError> {
    let snap = &live.config;
    let routing = &snap.routing;
    let header = |name: &str| asked.headers.get(name).and_then(|v| v.to_str().ok());
    let mut tokens: Option<u64> = None;
    let mut count = || *tokens.get_or_insert_with(|| estimate(asked.body));
    let mut chosen = None;
    if let Some(body) = asked.facts {
        let facts = Facts {
            model: asked.requested,
            dialect: asked.dialect,
            key: &asked.key.name,
            roles: &asked.key.roles,
            has_tools: body.has_tools,
            has_images: body.has_images,
            thinking: body.thinking,
            web_search: body.web_search,
            input_tokens: if routing.rules_count_tokens {
                count()
            } else {
                0
            },
            background: routing
                .background_models
                .iter()
                .any(|g| filters::glob::matches(g, asked.requested)),
        };
        if let Some(rule) = filters::routing::rules::first(&routing.rules, &facts, &header) {
            let by: Arc<str> = Arc::from(rule.name.as_str());
            let picked = used(live, &rule.use_, by, None).ok_or_else(|| unusable(&rule.name))?;
            chosen = Some(Chosen {
                trusted: true,
                ..picked
            });
        }
    }
    if chosen.is_none() {
        if let Some(c) = routing
            .classifier
            .as_ref()
            .filter(|c| classifies(snap, c, asked.requested))
        {
            chosen = Some(Box::pin(classified(upstream, live, rec, c, asked)).await?);
        }
    }
    let chosen = match chosen {
        Some(c) => c,
        None => by_name(live, asked.requested, Some(asked.key))
            .ok_or_else(|| not_found(snap, asked.key, asked.requested))?,
    };
    allowed(asked.key, asked.requested, &chosen)?;
    let needs = if chosen.route.varies {
        let facts = asked
            .facts
            .unwrap_or_else(|| body_facts(asked.dialect, asked.body));
        Needs {
            images: facts.has_images,
            tools: facts.has_tools,
            thinking: facts.thinking,
            input_tokens: if chosen.route.has_window { count() } else { 0 },
        }
    } else {
        Needs::default()
    };
    Ok((chosen, needs))
}

/// The facts of a body the caller did not peek at.
pub fn body_facts(dialect: Dialect, body: &[u8]) -> BodyFacts {
    filters::wire::json_peek::members(body)
        .map(|m| filters::routing::facts::read(dialect, &m))
        .unwrap_or_default()
}

fn estimate(body: &[u8]) -> u64 {
    filters::limits::estimate::typical_input_tokens(body)
}

/// A name alone (token counts, `/route/invoke`, generation without a rule
/// or classifier): the model's own name, `tags:` (among models `key` may
/// use), an alias, a glob, the default.
pub fn by_name(live: &Live, requested: &str, key: Option<&ClientKey>) -> Option<Chosen> {
    let snap = &live.config;
    // The common case: a configured model's own name, one lookup.
    if let Some(route) = snap.routes.get(requested) {
        return Some(Chosen::new(route, None, None, true));
    }
    if let Some(list) = requested.strip_prefix("tags:") {
        let tags = filters::routing::tags::parse(list)?;
        return used(live, &Use::Tags(tags), Arc::from("tags"), key);
    }
    let (name, found) = snap.routing.names.resolve(requested)?;
    let route = snap.routes.get(name)?;
    let trusted = matches!(found, Found::Exact | Found::Alias);
    Some(Chosen::new(
        route,
        Some(Arc::from(found.label())),
        None,
        trusted,
    ))
}

/// A model's own name or alias only (embeddings: a glob, the default or a
/// tags query would send an embedding call to a chat model).
pub fn exact(live: &Live, requested: &str) -> Option<Chosen> {
    let snap = &live.config;
    let name = snap.routing.names.exact(requested)?;
    let route = snap.routes.get(name)?;
    let by = (*route.name != *requested).then(|| Arc::from(Found::Alias.label()));
    Some(Chosen::new(route, by, None, true))
}

/// The model a rule or the classifier names (checked at load: a model's
/// own name), or the best match of a `tags:` query among the models `key`
/// may use (`None`: an admin's rule, any model).
fn used(live: &Live, u: &Use, by: Arc<str>, key: Option<&ClientKey>) -> Option<Chosen> {
    let snap = &live.config;
    let name = match u {
        Use::Model(m) => m.as_str(),
        Use::Tags(tags) => filters::routing::tags::select(
            snap.model_names.iter().filter_map(|n| {
                let r = snap.routes.get(n)?;
                key.is_none_or(|k| may_use(k, r))
                    .then_some(filters::routing::tags::Tagged {
                        name: n,
                        tags: &r.tags,
                        priority: r.priority,
                    })
            }),
            tags,
            |n| snap.routes.get(n).is_some_and(|r| healthy(live, r)),
        )?,
    };
    let route = snap.routes.get(name)?;
    Some(Chosen::new(route, Some(by), None, false))
}

/// Some target of `route` can be tried now.
fn healthy(live: &Live, route: &Route) -> bool {
    route.targets.iter().any(|t| target_healthy(live, t))
}

/// The target's breaker is not open (a half-open one waiting for its probe
/// counts as healthy).
fn target_healthy(live: &Live, target: &crate::config::Target) -> bool {
    match live.breaker(target.slot).state() {
        filters::breaker::BreakerState::Open { until } => until <= std::time::Instant::now(),
        _ => true,
    }
}

/// The key may use the name it asked for when that name alone authorises
/// the model (`Chosen::trusted`), else one of the model's own names.
pub fn allowed(key: &ClientKey, requested: &str, chosen: &Chosen) -> Result<(), ApiError> {
    if (chosen.trusted && key.allows_model(requested)) || may_use(key, &chosen.route) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::PermissionDenied,
        format!("this API key may not use model '{requested}'"),
    ))
}

/// A rule whose `tags:` query matches no model any more.
fn unusable(rule: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("routing rule '{rule}' matched, but no model has the tags it asks for"),
    )
    .with_param("model")
}

/// The 404 for a name nothing serves, with what this key may use.
pub fn not_found(snap: &Snapshot, key: &ClientKey, requested: &str) -> ApiError {
    let mut known: Vec<&str> = snap
        .model_names
        .iter()
        .map(String::as_str)
        .filter(|m| !filters::glob::is_glob(m) && key.allows_model(m))
        .collect();
    known.truncate(20);
    let mut e = ApiError::new(
        ErrorKind::NotFound,
        format!(
            "model '{requested}' is not configured; available: {}",
            known.join(", ")
        ),
    )
    .with_param("model");
    e.code = Some("model_not_found".into());
    e
}

/// Whether the classifier routes `requested`: a name its `models` globs
/// match, or (without globs) one no configured model has as its own name
/// or alias.
fn classifies(snap: &Snapshot, c: &Classifier, requested: &str) -> bool {
    if c.models.is_empty() {
        return snap.routing.names.exact(requested).is_none() && !requested.starts_with("tags:");
    }
    c.models
        .iter()
        .any(|g| filters::glob::matches(g, requested))
}

/// The scene's model: the session's cached scene, else the classifier's
/// answer within its timeout, else the default.
async fn classified(
    upstream: &UpstreamClient,
    live: &Live,
    rec: &mut RequestRecord,
    c: &Classifier,
    asked: &Asked<'_>,
) -> Result<Chosen, ApiError> {
    let snap = &live.config;
    // The prompt steers the scene, so only scenes whose model the key may
    // use count; a key that may use none of them (nor the default) is
    // refused before the classifier spends anything on it.
    let usable = |model: &str| snap.routes.get(model).filter(|r| may_use(asked.key, r));
    let default = usable(&c.default);
    if default.is_none() && !c.scenes.iter().any(|s| usable(&s.model).is_some()) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("this API key may not use model '{}'", asked.requested),
        ));
    }
    // Per key too: a session id names a conversation only within the key
    // that sent it, so another key sending the same id changes nothing.
    let session = asked.session.map(|s| format!("{}\0{s}", asked.key.name));
    let known = |scene: &Arc<str>| c.scenes.iter().any(|x| *x.name == **scene);
    // A scene a reload removed is no scene: ask again.
    let cached = session
        .as_deref()
        .and_then(|s| live.scenes.get(s))
        .filter(known);
    let scene = match cached {
        Some(scene) => Some(scene),
        None => {
            let ask = ask_classifier(upstream, live, &rec.id, c, asked);
            let scene = match tokio::time::timeout(c.timeout, ask).await {
                Ok(Ok(scene)) => scene,
                Ok(Err(why)) => {
                    log::warn!("{} classifier: {why}; the default model serves", rec.id);
                    None
                }
                Err(_) => {
                    log::warn!(
                        "{} classifier: no answer within {:?}; the default model serves",
                        rec.id,
                        c.timeout
                    );
                    None
                }
            };
            // Only real answers are kept: a classifier that failed once is
            // asked again next turn.
            if let (Some(session), Some(scene)) = (&session, &scene) {
                live.scenes.insert(session, scene.clone());
            }
            scene
        }
    };
    let picked = scene.as_ref().and_then(|s| {
        let scene = c.scenes.iter().find(|x| *x.name == **s)?;
        usable(&scene.model)
    });
    match (picked, default) {
        (Some(route), _) => Ok(Chosen::new(route, Some(Arc::from("scene")), scene, false)),
        (None, Some(route)) => Ok(Chosen::new(
            route,
            Some(Arc::from("scene-default")),
            None,
            false,
        )),
        // The scene's model is not this key's, and neither is the default.
        (None, None) => Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("this API key may not use model '{}'", asked.requested),
        )),
    }
}

/// One call to the classifier model's targets in order (the first that
/// answers); the scene its answer names.
async fn ask_classifier(
    upstream: &UpstreamClient,
    live: &Live,
    request_id: &str,
    c: &Classifier,
    asked: &Asked<'_>,
) -> Result<Option<Arc<str>>, String> {
    let snap = &live.config;
    let turn = filters::dialect::decode_request(asked.dialect, asked.body)
        .ok()
        .and_then(|r| filters::routing::classifier::latest_user_text(&r));
    let Some(turn) = turn else {
        return Err("the request has no user text to classify".into());
    };
    let route = snap
        .routes
        .get(&c.model)
        .ok_or_else(|| format!("no model '{}'", c.model))?;
    let text = |t: String| {
        Part::Text(TextPart {
            text: t,
            cache: false,
        })
    };
    let mut req = Request {
        system: vec![TextPart {
            text: c.prompt.clone(),
            cache: false,
        }],
        messages: vec![Message {
            role: Role::User,
            parts: vec![text(turn)],
        }],
        ..Request::default()
    };
    req.sampling.max_output_tokens = Some(filters::routing::classifier::MAX_ANSWER_TOKENS);
    req.sampling.temperature = Some(0.0);
    // Its own record: the classifier's attempts are not the request's.
    let mut side = RequestRecord::new(format!("{request_id}-classifier"));
    let mut last = String::from("no target");
    // A provider the key may not use never sees its prompt; an open
    // breaker is not waited on.
    let targets = route
        .targets
        .iter()
        .filter(|t| asked.key.allows_provider(&t.provider.name) && target_healthy(live, t));
    for target in targets {
        let p = &target.provider;
        let body =
            filters::dialect::encode_request(p.dialect, &req, &target.model, &p.encode, None)
                .map_err(|e| e.message)?;
        let path = target.generate_path(false);
        let answer = crate::exchange::call_once(
            upstream,
            live,
            &mut side,
            target,
            ("POST", path),
            body.to_string().into(),
        )
        .await;
        match answer {
            Ok(bytes) => {
                let resp =
                    filters::dialect::decode_response(p.dialect, &bytes).map_err(|e| e.message)?;
                let said: String = resp.text();
                return Ok(filters::routing::classifier::read_answer(&said, &c.scenes)
                    .map(|s| Arc::from(s.name.as_str())));
            }
            Err(f) => last = format!("{}/{}: {f:?}", p.name, target.model),
        }
    }
    Err(last)
}

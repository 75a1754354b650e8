//! Who is calling the admin plane: a key in the request's headers (as API
//! clients send it), or else the UI's session cookie.

use super::AdminPlane;
use crate::state::keys::KeyEntry;
use crate::state::Live;
use filters::auth::Role;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;

/// An authenticated admin-plane caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's name, or `(password)` for the admin password.
    pub name: String,
    pub roles: Vec<Role>,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A key in the request's headers.
    Key,
    /// A UI session (its public id); its CSRF token was checked for every
    /// method that changes anything.
    Session(String),
}

impl Caller {
    pub fn of_key(key: &KeyEntry) -> Self {
        Self {
            name: key.name.clone(),
            roles: key.roles.clone(),
            via: Via::Key,
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn can_view(&self) -> bool {
        self.has_role(Role::Admin) || self.has_role(Role::Viewer)
    }
}

/// The caller of an admin-plane request: a key in the headers takes
/// precedence (never the localhost key), then the session cookie. Its name
/// goes into the request's record (access log, usage row).
pub async fn caller(
    plane: &AdminPlane,
    live: &Live,
    session: &Session,
    rec: &mut crate::record::RequestRecord,
) -> Result<Caller, ApiError> {
    let who = identify(plane, live, session).await?;
    rec.client.key_name = Some(who.name.clone());
    Ok(who)
}

async fn identify(plane: &AdminPlane, live: &Live, session: &Session) -> Result<Caller, ApiError> {
    match crate::proxy::auth::authenticate_admin(live, session) {
        Ok(key) => Ok(Caller::of_key(&key)),
        Err(e) if has_credential(session) => Err(e),
        Err(e) => match plane
            .sessions
            .resolve(plane.store.as_ref(), live, session)
            .await
        {
            Some(resolved) => resolved,
            None => Err(e),
        },
    }
}

/// Whether the request carries a key at all (a wrong key is refused as
/// such, never retried as a cookie).
fn has_credential(session: &Session) -> bool {
    let h = &session.req_header().headers;
    h.contains_key(http::header::AUTHORIZATION)
        || h.contains_key("x-api-key")
        || h.contains_key("x-goog-api-key")
}

pub fn require_role(caller: &Caller, role: Role) -> Result<(), ApiError> {
    if caller.has_role(role) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("the {} role is required", role.name()),
        ))
    }
}

/// The admin API's read side: admins and viewers.
pub fn require_viewer(caller: &Caller) -> Result<(), ApiError> {
    if caller.can_view() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the admin or viewer role is required",
        ))
    }
}

/// Reads for viewers and admins, changes for admins: by method.
pub fn require_for_method(caller: &Caller, session: &Session) -> Result<(), ApiError> {
    let m = &session.req_header().method;
    if m == http::Method::GET || m == http::Method::HEAD {
        require_viewer(caller)
    } else {
        require_role(caller, Role::Admin)
    }
}

//! Bearer-token authentication and roles.
//!
//! Tokens are configured by their SHA-256 only (`[[api.tokens]]`); a request's
//! `Authorization: Bearer <token>` is hashed and compared in constant time
//! with every configured hash. The token's name is the actor of every change
//! made with it. Roles are ordered: viewer (every GET) < operator (triage,
//! allowlist, remarks, assets) < admin (rule reloads). A handler states the
//! role it needs by taking `Viewer`, `Operator` or `Admin` as its first
//! argument; the middleware in front of every authenticated route has
//! already turned a missing or unknown token into 401 and left the `Caller`
//! in the request's extensions.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub use crate::config::Role;
use crate::config::{ApiToken, Settings};

use super::ApiState;
use super::error::ApiError;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name: the actor recorded for changes.
    pub name: String,
    pub role: Role,
}

/// The configured tokens (hashes only).
#[derive(Clone, Debug, Default)]
pub struct TokenSet {
    tokens: Vec<ApiToken>,
}

impl TokenSet {
    pub fn new(tokens: Vec<ApiToken>) -> TokenSet {
        TokenSet { tokens }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The caller a presented token belongs to. Every configured hash is
    /// compared, in constant time, whatever matched earlier.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let digest = hash_token(presented);
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(&digest, &token.sha256) {
                found = Some(Caller {
                    name: token.name.clone(),
                    role: token.role,
                });
            }
        }
        found
    }
}

/// SHA-256 of a token's text.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(left: &[u8; 32], right: &[u8; 32]) -> bool {
    let difference = left
        .iter()
        .zip(right.iter())
        .fold(0u8, |difference, (a, b)| difference | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// A fresh random token: `tw_` and 64 hex characters (256 bits).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("tw_{}", hex::encode(bytes)))
}

/// The `[[api.tokens]]` snippet for a token.
pub fn token_snippet(name: &str, role: Role, token: &str) -> String {
    format!(
        "[[api.tokens]]\nname = {name:?}\nrole = \"{}\"\nsha256 = \"{}\"\n",
        role.as_str(),
        hex::encode(hash_token(token))
    )
}

/// Where `run` keeps its generated admin token when no token is configured.
pub fn console_token_path(store_path: &Path) -> PathBuf {
    // A PostgreSQL store has no directory: the working directory's `data/`
    // (several daemons should share `api.tokens` instead).
    if crate::db::StoreLocation::from_path(store_path).is_postgres() {
        return Path::new("data").join("console-token");
    }
    store_path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .join("console-token")
}

/// The name of the generated token (the actor of changes made with it).
pub const CONSOLE_TOKEN_NAME: &str = "console";

/// The tokens the server accepts: the configured ones, or (when there are
/// none) an admin token kept in `console-token` beside the store, created
/// with mode 0600 on first use and reused afterwards. Returns the set and,
/// for the generated case, the file's path.
pub fn effective_tokens(settings: &Settings, store_path: &Path) -> std::io::Result<(TokenSet, Option<PathBuf>)> {
    if !settings.api.tokens.is_empty() {
        return Ok((TokenSet::new(settings.api.tokens.clone()), None));
    }
    let path = console_token_path(store_path);
    let existing = std::fs::read_to_string(&path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| text.len() >= 32);
    let token = match existing {
        Some(token) => {
            restrict_permissions(&path)?;
            token
        }
        None => {
            let token = new_token().map_err(|error| std::io::Error::other(error.to_string()))?;
            write_private(&path, &format!("{token}\n"))?;
            token
        }
    };
    let tokens = TokenSet::new(vec![ApiToken {
        name: CONSOLE_TOKEN_NAME.to_string(),
        role: Role::Admin,
        sha256: hash_token(&token),
    }]);
    Ok((tokens, Some(path)))
}

/// Write a file readable by its owner only (created that way, never widened).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The bearer token of a request, if it has one.
fn bearer(parts_headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = parts_headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authenticate a request from its headers (401 when it cannot be).
pub fn caller_of(tokens: &TokenSet, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    if headers.get(header::AUTHORIZATION).is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization: missing; send `Authorization: Bearer <token>`",
        ));
    }
    let Some(token) = bearer(headers).filter(|token| !token.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization: expected `Bearer <token>`",
        ));
    };
    tokens
        .authenticate(token)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "authorization: unknown token"))
}

/// Middleware of every authenticated route: 401 without a valid token,
/// else the `Caller` goes into the request's extensions.
/// An address locked out after too many failures (`api.max_auth_failures`)
/// is answered 429 whatever it sends (see `lockout.rs`).
pub async fn authenticate(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let now = std::time::Instant::now();
    if let Some(left) = peer.and_then(|peer| state.lockout.locked(peer, now)) {
        let seconds = left.as_secs() + 1;
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("authorization: too many failed attempts from this address; retry in {seconds} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        return response;
    }
    match caller_of(&state.tokens, request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            if let Some(peer) = peer
                && state.lockout.failed(peer, now)
            {
                tracing::warn!(
                    address = %peer,
                    failures = state.settings.api.max_auth_failures,
                    "API: too many failed authentications from this address; it is refused (429) for the rest of the minute"
                );
            }
            error.into_response()
        }
    }
}

fn require(parts: &Parts, role: Role) -> Result<Caller, ApiError> {
    let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization: missing; send `Authorization: Bearer <token>`",
        )
    })?;
    if caller.role < role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role: token {:?} is {}; this needs {}",
                caller.name,
                caller.role.as_str(),
                role.as_str()
            ),
        ));
    }
    Ok(caller)
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug)]
        pub struct $name(pub Caller);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<$name, ApiError> {
                require(parts, $role).map($name)
            }
        }
    };
}

role_extractor!(
    Viewer,
    Role::Viewer,
    "A caller with at least the viewer role (any valid token)."
);
role_extractor!(
    Operator,
    Role::Operator,
    "A caller with at least the operator role (403 otherwise)."
);
role_extractor!(Admin, Role::Admin, "A caller with the admin role (403 otherwise).");

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TokenSet {
        TokenSet::new(vec![
            ApiToken {
                name: "alice".into(),
                role: Role::Operator,
                sha256: hash_token("secret-a"),
            },
            ApiToken {
                name: "bob".into(),
                role: Role::Viewer,
                sha256: hash_token("secret-b"),
            },
        ])
    }

    #[test]
    fn tokens_authenticate_by_their_hash_only() {
        let tokens = set();
        assert_eq!(
            tokens.authenticate("secret-a").map(|caller| caller.name),
            Some("alice".into())
        );
        assert_eq!(
            tokens.authenticate("secret-b").map(|caller| caller.role),
            Some(Role::Viewer)
        );
        assert_eq!(tokens.authenticate("secret-c"), None);
        assert_eq!(tokens.authenticate(""), None);
    }

    #[test]
    fn roles_are_ordered_and_tokens_are_random() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        let snippet = token_snippet("ci", Role::Admin, &a);
        assert!(
            snippet.contains(&hex::encode(hash_token(&a))) && !snippet.contains(&a),
            "{snippet}"
        );
    }

    #[test]
    fn the_generated_console_token_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::from_toml("t", "", false).unwrap();
        let store = dir.path().join("data").join("tw.db");
        let (first, path) = effective_tokens(&settings, &store).unwrap();
        let path = path.unwrap();
        assert_eq!(path, dir.path().join("data").join("console-token"));
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.authenticate(token.trim()).unwrap().role, Role::Admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (second, _) = effective_tokens(&settings, &store).unwrap();
        assert!(second.authenticate(token.trim()).is_some());
    }
}

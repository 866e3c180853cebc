//! The operator HTTP API (axum): JSON under `/api/v1`, Prometheus `/metrics`,
//! `/healthz` and `/readyz`, an OpenAPI document, and the web console
//! (`console`: static files at `/`, which sign in with a token and call
//! `/api/v1` like any other client).
//!
//! `trailwarden run` starts it on the daemon's tokio runtime (`ApiServer::start`)
//! and stops it first on shutdown. Every route but the two health checks
//! needs a bearer token (`auth`); the role a route needs is in its handler's
//! signature. Handlers never touch SQLite on the async runtime: each request
//! borrows a store connection from `StorePool` inside `spawn_blocking`, and
//! writes use the store's own short IMMEDIATE transactions (the engine thread
//! stays the only writer of batches). What leaves the API is what the CLI
//! prints: the masked views of `app` and `alarm::view`.
//!
//! Adding a route is one line in `api_routes` plus its handler (and its
//! entry in `openapi.rs`).

pub mod alarms;
pub mod auth;
pub mod console;
pub mod error;
pub mod health;
pub mod lockout;
pub mod manage;
pub mod openapi;
pub mod reports;
pub mod rules;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::alarm::store::{Store, StoreOptions};
use crate::config::Settings;
use crate::metrics::ApiRequestLabels;

use self::auth::TokenSet;
use self::error::ApiError;

/// Everything a handler can reach; cheap to clone (all shared).
#[derive(Clone)]
pub struct ApiState {
    pub settings: Arc<Settings>,
    /// The running daemon: metrics, rule set, reloads, liveness.
    pub daemon: DaemonHandle,
    /// Accepted tokens (hashes only).
    pub tokens: Arc<TokenSet>,
    /// Store connections for request handlers (blocking work only).
    pub store: Arc<StorePool>,
    /// Set when the daemon is stopping: `/readyz` answers 503 from then on.
    pub shutting_down: Arc<AtomicBool>,
    /// Embedded rule test results, by the reload attempt they were run after.
    pub rule_tests: Arc<Mutex<Option<rules::TestSummary>>>,
    /// Failed authentications per address (`api.max_auth_failures`).
    pub lockout: Arc<lockout::Lockout>,
}

impl ApiState {
    pub fn new(settings: Settings, daemon: DaemonHandle, tokens: TokenSet) -> ApiState {
        let store = StorePool::new(daemon.store_path.clone(), crate::options::store_options(&settings));
        let lockout = Arc::new(lockout::Lockout::new(settings.api.max_auth_failures));
        ApiState {
            lockout,
            settings: Arc::new(settings),
            daemon,
            tokens: Arc::new(tokens),
            store: Arc::new(store),
            shutting_down: Arc::new(AtomicBool::new(false)),
            rule_tests: Arc::new(Mutex::new(None)),
        }
    }
}

/// Store connections for the API, opened on demand and kept for reuse
/// (at most `MAX_IDLE`). Every use runs on tokio's blocking pool.
pub struct StorePool {
    path: PathBuf,
    options: StoreOptions,
    idle: Mutex<Vec<Store>>,
}

/// Connections kept open between requests.
const MAX_IDLE: usize = 4;

impl StorePool {
    pub fn new(path: PathBuf, options: StoreOptions) -> StorePool {
        StorePool {
            path,
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `job` with a store connection on the blocking pool.
    pub async fn run<T, F>(self: &Arc<Self>, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = pool.take()?;
            let result = job(&mut store);
            pool.give_back(store);
            result
        })
        .await
        .map_err(|error| ApiError::internal("a store task", error))?
    }

    fn take(&self) -> Result<Store, ApiError> {
        if let Some(store) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(store);
        }
        Store::open(&self.path, self.options.clone()).map_err(|error| ApiError::internal("opening the store", error))
    }

    fn give_back(&self, store: Store) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(store);
        }
    }
}

/// The whole HTTP application: health checks, the authenticated routes, a
/// JSON 404, request metrics, and the body limit.
pub fn router(state: ApiState) -> Router {
    let authenticated = api_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe));
    Router::new()
        .merge(open)
        .merge(authenticated)
        .merge(console::router())
        .fallback(fallback)
        .layer(middleware::from_fn(shape_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(state.settings.api.body_limit))
        .with_state(state)
}

/// Every authenticated route, one line each. The handler's first argument
/// (`Viewer`, `Operator`, `Admin`) is the role it needs.
pub fn api_routes() -> Router<ApiState> {
    Router::new()
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/me", get(health::me))
        .route("/api/v1/alarms", get(alarms::list))
        .route("/api/v1/alarms/{id}", get(alarms::detail))
        .route("/api/v1/alarms/{id}/status", post(alarms::set_status))
        .route(
            "/api/v1/allowlist",
            get(manage::allowlist_list).post(manage::allowlist_add),
        )
        .route("/api/v1/allowlist/report", get(manage::allowlist_report))
        .route("/api/v1/changes", get(manage::change_list))
        .route(
            "/api/v1/allowlist/{id}",
            axum::routing::delete(manage::allowlist_remove).patch(manage::allowlist_set_expiry),
        )
        .route(
            "/api/v1/remarks",
            get(manage::remark_list)
                .put(manage::remark_set)
                .delete(manage::remark_remove),
        )
        .route("/api/v1/assets", get(manage::asset_list).post(manage::asset_add))
        .route("/api/v1/rules", get(rules::list))
        .route("/api/v1/rules/reload", post(rules::reload))
        .route("/api/v1/activity", get(reports::activity))
        .route("/api/v1/traces", get(reports::traces))
        .route("/api/v1/events", get(reports::events))
        .route("/api/v1/dead-letters", get(reports::dead_letters))
        .route("/api/v1/notifications/deliveries", get(reports::deliveries))
        .route("/api/v1/notifications/deliveries/{id}/resend", post(reports::resend))
}

/// Unknown paths: 401 under the authenticated prefixes without a token (so
/// the API's shape is not probed anonymously), else 404.
async fn fallback(State(state): State<ApiState>, request: Request) -> ApiError {
    let path = request.uri().path().to_string();
    if (path.starts_with("/api/") || path == "/metrics")
        && let Err(error) = auth::caller_of(&state.tokens, request.headers())
    {
        count(&state, request.method().as_str(), "unmatched", error.status);
        return error;
    }
    count(&state, request.method().as_str(), "unmatched", StatusCode::NOT_FOUND);
    ApiError::not_found(format!("path: no endpoint {path:?} (see /api/v1/openapi.json)"))
}

/// Counts each request by method, route pattern and status.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    count(&state, &method, &route, response.status());
    response
}

fn count(state: &ApiState, method: &str, route: &str, status: StatusCode) {
    state
        .daemon
        .metrics
        .api_requests
        .get_or_create(&ApiRequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status: status.as_u16(),
        })
        .inc();
}

/// Every answer (API, console, errors): not sniffed as another type, no
/// referrer sent on, and not kept in any cache unless the handler said how
/// (the console's files: `no-cache` with an ETag). Alarm data and keys must
/// not linger in a browser's or proxy's cache.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers
            .entry(name)
            .or_insert(axum::http::HeaderValue::from_static(value));
    }
    response
}

/// Errors made outside the handlers (axum's own 405, rejections) get the
/// API's JSON error shape too.
async fn shape_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = match (status, text.is_empty()) {
        (StatusCode::METHOD_NOT_ALLOWED, _) => "method: not allowed on this path".to_string(),
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
        (_, false) => format!("request: {text}"),
    };
    let mut shaped = ApiError::new(status, message).into_response();
    if let Some(allow) = allow {
        shaped.headers_mut().insert(header::ALLOW, allow);
    }
    shaped
}

/// What the HTTP API needs from a running daemon; cheap to clone, safe to
/// share between tasks, and it does not keep the daemon from shutting down.
#[derive(Clone)]
pub struct DaemonHandle {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub rules: crate::rules::SharedRules,
    pub reload_status: Arc<std::sync::Mutex<crate::reload::ReloadStatus>>,
    pub reload: crate::reload::ReloadRequester,
    /// True while the engine thread runs.
    pub engine_alive: Arc<AtomicBool>,
    pub store_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("api.bind {address}: cannot listen: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the console token file {path}: {source}")]
    TokenFile { path: PathBuf, source: std::io::Error },
}

/// A running API server.
pub struct ApiServer {
    /// The console's URL (`api.public_url`, else from the bound address).
    url: String,
    local_addr: SocketAddr,
    /// The generated admin token's file, when no token is configured.
    token_file: Option<PathBuf>,
    shutting_down: Arc<AtomicBool>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Bind `api.bind` and serve on the current tokio runtime.
    pub async fn start(settings: &Settings, daemon: DaemonHandle) -> Result<ApiServer, ApiStartError> {
        let (tokens, token_file) =
            auth::effective_tokens(settings, &daemon.store_path).map_err(|source| ApiStartError::TokenFile {
                path: auth::console_token_path(&daemon.store_path),
                source,
            })?;
        let address = settings.api.bind;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ApiStartError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ApiStartError::Bind { address, source })?;
        let state = ApiState::new(settings.clone(), daemon, tokens);
        let shutting_down = state.shutting_down.clone();
        let app = router(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the API server stopped");
            }
        });
        let url = match &settings.api.public_url {
            Some(url) => format!("{url}/"),
            None => format!("http://{}/", reachable(local_addr)),
        };
        Ok(ApiServer {
            url,
            local_addr,
            token_file,
            shutting_down,
            stop,
            task,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
    }

    /// Mark the daemon as stopping (`/readyz` answers 503).
    pub fn draining(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Stop accepting, let requests in flight finish (within `deadline`).
    pub async fn stop(self, deadline: Duration) {
        self.draining();
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            tracing::warn!(?deadline, "API requests still running at shutdown; cancelled");
            task.abort();
        }
    }
}

/// An address a local browser can open: the unspecified address becomes loopback.
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), address.port()),
        _ => address,
    }
}

//! The web console: three static files (HTML, JavaScript, CSS) compiled into
//! the binary and served by the daemon next to the API, so there is no second
//! server to run and nothing to install.
//!
//! The console is a single-page app (hash routes `#/alarms`, `#/alarms/ID`,
//! `#/rules`, `#/activity`) that talks to `/api/v1` with the bearer token the
//! operator signs in with. Its pages are public; the data is not: every API
//! call carries the token.
//!
//! Headers: a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline code, no framing, API calls to this origin only),
//! `nosniff`, no referrer, and `Cache-Control: no-cache` with a strong ETag so
//! a browser revalidates cheaply (304) and never runs a stale script after an
//! upgrade.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The page shell: markup only, no inline script or style (the CSP forbids both).
const INDEX_HTML: &str = include_str!("console/index.html");
/// The whole app, vanilla JavaScript, no dependencies.
const APP_JS: &str = include_str!("console/app.js");
/// The stylesheet.
const APP_CSS: &str = include_str!("console/app.css");

/// Sent with every console file. `img-src data:` lets the app show inline SVG
/// icons as data URLs; `connect-src 'self'` confines `fetch` to this daemon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file with what it is served as.
struct Asset {
    /// The file's bytes.
    body: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// A strong validator, computed once from the content, so a new binary
    /// with a changed file is never answered with a 304 for the old one.
    etag: String,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest[..12]));
        Asset {
            body,
            content_type,
            etag,
        }
    }

    /// The file, or `304 Not Modified` when the browser already holds this version.
    fn respond(&self, request_headers: &HeaderMap) -> Response {
        let not_modified = request_headers
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.split(',').any(|tag| tag.trim() == self.etag || tag.trim() == "*"));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if not_modified {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (StatusCode::OK, headers, self.body).into_response()
    }
}

static INDEX: LazyLock<Asset> = LazyLock::new(|| Asset::new(INDEX_HTML, "text/html; charset=utf-8"));
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| Asset::new(APP_JS, "text/javascript; charset=utf-8"));
static STYLE: LazyLock<Asset> = LazyLock::new(|| Asset::new(APP_CSS, "text/css; charset=utf-8"));

async fn index(headers: HeaderMap) -> Response {
    INDEX.respond(&headers)
}

async fn script(headers: HeaderMap) -> Response {
    SCRIPT.respond(&headers)
}

async fn style(headers: HeaderMap) -> Response {
    STYLE.respond(&headers)
}

/// The console's routes: `/` (also `/console` and `/console/`), `/console/app.js`
/// and `/console/app.css`. Stateless, so it merges into a router of any state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::builder().uri(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).expect("a valid request"))
            .await
            .expect("the router is infallible")
    }

    #[tokio::test]
    async fn serves_each_file_with_its_type_and_a_strict_policy() {
        for (path, content_type, needle) in [
            ("/", "text/html; charset=utf-8", "<title>trailwarden</title>"),
            ("/console/app.js", "text/javascript; charset=utf-8", "sessionStorage"),
            ("/console/app.css", "text/css; charset=utf-8", ".badge"),
        ] {
            let response = get_path(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ASCII");
            assert!(policy.contains("script-src 'self';"), "{policy}");
            assert!(!policy.contains("unsafe-inline"), "{policy}");
            let body = to_bytes(response.into_body(), usize::MAX).await.expect("a body");
            let text = String::from_utf8(body.to_vec()).expect("UTF-8");
            assert!(text.contains(needle), "{path} lacks {needle}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified() {
        let first = get_path("/console/app.js", None).await;
        let etag = first.headers()[header::ETAG].to_str().expect("ASCII").to_string();
        let again = get_path("/console/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let stale = get_path("/console/app.js", Some("\"0000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let lower = INDEX_HTML.to_lowercase();
        assert!(!lower.contains("<style"), "inline <style> would be blocked by the CSP");
        assert!(
            !lower.contains(" style="),
            "inline style attributes would be blocked by the CSP"
        );
        let bytes = lower.as_bytes();
        for (position, _) in lower.match_indices(" on") {
            let name_end = bytes[position + 3..]
                .iter()
                .position(|byte| !byte.is_ascii_lowercase())
                .map_or(bytes.len(), |end| position + 3 + end);
            assert_ne!(
                bytes.get(name_end),
                Some(&b'='),
                "inline event handler at byte {position}"
            );
        }
        for (position, _) in lower.match_indices("<script") {
            let tag_end = lower[position..].find('>').map_or(lower.len(), |end| position + end);
            assert!(
                lower[position..tag_end].contains(" src="),
                "inline <script> at byte {position}"
            );
        }
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "no external resources"
        );
    }
}

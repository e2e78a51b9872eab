//! The demo's pages and their files: the chat page (`/`) and the admin page
//! (`/admin`), each with its script and style in files of the same origin,
//! every response with headers that defend it.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The pages' policy: scripts, styles and connections from their own origin
/// only (no `'unsafe-inline'`, no `*`), never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const SCRIPT: &str = "text/javascript; charset=utf-8";
const STYLE: &str = "text/css; charset=utf-8";

/// The routes of both pages and their files. The pages hold no data: what
/// they show comes from the JSON routes, with the signed-in user's token.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| file(HTML, include_str!("chat.html"))))
        .route("/chat.js", get(|| file(SCRIPT, include_str!("chat.js"))))
        // wsgate's browser client, as `clients/js` builds it (CI checks the
        // committed build is what its sources make).
        .route(
            "/wsgate-client.js",
            get(|| {
                file(
                    SCRIPT,
                    include_str!("../../clients/js/dist/wsgate-client.js"),
                )
            }),
        )
        .route("/chat.css", get(|| file(STYLE, include_str!("chat.css"))))
        .route("/admin", get(|| file(HTML, include_str!("admin.html"))))
        .route("/admin.js", get(|| file(SCRIPT, include_str!("admin.js"))))
        .route("/admin.css", get(|| file(STYLE, include_str!("admin.css"))))
}

/// One file, with the headers every page and its files are served with.
async fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

//! The plain HTTP listener once TLS is on: every request is sent to the
//! same path over HTTPS, on the relay's own name.

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Where to send plain HTTP requests.
#[derive(Debug, Clone)]
pub struct HttpsTarget {
    /// The relay's names; the first is used when a request names another
    /// host (a redirect never points anywhere else).
    pub domains: Vec<String>,
    pub https_port: u16,
}

pub fn router(target: HttpsTarget) -> Router {
    Router::new().fallback(redirect).with_state(target)
}

async fn redirect(State(target): State<HttpsTarget>, request: Request) -> Response {
    let location = location(&target, &request);
    match HeaderValue::from_str(&location) {
        // 308 keeps the method and body, unlike 301.
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

fn location(target: &HttpsTarget, request: &Request) -> String {
    let asked = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| host.rsplit_once(':').map_or(host, |(name, _)| name))
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase());
    let host = asked
        .filter(|name| target.domains.iter().any(|domain| domain == name))
        .or_else(|| target.domains.first().cloned())
        .unwrap_or_default();
    let port = match target.https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    format!("https://{host}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, path: &str) -> Request {
        Request::builder()
            .uri(path)
            .header(header::HOST, host)
            .body(axum::body::Body::empty())
            .expect("request")
    }

    #[test]
    fn redirects_keep_the_path_and_never_leave_the_relays_names() {
        let target = HttpsTarget {
            domains: vec!["chat.example.org".into(), "relay.example.org".into()],
            https_port: 443,
        };
        assert_eq!(
            location(&target, &request("relay.example.org", "/api/relay?x=1")),
            "https://relay.example.org/api/relay?x=1"
        );
        assert_eq!(
            location(&target, &request("evil.example:80", "/")),
            "https://chat.example.org/"
        );
        let other_port = HttpsTarget {
            https_port: 8443,
            ..target
        };
        assert_eq!(
            location(&other_port, &request("CHAT.example.org:8000", "/x")),
            "https://chat.example.org:8443/x"
        );
    }
}

//! The relay's HTTP side: the page (served by [`crate::assets`]), what the
//! page needs to know about the relay (`/api/relay`: its addresses, its
//! STUN service, and the federation's relays a browser can dial),
//! `/health` and Prometheus `/metrics`.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use axum::{
    Json, Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use libp2p::{Multiaddr, PeerId};
use prometheus_client::{encoding::text::encode, registry::Registry};
use serde::Serialize;

use crate::{addresses::transport_of, metrics::RelayMetrics};

/// What the HTTP handlers read; the swarm's event loop keeps it current.
#[derive(Debug)]
pub struct SharedState {
    pub peer_id: PeerId,
    pub started: Instant,
    pub info: RwLock<RelayInfo>,
    pub registry: Mutex<Registry>,
    pub metrics: RelayMetrics,
}

/// The relay as the page sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelayInfo {
    pub multiaddrs: Vec<Multiaddr>,
    pub stun_urls: Vec<String>,
    /// The federation's relays this relay is connected to, each with the
    /// addresses a browser can dial it at (see
    /// [`crate::federation::members::Members::browser_list`]): the relays
    /// a page dials circuits through and moves to when this one dies.
    #[serde(skip)]
    pub federation: Vec<(PeerId, Vec<Multiaddr>)>,
}

#[derive(Debug, Serialize)]
struct RelayInfoResponse<'a> {
    peer_id: String,
    agent_version: &'static str,
    multiaddrs: Vec<AddressEntry>,
    stun_urls: &'a [String],
    topics: Topics,
    federation: Vec<MemberEntry>,
}

#[derive(Debug, Serialize)]
struct MemberEntry {
    peer_id: String,
    multiaddrs: Vec<AddressEntry>,
}

#[derive(Debug, Serialize)]
struct AddressEntry {
    multiaddr: String,
    transport: &'static str,
}

#[derive(Debug, Serialize)]
struct Topics {
    discovery: &'static str,
    chat: &'static str,
}

pub fn router(state: Arc<SharedState>, page_dir: PathBuf) -> Router {
    let index = page_dir.join("index.html");
    let api = Router::new()
        .route("/api/relay", get(relay_info))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state);
    if index.is_file() {
        api.fallback_service(crate::assets::page(&page_dir))
    } else {
        tracing::warn!(
            page_dir = %page_dir.display(),
            "the page is not built; the relay serves only its API until it is (scripts/run builds it)"
        );
        api.fallback(page_missing)
    }
}

async fn relay_info(
    axum::extract::State(state): axum::extract::State<Arc<SharedState>>,
) -> Response {
    let info = state
        .info
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let body = RelayInfoResponse {
        peer_id: state.peer_id.to_string(),
        agent_version: crate::behaviour::AGENT_VERSION,
        multiaddrs: address_entries(&info.multiaddrs),
        stun_urls: &info.stun_urls,
        topics: Topics {
            discovery: chat_protocol::topics::DISCOVERY,
            chat: chat_protocol::topics::CHAT,
        },
        federation: info
            .federation
            .iter()
            .map(|(peer, addrs)| MemberEntry {
                peer_id: peer.to_string(),
                multiaddrs: address_entries(addrs),
            })
            .collect(),
    };
    let mut response = Json(body).into_response();
    // The page fetches this from its own origin; never cache stale addresses.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn address_entries(addrs: &[Multiaddr]) -> Vec<AddressEntry> {
    addrs
        .iter()
        .map(|addr| AddressEntry {
            multiaddr: addr.to_string(),
            transport: transport_of(addr),
        })
        .collect()
}

async fn health(axum::extract::State(state): axum::extract::State<Arc<SharedState>>) -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        peer_id: String,
        uptime_seconds: u64,
        connections: i64,
        reservations: i64,
    }
    Json(Health {
        status: "ok",
        peer_id: state.peer_id.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        connections: state.metrics.connections.get(),
        reservations: state.metrics.reservations.get(),
    })
    .into_response()
}

async fn metrics(axum::extract::State(state): axum::extract::State<Arc<SharedState>>) -> Response {
    let mut body = String::new();
    let registry = state
        .registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Err(error) = encode(&mut body, &registry) {
        tracing::error!(%error, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn page_missing() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "The chat page is not built yet. Build it with `scripts/run` (or `trunk build --release`) \
         and restart the relay, or point --page-dir at the built page.\n",
    )
        .into_response()
}

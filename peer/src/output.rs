//! What the terminal prints: one line per event, as text for people or as
//! JSON for scripts (`--json`).
//!
//! Text that came from the network (chat messages, agent strings, error
//! reasons a remote caused) goes through [`sanitize`]: a peer must not be
//! able to move the cursor or recolour the terminal with escape sequences.

use std::time::Duration;

use libp2p::PeerId;
use serde_json::{Value, json};

use crate::{
    events::{Event, PeerInfo, Reachability},
    names::Names,
};

/// Formats events for the terminal.
#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    pub names: Names,
}

impl Printer {
    /// The line for `event`, or `None` for events not worth a line in text
    /// mode (JSON mode prints every event).
    pub fn event(&self, event: &Event) -> Option<String> {
        if self.json {
            return Some(self.json_event(event).to_string());
        }
        let name = |peer: &PeerId| sanitize(&self.names.display(peer));
        let line = match event {
            Event::Listening { addr } => format!("* listening on {addr}"),
            Event::RelayConnected { relay } => format!("* connected to the relay {}", name(relay)),
            Event::RelayLost { reason, retry_in } => format!(
                "* lost the relay ({}); retrying in {} s",
                sanitize(reason),
                retry_in.as_secs()
            ),
            Event::Reserved { circuit_addr } => {
                format!("* others reach you through the relay at {circuit_addr}")
            }
            Event::ReservationRefused { reason } => format!(
                "* the relay refused a reservation: {}; others cannot reach you through it",
                sanitize(reason)
            ),
            Event::Reachability(Reachability::Reachable { addr }) => {
                format!("* AutoNAT: reachable directly at {addr}")
            }
            Event::Reachability(Reachability::Unreachable { addr, reason }) => format!(
                "* AutoNAT: not reachable directly at {addr} ({})",
                sanitize(reason)
            ),
            Event::Reachability(Reachability::ForcedPrivate { ignored }) => match ignored {
                Some(addr) => {
                    format!("* AutoNAT found {addr} reachable; --force-private: not announcing it")
                }
                None => "* --force-private: announcing circuit addresses only".to_owned(),
            },
            Event::Discovered { peer, addrs } => {
                format!("* discovered {} ({} addresses)", name(peer), addrs.len())
            }
            Event::PeerGone { peer } => format!("* {} is gone", name(peer)),
            Event::Connected { peer, path, .. } => {
                format!("* connected to {} ({path})", name(peer))
            }
            Event::Disconnected { peer, path } => {
                format!("* {path} connection to {} closed", name(peer))
            }
            Event::Unreachable { peer, reason } => {
                format!("* cannot reach {}: {}", name(peer), sanitize(reason))
            }
            Event::Located { peer, relay } => format!(
                "* {} is reserved on relay {relay}; dialing it through that relay",
                name(peer)
            ),
            Event::Redialing { peer, reason } => format!(
                "* the relayed connection to {} ended ({}); dialing it again",
                name(peer),
                sanitize(reason)
            ),
            Event::PunchingAgain { peer, attempt, of } => format!(
                "* punching a hole to {} again (try {attempt} of {of})",
                name(peer)
            ),
            Event::HolePunch { peer, result } => match result {
                Ok(()) => format!("* hole punch with {} succeeded: direct", name(peer)),
                Err(reason) => format!(
                    "* hole punch with {} failed ({}); relayed for now",
                    name(peer),
                    sanitize(reason)
                ),
            },
            Event::Ping { peer, path, rtt } => {
                format!("{}: {path}, rtt {}", name(peer), millis(*rtt))
            }
            Event::PingFailed { peer, reason } => {
                format!("{}: ping failed: {}", name(peer), sanitize(reason))
            }
            Event::Chat { own: true, .. } => return None,
            Event::Chat { from, text, .. } => format!("<{}> {}", name(from), sanitize(text)),
            Event::ChatNotSent { reason, .. } => format!("* not sent: {}", sanitize(reason)),
        };
        Some(line)
    }

    fn json_event(&self, event: &Event) -> Value {
        let peer =
            |peer: &PeerId| json!({"peer": peer.to_string(), "name": self.names.name_of(peer)});
        let mut value = match event {
            Event::Listening { addr } => json!({"event": "listening", "addr": addr.to_string()}),
            Event::RelayConnected { relay } => {
                json!({"event": "relay_connected", "relay": relay.to_string()})
            }
            Event::RelayLost { reason, retry_in } => {
                json!({"event": "relay_lost", "reason": reason, "retry_in_s": retry_in.as_secs()})
            }
            Event::Reserved { circuit_addr } => {
                json!({"event": "reserved", "addr": circuit_addr.to_string()})
            }
            Event::ReservationRefused { reason } => {
                json!({"event": "reservation_refused", "reason": reason})
            }
            Event::Reachability(Reachability::Reachable { addr }) => {
                json!({"event": "reachability", "reachable": true, "addr": addr.to_string()})
            }
            Event::Reachability(Reachability::Unreachable { addr, reason }) => {
                json!({"event": "reachability", "reachable": false, "addr": addr.to_string(), "reason": reason})
            }
            Event::Reachability(Reachability::ForcedPrivate { ignored }) => {
                json!({"event": "reachability", "reachable": false, "forced_private": true, "ignored": ignored.as_ref().map(ToString::to_string)})
            }
            Event::Discovered { peer: p, addrs } => merge(
                peer(p),
                json!({"event": "discovered", "addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            ),
            Event::PeerGone { peer: p } => merge(peer(p), json!({"event": "gone"})),
            Event::Connected {
                peer: p,
                path,
                remote_addr,
            } => merge(
                peer(p),
                json!({"event": "connected", "path": path.as_str(), "remote_addr": remote_addr.to_string()}),
            ),
            Event::Disconnected { peer: p, path } => merge(
                peer(p),
                json!({"event": "disconnected", "path": path.as_str()}),
            ),
            Event::Unreachable { peer: p, reason } => {
                merge(peer(p), json!({"event": "unreachable", "reason": reason}))
            }
            Event::Located { peer: p, relay } => merge(
                peer(p),
                json!({"event": "located", "relay": relay.to_string()}),
            ),
            Event::Redialing { peer: p, reason } => {
                merge(peer(p), json!({"event": "redialing", "reason": reason}))
            }
            Event::PunchingAgain {
                peer: p,
                attempt,
                of,
            } => merge(
                peer(p),
                json!({"event": "punching_again", "attempt": attempt, "of": of}),
            ),
            Event::HolePunch { peer: p, result } => merge(
                peer(p),
                json!({"event": "hole_punch", "ok": result.is_ok(), "error": result.as_ref().err()}),
            ),
            Event::Ping { peer: p, path, rtt } => merge(
                peer(p),
                json!({"event": "ping", "path": path.as_str(), "rtt_ms": rtt.as_secs_f64() * 1000.0}),
            ),
            Event::PingFailed { peer: p, reason } => {
                merge(peer(p), json!({"event": "ping_failed", "reason": reason}))
            }
            Event::Chat { from, text, own } => merge(
                peer(from),
                json!({"event": "chat", "text": text, "own": own}),
            ),
            Event::ChatNotSent { text, reason } => {
                json!({"event": "chat_not_sent", "text": text, "reason": reason})
            }
        };
        if let Some(object) = value.as_object_mut() {
            object.retain(|_, v| !v.is_null());
        }
        value
    }

    /// The `/peers` table (or one JSON line per peer).
    pub fn peers(&self, peers: &[PeerInfo]) -> Vec<String> {
        if self.json {
            return peers
                .iter()
                .map(|info| {
                    json!({
                        "event": "peer",
                        "peer": info.peer.to_string(),
                        "name": self.names.name_of(&info.peer),
                        "path": info.path.map(|p| p.as_str()),
                        "rtt_ms": info.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                        "agent": info.agent,
                        "discovered": info.discovered,
                        "addrs": info.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                    .to_string()
                })
                .collect();
        }
        if peers.is_empty() {
            return vec!["* no peers yet".to_owned()];
        }
        peers
            .iter()
            .map(|info| {
                format!(
                    "{:<12} {:<8} {:>10}  {}  {}",
                    sanitize(&self.names.display(&info.peer)),
                    info.path.map_or("-", |p| p.as_str()),
                    info.rtt.map_or_else(|| "-".to_owned(), millis),
                    info.peer,
                    sanitize(info.agent.as_deref().unwrap_or("")),
                )
            })
            .collect()
    }
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

fn millis(rtt: Duration) -> String {
    format!("{:.1} ms", rtt.as_secs_f64() * 1000.0)
}

/// `text` with control characters (escape sequences, carriage returns)
/// made visible, so that it cannot drive the terminal.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Path;

    #[test]
    fn escape_sequences_from_the_network_are_neutralised() {
        assert_eq!(
            sanitize("hi\x1b[2Jthere\r\nyou"),
            "hi\u{FFFD}[2Jthere\u{FFFD}⏎you"
        );
    }

    #[test]
    fn ping_line_says_path_and_rtt_in_text_and_json() {
        let peer = PeerId::random();
        let names = Names::parse(&format!("nas {peer}\n")).expect("valid");
        let event = Event::Ping {
            peer,
            path: Path::Direct,
            rtt: Duration::from_micros(1500),
        };
        let text = Printer {
            json: false,
            names: names.clone(),
        };
        assert_eq!(
            text.event(&event).as_deref(),
            Some("nas: direct, rtt 1.5 ms")
        );
        let json = Printer { json: true, names };
        let line: Value = serde_json::from_str(&json.event(&event).expect("line")).expect("json");
        assert_eq!(line["event"], "ping");
        assert_eq!(line["path"], "direct");
        assert_eq!(line["name"], "nas");
        assert_eq!(line["peer"], peer.to_string());
        assert_eq!(line["rtt_ms"], 1.5);
    }
}

//! Gossipsub topic names.

/// Discovery records ([`crate::PeerRecord`]) are published here.
///
/// This is the default topic of js-libp2p's `@libp2p/pubsub-peer-discovery`,
/// so js-libp2p peers configured with defaults discover ours and we theirs.
pub const DISCOVERY: &str = "_peer-discovery._p2p._pubsub";

/// Chat messages ([`crate::ChatMessage`]): UTF-8 text, one message each.
pub const CHAT: &str = "browser-chat/1";

/// Every topic of the network: the relay accepts subscriptions to these
/// only.
pub const ALL: [&str; 2] = [DISCOVERY, CHAT];

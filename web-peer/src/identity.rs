//! One identity per tab, kept across reloads of that tab.
//!
//! `sessionStorage` is per tab and survives a reload, so two tabs in one
//! browser are two peers and a reload keeps the peer id others know.

use libp2p::identity::Keypair;

const STORAGE_KEY: &str = "browser-chat/identity-key";

/// The tab's identity: the stored one, or a new one that is then stored.
pub fn load_or_create() -> Keypair {
    let storage = web_sys::window().and_then(|window| window.session_storage().ok().flatten());
    let stored = storage
        .as_ref()
        .and_then(|storage| storage.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|hex| decode_hex(&hex))
        .and_then(|bytes| Keypair::from_protobuf_encoding(&bytes).ok());
    if let Some(keypair) = stored {
        return keypair;
    }
    let keypair = Keypair::generate_ed25519();
    if let (Some(storage), Ok(bytes)) = (storage, keypair.to_protobuf_encoding()) {
        // Without storage (private mode, quota) the tab simply gets a new
        // identity on the next reload.
        let _ = storage.set_item(STORAGE_KEY, &encode_hex(&bytes));
    }
    keypair
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

//! The Noise handshake that authenticates a WebRTC-direct connection
//! (specs `webrtc/webrtc-direct.md`, "Connection Security"). The server
//! starts it, so the roles are the reverse of the connection's: the
//! server is Noise's initiator, the dialer its responder. The prologue
//! binds both DTLS certificates to the handshake.

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use libp2p_core::{
    UpgradeInfo as _,
    upgrade::{InboundConnectionUpgrade as _, OutboundConnectionUpgrade as _},
};
use libp2p_identity::{Keypair, PeerId};
pub use libp2p_noise::Error;

use crate::Fingerprint;

/// The server's side (the connection's listener, Noise's initiator).
pub async fn inbound<T>(
    id_keys: Keypair,
    stream: T,
    client_fingerprint: Fingerprint,
    server_fingerprint: Fingerprint,
) -> Result<PeerId, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = config(&id_keys, client_fingerprint, server_fingerprint)?;
    let info = protocol(&config);
    let (peer, mut channel) = config.upgrade_outbound(stream, info).await?;
    channel.close().await?;
    Ok(peer)
}

/// The dialer's side (the connection's dialer, Noise's responder).
pub async fn outbound<T>(
    id_keys: Keypair,
    stream: T,
    server_fingerprint: Fingerprint,
    client_fingerprint: Fingerprint,
) -> Result<PeerId, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = config(&id_keys, client_fingerprint, server_fingerprint)?;
    let info = protocol(&config);
    let (peer, mut channel) = config.upgrade_inbound(stream, info).await?;
    channel.close().await?;
    Ok(peer)
}

fn config(
    id_keys: &Keypair,
    client_fingerprint: Fingerprint,
    server_fingerprint: Fingerprint,
) -> Result<libp2p_noise::Config, Error> {
    Ok(libp2p_noise::Config::new(id_keys)?
        .with_prologue(prologue(client_fingerprint, server_fingerprint)))
}

fn protocol(config: &libp2p_noise::Config) -> &'static str {
    config
        .protocol_info()
        .next()
        .expect("libp2p-noise names its protocol")
}

/// `libp2p-webrtc-noise:`, then the dialer's and the server's fingerprints
/// as multihashes.
fn prologue(client: Fingerprint, server: Fingerprint) -> Vec<u8> {
    let mut prologue = b"libp2p-webrtc-noise:".to_vec();
    prologue.extend(client.to_multihash().to_bytes());
    prologue.extend(server.to_multihash().to_bytes());
    prologue
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt as _, io::BufReader};

    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn fingerprint(text: &str) -> Fingerprint {
        Fingerprint::raw(hex(text).try_into().expect("32 bytes"))
    }

    #[test]
    fn prologue_matches_the_spec_test_vector() {
        let client =
            fingerprint("3e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870");
        let server =
            fingerprint("30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99");
        assert_eq!(
            prologue(client, server),
            hex(
                "6c69627032702d7765627274632d6e6f6973653a12203e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870122030fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99"
            )
        );
    }

    #[test]
    fn both_sides_learn_each_others_peer_id_and_a_wrong_fingerprint_fails() {
        let (client_keys, server_keys) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (client_fp, server_fp) = (Fingerprint::raw([1; 32]), Fingerprint::raw([2; 32]));
        let run = |claimed_server_fp: Fingerprint| {
            let (client_io, server_io) = futures_ringbuf_pair();
            futures::executor::block_on(futures::future::join(
                outbound(client_keys.clone(), client_io, claimed_server_fp, client_fp),
                inbound(server_keys.clone(), server_io, client_fp, server_fp),
            ))
        };
        let (client, server) = run(server_fp);
        assert_eq!(client.expect("client"), server_keys.public().to_peer_id());
        assert_eq!(server.expect("server"), client_keys.public().to_peer_id());
        let (client, server) = run(Fingerprint::raw([9; 32]));
        assert!(
            client.is_err() || server.is_err(),
            "a prologue mismatch must fail Noise"
        );
    }

    /// A duplex pipe: two in-memory byte streams crossed.
    fn futures_ringbuf_pair() -> (Duplex, Duplex) {
        let (a_tx, b_rx) = futures::channel::mpsc::unbounded::<Vec<u8>>();
        let (b_tx, a_rx) = futures::channel::mpsc::unbounded::<Vec<u8>>();
        (Duplex::new(a_tx, a_rx), Duplex::new(b_tx, b_rx))
    }

    struct Duplex {
        tx: futures::channel::mpsc::UnboundedSender<Vec<u8>>,
        rx: BufReader<futures::stream::IntoAsyncRead<Incoming>>,
    }

    type Incoming = futures::stream::Map<
        futures::channel::mpsc::UnboundedReceiver<Vec<u8>>,
        fn(Vec<u8>) -> std::io::Result<Vec<u8>>,
    >;

    impl Duplex {
        fn new(
            tx: futures::channel::mpsc::UnboundedSender<Vec<u8>>,
            rx: futures::channel::mpsc::UnboundedReceiver<Vec<u8>>,
        ) -> Self {
            use futures::{StreamExt as _, TryStreamExt as _};
            let incoming: Incoming = rx.map(Ok as fn(Vec<u8>) -> std::io::Result<Vec<u8>>);
            Self {
                tx,
                rx: BufReader::new(incoming.into_async_read()),
            }
        }
    }

    impl AsyncRead for Duplex {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.rx).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Duplex {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let _ = self.tx.unbounded_send(buf.to_vec());
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.tx.close_channel();
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[allow(dead_code)]
    async fn unused(mut d: Duplex) {
        let _ = d.read(&mut [0u8; 1]).await;
    }
}

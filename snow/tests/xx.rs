//! The XX handshake and transport, end to end, with each resolver: a
//! transcript recorded from snow 0.10 with the same keys and randomness
//! must come out byte for byte, and misuse and tampering must fail.

use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, Error, HandshakeState};

/// A reproducible "random" sequence, so that ephemeral keys are known.
struct Sequence(u8);

impl Random for Sequence {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        for byte in dest {
            *byte = self.0;
            self.0 = self.0.wrapping_mul(31).wrapping_add(7);
        }
        Ok(())
    }
}

/// X25519, as libp2p-noise supplies it.
#[derive(Default)]
struct X25519 {
    secret: [u8; 32],
    public: [u8; 32],
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, key: &[u8]) {
        self.secret.copy_from_slice(key);
        self.public = MontgomeryPoint::mul_base_clamped(self.secret).to_bytes();
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), Error> {
        let mut key = [0; 32];
        rng.try_fill_bytes(&mut key)?;
        self.set(&key);
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        &self.public
    }
    fn privkey(&self) -> &[u8] {
        &self.secret
    }
    fn dh(&self, public: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let point = MontgomeryPoint(public.try_into().map_err(|_| Error::Dh)?);
        out[..32].copy_from_slice(&point.mul_clamped(self.secret).to_bytes());
        Ok(())
    }
}

/// Hashes and ciphers from `crypto`, X25519 and a sequence seeded `seed`.
struct TestResolver<R> {
    seed: u8,
    crypto: R,
}

impl<R: CryptoResolver> CryptoResolver for TestResolver<R> {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Sequence(self.seed)))
    }
    fn resolve_dh(&self, _: &snow::params::DHChoice) -> Option<Box<dyn Dh>> {
        Some(Box::new(X25519::default()))
    }
    fn resolve_hash(&self, choice: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        self.crypto.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        self.crypto.resolve_cipher(choice)
    }
}

const NAME: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

fn session<R: CryptoResolver + 'static>(
    crypto: R,
    initiator: bool,
    prologue: &'static [u8],
) -> HandshakeState {
    let (seed, key): (u8, &'static [u8; 32]) = if initiator {
        (11, &[1; 32])
    } else {
        (99, &[2; 32])
    };
    let builder = Builder::with_resolver(
        NAME.parse().expect("protocol name"),
        Box::new(TestResolver { seed, crypto }),
    )
    .prologue(prologue)
    .and_then(|b| b.local_private_key(key))
    .expect("builder");
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .expect("builds")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write(state: &mut HandshakeState, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 65535];
    let len = state.write_message(payload, &mut out).expect("writes");
    out.truncate(len);
    out
}

fn read(state: &mut HandshakeState, message: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0; 65535];
    let len = state.read_message(message, &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// Recorded from snow 0.10.0 (its default resolver) with static keys
/// [1; 32] and [2; 32], the sequences seeded 11 and 99, prologue
/// "prologue", payloads "hello", "payload one", "", then one transport
/// message of 100 bytes of 1 from the initiator.
const TRANSCRIPT: [&str; 3] = [
    "ce7d4ebf29de8910cdcce8d29cfc7ec7a588ce7acf87b20e10d82059f189220468656c6c6f",
    "6ba7f3cfaf0efefbf3ce8d6e1f05daf47098e076cf6bc19093a0af0eee222f3ab74ed0dc9e3c9d6992aaf8e551f9058fa81a9ba95ef5289ccfc6f94f7e237514537bb12b76f2789ad99f8e636a1c620569f1b0b7f013cce5a867dfb210abcf7bde009386c1a2e3d531eb6f",
    "c910e4ebd05ab3114094d758063c2e039ea2a7ab2c23301ef4dd484dd21ad5bf87c93ad92d1ba132725360f157e4c173a27d37557fc90f68a5132531d5b481ab",
];
const FIRST_TRANSPORT_MESSAGE_OF_ZEROS: &str = "d8c7d373848ed6360f38be1e7c20752d";
const SECOND_RESPONDER_MESSAGE: &str = "fac5fe8dcfaf2d23a9c343506def2e956b99";
const HANDSHAKE_HASH: &str = "569bc35f58194e362860e47319d4bf4ea953cf65f5d43c767030d3e1d3d388a3";

fn reproduces_snows_transcript<R: CryptoResolver + Copy + 'static>(crypto: R) {
    let mut initiator = session(crypto, true, b"prologue");
    let mut responder = session(crypto, false, b"prologue");
    for (n, (payload, expected)) in [&b"hello"[..], b"payload one", b""]
        .into_iter()
        .zip(TRANSCRIPT)
        .enumerate()
    {
        let (writer, reader) = if n % 2 == 0 {
            (&mut initiator, &mut responder)
        } else {
            (&mut responder, &mut initiator)
        };
        let message = write(writer, payload);
        assert_eq!(hex(&message), expected, "handshake message {n}");
        assert_eq!(
            read(reader, &message).expect("reads"),
            payload,
            "payload of message {n}"
        );
    }
    assert!(initiator.is_handshake_finished() && responder.is_handshake_finished());
    assert_eq!(hex(initiator.get_handshake_hash()), HANDSHAKE_HASH);
    assert_eq!(
        initiator.get_handshake_hash(),
        responder.get_handshake_hash()
    );
    assert_eq!(
        initiator.get_remote_static(),
        Some(&MontgomeryPoint::mul_base_clamped([2; 32]).to_bytes()[..])
    );
    assert_eq!(
        responder.get_remote_static(),
        Some(&MontgomeryPoint::mul_base_clamped([1; 32]).to_bytes()[..])
    );

    let mut initiator = initiator.into_transport_mode().expect("finished");
    let mut responder = responder.into_transport_mode().expect("finished");
    let (mut message, mut payload) = (vec![0; 1024], vec![0; 1024]);
    let len = initiator
        .write_message(&[], &mut message)
        .expect("encrypts");
    assert_eq!(hex(&message[..len]), FIRST_TRANSPORT_MESSAGE_OF_ZEROS);
    assert_eq!(responder.read_message(&message[..len], &mut payload), Ok(0));
    let len = responder
        .write_message(&[0, 0], &mut message)
        .expect("encrypts");
    assert_eq!(hex(&message[..len]), SECOND_RESPONDER_MESSAGE);
    // Tampered: refused, and the next genuine message still reads.
    message[0] ^= 1;
    assert_eq!(
        initiator.read_message(&message[..len], &mut payload),
        Err(Error::Decrypt)
    );
    message[0] ^= 1;
    assert_eq!(initiator.read_message(&message[..len], &mut payload), Ok(2));
}

#[test]
fn default_resolver_reproduces_snows_transcript() {
    reproduces_snows_transcript(DefaultResolver);
}

#[cfg(feature = "ring-resolver")]
#[test]
fn ring_resolver_reproduces_snows_transcript() {
    reproduces_snows_transcript(snow::resolvers::RingResolver);
}

#[test]
fn a_different_prologue_fails_the_handshake() {
    let mut initiator = session(DefaultResolver, true, b"one");
    let mut responder = session(DefaultResolver, false, b"two");
    let first = write(&mut initiator, b"");
    read(&mut responder, &first).expect("the first message is not authenticated yet");
    let second = write(&mut responder, b"");
    assert_eq!(read(&mut initiator, &second), Err(Error::Decrypt));
}

#[test]
fn tampered_handshake_messages_are_refused() {
    for (n, byte) in [(1, 0), (1, 40), (1, 90), (2, 0), (2, 60)] {
        let mut initiator = session(DefaultResolver, true, b"p");
        let mut responder = session(DefaultResolver, false, b"p");
        let first = write(&mut initiator, b"");
        read(&mut responder, &first).expect("reads");
        let mut second = write(&mut responder, b"x");
        if n == 1 {
            second[byte] ^= 1;
            assert_eq!(
                read(&mut initiator, &second),
                Err(Error::Decrypt),
                "message 1, byte {byte}"
            );
            continue;
        }
        read(&mut initiator, &second).expect("reads");
        let mut third = write(&mut initiator, b"");
        third[byte] ^= 1;
        assert_eq!(
            read(&mut responder, &third),
            Err(Error::Decrypt),
            "message 2, byte {byte}"
        );
    }
}

#[test]
fn calls_out_of_turn_and_short_messages_are_errors() {
    let mut initiator = session(DefaultResolver, true, b"p");
    let mut responder = session(DefaultResolver, false, b"p");
    let mut out = [0u8; 200];
    assert_eq!(
        responder.write_message(b"", &mut out),
        Err(Error::State),
        "the responder speaks second"
    );
    assert_eq!(
        initiator.read_message(&[0; 32], &mut out),
        Err(Error::State),
        "the initiator speaks first"
    );
    assert_eq!(
        initiator.write_message(b"", &mut [0u8; 31]),
        Err(Error::Input),
        "no room for e"
    );
    assert_eq!(
        responder.read_message(&[0; 31], &mut out),
        Err(Error::Input),
        "e is 32 bytes"
    );
    let first = write(&mut initiator, b"");
    read(&mut responder, &first).expect("reads");
    let second = write(&mut responder, b"");
    assert_eq!(
        read(&mut initiator, &second[..70]),
        Err(Error::Input),
        "cut inside s"
    );
    assert_eq!(
        session(DefaultResolver, true, b"p")
            .into_transport_mode()
            .map(drop),
        Err(Error::State)
    );
}

#[test]
fn only_xx_with_chachapoly_and_sha256_builds() {
    for name in [
        "Noise_IK_25519_ChaChaPoly_SHA256",
        "Noise_XX_25519_ChaChaPoly",
        "Noise_XX_25519_Foo_SHA256",
        "XX",
    ] {
        assert_eq!(
            name.parse::<snow::params::NoiseParams>().map(drop),
            Err(Error::Pattern),
            "{name}"
        );
    }
    for name in [
        "Noise_XX_25519_AESGCM_SHA256",
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_XX_25519_ChaChaPoly_SHA512",
    ] {
        let params = name.parse().expect("a name of the spec");
        let resolver = TestResolver {
            seed: 0,
            crypto: DefaultResolver,
        };
        let built = Builder::with_resolver(params, Box::new(resolver))
            .local_private_key(&[1; 32])
            .and_then(|b| b.build_initiator());
        assert_eq!(
            built.map(drop),
            Err(Error::Init),
            "{name}: the resolver has no such function"
        );
    }
    let params = NAME.parse().expect("protocol name");
    let resolver = TestResolver {
        seed: 0,
        crypto: DefaultResolver,
    };
    assert_eq!(
        Builder::with_resolver(params, Box::new(resolver))
            .build_initiator()
            .map(drop),
        Err(Error::Init),
        "no static key"
    );
}

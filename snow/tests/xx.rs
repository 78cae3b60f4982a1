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

/// Hands out one fixed key (a test vector's ephemeral), then fails.
struct Fixed(Option<[u8; 32]>);

impl Random for Fixed {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        let key = self.0.take().ok_or(Error::Rng)?;
        dest.copy_from_slice(key.get(..dest.len()).ok_or(Error::Rng)?);
        Ok(())
    }
}

/// Where a test session's randomness comes from.
#[derive(Clone, Copy)]
enum Randomness {
    /// A [`Sequence`] with this seed.
    Sequence(u8),
    /// [`Fixed`]: one key, the ephemeral of a test vector.
    Fixed([u8; 32]),
}

/// Hashes and ciphers from `crypto`, X25519 and `random`.
struct TestResolver<R> {
    random: Randomness,
    crypto: R,
}

impl<R: CryptoResolver> CryptoResolver for TestResolver<R> {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(match self.random {
            Randomness::Sequence(seed) => Box::new(Sequence(seed)),
            Randomness::Fixed(key) => Box::new(Fixed(Some(key))),
        })
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

/// An XX session with static key `key`.
fn build<R: CryptoResolver + 'static>(
    crypto: R,
    random: Randomness,
    key: &[u8],
    prologue: &[u8],
    initiator: bool,
) -> HandshakeState {
    let builder = Builder::with_resolver(
        NAME.parse().expect("protocol name"),
        Box::new(TestResolver { random, crypto }),
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

/// The transcript's sessions: static keys [1; 32] and [2; 32], sequences
/// seeded 11 and 99.
fn session<R: CryptoResolver + 'static>(
    crypto: R,
    initiator: bool,
    prologue: &'static [u8],
) -> HandshakeState {
    let (seed, key) = if initiator {
        (11, [1; 32])
    } else {
        (99, [2; 32])
    };
    build(
        crypto,
        Randomness::Sequence(seed),
        &key,
        prologue,
        initiator,
    )
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
/// "prologue", payloads "hello", "payload one", "", then an empty
/// transport message from the initiator and one of two zero bytes from
/// the responder.
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
    // A message that failed ends the handshake: a new responder.
    let mut responder = session(DefaultResolver, false, b"p");
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
            random: Randomness::Sequence(0),
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
        random: Randomness::Sequence(0),
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

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

fn key(text: &str) -> [u8; 32] {
    unhex(text).try_into().expect("a 32-byte key")
}

/// The `Noise_XX_25519_ChaChaPoly_SHA256` vector of the cacophony test
/// vectors (as shipped in snow 0.10's `tests/vectors/cacophony.txt`):
/// prologue "John Galt", both static and ephemeral keys, and six messages,
/// three of the handshake and three of transport, initiator first.
mod cacophony {
    pub const PROLOGUE: &str = "4a6f686e2047616c74";
    pub const INIT_STATIC: &str =
        "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
    pub const INIT_EPHEMERAL: &str =
        "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
    pub const RESP_STATIC: &str =
        "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
    pub const RESP_EPHEMERAL: &str =
        "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
    pub const HANDSHAKE_HASH: &str =
        "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e";
    /// (payload, ciphertext), in order.
    pub const MESSAGES: [(&str, &str); 6] = [
        (
            "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d69736573",
        ),
        (
            "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162c9326ad",
        ),
        (
            "462e20412e20486179656b",
            "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030",
        ),
        (
            "4361726c204d656e676572",
            "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df",
        ),
        (
            "4a65616e2d426170746973746520536179",
            "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5",
        ),
        (
            "457567656e2042f6686d20766f6e2042617765726b",
            "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f",
        ),
    ];
}

fn reproduces_the_cacophony_vector<R: CryptoResolver + Copy + 'static>(crypto: R) {
    let prologue = unhex(cacophony::PROLOGUE);
    let session = |initiator: bool| {
        let (static_key, ephemeral) = if initiator {
            (key(cacophony::INIT_STATIC), key(cacophony::INIT_EPHEMERAL))
        } else {
            (key(cacophony::RESP_STATIC), key(cacophony::RESP_EPHEMERAL))
        };
        let random = Randomness::Fixed(ephemeral);
        build(crypto, random, &static_key, &prologue, initiator)
    };
    let (mut initiator, mut responder) = (session(true), session(false));
    for (n, (payload, ciphertext)) in cacophony::MESSAGES[..3].iter().enumerate() {
        let (writer, reader) = if n % 2 == 0 {
            (&mut initiator, &mut responder)
        } else {
            (&mut responder, &mut initiator)
        };
        let message = write(writer, &unhex(payload));
        assert_eq!(hex(&message), *ciphertext, "handshake message {n}");
        assert_eq!(hex(&read(reader, &message).expect("reads")), *payload);
    }
    assert_eq!(
        hex(initiator.get_handshake_hash()),
        cacophony::HANDSHAKE_HASH
    );
    assert_eq!(
        hex(responder.get_handshake_hash()),
        cacophony::HANDSHAKE_HASH
    );

    let mut initiator = initiator.into_transport_mode().expect("finished");
    let mut responder = responder.into_transport_mode().expect("finished");
    let (mut message, mut out) = (vec![0; 1024], vec![0; 1024]);
    for (n, (payload, ciphertext)) in cacophony::MESSAGES[3..].iter().enumerate() {
        // The responder answers the initiator's third handshake message.
        let (writer, reader) = if n % 2 == 0 {
            (&mut responder, &mut initiator)
        } else {
            (&mut initiator, &mut responder)
        };
        let len = writer
            .write_message(&unhex(payload), &mut message)
            .expect("encrypts");
        assert_eq!(hex(&message[..len]), *ciphertext, "transport message {n}");
        let read = reader
            .read_message(&message[..len], &mut out)
            .expect("decrypts");
        assert_eq!(hex(&out[..read]), *payload);
    }
}

#[test]
fn default_resolver_reproduces_the_cacophony_vector() {
    reproduces_the_cacophony_vector(DefaultResolver);
}

#[cfg(feature = "ring-resolver")]
#[test]
fn ring_resolver_reproduces_the_cacophony_vector() {
    reproduces_the_cacophony_vector(snow::resolvers::RingResolver);
}

#[test]
fn a_handshake_that_failed_part_way_refuses_every_later_call() {
    let mut initiator = session(DefaultResolver, true, b"p");
    let mut responder = session(DefaultResolver, false, b"p");
    let first = write(&mut initiator, b"");
    read(&mut responder, &first).expect("reads");
    let second = write(&mut responder, b"x");
    let mut tampered = second.clone();
    *tampered.last_mut().expect("not empty") ^= 1;
    assert_eq!(read(&mut initiator, &tampered), Err(Error::Decrypt));
    // Its hash and keys were half-mixed by the failed message: the
    // genuine one must not be read into them, nor anything written.
    assert_eq!(read(&mut initiator, &second), Err(Error::State));
    assert_eq!(
        initiator.write_message(b"", &mut [0u8; 200]),
        Err(Error::State)
    );
    assert_eq!(initiator.into_transport_mode().map(drop), Err(Error::State));
}

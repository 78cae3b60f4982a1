//! The spec's HandshakeState (section 5.3) for the `XX` pattern, the
//! [`Builder`] that makes it, and the [`TransportState`] it ends in.
//!
//! ```text
//! XX:
//!   -> e
//!   <- e, ee, s, es
//!   -> s, se
//! ```

use core::fmt;

use zeroize::Zeroize as _;

use crate::cipherstate::CipherState;
use crate::params::NoiseParams;
use crate::resolvers::{CryptoResolver, DefaultResolver};
use crate::symmetric::SymmetricState;
use crate::types::{Cipher, Dh, Random};
use crate::{DH_LEN, Error, MAX_MESSAGE_LEN, TAG_LEN};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    E,
    S,
    EE,
    ES,
    SE,
}

/// The XX pattern's messages, initiator's first.
const XX: [&[Token]; 3] = [
    &[Token::E],
    &[Token::E, Token::EE, Token::S, Token::ES],
    &[Token::S, Token::SE],
];

/// Makes a [`HandshakeState`] from a protocol name, a resolver and keys.
pub struct Builder<'b> {
    params: NoiseParams,
    resolver: Box<dyn CryptoResolver>,
    prologue: &'b [u8],
    local_private_key: Option<&'b [u8]>,
    remote_public_key: Option<&'b [u8]>,
}

impl fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("params", &self.params.name)
            .finish_non_exhaustive()
    }
}

impl<'b> Builder<'b> {
    /// A builder on the [`DefaultResolver`].
    pub fn new(params: NoiseParams) -> Self {
        Self::with_resolver(params, Box::new(DefaultResolver))
    }

    pub fn with_resolver(params: NoiseParams, resolver: Box<dyn CryptoResolver>) -> Self {
        Builder {
            params,
            resolver,
            prologue: &[],
            local_private_key: None,
            remote_public_key: None,
        }
    }

    /// Data both sides must agree on, mixed into the handshake hash first.
    pub fn prologue(mut self, prologue: &'b [u8]) -> Result<Self, Error> {
        self.prologue = prologue;
        Ok(self)
    }

    /// The local static private key (XX sends its public key).
    pub fn local_private_key(mut self, key: &'b [u8]) -> Result<Self, Error> {
        self.local_private_key = Some(key);
        Ok(self)
    }

    /// A remote static key known before the handshake. XX learns it in the
    /// handshake, so building with one is an [`Error::Init`].
    pub fn remote_public_key(mut self, key: &'b [u8]) -> Result<Self, Error> {
        self.remote_public_key = Some(key);
        Ok(self)
    }

    pub fn build_initiator(self) -> Result<HandshakeState, Error> {
        self.build(true)
    }

    pub fn build_responder(self) -> Result<HandshakeState, Error> {
        self.build(false)
    }

    fn build(self, initiator: bool) -> Result<HandshakeState, Error> {
        let resolver = &*self.resolver;
        if self.remote_public_key.is_some() {
            return Err(Error::Init);
        }
        let hash = resolver
            .resolve_hash(&self.params.hash)
            .ok_or(Error::Init)?;
        let cipher = || {
            resolver
                .resolve_cipher(&self.params.cipher)
                .ok_or(Error::Init)
        };
        let (handshake_cipher, transport_ciphers) = (cipher()?, [cipher()?, cipher()?]);
        let rng = resolver.resolve_rng().ok_or(Error::Init)?;
        let mut s = resolver.resolve_dh(&self.params.dh).ok_or(Error::Init)?;
        let e = resolver.resolve_dh(&self.params.dh).ok_or(Error::Init)?;
        if s.pub_len() != DH_LEN || e.pub_len() != DH_LEN {
            return Err(Error::Init);
        }
        let local_private_key = self.local_private_key.ok_or(Error::Init)?;
        if local_private_key.len() != s.priv_len() {
            return Err(Error::Input);
        }
        s.set(local_private_key);
        let mut symmetric = SymmetricState::new(&self.params.name, hash, handshake_cipher);
        symmetric.mix_hash(self.prologue);
        Ok(HandshakeState {
            symmetric,
            transport_ciphers: Some(transport_ciphers),
            rng,
            s,
            e,
            rs: None,
            re: None,
            initiator,
            message: 0,
            failed: false,
        })
    }
}

/// A handshake in progress.
pub struct HandshakeState {
    symmetric: SymmetricState,
    /// The ciphers of the two transport directions, keyed at the end.
    transport_ciphers: Option<[Box<dyn Cipher>; 2]>,
    rng: Box<dyn Random>,
    s: Box<dyn Dh>,
    e: Box<dyn Dh>,
    rs: Option<[u8; DH_LEN]>,
    re: Option<[u8; DH_LEN]>,
    initiator: bool,
    /// Messages sent and received so far.
    message: usize,
    /// A message failed part-way, leaving the hash and keys half-mixed:
    /// the handshake is over (the spec deletes such a state; snow 0.10
    /// rolled it back instead). Every later call is refused.
    failed: bool,
}

impl fmt::Debug for HandshakeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeState")
            .field("initiator", &self.initiator)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl HandshakeState {
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    pub fn is_handshake_finished(&self) -> bool {
        self.message == XX.len()
    }

    /// The handshake hash so far (the channel binding once finished).
    pub fn get_handshake_hash(&self) -> &[u8] {
        self.symmetric.handshake_hash()
    }

    /// The peer's static public key, once its message carried it.
    pub fn get_remote_static(&self) -> Option<&[u8]> {
        self.rs.as_ref().map(|key| &key[..])
    }

    /// Whether the next message is ours to write.
    fn our_turn(&self) -> bool {
        self.message.is_multiple_of(2) == self.initiator
    }

    /// Writes the next handshake message, carrying `payload`, into `out`;
    /// returns its length.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if self.failed || self.is_handshake_finished() || !self.our_turn() {
            return Err(Error::State);
        }
        let tokens = XX[self.message];
        let mut needed = payload.len();
        for token in tokens {
            needed += match token {
                Token::E => DH_LEN,
                Token::S => DH_LEN + TAG_LEN,
                _ => 0,
            };
        }
        // Every token that carries a key comes after a DH in XX but the
        // first message's: its payload is sent in the clear.
        if self.message > 0 {
            needed += TAG_LEN;
        }
        if needed > MAX_MESSAGE_LEN || out.len() < needed {
            return Err(Error::Input);
        }
        let written = self.write_tokens(payload, out);
        self.failed = written.is_err();
        written
    }

    /// `write_message` once its sizes are checked: from here on a
    /// failure leaves the state half-changed.
    fn write_tokens(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let tokens = XX[self.message];
        let mut at = 0;
        for &token in tokens {
            match token {
                Token::E => {
                    self.e.generate(&mut *self.rng)?;
                    out[at..at + DH_LEN].copy_from_slice(self.e.pubkey());
                    self.symmetric.mix_hash(&out[at..at + DH_LEN]);
                    at += DH_LEN;
                }
                Token::S => {
                    let public = self.s.pubkey().to_vec();
                    at += self.symmetric.encrypt_and_hash(&public, &mut out[at..])?;
                }
                dh => self.mix_dh(dh)?,
            }
        }
        at += self.symmetric.encrypt_and_hash(payload, &mut out[at..])?;
        self.message += 1;
        Ok(at)
    }

    /// Reads the peer's next handshake message; writes its payload into
    /// `out` and returns the payload's length.
    pub fn read_message(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if self.failed || self.is_handshake_finished() || self.our_turn() {
            return Err(Error::State);
        }
        if message.len() > MAX_MESSAGE_LEN {
            return Err(Error::Input);
        }
        let read = self.read_tokens(message, out);
        self.failed = read.is_err();
        read
    }

    /// `read_message` once it is our turn to read: the message's keys are
    /// mixed in as they are read, so a failure leaves the state
    /// half-changed.
    fn read_tokens(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let mut rest = message;
        for &token in XX[self.message] {
            match token {
                Token::E => {
                    let (key, tail) = rest.split_at_checked(DH_LEN).ok_or(Error::Input)?;
                    self.re = Some(key.try_into().map_err(|_| Error::Input)?);
                    self.symmetric.mix_hash(key);
                    rest = tail;
                }
                Token::S => {
                    let len = DH_LEN + self.symmetric.overhead();
                    let (sealed, tail) = rest.split_at_checked(len).ok_or(Error::Input)?;
                    let mut key = [0u8; DH_LEN];
                    self.symmetric.decrypt_and_hash(sealed, &mut key)?;
                    self.rs = Some(key);
                    rest = tail;
                }
                dh => self.mix_dh(dh)?,
            }
        }
        let len = self.symmetric.decrypt_and_hash(rest, out)?;
        self.message += 1;
        Ok(len)
    }

    /// MixKey(DH(...)) for a DH token: the spec's pairing of our and the
    /// peer's keys by role.
    fn mix_dh(&mut self, token: Token) -> Result<(), Error> {
        let (ours, theirs) = match (token, self.initiator) {
            (Token::EE, _) => (&self.e, self.re),
            (Token::ES, true) | (Token::SE, false) => (&self.e, self.rs),
            (Token::ES, false) | (Token::SE, true) => (&self.s, self.re),
            (Token::E | Token::S, _) => unreachable!("E and S are not DH tokens"),
        };
        let theirs = theirs.ok_or(Error::State)?;
        let mut shared = [0u8; DH_LEN];
        ours.dh(&theirs, &mut shared)?;
        self.symmetric.mix_key(&shared);
        shared.zeroize();
        Ok(())
    }

    /// The transport state, once the handshake is finished.
    pub fn into_transport_mode(mut self) -> Result<TransportState, Error> {
        if self.failed || !self.is_handshake_finished() {
            return Err(Error::State);
        }
        let [initiator_cipher, responder_cipher] =
            self.transport_ciphers.take().ok_or(Error::State)?;
        let [mut initiator_key, mut responder_key] = self.symmetric.split();
        let mut initiator_to_responder = CipherState::new(initiator_cipher);
        initiator_to_responder.set_key(&initiator_key);
        let mut responder_to_initiator = CipherState::new(responder_cipher);
        responder_to_initiator.set_key(&responder_key);
        initiator_key.zeroize();
        responder_key.zeroize();
        let (send, receive) = if self.initiator {
            (initiator_to_responder, responder_to_initiator)
        } else {
            (responder_to_initiator, initiator_to_responder)
        };
        Ok(TransportState {
            send,
            receive,
            initiator: self.initiator,
        })
    }
}

/// A finished handshake: one cipher for each direction.
pub struct TransportState {
    send: CipherState,
    receive: CipherState,
    initiator: bool,
}

impl fmt::Debug for TransportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportState")
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

impl TransportState {
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// Encrypts `payload` into `out`; returns the message's length.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if payload.len() + TAG_LEN > MAX_MESSAGE_LEN {
            return Err(Error::Input);
        }
        self.send.encrypt_with_ad(&[], payload, out)
    }

    /// Decrypts `message` into `out`; returns the payload's length.
    pub fn read_message(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(Error::Input);
        }
        self.receive.decrypt_with_ad(&[], message, out)
    }
}

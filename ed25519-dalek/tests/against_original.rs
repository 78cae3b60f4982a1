//! This crate against ed25519-dalek 3.0.0 itself (the dev-dependency
//! `original`), on pseudo-random seeds, messages, keys and signatures:
//! the same public keys, the same signatures, and the same verdicts, for
//! valid signatures, changed ones, random bytes, and small-order keys and
//! nonces.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// xorshift64*: a fixed, reproducible stream of test bytes.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            *byte = self.next() as u8;
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    fn vec(&mut self, max: usize) -> Vec<u8> {
        let mut out = vec![0u8; (self.next() as usize) % (max + 1)];
        self.fill(&mut out);
        out
    }
}

/// Both crates' verdicts on (key, message, signature), plain and strict;
/// `None` when the key does not decode (in both: asserted).
fn verdicts(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Option<(bool, bool)> {
    let ours = VerifyingKey::from_bytes(key);
    let theirs = original::VerifyingKey::from_bytes(key);
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "key {} decodes in one crate only",
        hex::encode(key)
    );
    let (ours, theirs) = (ours.ok()?, theirs.ok()?);
    assert_eq!(
        ours.is_weak(),
        theirs.is_weak(),
        "is_weak of {}",
        hex::encode(key)
    );
    let ours_sig = Signature::from_bytes(signature);
    let theirs_sig = original::Signature::from_bytes(signature);
    let plain = ours.verify(message, &ours_sig).is_ok();
    let strict = ours.verify_strict(message, &ours_sig).is_ok();
    assert_eq!(
        (plain, strict),
        (
            theirs.verify(message, &theirs_sig).is_ok(),
            theirs.verify_strict(message, &theirs_sig).is_ok()
        ),
        "verdicts (verify, verify_strict) differ: key {}, message {}, signature {}",
        hex::encode(key),
        hex::encode(message),
        hex::encode(signature)
    );
    Some((plain, strict))
}

#[test]
fn same_keys_signatures_and_verdicts_on_random_inputs() {
    let mut random = Bytes(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let seed = random.array::<32>();
        let message = random.vec(300);
        let ours = SigningKey::from_bytes(&seed);
        let theirs = original::SigningKey::from_bytes(&seed);
        assert_eq!(
            ours.verifying_key().to_bytes(),
            theirs.verifying_key().to_bytes()
        );
        assert_eq!(ours.to_keypair_bytes(), theirs.to_keypair_bytes());
        let signature = ours.sign(&message).to_bytes();
        assert_eq!(
            signature,
            theirs.sign(&message).to_bytes(),
            "signature of {}",
            hex::encode(&message)
        );
        let public = ours.verifying_key().to_bytes();
        assert_eq!(verdicts(&public, &message, &signature), Some((true, true)));
        // One bit changed in the signature, then in the message.
        let mut changed = signature;
        changed[(random.next() as usize) % 64] ^= 1 << (random.next() % 8);
        assert_eq!(verdicts(&public, &message, &changed), Some((false, false)));
        if !message.is_empty() {
            let mut other = message.clone();
            other[(random.next() as usize) % message.len()] ^= 1;
            assert_eq!(verdicts(&public, &other, &signature), Some((false, false)));
        }
    }
}

#[test]
fn same_verdicts_on_random_keys_and_signatures() {
    let mut random = Bytes(0x0123_4567_89ab_cdef);
    let mut decoded = 0;
    for _ in 0..2000 {
        let key = random.array::<32>();
        let signature = random.array::<64>();
        if verdicts(&key, b"random", &signature).is_some() {
            decoded += 1;
        }
        // Keypair bytes: a random public key beside a seed is refused by both.
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&random.array::<32>());
        pair[32..].copy_from_slice(&key);
        assert_eq!(
            SigningKey::from_keypair_bytes(&pair).is_ok(),
            original::SigningKey::from_keypair_bytes(&pair).is_ok()
        );
    }
    // About half of all 32-byte strings are points: both branches ran.
    assert!(
        (600..1400).contains(&decoded),
        "{decoded} of 2000 random keys decoded"
    );
}

/// The encodings of the eight points of small order (the torsion
/// subgroup), and non-canonical encodings of some: the keys and nonces
/// where plain and strict verification part ways.
fn small_order_encodings() -> Vec<[u8; 32]> {
    use curve25519_dalek::constants::EIGHT_TORSION;
    let mut encodings: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|point| point.compress().to_bytes())
        .collect();
    for encoding in encodings.clone() {
        let mut flipped = encoding;
        flipped[31] ^= 0x80; // the other sign of x (non-canonical where x = 0)
        encodings.push(flipped);
    }
    // y = 1 written as p + 1 (non-canonical), with either sign bit.
    let mut p_plus_one = [0xffu8; 32];
    p_plus_one[0] = 0xee;
    p_plus_one[31] = 0x7f;
    encodings.push(p_plus_one);
    p_plus_one[31] = 0xff;
    encodings.push(p_plus_one);
    encodings
}

#[test]
fn same_verdicts_with_small_order_keys_and_nonces() {
    let mut random = Bytes(0xdead_beef_cafe_f00d);
    let torsion = small_order_encodings();
    let mut accepted_plain_only = 0;
    for key in &torsion {
        for nonce in &torsion {
            for s in [[0u8; 32], {
                let mut one = [0u8; 32];
                one[0] = 1;
                one
            }] {
                let message = random.vec(40);
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(nonce);
                signature[32..].copy_from_slice(&s);
                if verdicts(key, &message, &signature) == Some((true, false)) {
                    accepted_plain_only += 1;
                }
            }
        }
    }
    // A weak key with s = 0 verifies for many messages under the plain
    // check, never under the strict one: the case the test is for.
    assert!(
        accepted_plain_only > 0,
        "no small-order case verified: the test checks nothing"
    );
}

#[test]
fn signatures_from_either_crate_verify_in_the_other() {
    let mut random = Bytes(0x5151_5151_0000_0001);
    for _ in 0..100 {
        let seed = random.array::<32>();
        let message = random.vec(100);
        let ours = SigningKey::from_bytes(&seed);
        let theirs = original::SigningKey::from_bytes(&seed);
        let from_theirs = Signature::from_bytes(&theirs.sign(&message).to_bytes());
        ours.verifying_key()
            .verify(&message, &from_theirs)
            .expect("ed25519-dalek's signature verifies here");
        let from_ours = original::Signature::from_bytes(&ours.sign(&message).to_bytes());
        theirs
            .verifying_key()
            .verify(&message, &from_ours)
            .expect("this crate's signature verifies in ed25519-dalek");
    }
}

/// A signature whose `R` is the identity (small order), made with the
/// secret scalar: `s = k a`, so `[s]B - [k]A` is the identity. Plain
/// verification accepts it, strict verification refuses it, in both
/// crates; it is the one way a valid key meets a small-order `R`.
#[test]
fn same_verdicts_on_an_identity_nonce_with_a_valid_key() {
    use curve25519_dalek::Scalar;
    use sha2::{Digest as _, Sha512};
    let mut random = Bytes(0x7777_0000_1111_2222);
    for _ in 0..20 {
        let seed = random.array::<32>();
        let message = random.vec(60);
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let mut low = [0u8; 32];
        low.copy_from_slice(&Sha512::digest(seed)[..32]);
        let a = Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(low));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut hasher = Sha512::new();
        hasher.update(identity);
        hasher.update(public);
        hasher.update(&message);
        let mut digest = [0u8; 64];
        digest.copy_from_slice(&hasher.finalize());
        let k = Scalar::from_bytes_mod_order_wide(&digest);
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&identity);
        signature[32..].copy_from_slice((k * a).as_bytes());
        assert_eq!(verdicts(&public, &message, &signature), Some((true, false)));
    }
}

//! RFC 8032 (section 7.1) Ed25519 test vectors: the public key each seed
//! gives, the signature of each message, and verification of it.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// (seed, public key, message, signature), hex: TEST 1, 2 and 3.
const VECTORS: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    hex::decode(hex)
        .expect("the vector is hex")
        .try_into()
        .expect("the vector has the right length")
}

#[test]
fn rfc_8032_vectors_sign_and_verify() {
    for (index, (seed, public, message, signature)) in VECTORS.iter().enumerate() {
        let key = SigningKey::from_bytes(&bytes(seed));
        let message = hex::decode(message).expect("the vector is hex");
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            *public,
            "TEST {}: public key",
            index + 1
        );
        let signed = key.sign(&message);
        assert_eq!(
            hex::encode(signed.to_bytes()),
            *signature,
            "TEST {}: signature",
            index + 1
        );
        let verifying = VerifyingKey::from_bytes(&bytes(public)).expect("the vector's key decodes");
        let expected = Signature::from_bytes(&bytes(signature));
        verifying
            .verify(&message, &expected)
            .unwrap_or_else(|_| panic!("TEST {}: the RFC's signature verifies", index + 1));
        verifying
            .verify_strict(&message, &expected)
            .unwrap_or_else(|_| panic!("TEST {}: and verifies strictly", index + 1));
    }
}

#[test]
fn a_changed_byte_anywhere_fails_verification() {
    for (seed, _, message, _) in VECTORS {
        let key = SigningKey::from_bytes(&bytes(seed));
        let mut message = hex::decode(message).expect("the vector is hex");
        message.push(0x5a);
        let signature = key.sign(&message).to_bytes();
        for position in 0..signature.len() {
            let mut changed = signature;
            changed[position] ^= 0x01;
            let changed = Signature::from_bytes(&changed);
            assert!(
                key.verifying_key().verify(&message, &changed).is_err(),
                "signature byte {position} changed, and it still verified"
            );
        }
        for position in 0..message.len() {
            let mut changed = message.clone();
            changed[position] ^= 0x80;
            assert!(
                key.verifying_key()
                    .verify(&changed, &Signature::from_bytes(&signature))
                    .is_err(),
                "message byte {position} changed, and it still verified"
            );
        }
    }
}

#[test]
fn keypair_bytes_round_trip_and_refuse_a_foreign_public_key() {
    let key = SigningKey::from_bytes(&bytes(VECTORS[0].0));
    let pair = key.to_keypair_bytes();
    assert_eq!(pair[..32], key.to_bytes());
    assert_eq!(
        SigningKey::from_keypair_bytes(&pair).expect("its own keypair reads back"),
        key
    );
    let mut foreign = pair;
    foreign[32..].copy_from_slice(&bytes::<32>(VECTORS[1].1));
    assert!(
        SigningKey::from_keypair_bytes(&foreign).is_err(),
        "a keypair whose public key is another seed's"
    );
}

#[test]
fn a_non_canonical_s_is_refused() {
    let (seed, _, message, _) = VECTORS[1];
    let key = SigningKey::from_bytes(&bytes(seed));
    let message = hex::decode(message).expect("the vector is hex");
    let signature = key.sign(&message).to_bytes();
    // s + l, the same scalar modulo the group order l, encoded above l.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    let mut malleated = signature;
    for (byte, order) in malleated[32..].iter_mut().zip(ORDER) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "s + l fits in 32 bytes");
    assert!(
        key.verifying_key()
            .verify(&message, &Signature::from_bytes(&malleated))
            .is_err(),
        "s + l verified: a signature is malleable"
    );
}

//! RFC 7748's X25519 vectors (sections 5.2 and 6.1), and this crate
//! against x25519-dalek 3.0.0 itself (the dev-dependency `original`) on
//! pseudo-random scalars and u-coordinates.

use x25519_dalek::{X25519_BASEPOINT_BYTES, x25519};

fn bytes(hex: &str) -> [u8; 32] {
    hex::decode(hex)
        .expect("the vector is hex")
        .try_into()
        .expect("the vector has 32 bytes")
}

#[test]
fn rfc_7748_section_5_2_vectors() {
    let vectors = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            // Bit 255 of this u is set: X25519 must ignore it.
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (scalar, u, expected) in vectors {
        assert_eq!(hex::encode(x25519(bytes(scalar), bytes(u))), expected);
    }
}

#[test]
fn rfc_7748_section_5_2_iterated_a_thousand_times() {
    let (mut k, mut u) = (X25519_BASEPOINT_BYTES, X25519_BASEPOINT_BYTES);
    for round in 1..=1000 {
        let next = x25519(k, u);
        u = k;
        k = next;
        if round == 1 {
            assert_eq!(
                hex::encode(k),
                "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
            );
        }
    }
    assert_eq!(
        hex::encode(k),
        "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"
    );
}

#[test]
fn rfc_7748_section_6_1_diffie_hellman() {
    let alice = bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob = bytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let alice_public = x25519(alice, X25519_BASEPOINT_BYTES);
    let bob_public = x25519(bob, X25519_BASEPOINT_BYTES);
    assert_eq!(
        hex::encode(alice_public),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    assert_eq!(
        hex::encode(bob_public),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    );
    let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert_eq!(hex::encode(x25519(alice, bob_public)), shared);
    assert_eq!(hex::encode(x25519(bob, alice_public)), shared);
}

#[test]
fn same_results_as_x25519_dalek_on_random_inputs() {
    assert_eq!(X25519_BASEPOINT_BYTES, original::X25519_BASEPOINT_BYTES);
    // xorshift64*: a fixed, reproducible stream of test bytes.
    let mut state = 0x243f_6a88_85a3_08d3u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut array = move || {
        let mut out = [0u8; 32];
        out.iter_mut().for_each(|byte| *byte = next() as u8);
        out
    };
    for _ in 0..500 {
        let (k, u) = (array(), array());
        assert_eq!(
            x25519(k, u),
            original::x25519(k, u),
            "k {}, u {}",
            hex::encode(k),
            hex::encode(u)
        );
        assert_eq!(
            x25519(k, X25519_BASEPOINT_BYTES),
            original::x25519(k, original::X25519_BASEPOINT_BYTES)
        );
    }
    // u = 0 and other small-order u give all zeros in both.
    for u in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let k = array();
        assert_eq!(x25519(k, u), original::x25519(k, u));
        assert_eq!(x25519(k, u), [0u8; 32], "X25519 with u of small order");
    }
}

//! Signing and verifying speed of this crate against ed25519-dalek 3.0.0
//! (the dev-dependency `original`), on this machine, in this build:
//!
//!     cargo run --release -p ed25519-dalek@3.0.1 --example speed
//!
//! Natively both use curve25519-dalek's precomputed tables (Cargo.toml),
//! so the ratios should be about 1; the relay verifies every peer's signed
//! records with this crate.

use std::hint::black_box;
use std::time::Instant;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};

const ROUNDS: u32 = 2000;

/// Seconds per call of `f`, over `ROUNDS` calls.
fn time(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    start.elapsed().as_secs_f64() / f64::from(ROUNDS)
}

fn main() {
    let seed = [7u8; 32];
    let message = [42u8; 200];
    let ours = SigningKey::from_bytes(&seed);
    let theirs = original::SigningKey::from_bytes(&seed);
    let signature = ours.sign(&message);
    let their_signature = theirs.sign(&message);
    let (ours_public, theirs_public) = (ours.verifying_key(), theirs.verifying_key());

    let rows = [
        (
            "key from seed",
            time(|| {
                black_box(SigningKey::from_bytes(black_box(&seed)));
            }),
            time(|| {
                drop(black_box(original::SigningKey::from_bytes(black_box(
                    &seed,
                ))))
            }),
        ),
        (
            "sign",
            time(|| {
                black_box(ours.sign(black_box(&message)));
            }),
            time(|| {
                black_box(theirs.sign(black_box(&message)));
            }),
        ),
        (
            "verify",
            time(|| assert!(ours_public.verify(black_box(&message), &signature).is_ok())),
            time(|| {
                assert!(
                    theirs_public
                        .verify(black_box(&message), &their_signature)
                        .is_ok()
                )
            }),
        ),
    ];
    println!(
        "{:<14} {:>12} {:>14} {:>7}",
        "", "this crate", "ed25519-dalek", "ratio"
    );
    for (name, ours, theirs) in rows {
        println!(
            "{name:<14} {:>9.1} µs {:>11.1} µs {:>7.2}",
            ours * 1e6,
            theirs * 1e6,
            ours / theirs
        );
    }
}

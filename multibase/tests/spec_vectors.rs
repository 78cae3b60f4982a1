//! The multibase spec's test vectors (multiformats/multibase, tests/*.csv)
//! and RFC 9285's base45 examples, both ways, plus the inputs each base
//! must refuse.

use multibase::{Base, Error, decode, encode};

/// Base8 as the spec's CSV and the original crate write it (bits packed
/// from the most significant end, the last symbol filled with zero bits).
const YES_MANI_BASE8: &str = "7362625631006654133464440102";
const ZERO_YES_MANI_BASE8: &str = "7000745453462015530267151100204";

/// tests/basic.csv: "yes mani !" in every base.
const YES_MANI: &[(Base, &str)] = &[
    (
        Base::Base2,
        "001111001011001010111001100100000011011010110000101101110011010010010000000100001",
    ),
    (Base::Base8, YES_MANI_BASE8),
    (Base::Base10, "9573277761329450583662625"),
    (Base::Base16Lower, "f796573206d616e692021"),
    (Base::Base16Upper, "F796573206D616E692021"),
    (Base::Base32Lower, "bpfsxgidnmfxgsibb"),
    (Base::Base32Upper, "BPFSXGIDNMFXGSIBB"),
    (Base::Base32HexLower, "vf5in683dc5n6i811"),
    (Base::Base32HexUpper, "VF5IN683DC5N6I811"),
    (Base::Base32PadLower, "cpfsxgidnmfxgsibb"),
    (Base::Base32PadUpper, "CPFSXGIDNMFXGSIBB"),
    (Base::Base32HexPadLower, "tf5in683dc5n6i811"),
    (Base::Base32HexPadUpper, "TF5IN683DC5N6I811"),
    (Base::Base32Z, "hxf1zgedpcfzg1ebb"),
    (Base::Base36Lower, "k2lcpzo5yikidynfl"),
    (Base::Base36Upper, "K2LCPZO5YIKIDYNFL"),
    (Base::Base58Flickr, "Z7Pznk19XTTzBtx"),
    (Base::Base58Btc, "z7paNL19xttacUY"),
    (Base::Base64, "meWVzIG1hbmkgIQ"),
    (Base::Base64Pad, "MeWVzIG1hbmkgIQ=="),
    (Base::Base64Url, "ueWVzIG1hbmkgIQ"),
    (Base::Base64UrlPad, "UeWVzIG1hbmkgIQ=="),
];

/// tests/leading_zero.csv: "\0yes mani !".
const ZERO_YES_MANI: &[(Base, &str)] = &[
    (
        Base::Base2,
        "00000000001111001011001010111001100100000011011010110000101101110011010010010000000100001",
    ),
    (Base::Base8, ZERO_YES_MANI_BASE8),
    (Base::Base10, "90573277761329450583662625"),
    (Base::Base16Lower, "f00796573206d616e692021"),
    (Base::Base16Upper, "F00796573206D616E692021"),
    (Base::Base32Lower, "bab4wk4zanvqw42jaee"),
    (Base::Base32Upper, "BAB4WK4ZANVQW42JAEE"),
    (Base::Base32HexLower, "v01smasp0dlgmsq9044"),
    (Base::Base32HexUpper, "V01SMASP0DLGMSQ9044"),
    (Base::Base32PadLower, "cab4wk4zanvqw42jaee======"),
    (Base::Base32PadUpper, "CAB4WK4ZANVQW42JAEE======"),
    (Base::Base32HexPadLower, "t01smasp0dlgmsq9044======"),
    (Base::Base32HexPadUpper, "T01SMASP0DLGMSQ9044======"),
    (Base::Base32Z, "hybhskh3ypiosh4jyrr"),
    (Base::Base36Lower, "k02lcpzo5yikidynfl"),
    (Base::Base36Upper, "K02LCPZO5YIKIDYNFL"),
    (Base::Base58Flickr, "Z17Pznk19XTTzBtx"),
    (Base::Base58Btc, "z17paNL19xttacUY"),
    (Base::Base64, "mAHllcyBtYW5pICE"),
    (Base::Base64Pad, "MAHllcyBtYW5pICE="),
    (Base::Base64Url, "uAHllcyBtYW5pICE"),
    (Base::Base64UrlPad, "UAHllcyBtYW5pICE="),
];

/// tests/case_insensitivity.csv: "hello world" in mixed case, which the
/// case-insensitive bases must read.
const HELLO_WORLD_MIXED_CASE: &[(Base, &str)] = &[
    (Base::Base16Lower, "f68656c6c6f20776F726C64"),
    (Base::Base16Upper, "F68656c6c6f20776F726C64"),
    (Base::Base32Lower, "bnbswy3dpeB3W64TMMQ"),
    (Base::Base32Upper, "Bnbswy3dpeB3W64TMMQ"),
    (Base::Base32HexLower, "vd1imor3f41RMUSJCCG"),
    (Base::Base32HexUpper, "Vd1imor3f41RMUSJCCG"),
    (Base::Base32PadLower, "cnbswy3dpeB3W64TMMQ======"),
    (Base::Base32PadUpper, "Cnbswy3dpeB3W64TMMQ======"),
    (Base::Base32HexPadLower, "td1imor3f41RMUSJCCG======"),
    (Base::Base32HexPadUpper, "Td1imor3f41RMUSJCCG======"),
    (Base::Base36Lower, "kfUvrsIvVnfRbjWaJo"),
    (Base::Base36Upper, "KfUVrSIVVnFRbJWAJo"),
];

fn check_both_ways(data: &[u8], vectors: &[(Base, &str)]) {
    for &(base, text) in vectors {
        assert_eq!(encode(base, data), text, "encoding {data:?} in {base:?}");
        assert_eq!(decode(text), Ok((base, data.to_vec())), "decoding {text:?}");
    }
}

#[test]
fn spec_vectors_encode_and_decode() {
    check_both_ways(b"yes mani !", YES_MANI);
    check_both_ways(b"\0yes mani !", ZERO_YES_MANI);
}

#[test]
fn case_insensitive_bases_read_either_case() {
    for &(base, text) in HELLO_WORLD_MIXED_CASE {
        assert_eq!(
            decode(text),
            Ok((base, b"hello world".to_vec())),
            "decoding {text:?}"
        );
    }
}

#[test]
fn case_sensitive_bases_refuse_the_other_case() {
    assert_eq!(
        decode("hXF1ZGEDPCFZG1EBB"),
        Err(Error::InvalidBaseString),
        "z-base-32"
    );
    assert_eq!(
        decode("Z7PZNK19XTTZBTX").map(|(_, d)| d == b"yes mani !"),
        Ok(false),
        "base58 reads another number"
    );
}

#[test]
fn base45_follows_rfc_9285_examples() {
    for (data, text) in [
        (&b"AB"[..], "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"", ""),
    ] {
        assert_eq!(Base::Base45.encode(data), text, "encoding {data:?}");
        assert_eq!(
            Base::Base45.decode(text),
            Ok(data.to_vec()),
            "decoding {text:?}"
        );
        assert_eq!(
            Base::Base45.decode(text.to_lowercase()),
            Ok(data.to_vec()),
            "decoding lower-case {text:?}"
        );
    }
    // A lone symbol, and groups above 65535 or 255 (RFC 9285 section 6).
    for text in ["A", "BB8A", "GGW", "GG", ":::"] {
        assert_eq!(
            Base::Base45.decode(text),
            Err(Error::InvalidBaseString),
            "{text:?} must be refused"
        );
    }
}

#[test]
fn emoji_and_identity_round_trip() {
    let all: Vec<u8> = (0..=255).collect();
    let text = encode(Base::Base256Emoji, &all);
    assert!(
        text.starts_with("🚀🚀🪐☄"),
        "byte 0 is the rocket, 1 the ringed planet: {text}"
    );
    assert_eq!(decode(&text), Ok((Base::Base256Emoji, all)));
    assert_eq!(decode("🚀a"), Err(Error::InvalidBaseString));
    assert_eq!(encode(Base::Identity, b"hi"), "\0hi");
    assert_eq!(decode("\0hi"), Ok((Base::Identity, b"hi".to_vec())));
}

#[test]
fn every_base_round_trips_every_length() {
    let bases = [
        Base::Base2,
        Base::Base8,
        Base::Base10,
        Base::Base16Lower,
        Base::Base16Upper,
        Base::Base32Lower,
        Base::Base32Upper,
        Base::Base32PadLower,
        Base::Base32PadUpper,
        Base::Base32HexLower,
        Base::Base32HexUpper,
        Base::Base32HexPadLower,
        Base::Base32HexPadUpper,
        Base::Base32Z,
        Base::Base36Lower,
        Base::Base36Upper,
        Base::Base45,
        Base::Base58Flickr,
        Base::Base58Btc,
        Base::Base64,
        Base::Base64Pad,
        Base::Base64Url,
        Base::Base64UrlPad,
        Base::Base256Emoji,
    ];
    for base in bases {
        assert_eq!(Base::from_code(base.code()), Ok(base));
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(167).wrapping_add(len))
                .collect();
            let text = encode(base, &data);
            assert_eq!(
                decode(&text),
                Ok((base, data)),
                "{base:?} of {len} bytes: {text}"
            );
        }
    }
}

#[test]
fn malformed_input_is_refused() {
    for text in [
        "",                        // no base code
        "b1",                      // '1' is not base32
        "bm",                      // one base32 symbol: a length no input encodes to
        "bmaa",                    // three: neither
        "bmf",                     // non-zero bits after the last byte
        "bpfsxgidnmfxgsibb======", // padding in an unpadded base
        "cab4wk4zanvqw42jaee",     // missing padding in a padded base
        "MeWVzIG1hbmkgIQ=",        // short padding
        "MeWVzIG1hbmkgIQ===",      // long padding
        "M====",                   // a block of padding only
        "MZg=Zg==",                // padding before the end
        "f7",                      // half a byte
        "fzz",                     // not hex
        "0101",                    // half a byte of binary
        "z0",                      // '0' is not base58btc
        "k!",                      // not base36
        "mZh",                     // non-zero trailing bits in base64
    ] {
        assert_eq!(
            decode(text).map(|(_, d)| d),
            Err(Error::InvalidBaseString),
            "{text:?} must be refused"
        );
    }
    assert_eq!(decode("q123"), Err(Error::UnknownBase('q')));
    assert_eq!(Error::UnknownBase('q').to_string(), "Unknown base code: q");
}

//! RFC 4648's test vectors (section 10), a custom specification as
//! hickory builds one, and the inputs decoding must refuse.

use data_encoding::{
    BASE32, BASE32_DNSSEC, BASE32_NOPAD, BASE32HEX, BASE64, BASE64_NOPAD, BASE64URL_NOPAD,
    BitOrder, DecodeKind, HEXLOWER, HEXUPPER, HEXUPPER_PERMISSIVE, Specification,
    SpecificationError,
};

const INPUTS: [&str; 7] = ["", "f", "fo", "foo", "foob", "fooba", "foobar"];

#[test]
fn rfc_4648_vectors_encode_and_decode() {
    let cases = [
        (
            &BASE64,
            [
                "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
            ],
        ),
        (
            &BASE32,
            [
                "",
                "MY======",
                "MZXQ====",
                "MZXW6===",
                "MZXW6YQ=",
                "MZXW6YTB",
                "MZXW6YTBOI======",
            ],
        ),
        (
            &BASE32HEX,
            [
                "",
                "CO======",
                "CPNG====",
                "CPNMU===",
                "CPNMUOG=",
                "CPNMUOJ1",
                "CPNMUOJ1E8======",
            ],
        ),
        (
            &HEXUPPER,
            [
                "",
                "66",
                "666F",
                "666F6F",
                "666F6F62",
                "666F6F6261",
                "666F6F626172",
            ],
        ),
    ];
    for (encoding, outputs) in cases {
        for (input, output) in INPUTS.iter().zip(outputs) {
            assert_eq!(
                encoding.encode(input.as_bytes()),
                output,
                "encoding {input:?}"
            );
            assert_eq!(encoding.encode_len(input.len()), output.len());
            assert_eq!(
                encoding.decode(output.as_bytes()).as_deref(),
                Ok(input.as_bytes()),
                "decoding {output:?}"
            );
        }
    }
    assert_eq!(BASE32_NOPAD.encode(b"foob"), "MZXW6YQ");
    assert_eq!(BASE64_NOPAD.encode(b"fo"), "Zm8");
    assert_eq!(BASE64URL_NOPAD.encode(&[0xfb, 0xff]), "-_8");
    assert_eq!(HEXLOWER.encode(&[0xab, 0x01]), "ab01");
    assert_eq!(BASE32_DNSSEC.encode(b"foobar"), "cpnmuoj1e8");
    assert_eq!(
        BASE32_DNSSEC.decode(b"CPNMUOJ1E8").as_deref(),
        Ok(&b"foobar"[..]),
        "either case"
    );
    assert_eq!(
        HEXUPPER_PERMISSIVE.decode(b"6f6F").as_deref(),
        Ok(&b"oo"[..])
    );
}

#[test]
fn malformed_input_is_refused_with_its_kind() {
    let cases: [(&data_encoding::Encoding, &str, DecodeKind); 9] = [
        (&BASE64, "Zg=", DecodeKind::Length),
        (&BASE64, "Z===", DecodeKind::Padding),
        (&BASE64, "====", DecodeKind::Padding),
        (&BASE64, "Zh==", DecodeKind::Trailing),
        (&BASE64, "Zm9v!A==", DecodeKind::Symbol),
        (&BASE64, "Zg==Zg==", DecodeKind::Padding),
        (&BASE64_NOPAD, "Z", DecodeKind::Length),
        (&HEXUPPER, "6f", DecodeKind::Symbol),
        (&BASE32, "MZXW6YQ", DecodeKind::Length),
    ];
    for (encoding, input, kind) in cases {
        let error = encoding.decode(input.as_bytes()).expect_err(input);
        assert_eq!(error.kind, kind, "{input:?}: {error}");
    }
    assert_eq!(
        BASE64.decode(b"Zm9v!A==").map_err(|e| e.position),
        Err(4),
        "the bad symbol's position"
    );
}

#[test]
fn a_custom_specification_ignores_and_translates() {
    // hickory's SSHFP/TLSA hexadecimal.
    let mut spec = Specification::new();
    spec.symbols.push_str("0123456789abcdef");
    spec.ignore.push_str(" \t\r\n");
    spec.translate.from.push_str("ABCDEF");
    spec.translate.to.push_str("abcdef");
    let hex = spec.encoding().expect("a valid specification");
    assert_eq!(
        hex.decode(b"AB cd\n01").as_deref(),
        Ok(&[0xab, 0xcd, 0x01][..])
    );
    assert_eq!(hex.encode(&[0xab]), "ab");
    assert_eq!(hex.specification(), spec);

    let mut reversed = Specification::new();
    reversed.symbols.push_str("01");
    reversed.bit_order = BitOrder::LeastSignificantFirst;
    let binary = reversed.encoding().expect("a valid specification");
    assert_eq!(binary.encode(&[0b0000_0001]), "10000000");
    assert_eq!(binary.decode(b"10000000").as_deref(), Ok(&[1][..]));
}

#[test]
fn bad_specifications_are_refused() {
    let with = |symbols: &str, edit: fn(&mut Specification)| {
        let mut spec = Specification::new();
        spec.symbols.push_str(symbols);
        edit(&mut spec);
        spec.encoding().map(drop)
    };
    assert_eq!(with("012", |_| {}), Err(SpecificationError::BadSize));
    assert_eq!(with("0é", |_| {}), Err(SpecificationError::NotAscii));
    assert_eq!(with("00", |_| {}), Err(SpecificationError::Duplicate));
    assert_eq!(
        with("01", |s| s.padding = Some('1')),
        Err(SpecificationError::Duplicate)
    );
    assert_eq!(
        with("01", |s| s.translate.from.push('a')),
        Err(SpecificationError::BadTranslate)
    );
    assert_eq!(
        with("01", |s| s.wrap.width = 76),
        Err(SpecificationError::WrapUnsupported)
    );
}

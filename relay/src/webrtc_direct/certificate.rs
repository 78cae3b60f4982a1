//! The relay's WebRTC certificate, as str0m wants it.
//!
//! The state directory keeps one certificate (`webrtc-certificate.pem`, in
//! webrtc-rs's format: an `EXPIRES` block, then the PKCS#8 private key and
//! the certificate). Both listeners use that one file, so the certhash in
//! every address the relay ever printed stays valid when the listener
//! changes: it is the SHA-256 of the certificate's DER, whoever serves it.

use libp2p_webrtc::tokio::Certificate;
use libp2p_webrtc_utils::Fingerprint;
use str0m::config::DtlsCert;

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the WebRTC certificate is not PEM: {0}")]
    Pem(String),
    #[error("the WebRTC certificate has no {0} block")]
    Missing(&'static str),
}

/// The certificate and key of `certificate` as DER, and the fingerprint
/// the certhash is made from.
pub fn dtls_cert(certificate: &Certificate) -> Result<(DtlsCert, Fingerprint), CertificateError> {
    let blocks = pem::parse_many(certificate.serialize_pem())
        .map_err(|error| CertificateError::Pem(error.to_string()))?;
    let find = |tag: &'static str| {
        blocks
            .iter()
            .find(|block| block.tag() == tag)
            .map(|block| block.contents().to_vec())
            .ok_or(CertificateError::Missing(tag))
    };
    let der = find("CERTIFICATE")?;
    // webrtc-rs names the block "PRIVATE_KEY", PEM's usual name is
    // "PRIVATE KEY": accept both.
    let private_key = find("PRIVATE_KEY").or_else(|_| find("PRIVATE KEY"))?;
    let fingerprint = Fingerprint::from_certificate(&der);
    Ok((
        DtlsCert {
            certificate: der,
            private_key,
        },
        fingerprint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certhash_is_the_one_libp2p_webrtc_announces() {
        let certificate = Certificate::generate(&mut rand::rng()).expect("generate");
        // Through the file, as a restarted relay reads it.
        let stored = Certificate::from_pem(&certificate.serialize_pem()).expect("parse");
        let (dtls, fingerprint) = dtls_cert(&stored).expect("dtls cert");
        assert_eq!(
            fingerprint.to_multihash(),
            certificate.fingerprint().to_multihash(),
            "the str0m listener must announce the certhash the libp2p-webrtc listener did"
        );
        assert!(!dtls.private_key.is_empty());
    }
}

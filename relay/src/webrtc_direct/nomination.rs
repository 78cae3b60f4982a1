//! The client's first signed check nominates its pair.
//!
//! str0m's ICE-lite agent sends nothing, DTLS included, until the client
//! nominates a pair with a USE-CANDIDATE check. Chromium, facing an
//! ICE-lite peer, puts USE-CANDIDATE only on a check over its selected,
//! writable connection; it sends its first checks about 50 ms apart,
//! but once a connection is writable it checks it again only at its
//! writable-connection interval (up to 2.5 s, its
//! `stable_writable_connection_ping_interval`). When the relay's first
//! answer comes after a few unanswered checks, Chromium starts DTLS at
//! once and nominates only at that next check. Traced (issue #20):
//! Chromium sent 5 checks from 17.157 to 17.406, the relay answered at
//! 17.421 (its first session took 240 ms to build), Chromium's DTLS
//! started at 17.423 and its next check, the first with USE-CANDIDATE,
//! went out at 20.124; the relay's str0m sat in `Checking` until then
//! with the ClientHello unanswered. The other page of that run waited
//! 1.1 s the same way (the "late connections" of 1.0-2.7 s).
//!
//! A WebRTC-direct listener has one candidate, and a session has one
//! client: the address its first correctly signed check came from is the
//! one to answer. So until the session has a nominated pair, a binding
//! request that passes MESSAGE-INTEGRITY (the password is the ufrag) is
//! handed to str0m as its nominating form: the same transaction,
//! priority and role, with USE-CANDIDATE, signed again. Once nominated,
//! str0m follows the client's own nominations (a client that moved
//! nominates its new address, see `demux`). This grants nothing a sender
//! of checks does not already have: anyone who can sign a check can also
//! sign one with USE-CANDIDATE.

use str0m::ice::StunMessage;

use super::demux::hmac_sha1;

/// STUN's USE-CANDIDATE and MESSAGE-INTEGRITY attribute types.
const USE_CANDIDATE: u16 = 0x0025;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const HEADER_LEN: usize = 20;

/// `data` as a nominating check of the session whose ufrag (and
/// password) is `ufrag`, if it is a correctly signed binding request of
/// that session from a controlling client without USE-CANDIDATE; `None`
/// for anything else (it goes to str0m as it came).
pub fn nominating(data: &[u8], ufrag: &str) -> Option<Vec<u8>> {
    let message = StunMessage::parse(data).ok()?;
    if !message.is_binding_request()
        || message.use_candidate()
        || message.split_username()? != (ufrag, ufrag)
        || message.ice_controlling().is_none()
        || !message.verify(ufrag.as_bytes(), hmac_sha1)
    {
        return None;
    }
    // The attributes before MESSAGE-INTEGRITY, then USE-CANDIDATE, signed
    // again (what follows MESSAGE-INTEGRITY, FINGERPRINT, is left out:
    // str0m's ICE agent does not check it, and this message is only
    // handed to it, never sent). Rebuilt from the bytes, not with str0m's
    // builder, which refuses the spec's long usernames.
    let mut check = data.get(..HEADER_LEN)?.to_vec();
    let mut at = HEADER_LEN;
    loop {
        let header = data.get(at..at + 4)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if kind == MESSAGE_INTEGRITY {
            break;
        }
        let end = at + 4 + len.next_multiple_of(4);
        check.extend_from_slice(data.get(at..end)?);
        at = end;
    }
    check.extend_from_slice(&USE_CANDIDATE.to_be_bytes());
    check.extend_from_slice(&0u16.to_be_bytes());
    // The length counts MESSAGE-INTEGRITY (4 + 20 bytes), as its HMAC
    // requires.
    let length = u16::try_from(check.len() - HEADER_LEN + 24).ok()?;
    check[2..4].copy_from_slice(&length.to_be_bytes());
    let integrity = hmac_sha1(ufrag.as_bytes(), &[&check]);
    check.extend_from_slice(&MESSAGE_INTEGRITY.to_be_bytes());
    check.extend_from_slice(&20u16.to_be_bytes());
    check.extend_from_slice(&integrity);
    Some(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UFRAG: &str =
        "libp2p+webrtc+v1/abcdefghijklmnopabcdefghijklmnopabcdefghijklmnopabcdefghijklmnop";

    /// A binding request as a browser sends one (USERNAME, PRIORITY,
    /// ICE-CONTROLLING, maybe USE-CANDIDATE, MESSAGE-INTEGRITY,
    /// FINGERPRINT), built by hand: str0m's builder refuses long usernames.
    fn check(ufrag: &str, password: &str, use_candidate: bool) -> Vec<u8> {
        fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let mut message = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        message.extend_from_slice(&[7; 12]);
        attribute(&mut message, 0x0006, format!("{ufrag}:{ufrag}").as_bytes());
        attribute(&mut message, 0x0024, &0x6e00_1effu32.to_be_bytes());
        attribute(&mut message, 0x802a, &7u64.to_be_bytes());
        if use_candidate {
            attribute(&mut message, USE_CANDIDATE, &[]);
        }
        let length = (message.len() - HEADER_LEN + 24) as u16;
        message[2..4].copy_from_slice(&length.to_be_bytes());
        let integrity = hmac_sha1(password.as_bytes(), &[&message]);
        attribute(&mut message, MESSAGE_INTEGRITY, &integrity);
        message[2..4].copy_from_slice(&(length + 8).to_be_bytes());
        // FINGERPRINT (its value is not checked here).
        attribute(&mut message, 0x8028, &[0; 4]);
        message
    }

    #[test]
    fn a_signed_check_becomes_a_nominating_one_of_the_same_transaction() {
        let data = check(UFRAG, UFRAG, false);
        let nominating = nominating(&data, UFRAG).expect("a signed check");
        let original = StunMessage::parse(&data).expect("parses");
        let message = StunMessage::parse(&nominating).expect("parses");
        assert!(message.is_binding_request());
        assert!(message.use_candidate());
        assert_eq!(message.trans_id(), original.trans_id());
        assert_eq!(message.prio(), original.prio());
        assert_eq!(message.ice_controlling(), original.ice_controlling());
        assert_eq!(message.username(), original.username());
        assert!(message.verify(UFRAG.as_bytes(), hmac_sha1));
    }

    #[test]
    fn a_check_signed_with_another_password_or_for_another_session_is_left_alone() {
        assert!(nominating(&check(UFRAG, "not the password", false), UFRAG).is_none());
        let other = "libp2p+webrtc+v1/another-session";
        assert!(nominating(&check(other, other, false), UFRAG).is_none());
    }

    #[test]
    fn a_nominating_check_and_non_stun_data_are_left_alone() {
        assert!(nominating(&check(UFRAG, UFRAG, true), UFRAG).is_none());
        assert!(nominating(&[22, 254, 253, 0, 0], UFRAG).is_none());
    }
}

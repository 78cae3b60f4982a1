use std::{borrow::Cow, fmt};

/// An onion3 (Tor v3) address: the 35-byte public key, checksum and
/// version, and a port.
#[derive(Clone)]
pub struct Onion3Addr<'a>(Cow<'a, [u8; 35]>, u16);

impl Onion3Addr<'_> {
    /// The 35 bytes of the address (key, checksum, version).
    pub fn hash(&self) -> &[u8; 35] {
        &self.0
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.1
    }

    /// The same address, owning its bytes.
    pub fn acquire<'b>(self) -> Onion3Addr<'b> {
        Onion3Addr(Cow::Owned(self.0.into_owned()), self.1)
    }
}

impl PartialEq for Onion3Addr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.1 == other.1 && self.0[..] == other.0[..]
    }
}

impl Eq for Onion3Addr<'_> {}

impl From<([u8; 35], u16)> for Onion3Addr<'_> {
    fn from((hash, port): ([u8; 35], u16)) -> Self {
        Onion3Addr(Cow::Owned(hash), port)
    }
}

impl<'a> From<(&'a [u8; 35], u16)> for Onion3Addr<'a> {
    fn from((hash, port): (&'a [u8; 35], u16)) -> Self {
        Onion3Addr(Cow::Borrowed(hash), port)
    }
}

impl fmt::Debug for Onion3Addr<'_> {
    // multiaddr 0.19's form: the bytes as a two-digit hex list, in a string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Onion3Addr")
            .field(&format!("{:02x?}", &self.0[..]))
            .field(&self.1)
            .finish()
    }
}

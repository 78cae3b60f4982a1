//! The state directory: the relay's identity key and WebRTC certificate.
//!
//! Both are created once and never overwritten, so the peer id and the
//! certhash, and with them every multiaddr a user pasted, survive restarts.
//! Loading never writes: a newly generated key or certificate is kept in
//! memory as a [`PendingWrite`] and stored only once the relay has bound all
//! its ports, so a start that fails leaves nothing behind.

use std::{
    fs, io,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use libp2p::identity::Keypair;
use libp2p_webrtc::tokio::Certificate;

const IDENTITY_FILE: &str = "identity.key";
const CERTIFICATE_FILE: &str = "webrtc-certificate.pem";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}; check its permissions, or point --state-dir elsewhere")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a valid libp2p identity key ({reason}); restore it from a backup, or move it away to create a new identity (the peer id will change)"
    )]
    CorruptIdentity { path: PathBuf, reason: String },
    #[error(
        "{path} is not a valid WebRTC certificate ({reason}); restore it from a backup, or move it away to create a new one (the certhash will change)"
    )]
    CorruptCertificate { path: PathBuf, reason: String },
    #[error("cannot create {path}: {source}; check that --state-dir is writable")]
    Unwritable { path: PathBuf, source: io::Error },
    #[error("cannot generate a WebRTC certificate: {0}")]
    Generate(String),
    #[error(
        "{path} is open to other users (mode {mode:03o}) and holds or guards the relay's secret keys; make it private: `chmod {fix:o} {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32, fix: u32 },
}

/// A file to create once the relay is known to start.
#[derive(Debug)]
pub struct PendingWrite {
    path: PathBuf,
    contents: Vec<u8>,
}

/// The relay's identity and certificate, and what must still be stored.
#[derive(Debug)]
pub struct LoadedState {
    pub keypair: Keypair,
    pub certificate: Certificate,
    pub pending: Vec<PendingWrite>,
}

/// Loads the identity and certificate from `dir`, generating what is
/// missing. With `seed`, the identity is the deterministic development one
/// of the rust-libp2p examples and is not stored.
pub fn load(dir: &Path, seed: Option<u8>) -> Result<LoadedState, StateError> {
    // The directory may be listed by others (a temporary directory often
    // is), but not written: whoever can write it can swap the key. The
    // keys themselves must be the relay's alone.
    check_mode(dir, 0o022, 0o700)?;
    for file in [IDENTITY_FILE, CERTIFICATE_FILE] {
        check_mode(&dir.join(file), 0o077, 0o600)?;
    }
    let mut pending = Vec::new();

    let keypair = match seed {
        Some(seed) => seeded_keypair(seed),
        None => {
            let path = dir.join(IDENTITY_FILE);
            match read_if_exists(&path)? {
                Some(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|error| {
                    StateError::CorruptIdentity {
                        path,
                        reason: error.to_string(),
                    }
                })?,
                None => {
                    let keypair = Keypair::generate_ed25519();
                    let contents = keypair
                        .to_protobuf_encoding()
                        .expect("an ed25519 keypair always encodes");
                    pending.push(PendingWrite { path, contents });
                    keypair
                }
            }
        }
    };

    let path = dir.join(CERTIFICATE_FILE);
    let certificate = match read_if_exists(&path)? {
        Some(bytes) => {
            let pem = String::from_utf8(bytes).map_err(|_| StateError::CorruptCertificate {
                path: path.clone(),
                reason: "not text".to_owned(),
            })?;
            Certificate::from_pem(&pem).map_err(|error| StateError::CorruptCertificate {
                path,
                reason: error.to_string(),
            })?
        }
        None => {
            let certificate = Certificate::generate(&mut rand::rng())
                .map_err(|error| StateError::Generate(error.to_string()))?;
            pending.push(PendingWrite {
                path,
                contents: certificate.serialize_pem().into_bytes(),
            });
            certificate
        }
    };

    Ok(LoadedState {
        keypair,
        certificate,
        pending,
    })
}

/// Refuses a state directory or file whose mode has any of the `forbidden`
/// bits for the group or others: a key anyone on the machine can copy, or
/// replace, is not the relay's alone. A path that does not exist yet is
/// fine: it is created private.
fn check_mode(path: &Path, forbidden: u32, fix: u32) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateError::Unreadable {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & forbidden != 0 {
        return Err(StateError::TooOpen {
            path: path.to_owned(),
            mode,
            fix,
        });
    }
    Ok(())
}

/// The development identity of the rust-libp2p examples: an ed25519 key
/// whose secret is `seed` followed by 31 zero bytes.
pub fn seeded_keypair(seed: u8) -> Keypair {
    let mut secret = [0u8; 32];
    secret[0] = seed;
    Keypair::ed25519_from_bytes(secret).expect("32 bytes are a valid ed25519 secret")
}

/// Stores newly generated files: the directory with mode 0700, each file
/// with mode 0600, created exclusively so that an existing file is never
/// replaced.
pub fn store(dir: &Path, pending: Vec<PendingWrite>) -> Result<(), StateError> {
    if pending.is_empty() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateError::Unwritable {
            path: dir.to_owned(),
            source,
        })?;
    for PendingWrite { path, contents } in pending {
        if let Err(source) = write_new(&path, &contents) {
            return Err(StateError::Unwritable { path, source });
        }
        tracing::info!(path = %path.display(), "created state file");
    }
    Ok(())
}

/// Writes `contents` to a new file at `path` (mode 0600) without ever
/// exposing a partly written file there, hard-linked into place, which
/// fails rather than replace a file that appeared meanwhile.
fn write_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_private_beside(path, contents, |temporary| fs::hard_link(temporary, path))
}

/// Replaces `path` with `contents` (mode 0600) so that a reader sees the
/// old file or the new one, never a part: renamed over it, and the
/// directory synced so that the rename itself survives a crash.
pub fn replace_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_private_beside(path, contents, |temporary| {
        fs::rename(temporary, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
}

/// Writes `contents` beside `path` under a temporary name, with mode 0600,
/// syncs it, then lets `place` put it at `path`. The temporary name does
/// not outlive the call.
fn write_private_beside(
    path: &Path,
    contents: &[u8],
    place: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    // Left by a crash of an earlier process with the same id.
    let _ = fs::remove_file(&temporary);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        place(&temporary)
    })();
    let _ = fs::remove_file(&temporary);
    result
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Unreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn replacing_a_file_keeps_it_private_and_whole() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("certificate.pem");
        replace_atomically(&path, b"first").expect("written");
        replace_atomically(&path, b"second").expect("replaced");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("certificate.pem")]);
    }

    #[test]
    fn first_load_generates_and_store_persists_with_mode_0600() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state_dir = dir.path().join("state");
        let first = load(&state_dir, None).expect("generates");
        assert_eq!(first.pending.len(), 2);
        assert!(!state_dir.exists(), "loading must not write");
        let peer_id = first.keypair.public().to_peer_id();
        let fingerprint = first.certificate.fingerprint();
        store(&state_dir, first.pending).expect("stores");

        for file in [IDENTITY_FILE, CERTIFICATE_FILE] {
            let mode = fs::metadata(state_dir.join(file))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let dir_mode = fs::metadata(&state_dir)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);

        let second = load(&state_dir, None).expect("loads");
        assert!(second.pending.is_empty());
        assert_eq!(second.keypair.public().to_peer_id(), peer_id);
        assert_eq!(second.certificate.fingerprint(), fingerprint);
    }

    #[test]
    fn a_state_directory_or_key_others_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let state_dir = dir.path().join("state");
        let loaded = load(&state_dir, None).expect("first load");
        store(&state_dir, loaded.pending).expect("store");

        fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = load(&state_dir, None).expect_err("a world-writable directory");
        let message = error.to_string();
        assert!(message.contains("mode 777"), "{message}");
        assert!(message.contains("chmod 700"), "{message}");
        fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(
            load(&state_dir, None).is_ok(),
            "a directory others may list"
        );

        let key = state_dir.join(IDENTITY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).expect("chmod");
        let message = load(&state_dir, None)
            .expect_err("a group-readable key")
            .to_string();
        assert!(message.contains("mode 640"), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(load(&state_dir, None).is_ok());
    }

    #[test]
    fn corrupt_identity_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(IDENTITY_FILE);
        write_new(&path, b"garbage").expect("write");
        let error = load(dir.path(), None).expect_err("corrupt key");
        assert!(
            matches!(error, StateError::CorruptIdentity { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("identity.key"), "{error}");
        assert_eq!(fs::read(&path).expect("still there"), b"garbage");
    }

    #[test]
    fn corrupt_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_new(
            &dir.path().join(CERTIFICATE_FILE),
            b"-----BEGIN NOTHING-----",
        )
        .expect("write");
        let error = load(dir.path(), Some(0)).expect_err("corrupt certificate");
        assert!(
            matches!(error, StateError::CorruptCertificate { .. }),
            "{error}"
        );
    }

    #[test]
    fn store_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(IDENTITY_FILE);
        fs::write(&path, b"original").expect("write");
        let pending = vec![PendingWrite {
            path: path.clone(),
            contents: b"new".to_vec(),
        }];
        assert!(store(dir.path(), pending).is_err());
        assert_eq!(fs::read(&path).expect("still there"), b"original");
        assert_eq!(
            fs::read_dir(dir.path()).expect("list").count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn seed_zero_gives_the_rust_libp2p_example_peer_id() {
        assert_eq!(
            seeded_keypair(0).public().to_peer_id().to_string(),
            "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
        );
    }
}

//! The peer's identity: an ed25519 key in a file, created once with mode
//! 0600 and never overwritten, so the peer id (and every names file that
//! lists it) stays the same across runs.

use std::{
    fs, io,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use libp2p::identity::Keypair;

/// A key file is a protobuf-encoded keypair of a few dozen bytes; anything
/// much larger is not one.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the key file {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a libp2p key file ({reason}); restore it, or point --key-file elsewhere to create a new identity (the peer id will change)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot create the key file {path}: {source}")]
    Unwritable { path: PathBuf, source: io::Error },
    #[error("the key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
}

/// Whether [`load_or_create`] read an existing key or made a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Loaded,
    Created,
}

/// Reads the keypair at `path`, or creates it (and its directory, 0700)
/// if there is no file there yet.
pub fn load_or_create(path: &Path) -> Result<(Keypair, Origin), IdentityError> {
    match fs::metadata(path) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(IdentityError::TooOpen {
                    path: path.to_owned(),
                    mode,
                });
            }
            if metadata.len() > MAX_KEY_FILE_BYTES {
                return Err(IdentityError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("{} bytes is too large", metadata.len()),
                });
            }
            let bytes = fs::read(path).map_err(|source| IdentityError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
            let keypair = Keypair::from_protobuf_encoding(&bytes).map_err(|error| {
                IdentityError::Corrupt {
                    path: path.to_owned(),
                    reason: error.to_string(),
                }
            })?;
            Ok((keypair, Origin::Loaded))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let unwritable = |source| IdentityError::Unwritable {
                path: path.to_owned(),
                source,
            };
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(unwritable)?;
            }
            let contents =
                keypair
                    .to_protobuf_encoding()
                    .map_err(|error| IdentityError::Unwritable {
                        path: path.to_owned(),
                        source: io::Error::other(error.to_string()),
                    })?;
            // create_new: two peers started at once never overwrite each
            // other's key; the loser reads the winner's.
            let mut file = match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    return load_or_create(path);
                }
                Err(error) => return Err(unwritable(error)),
            };
            file.write_all(&contents)
                .and_then(|()| file.sync_all())
                .map_err(unwritable)?;
            Ok((keypair, Origin::Created))
        }
        Err(source) => Err(IdentityError::Unreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

/// `$XDG_CONFIG_HOME/chat-peer/identity.key`, or under `~/.config`.
pub fn default_key_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("chat-peer").join("identity.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_with_mode_0600_and_then_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("identity.key");
        let (first, origin) = load_or_create(&path).expect("created");
        assert_eq!(origin, Origin::Created);
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, origin) = load_or_create(&path).expect("loaded");
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(first.public(), second.public());
    }

    #[test]
    fn corrupt_or_open_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("identity.key");
        fs::write(&path, b"not a key").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = load_or_create(&path).expect_err("corrupt");
        assert!(matches!(error, IdentityError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("identity.key"), "{error}");
        assert_eq!(
            fs::read(&path).expect("kept"),
            b"not a key",
            "never overwritten"
        );

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = load_or_create(&path).expect_err("too open");
        assert!(
            matches!(error, IdentityError::TooOpen { mode: 0o644, .. }),
            "{error}"
        );
    }
}

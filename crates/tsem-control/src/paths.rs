//! Where control sockets live: one directory per user, the user's alone.
//!
//! `$XDG_RUNTIME_DIR/tsem` when the variable is set (the login session's private directory),
//! else `/run/tsem` for root, else `/tmp/tsem-UID`. The directory is created mode 0700 and, found
//! or created, must be a real directory (not a symlink) owned by the caller with no group or
//! other permission bits: anyone else who could enter it could connect to, replace or remove the
//! sockets. A directory that fails the check is refused, never repaired silently.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// Why the runtime directory or a name cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The name is not one we accept.
    #[error(
        "bad name {0:?}: a name is 1 to 64 characters from A-Z a-z 0-9 . _ - and does not start with ."
    )]
    BadName(String),
    /// The directory could not be created or inspected.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The directory exists but is not safe.
    #[error(
        "{}: {why}; control sockets must be in a directory that is yours alone (mode 0700)",
        path.display()
    )]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Suffix of a control socket in the runtime directory.
pub const SOCKET_SUFFIX: &str = ".sock";

/// Check a run's name: it becomes a file name, so no separators, no leading dot, bounded length.
pub fn check_name(name: &str) -> Result<(), PathError> {
    if tsem_core::is_plain_name(name, 64) {
        Ok(())
    } else {
        Err(PathError::BadName(name.to_string()))
    }
}

/// The runtime directory's path for the calling user (not created).
pub fn runtime_dir_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("tsem"),
        None if uid == 0 => PathBuf::from("/run/tsem"),
        None => PathBuf::from(format!("/tmp/tsem-{uid}")),
    }
}

/// The runtime directory, created if absent, checked to be the caller's alone.
pub fn runtime_dir() -> Result<PathBuf, PathError> {
    let dir = runtime_dir_path();
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(PathError::Io { path: dir, source }),
    }
    check_private_dir(&dir)?;
    Ok(dir)
}

/// The runtime directory if it exists and is safe (for listing: never creates it).
pub fn existing_runtime_dir() -> Result<Option<PathBuf>, PathError> {
    let dir = runtime_dir_path();
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PathError::Io { path: dir, source }),
        Ok(_) => {
            check_private_dir(&dir)?;
            Ok(Some(dir))
        }
    }
}

/// The socket path of the run named `name`.
pub fn socket_path(dir: &Path, name: &str) -> Result<PathBuf, PathError> {
    check_name(name)?;
    Ok(dir.join(format!("{name}{SOCKET_SUFFIX}")))
}

fn check_private_dir(dir: &Path) -> Result<(), PathError> {
    let m = std::fs::symlink_metadata(dir).map_err(|source| PathError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let unsafe_dir = |why: String| PathError::Unsafe {
        path: dir.to_path_buf(),
        why,
    };
    if !m.file_type().is_dir() {
        return Err(unsafe_dir("not a directory (or a symlink)".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if m.uid() != uid {
        return Err(unsafe_dir(format!("owned by uid {}, not {uid}", m.uid())));
    }
    if m.mode() & 0o077 != 0 {
        return Err(unsafe_dir(format!("mode {:04o}", m.mode() & 0o7777)));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        for bad in ["", ".hidden", "a/b", "..", "x y", &"n".repeat(65), "é"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["web", "build-1.2_x", &"n".repeat(64)] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = std::env::temp_dir().join(format!("tsem-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
        check_private_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_private_dir(&d).unwrap_err().to_string();
        assert!(e.contains("mode 0755"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

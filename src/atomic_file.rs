//! Files written whole or not at all: write a sibling, fsync it, publish it under the real name,
//! fsync the directory. A crash at any point leaves either the old file (or none) or the new one,
//! never a torn mix: the credentials file, its identity and the admin's configuration depend on it.
//!
//! The sibling is opened exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`) under a random name, so in a
//! directory another user can write, a file or symlink planted at a guessed name can neither
//! receive nor redirect what is written, the identity's secret above all. [`write()`] publishes by
//! renaming over the old file and keeps its owner and group; [`create_new`] publishes with a hard
//! link, which fails if the name is taken, so of two concurrent creators exactly one wins.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Random sibling names tried before giving up. A clash is already astronomically unlikely; more
/// than one means someone is planting names faster than we can guess, which retrying won't beat.
const ATTEMPTS: usize = 4;

/// Replaces `path` with `bytes`, created with permission bits `mode`. The file replaced, if any,
/// lends the new one its owner and group.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = match std::fs::metadata(path) {
        Ok(old) => Some((old.uid(), old.gid())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    publish(path, bytes, mode, owner, |sibling| {
        std::fs::rename(sibling, path)
    })
}

/// Creates `path` with `bytes` and permission bits `mode`, failing with
/// [`io::ErrorKind::AlreadyExists`] (and leaving it alone) if something is already there.
pub(crate) fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    publish(path, bytes, mode, None, |sibling| {
        // Linking, unlike renaming, never replaces; the sibling is then a second name to drop.
        std::fs::hard_link(sibling, path)?;
        std::fs::remove_file(sibling)
    })
}

/// Removes the siblings a writer of `path` killed mid-write left behind. Only for a caller
/// that knows no writer of `path` is under way (it holds a lock all of them take).
pub fn remove_leftovers(path: &Path) -> io::Result<()> {
    let dir = parent_of(path);
    let prefix = format!(".{}.tmp-", name_of(path));
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The directory `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The file name of `path`, for its siblings' names.
fn name_of(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
}

/// The permission bits of `path`, or `default` if it does not exist yet.
pub fn mode_or(path: &Path, default: u32) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(default, |m| m.permissions().mode() & 0o7777)
}

/// Writes `bytes` to a fresh sibling of `path` with exactly `mode` (and `owner`, as far as we
/// may), fsyncs it, hands it to `publish_as` to put under `path`, and fsyncs the directory.
fn publish(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    publish_as: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent_of(path);
    let (sibling, mut file) = create_sibling(dir, path)?;
    let written = (|| {
        if let Some((uid, gid)) = owner {
            // Before the mode: changing the owner clears set-user/group-ID bits. Only root may
            // give a file away, and only then does it matter (root rewriting `root:bbzoom 0640`
            // credentials the service reads); anyone else keeps the file as their own.
            if let Err(e) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                && e.kind() != io::ErrorKind::PermissionDenied
            {
                return Err(e);
            }
        }
        // The umask may have narrowed `mode`; the file gets exactly what was asked for.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        publish_as(&sibling)
    })();
    if written.is_err() {
        // Whatever failed, no half-written sibling is left behind.
        let _ = std::fs::remove_file(&sibling);
    }
    written?;
    File::open(dir)?.sync_all()
}

/// A new, empty sibling of `path` in `dir` under a random name, opened for writing (mode 0600
/// until the caller sets the real one, so it is never readable by others while filled).
fn create_sibling(dir: &Path, path: &Path) -> io::Result<(PathBuf, File)> {
    let name = name_of(path);
    let mut clash = None;
    for _ in 0..ATTEMPTS {
        let sibling = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
        match open_exclusive(&sibling) {
            Ok(file) => return Ok((sibling, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => clash = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(clash.expect("ATTEMPTS > 0"))
}

/// Creates `path` for writing, failing if anything, a symlink included, is already there: the
/// data goes into a new file of ours or nowhere.
fn open_exclusive(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        // `O_EXCL` alone already refuses a symlink; this says so, whatever the platform.
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn replaces_the_file_with_the_mode_asked_for_and_leaves_no_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        write(&path, b"one", 0o640).unwrap();
        write(&path, b"two", mode_or(&path, 0o600)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the existing file's mode is kept");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replacing_keeps_the_owner_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.age");
        write(&path, b"one", 0o640).unwrap();
        // Only root can give the file to someone else (CI runs as root); anyone else still
        // checks that rewriting their own file keeps it theirs.
        let old = std::fs::metadata(&path).unwrap();
        let (uid, gid) = if old.uid() == 0 {
            std::os::unix::fs::chown(&path, Some(4242), Some(4343)).unwrap();
            (4242, 4343)
        } else {
            (old.uid(), old.gid())
        };
        write(&path, b"two", mode_or(&path, 0o600)).unwrap();
        let new = std::fs::metadata(&path).unwrap();
        assert_eq!((new.uid(), new.gid()), (uid, gid));
        assert_eq!(new.permissions().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
    }

    #[test]
    fn a_sibling_is_never_opened_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"untouched").unwrap();
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();

        for link in [&planted, &dangling] {
            assert!(open_exclusive(link).is_err(), "{}", link.display());
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn create_new_refuses_a_taken_name_and_leaves_no_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.txt");
        create_new(&path, b"first", 0o600).unwrap();
        let err = create_new(&path, b"second", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.nlink(), 1, "the sibling's name is gone");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A symlink at the name is taken too, and is not followed.
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        let err = create_new(&link, b"secret", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("nowhere").exists());
    }
}

//! Reading the admin's files (the configuration, the age identity, the encrypted credentials):
//! regular files only, and at most [`MAX_FILE_BYTES`]. A path that names a FIFO would otherwise
//! hang a start or a reload, and `/dev/zero` or a huge file would eat memory until killed.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// The most bytes an admin's file may hold: far above a configuration of thousands of
/// subscriptions, and a bound on what a wrong path can cost.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The bytes of the regular file at `path` and its metadata, taken from the file opened (not
/// from a second look at the path). Anything else, or a file larger than [`MAX_FILE_BYTES`],
/// is an [`io::ErrorKind::InvalidInput`] error saying why; the caller names the path.
pub fn read_regular(path: &Path) -> io::Result<(Vec<u8>, Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file (it is {})", kind_of(&meta)),
        ));
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that grew past the limit since `metadata`.
    read_blocking(file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than the {} MiB bbzoom reads", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok((bytes, meta))
}

/// As [`read_regular`], as UTF-8 text ([`io::ErrorKind::InvalidData`] if it is not).
pub fn read_text(path: &Path) -> io::Result<(String, Metadata)> {
    let (bytes, meta) = read_regular(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))?;
    Ok((text, meta))
}

/// `file` back in blocking mode: `O_NONBLOCK` was only for the open.
fn read_blocking(file: File) -> File {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor we own, with plain integer arguments. A failure leaves
    // the flag set, which a regular file ignores anyway.
    unsafe {
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    file
}

/// What a non-regular file is, for messages.
fn kind_of(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[daemon]\n").unwrap();
        assert_eq!(read_text(&file).unwrap().0, "[daemon]\n");

        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for (path, says) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a device"),
            (dir.path(), "a directory"),
        ] {
            let err = read_regular(path).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{}",
                path.display()
            );
            assert!(err.to_string().contains(says), "{err}");
        }

        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let err = read_regular(&big).unwrap_err();
        assert!(err.to_string().contains("larger than the 4 MiB"), "{err}");
    }
}

//! Calls on paths, in the manner of `std::fs`: reading and writing whole
//! files, removing and renaming, creating directories, metadata and links,
//! each through the ring.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{File, Metadata};
use crate::buf::IoBuf;
use crate::op::{Op, PathOp, Statx, StatxOf};

/// `path` as the kernel takes it.
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} contains a NUL byte", path.display()),
        )
    })
}

/// Reads the whole file at `path`, until it ends (whatever size it
/// reports: files in `/proc` report 0).
///
/// # Errors
///
/// As opening and reading it; `OutOfMemory` when the file is larger than
/// memory can hold (as `std::fs::read`), before anything is read.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path).await?;
    let contents = read_to_end(&file).await?;
    file.close().await?;
    Ok(contents)
}

/// The bytes of a probe read, which tells whether a buffer filled to the
/// size the file reported has reached the end, without growing it.
const PROBE: usize = 32;

/// Reads `file` from its start until it ends, into a buffer of the size it
/// reports, grown only when it holds more.
async fn read_to_end(file: &File) -> io::Result<Vec<u8>> {
    let mut contents = Vec::new();
    reserve(&mut contents, file.metadata().await?.len())?;
    loop {
        if contents.len() == contents.capacity() {
            let probe = Vec::with_capacity(PROBE);
            let (read, probe) = read_more(file, probe, contents.len() as u64).await?;
            if read == 0 {
                return Ok(contents);
            }
            // The file holds more than it said: grow by doubling.
            let more = contents.capacity().max(4096) as u64;
            reserve(&mut contents, more)?;
            contents.extend_from_slice(&probe);
        }
        let pos = contents.len() as u64;
        let (read, returned) = read_more(file, contents, pos).await?;
        contents = returned;
        if read == 0 {
            return Ok(contents);
        }
    }
}

/// Reads from offset `pos` of `file` into the spare capacity of `buf`,
/// retrying `EINTR`; returns the count read (0 at the end) and the buffer.
async fn read_more(file: &File, buf: Vec<u8>, pos: u64) -> io::Result<(usize, Vec<u8>)> {
    let mut buf = buf;
    loop {
        let filled = buf.len();
        let (read, returned) = file.read_at(buf.slice(filled..), pos).await;
        buf = returned.into_inner();
        match read {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            read => return read.map(|read| (read, buf)),
        }
    }
}

/// Makes room in `contents` for `additional` more bytes, or gives
/// `OutOfMemory`. A total beyond the machine's memory is refused without
/// asking the allocator, which under overcommit might grant it and let
/// the reads that fill it get the process killed.
fn reserve(contents: &mut Vec<u8>, additional: u64) -> io::Result<()> {
    let total = (contents.len() as u64).saturating_add(additional);
    let out_of_memory = || {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("read: no memory for a buffer of {total} bytes to hold the file"),
        )
    };
    if crate::sys::memory::total().is_some_and(|memory| total > memory) {
        return Err(out_of_memory());
    }
    let additional = usize::try_from(additional).map_err(|_| out_of_memory())?;
    contents
        .try_reserve_exact(additional)
        .map_err(|_| out_of_memory())
}

/// Writes `contents` to the file at `path`, creating it if needed and
/// replacing what it held.
///
/// # Errors
///
/// As opening, writing and closing it.
pub async fn write<B: IoBuf>(path: impl AsRef<Path>, contents: B) -> io::Result<()> {
    let file = File::create(path).await?;
    file.write_all_at(contents, 0).await.0?;
    file.close().await
}

/// Removes the file (or symbolic link) at `path`.
///
/// # Errors
///
/// As `unlink(2)`: `NotFound`, `IsADirectory`, ...
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    Op::new(PathOp::Remove { path, dir: false }).await
}

/// Removes the empty directory at `path`.
///
/// # Errors
///
/// As `rmdir(2)`: `NotFound`, `DirectoryNotEmpty`, `NotADirectory`, ...
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    Op::new(PathOp::Remove { path, dir: true }).await
}

/// Renames `from` to `to`, replacing `to` if it exists (`rename(2)`).
///
/// # Errors
///
/// As `rename(2)`.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let from = c_path(from.as_ref())?;
    let to = c_path(to.as_ref())?;
    Op::new(PathOp::Rename { from, to }).await
}

/// Creates the directory `path` (mode 0o777 before the umask).
///
/// # Errors
///
/// As `mkdir(2)`: `AlreadyExists`, `NotFound` for a missing parent, ...
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    Op::new(PathOp::CreateDir { path, mode: 0o777 }).await
}

/// Creates the directory `path` and any missing parents. A directory that
/// already exists is success, as in `std::fs::create_dir_all`.
///
/// # Errors
///
/// The first error other than an existing directory.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    // The ancestors to create, from the deepest that is missing up.
    let mut missing = Vec::new();
    let mut next = Some(path);
    while let Some(dir) = next {
        if dir.as_os_str().is_empty() {
            break;
        }
        match create_dir(dir).await {
            Ok(()) => break,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                missing.push(dir);
                next = dir.parent();
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                if metadata(dir).await?.is_dir() {
                    break;
                }
                return Err(error);
            }
            Err(error) => return Err(error),
        }
    }
    for dir in missing.into_iter().rev() {
        match create_dir(dir).await {
            Ok(()) => {}
            // Made meanwhile by someone else.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                if !metadata(dir).await?.is_dir() {
                    return Err(error);
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The metadata of `path`, following symbolic links.
///
/// # Errors
///
/// As `statx(2)`: `NotFound`, `PermissionDenied`, ...
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    stat_path(path.as_ref(), true).await
}

/// The metadata of `path` itself, not following a symbolic link.
///
/// # Errors
///
/// As `statx(2)`.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    stat_path(path.as_ref(), false).await
}

async fn stat_path(path: &Path, follow: bool) -> io::Result<Metadata> {
    let path = c_path(path)?;
    let statx = Statx::new(StatxOf::Path { path, follow }, Metadata::MASK)?;
    Op::new(statx).await.map(Metadata::from_statx)
}

/// Creates a symbolic link at `link` pointing at `original`.
///
/// # Errors
///
/// As `symlink(2)`: `AlreadyExists`, ...
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let target = c_path(original.as_ref())?;
    let link = c_path(link.as_ref())?;
    Op::new(PathOp::Symlink { target, link }).await
}

/// Creates a hard link at `link` to the file at `original`.
///
/// # Errors
///
/// As `link(2)`.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let from = c_path(original.as_ref())?;
    let to = c_path(link.as_ref())?;
    Op::new(PathOp::HardLink { from, to }).await
}

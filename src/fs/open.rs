//! `OpenOptions`: how to open a file, as in `std::fs::OpenOptions`.

use std::io;
use std::path::Path;

use super::{c_path, File};
use crate::op::Op;
use crate::op::OpenAt;
use crate::op::SharedFd;

/// How to open a file: access (read, write, append), creation (create,
/// create_new, truncate), the mode of a created file, and extra `open(2)`
/// flags such as `O_DIRECT`. The same rules as `std::fs::OpenOptions`.
///
/// # Examples
///
/// ```
/// use corering::fs::OpenOptions;
///
/// corering::start(async {
///     let path = std::env::temp_dir().join(format!("corering-doc-open-{}", std::process::id()));
///     let file = OpenOptions::new()
///         .write(true)
///         .create_new(true)
///         .mode(0o600)
///         .open(&path)
///         .await
///         .unwrap();
///     file.close().await.unwrap();
///     let again = OpenOptions::new().write(true).create_new(true).open(&path).await;
///     assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
///     corering::fs::remove_file(&path).await.unwrap();
/// });
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// No access and no creation yet; a created file gets mode 0o666
    /// (before the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Opens for reading.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.read = read;
        self
    }

    /// Opens for writing.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.write = write;
        self
    }

    /// Opens for appending (`O_APPEND`; implies writing). Every write then
    /// goes to the end of the file, whatever offset it names.
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.append = append;
        self
    }

    /// Truncates the file to 0 bytes when it is opened (`O_TRUNC`); needs
    /// write access.
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.truncate = truncate;
        self
    }

    /// Creates the file if it does not exist (`O_CREAT`); needs write or
    /// append access.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Creates the file, failing with `AlreadyExists` if anything is at the
    /// path, symbolic links included (`O_CREAT | O_EXCL`); overrides
    /// `create` and `truncate`.
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// The permission bits of a created file (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Further `open(2)` flags, such as `libc::O_DIRECT` or
    /// `libc::O_NOATIME`. With `O_DIRECT` the file learns the alignment its
    /// I/O needs when it is opened, and refuses misaligned transfers before
    /// they reach the kernel. The access mode bits are ignored (they come from
    /// `read`, `write` and `append`); `O_CLOEXEC` is always set.
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// Opens `path` with these options (`openat` through the ring).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for options that contradict each other (no access;
    /// creation or truncation without write access; append with truncate)
    /// or a path with a NUL byte; otherwise as `open(2)`.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        self.open_in(path.as_ref(), None).await
    }

    /// Opens `path` relative to the directory `dir`, which it may not
    /// leave: `..` above `dir`, an absolute path, or a symbolic link that
    /// points outside it fails with `EXDEV` (`openat2` with
    /// `RESOLVE_BENEATH`, Linux 5.6). What a server serving files from a
    /// directory needs.
    ///
    /// # Errors
    ///
    /// As [`open`](OpenOptions::open); `EXDEV` (`CrossesDevices`) for a
    /// path that would leave `dir`; `Unsupported` when `dir` is a direct
    /// descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::fs::{self, OpenOptions};
    ///
    /// corering::start(async {
    ///     let root = std::env::temp_dir().join(format!("corering-doc-beneath-{}", std::process::id()));
    ///     fs::create_dir_all(&root).await.unwrap();
    ///     fs::write(root.join("inside.txt"), b"ok".to_vec()).await.unwrap();
    ///     let dir = OpenOptions::new()
    ///         .read(true)
    ///         .custom_flags(libc::O_DIRECTORY)
    ///         .open(&root)
    ///         .await
    ///         .unwrap();
    ///     let mut read = OpenOptions::new();
    ///     read.read(true);
    ///     assert!(read.open_beneath(&dir, "inside.txt").await.is_ok());
    ///     let escape = read.open_beneath(&dir, "../../etc/passwd").await.unwrap_err();
    ///     assert_eq!(escape.raw_os_error(), Some(libc::EXDEV));
    ///     fs::remove_file(root.join("inside.txt")).await.unwrap();
    ///     fs::remove_dir(&root).await.unwrap();
    /// });
    /// ```
    pub async fn open_beneath(&self, dir: &File, path: impl AsRef<Path>) -> io::Result<File> {
        dir.shared().raw_fd()?;
        self.open_in(path.as_ref(), Some(dir.shared().clone()))
            .await
    }

    async fn open_in(&self, path: &Path, beneath: Option<SharedFd>) -> io::Result<File> {
        let flags = self.flags()?;
        let path = c_path(path)?;
        let fd = Op::new(OpenAt::new(path, flags, self.mode, beneath)).await?;
        let file = File::from_owned(fd);
        if flags & libc::O_DIRECT != 0 {
            return file.into_direct().await;
        }
        Ok(file)
    }

    /// The `open(2)` flags, checked as `std::fs::OpenOptions` checks them.
    fn flags(&self) -> io::Result<i32> {
        let invalid = |message: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return invalid("no access mode: set read, write or append"),
        };
        let writable = self.write || self.append;
        if !writable && (self.truncate || self.create || self.create_new) {
            return invalid("creating or truncating a file needs write or append access");
        }
        if self.append && self.truncate && !self.create_new {
            return invalid("append and truncate contradict each other");
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }
}

#[cfg(test)]
mod tests {
    use super::OpenOptions;

    #[test]
    fn flags_follow_std_rules() {
        let flags = |options: &OpenOptions| options.flags().map_err(|error| error.kind());
        let invalid = Err(std::io::ErrorKind::InvalidInput);
        assert_eq!(flags(&OpenOptions::new()), invalid);
        assert_eq!(flags(OpenOptions::new().read(true)), Ok(libc::O_RDONLY));
        assert_eq!(
            flags(OpenOptions::new().read(true).write(true)),
            Ok(libc::O_RDWR)
        );
        assert_eq!(
            flags(OpenOptions::new().append(true)),
            Ok(libc::O_WRONLY | libc::O_APPEND)
        );
        assert_eq!(flags(OpenOptions::new().read(true).create(true)), invalid);
        assert_eq!(
            flags(OpenOptions::new().append(true).truncate(true)),
            invalid
        );
        assert_eq!(
            flags(OpenOptions::new().write(true).create(true).truncate(true)),
            Ok(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
        );
        assert_eq!(
            flags(OpenOptions::new().write(true).create(true).create_new(true)),
            Ok(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
        );
        // The access bits of custom flags are ignored.
        assert_eq!(
            flags(
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT | libc::O_RDWR)
            ),
            Ok(libc::O_RDONLY | libc::O_DIRECT)
        );
    }
}

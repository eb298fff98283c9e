use dsk_sys as sys;
use std::ffi::CStr;
use std::fmt;

/// What went wrong, one variant per `DSK_ERR_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    Unsupported,
    OutOfMemory,
    BackendUnavailable,
    DeviceError,
    VersionMismatch,
    Internal,
    /// A file could not be opened, inspected or mapped (`DSK_ERR_IO`).
    Io,
    /// A tensor or metadata key is not there (`DSK_ERR_NOT_FOUND`).
    NotFound,
    /// A code this crate does not know (a newer libdsk); see [`Error::status`].
    Unknown,
}

impl ErrorKind {
    pub fn from_status(status: i32) -> ErrorKind {
        match status {
            sys::DSK_ERR_INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            sys::DSK_ERR_UNSUPPORTED => ErrorKind::Unsupported,
            sys::DSK_ERR_OUT_OF_MEMORY => ErrorKind::OutOfMemory,
            sys::DSK_ERR_BACKEND_UNAVAILABLE => ErrorKind::BackendUnavailable,
            sys::DSK_ERR_DEVICE_ERROR => ErrorKind::DeviceError,
            sys::DSK_ERR_VERSION_MISMATCH => ErrorKind::VersionMismatch,
            sys::DSK_ERR_INTERNAL => ErrorKind::Internal,
            sys::DSK_ERR_IO => ErrorKind::Io,
            sys::DSK_ERR_NOT_FOUND => ErrorKind::NotFound,
            _ => ErrorKind::Unknown,
        }
    }
}

/// A failed dsk call: the raw status, its kind and libdsk's message (which names the function,
/// the argument and what was expected). Errors raised by this crate itself (say, a slice whose
/// length does not match the shape) use `DSK_ERR_INVALID_ARGUMENT` and their own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: i32,
    kind: ErrorKind,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(status: i32, message: impl Into<String>) -> Error {
        Error { status, kind: ErrorKind::from_status(status), message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(sys::DSK_ERR_INVALID_ARGUMENT, message)
    }

    /// The error of the dsk call that just returned `status` on this thread. Must run before any
    /// other dsk call on the thread, since the message is per-thread and overwritten.
    pub(crate) fn last(status: i32) -> Error {
        let message = unsafe { CStr::from_ptr(sys::dsk_last_error_message()) };
        Error::new(status, message.to_string_lossy().into_owned())
    }

    pub fn status(&self) -> i32 {
        self.status
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// libdsk's static text for a status code ("ok", "invalid argument", ...).
pub fn status_string(status: i32) -> &'static str {
    // Static strings in libdsk, valid for the life of the process.
    unsafe { CStr::from_ptr(sys::dsk_status_string(status)) }.to_str().unwrap_or("unknown status")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dsk: {} ({}): {}", status_string(self.status), self.status, self.message)
    }
}

impl std::error::Error for Error {}

/// Turns a status into a Result, capturing the message at once.
pub(crate) fn check(status: i32) -> Result<()> {
    if status == sys::DSK_OK {
        Ok(())
    } else {
        Err(Error::last(status))
    }
}

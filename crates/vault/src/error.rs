//! Errors of the vault, grouped by what a caller should do about them.

use std::fmt;

use evault_store::StoreError;

#[derive(Debug)]
pub enum VaultError {
    /// The request is malformed or violates a limit; nothing was written.
    Invalid(String),
    /// The payload exceeds the configured upload limit; nothing was written.
    TooLarge { limit: u64 },
    /// The thing asked for does not exist.
    NotFound(String),
    /// The vault's stored state does not add up; it refuses to serve.
    Inconsistent(String),
    /// The vault is shutting down or its sequencer has stopped.
    Unavailable(String),
    /// Storage failed.
    Store(StoreError),
    /// Filesystem failure (blobs, keys).
    Io(std::io::Error),
    /// Signing a checkpoint failed.
    Signing(String),
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultError::Invalid(why) => write!(f, "invalid request: {why}"),
            VaultError::TooLarge { limit } => {
                write!(f, "payload exceeds the limit of {limit} bytes")
            }
            VaultError::NotFound(what) => write!(f, "{what} not found"),
            VaultError::Inconsistent(why) => write!(f, "vault state is inconsistent: {why}"),
            VaultError::Unavailable(why) => write!(f, "vault unavailable: {why}"),
            VaultError::Store(e) => write!(f, "{e}"),
            VaultError::Io(e) => write!(f, "i/o: {e}"),
            VaultError::Signing(e) => write!(f, "signing: {e}"),
        }
    }
}

impl std::error::Error for VaultError {}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        VaultError::Store(e)
    }
}

impl From<std::io::Error> for VaultError {
    fn from(e: std::io::Error) -> Self {
        VaultError::Io(e)
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

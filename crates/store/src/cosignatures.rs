//! Witness cosignatures of the vault's own checkpoints (C2SP
//! tlog-cosignature lines), behind their own narrow trait,
//! [`CosignatureStore`]. A checkpoint is stored once, signed by the log;
//! cosignatures arrive later, one witness at a time, and are served with it.

use crate::{LogId, Result};

/// One witness's cosignature of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name, as configured.
    pub witness: String,
    /// The signature line, `— <key name> <base64>`, verified with the
    /// witness's key before it is stored.
    pub line: String,
    /// When the vault received it, milliseconds since the Unix epoch.
    pub received_ms: i64,
}

/// Where cosignatures are kept.
pub trait CosignatureStore: Send + Sync {
    /// Adds cosignatures of `log`'s checkpoint of `size`; a line already
    /// stored for that witness and size is kept as it is.
    fn put_cosignatures(&self, log: LogId, size: u64, cosignatures: &[Cosignature]) -> Result<()>;
    /// The cosignatures of `log`'s checkpoint of `size`, by witness, then
    /// line.
    fn cosignatures_at(&self, log: LogId, size: u64) -> Result<Vec<Cosignature>>;
    /// The largest size of `log` whose checkpoint at least `threshold`
    /// distinct witnesses cosigned.
    fn witnessed_size(&self, log: LogId, threshold: usize) -> Result<Option<u64>>;
}

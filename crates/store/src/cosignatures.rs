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
    /// The cosigner key that made it, `<key name>+<key id, 8 hex digits>`:
    /// one line per witness and key is kept.
    pub key: String,
    /// The signature line, `— <key name> <base64>`, verified with the
    /// witness's key before it is stored.
    pub line: String,
    /// When the vault received it, milliseconds since the Unix epoch.
    pub received_ms: i64,
}

/// Where cosignatures are kept.
pub trait CosignatureStore: Send + Sync {
    /// Adds cosignatures of `log`'s checkpoint of `size`; for a witness
    /// and key that already has a line for that size, the stored line is
    /// kept as it is.
    fn put_cosignatures(&self, log: LogId, size: u64, cosignatures: &[Cosignature]) -> Result<()>;
    /// The cosignatures of `log`'s checkpoint of `size`, by witness, then
    /// key.
    fn cosignatures_at(&self, log: LogId, size: u64) -> Result<Vec<Cosignature>>;
    /// The largest size of `log` whose checkpoint at least `threshold`
    /// distinct witnesses among `witnesses` cosigned (a witness no longer
    /// configured does not count).
    fn witnessed_size(
        &self,
        log: LogId,
        threshold: usize,
        witnesses: &[String],
    ) -> Result<Option<u64>>;
}

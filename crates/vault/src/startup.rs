//! Start-up: each log's identity (origin and signing key) and the checks
//! that its stored tree, tiles and latest checkpoint agree. Both logs go
//! through the same code; the vault refuses to start if either fails.

use std::path::PathBuf;
use std::sync::Arc;

use evault_merkle::tiles::TiledHashReader;
use evault_merkle::{NodeId, leaf_hash};
use evault_note::{Checkpoint, Signer, Verifiers, parse_verifier_key};
use evault_store::{LogId, Store};
use evault_verify::open_checkpoint;

use crate::checkpointer::{self, Signed};
use crate::config::{LogSigner, VaultConfig};
use crate::error::{Result, VaultError};
use crate::head::{self, FileHeadStore, HeadGuard, SignedHead, SignedHeadStore};
use crate::integrity;
use crate::keyring::{self, KeyRing};
use crate::keys;
use crate::proofs::StoreTiles;
use crate::sequencer::TreeState;

/// Meta key of the evidence log's origin.
const META_ORIGIN: &str = "origin";
/// Meta key of the audit log's origin.
const META_AUDIT_ORIGIN: &str = "audit_origin";

/// One log, checked and ready to extend.
pub(crate) struct LogStart {
    pub origin: String,
    /// Its keys (Ed25519, then ML-DSA-44 if configured), changed by
    /// rotation while it runs.
    pub ring: Arc<KeyRing>,
    pub state: TreeState,
    /// Size of the latest signed checkpoint.
    pub published: u64,
    /// The latest signed head, kept outside the store.
    pub guard: HeadGuard,
}

/// Both logs; `audit` is `None` when audit is disabled.
pub(crate) struct Started {
    pub evidence: LogStart,
    pub audit: Option<LogStart>,
}

/// Everything checked before serving: for each log, origin and key, the
/// stored tree against its tiles and leaves, and the latest checkpoint
/// against both. A log without checkpoints gets its signed empty one.
pub(crate) fn startup(config: &VaultConfig, store: &dyn Store) -> Result<Started> {
    let heads = head_store(config)?;
    let public = config
        .public_url
        .as_deref()
        .map(|url| public_origin_base(url).map(|base| (url, base)))
        .transpose()?;
    let (origin, stored) =
        resolve_origin(
            store,
            META_ORIGIN,
            config.origin.as_deref(),
            || match &public {
                Some((_, base)) => format!("{base}/{EVIDENCE_TILES_PREFIX}"),
                None => format!(
                    "evault.local/{}",
                    &uuid::Uuid::now_v7().simple().to_string()[20..]
                ),
            },
        )?;
    if let Some((url, base)) = &public {
        note_origin(LogId::Evidence, &origin, url, base, EVIDENCE_TILES_PREFIX);
    }
    let key = KeySource::of(
        config.signer.as_ref(),
        config.key_file.as_ref(),
        config.data_dir.join("log.key"),
    );
    let evidence = open_log(
        store,
        LogId::Evidence,
        META_ORIGIN,
        origin,
        stored,
        Keys {
            signer: &key,
            next: config.next_signer.as_ref(),
            pq: config.pq_key_file.as_deref(),
            data_dir: &config.data_dir,
        },
        &heads,
    )?;
    check_sample(store, LogId::Evidence, &evidence, config.startup_sample)?;

    let audit = if config.audit.enabled {
        let (origin, stored) = resolve_origin(
            store,
            META_AUDIT_ORIGIN,
            config.audit.origin.as_deref(),
            || match &public {
                Some((_, base)) => format!("{base}/{AUDIT_TILES_PREFIX}"),
                None => format!("{}/audit", evidence.origin),
            },
        )?;
        if let Some((url, base)) = &public {
            note_origin(LogId::Audit, &origin, url, base, AUDIT_TILES_PREFIX);
        }
        if origin == evidence.origin {
            return Err(VaultError::Invalid(format!(
                "the audit log's origin must differ from the evidence log's ({origin:?}): a \
                 checkpoint of one must never pass for the other's"
            )));
        }
        let audit_key = KeySource::of(
            config.audit.signer.as_ref(),
            config.audit.key_file.as_ref(),
            config.data_dir.join("audit.key"),
        );
        if let (KeySource::File(a), KeySource::File(e)) = (&audit_key, &key)
            && a == e
        {
            return Err(VaultError::Invalid(format!(
                "the audit log needs its own signing key, not the evidence log's ({})",
                e.display()
            )));
        }
        if config.audit.pq_key_file.is_some() && config.audit.pq_key_file == config.pq_key_file {
            return Err(VaultError::Invalid(
                "the audit log needs its own ML-DSA-44 key, not the evidence log's".into(),
            ));
        }
        let log = open_log(
            store,
            LogId::Audit,
            META_AUDIT_ORIGIN,
            origin,
            stored,
            Keys {
                signer: &audit_key,
                next: None,
                pq: config.audit.pq_key_file.as_deref(),
                data_dir: &config.data_dir,
            },
            &heads,
        )?;
        check_sample(store, LogId::Audit, &log, config.startup_sample)?;
        // Neither a key the evidence log signs with nor the one it will
        // rotate to.
        let audit_public = public_key(&*log.ring.primary())?;
        for key in evidence
            .ring
            .ed25519()
            .iter()
            .chain(&evidence.ring.next_signer())
        {
            if public_key(&**key)? == audit_public {
                return Err(VaultError::Invalid(format!(
                    "the audit key {} holds one of the evidence log's keys; the audit log needs \
                     its own",
                    audit_key.describe()
                )));
            }
        }
        Some(log)
    } else {
        None
    };
    Ok(Started { evidence, audit })
}

/// Whether a node that does not lead may follow `store`: its logs have
/// their origins and first checkpoints (the leader's start-up writes them),
/// so [`startup`] there only reads.
pub(crate) fn initialized(store: &dyn Store, audit: bool) -> evault_store::Result<bool> {
    let log = |meta: &str, log: LogId| -> evault_store::Result<bool> {
        Ok(store.get_meta(meta)?.is_some() && store.latest_checkpoint(log)?.is_some())
    };
    Ok(log(META_ORIGIN, LogId::Evidence)? && (!audit || log(META_AUDIT_ORIGIN, LogId::Audit)?))
}

/// The path, under the server's public URL, of the evidence log's C2SP
/// tlog-tiles resources (`<public URL>/tlog/checkpoint`, `…/tlog/tile/…`).
pub const EVIDENCE_TILES_PREFIX: &str = "tlog";
/// The same for the audit log (`<public URL>/tlog-audit/…`).
pub const AUDIT_TILES_PREFIX: &str = "tlog-audit";

/// The checkpoint origin C2SP tlog-tiles recommends for a log served at
/// `<public_url>/<prefix>/`: that URL prefix with the scheme removed and no
/// trailing slashes, e.g. `https://vault.example.com/` and `tlog` give
/// `vault.example.com/tlog`. `public_url` must be an absolute `http` or
/// `https` URL without query or fragment; the origin is also the log key's
/// name, so it may not hold `+` or white space.
pub fn tlog_origin(public_url: &str, prefix: &str) -> Result<String> {
    Ok(format!("{}/{prefix}", public_origin_base(public_url)?))
}

/// `public_url` without its scheme and trailing slashes.
fn public_origin_base(public_url: &str) -> Result<String> {
    let bad = |why: &str| {
        VaultError::Invalid(format!(
            "public URL {public_url:?}: {why} (expected e.g. https://vault.example.com/evault)"
        ))
    };
    let lower = public_url
        .get(..8)
        .unwrap_or(public_url)
        .to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &public_url[8..]
    } else if lower.starts_with("http://") {
        &public_url[7..]
    } else {
        return Err(bad("must start with https:// or http://"));
    };
    if let Some(c) = rest
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '+' | '?' | '#' | '@'))
    {
        return Err(bad(&format!(
            "{c:?} is not allowed (no credentials, query, fragment, `+` or white space)"
        )));
    }
    let base = rest.trim_end_matches('/');
    let host = base.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if base.contains("//") {
        return Err(bad("has an empty path segment"));
    }
    Ok(base.to_string())
}

/// Says, loudly, when a log's origin is not the one its public URL would
/// give it. The origin is never changed to match: it is part of every
/// checkpoint the log has signed and the name of its key, so verifiers and
/// witnesses know the log by it. A mismatch is legal (tlog-tiles says
/// SHOULD) and happens when a vault moves to a new address, so it is a
/// warning, not a refusal.
fn note_origin(log: LogId, origin: &str, url: &str, base: &str, prefix: &str) {
    let derived = format!("{base}/{prefix}");
    if origin != derived {
        tracing::warn!(
            "the {log} log's checkpoint origin is {origin:?}, but the public URL {url:?} serves \
             it under {}/{prefix}/, whose C2SP tlog-tiles origin would be {derived:?}. The \
             origin of an existing log never changes (every checkpoint and the key's name carry \
             it), so it stays {origin:?}: give verifiers and witnesses that origin",
            url.trim_end_matches('/')
        );
    }
}

/// Where the signed heads live: the configured store, else files in the
/// state directory (configured, else the default one).
fn head_store(config: &VaultConfig) -> Result<Arc<dyn SignedHeadStore>> {
    if let Some(h) = &config.head_store {
        return Ok(h.0.clone());
    }
    let dir = match &config.state_dir {
        Some(d) => d.clone(),
        None => head::default_state_dir().ok_or_else(|| {
            VaultError::Invalid(
                "no state directory for the signed tree heads: neither XDG_STATE_HOME nor HOME \
                 is set; configure one (evault serve --state-dir)"
                    .into(),
            )
        })?,
    };
    if head::inside(&dir, &config.data_dir) {
        tracing::warn!(
            "the state directory {} is inside the data directory {}: restoring a backup of the \
             data directory would restore the signed heads too, and the vault could no longer \
             tell that it is about to sign a fork (see docs/OPERATIONS.md)",
            dir.display(),
            config.data_dir.display()
        );
    }
    Ok(Arc::new(FileHeadStore::new(dir)))
}

/// A log's origin: the stored one (which the configuration may repeat but
/// not change), else the configured one, else `default()`. Also says
/// whether it is stored already.
fn resolve_origin(
    store: &dyn Store,
    meta_key: &str,
    configured: Option<&str>,
    default: impl FnOnce() -> String,
) -> Result<(String, bool)> {
    match (store.get_meta(meta_key)?, configured) {
        (Some(s), Some(c)) if s != c => Err(VaultError::Inconsistent(format!(
            "the log's origin is {s:?} but the configuration asks for {c:?}; an existing log \
             cannot change origin"
        ))),
        (Some(s), _) => Ok((s, true)),
        (None, Some(c)) => Ok((c.to_string(), false)),
        (None, None) => Ok((default(), false)),
    }
}

/// Loads (or, for a log without history, creates) the key, records a new
/// origin, rebuilds the tree state and checks it against the last leaf
/// and the latest checkpoint.
fn open_log(
    store: &dyn Store,
    log: LogId,
    meta_key: &str,
    origin: String,
    origin_stored: bool,
    keys: Keys<'_>,
    heads: &Arc<dyn SignedHeadStore>,
) -> Result<LogStart> {
    let (key, pq_key) = (keys.signer, keys.pq);
    let size = store.tree_size(log)?;
    let latest = store.latest_checkpoint(log)?;
    let has_history = latest.is_some() || size > 0;
    // Before the first rotation the configured key is the log's only one;
    // after it, the stored key set says which keys still sign.
    let stored_keys = keyring::load_entries(store, log)?;
    let configured = match key {
        KeySource::Signer(s) => s.signer_for(&origin).map_err(|e| {
            VaultError::Unavailable(format!(
                "the {log} log's signer ({}) cannot be opened: {e}",
                s.describe()
            ))
        }),
        KeySource::File(path) => keys::load_or_create(path, &origin, !has_history),
    };
    let pq = pq_key
        .map(|path| keys::load_or_create_mldsa44(path, &origin, !has_history))
        .transpose()?;
    if let (Some(pq), Some(path)) = (&pq, pq_key)
        && pq.name() != origin
    {
        return Err(VaultError::Invalid(format!(
            "the {log} log's ML-DSA-44 key {} is named {:?}; it must be named after the log's \
             origin {origin:?}",
            path.display(),
            pq.name()
        )));
    }
    if !origin_stored {
        store.set_meta(meta_key, &origin)?;
    }
    let next = keys
        .next
        .map(|s| {
            s.signer_for(&origin).map_err(|e| {
                VaultError::Unavailable(format!(
                    "the {log} log's next signer ({}) cannot be opened: {e}",
                    s.describe()
                ))
            })
        })
        .transpose()?;
    let ring = Arc::new(KeyRing::open(
        log,
        &origin,
        stored_keys,
        configured,
        next,
        pq,
        keys.data_dir,
    )?);
    // Named by the log's first key, so that a rotation keeps the head.
    let guard = HeadGuard {
        heads: heads.clone(),
        log,
        origin: origin.clone(),
        verifier_key: ring.genesis.clone(),
    };
    let verifiers = ring.verifiers();

    let state = TreeState::load(store, log, size)?;
    let reader = TiledHashReader {
        tiles: StoreTiles::uncached(store, log),
        tree_size: size,
    };
    if size > 0 {
        let last = last_leaf(store, log, size - 1)?.ok_or_else(|| {
            VaultError::Inconsistent(format!(
                "{log} tree size is {size} but leaf {} is missing",
                size - 1
            ))
        })?;
        let in_tree = evault_merkle::HashReader::read_hashes(&reader, &[NodeId::new(0, size - 1)])
            .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
        if in_tree.first() != Some(&leaf_hash(&last)) {
            return Err(VaultError::Inconsistent(format!(
                "{log} leaf {} does not match its leaf hash in the tiles",
                size - 1
            )));
        }
    }
    let latest = match latest {
        Some(cp) => {
            let (body, _) = open_checkpoint(&cp.note, &verifiers, Some(&origin)).map_err(|e| {
                VaultError::Inconsistent(format!(
                    "latest {log} checkpoint (size {}) does not verify with the log's key {}: \
                     {e} (the stored checkpoint or the key file was changed); run `evault \
                     fsck` for a full check",
                    cp.size,
                    key.describe()
                ))
            })?;
            check_checkpoint(log, &body, size, &reader)?;
            Some((body, cp.note))
        }
        None => None,
    };
    match guard.load()? {
        Some(h) => check_head(&guard, &h, &verifiers, state.head(), &reader)?,
        None => {
            // First start since the heads were kept (an upgrade), or a
            // state directory that was lost: the latest checkpoint, just
            // verified, becomes the head. A new log's head comes with its
            // first checkpoint below.
            if let Some((body, note)) = &latest {
                guard.save(&SignedHead {
                    size: body.size,
                    root: body.root_hash,
                    checkpoint: note.clone(),
                })?;
                tracing::warn!(
                    "no signed {log} head in {}: wrote it from the latest stored checkpoint (size \
                     {}); from now on the vault refuses to sign a checkpoint inconsistent with it",
                    guard.describe(),
                    body.size
                );
            }
        }
    }
    let published = match latest {
        // A log always has a checkpoint to serve, even empty (tlog-tiles
        // clients start from /checkpoint); later ones follow as it grows.
        None => {
            let signers = ring.signing_set();
            match checkpointer::make_checkpoint(
                store,
                log,
                &signers.iter().map(|s| &**s).collect::<Vec<_>>(),
                &origin,
                state.head(),
                &guard,
            )? {
                Signed::Checkpoint(cp) => cp.size,
                Signed::Fork(why) => return Err(VaultError::Inconsistent(why)),
            }
        }
        Some((body, _)) => body.size,
    };
    Ok(LogStart {
        origin,
        ring,
        state,
        published,
        guard,
    })
}

/// Refuses a store whose tree does not contain the latest signed head:
/// smaller than it, or with another root at its size. The message names
/// both heads and the ways out.
fn check_head<R: evault_merkle::HashReader>(
    guard: &HeadGuard,
    head: &SignedHead,
    verifiers: &Verifiers,
    tree: crate::sequencer::TreeHead,
    reader: &R,
) -> Result<()>
where
    R::Error: std::fmt::Display,
{
    let log = guard.log;
    let (body, _) =
        open_checkpoint(&head.checkpoint, verifiers, Some(&guard.origin)).map_err(|e| {
            VaultError::Inconsistent(format!(
                "the signed {log} head in {} does not verify with the log's key and origin: {e}",
                guard.describe()
            ))
        })?;
    if body.size != head.size || body.root_hash != head.root {
        return Err(VaultError::Inconsistent(format!(
            "the signed {log} head in {} says size {} but its checkpoint is of size {}",
            guard.describe(),
            head.size,
            body.size
        )));
    }
    let behind = if head.size > tree.size {
        Some(format!(
            "the store is behind it (size {} < {})",
            tree.size, head.size
        ))
    } else {
        let at = evault_merkle::root(reader, head.size).map_err(|e| {
            VaultError::Inconsistent(format!(
                "computing the {log} root at size {}: {e}",
                head.size
            ))
        })?;
        (at != head.root).then(|| {
            format!(
                "the store's tree at size {} has root {} instead",
                head.size,
                head::b64(&at)
            )
        })
    };
    match behind {
        None => Ok(()),
        Some(why) => Err(VaultError::Inconsistent(format!(
            "the {log} log's store does not contain the latest tree head this log has signed, \
             so extending it would sign a fork: the signed head (in {}) is size {} root {}; the \
             store's tree is size {} root {} (roots in base64); {why}. Was the data directory \
             restored from an older backup? Either bring the tree back to the signed head \
             (restore a newer backup that contains it, or replay the missing leaves byte for byte \
             in their original order), or start a new log (a new data directory with a new \
             origin and key). Do not delete the head file to get past this check: that would let \
             the vault sign two different trees of one size. See docs/OPERATIONS.md",
            guard.describe(),
            head.size,
            head::b64(&head.root),
            tree.size,
            head::b64(&tree.root),
        ))),
    }
}

/// The start-up sample of `log` ([`VaultConfig::startup_sample`] random
/// leaves, and the leaves of the right edge's level-0 tile), after the
/// root check: refuses to start on the first difference.
fn check_sample(store: &dyn Store, log: LogId, start: &LogStart, sample: u64) -> Result<()> {
    if sample == 0 {
        return Ok(());
    }
    let size = start.state.head().size;
    let mut indexes = integrity::sample_indexes(size, sample);
    // The partial level-0 tile is past what the full-tile checks reach.
    indexes.extend(size - size % 256..size);
    indexes.sort_unstable();
    indexes.dedup();
    integrity::check_sample(store, log, size, &indexes).map_err(|e| {
        VaultError::Inconsistent(format!(
            "start-up check of the {log} log ({} of {size} leaves): {e}; refusing to serve \
             it. Run `evault fsck` for a full check",
            indexes.len()
        ))
    })
}

/// A log's keys: the Ed25519 signer and an optional ML-DSA-44 key file.
struct Keys<'a> {
    signer: &'a KeySource,
    /// The key the next rotation moves to, when it is not to be a new file.
    next: Option<&'a LogSigner>,
    pq: Option<&'a std::path::Path>,
    /// Where a rotation's key files are.
    data_dir: &'a std::path::Path,
}

/// Where a log's key comes from: a signer the embedding program holds, or
/// a key file (loaded, or created for a new log).
enum KeySource {
    Signer(LogSigner),
    File(PathBuf),
}

impl KeySource {
    fn of(signer: Option<&LogSigner>, file: Option<&PathBuf>, default: PathBuf) -> KeySource {
        match (signer, file) {
            (Some(s), _) => KeySource::Signer(s.clone()),
            (None, Some(f)) => KeySource::File(f.clone()),
            (None, None) => KeySource::File(default),
        }
    }

    /// For messages.
    fn describe(&self) -> String {
        match self {
            KeySource::Signer(s) => format!("({})", s.describe()),
            KeySource::File(p) => p.display().to_string(),
        }
    }
}

/// The public key bytes of a signer, from its verifier key.
fn public_key(signer: &dyn Signer) -> Result<Vec<u8>> {
    parse_verifier_key(signer.verifier_key().as_str())
        .map(|k| k.public_key)
        .map_err(|e| VaultError::Invalid(format!("signer {:?}: {e}", signer.name())))
}

/// The leaf data at `index` of `log`.
fn last_leaf(store: &dyn Store, log: LogId, index: u64) -> Result<Option<Vec<u8>>> {
    Ok(match log {
        LogId::Evidence => store.record_by_index(index)?.map(|r| r.leaf_data),
        LogId::Audit => store.audit_by_index(index)?.map(|e| e.leaf_data),
    })
}

fn check_checkpoint<R: evault_merkle::HashReader>(
    log: LogId,
    cp: &Checkpoint,
    tree_size: u64,
    reader: &R,
) -> Result<()>
where
    R::Error: std::fmt::Display,
{
    if cp.size > tree_size {
        return Err(VaultError::Inconsistent(format!(
            "the latest {log} checkpoint is for size {} but the store holds only {tree_size} \
             leaves (was the database restored from an older backup?)",
            cp.size
        )));
    }
    let root = evault_merkle::root(reader, cp.size).map_err(|e| {
        VaultError::Inconsistent(format!("computing the {log} root at size {}: {e}", cp.size))
    })?;
    if root != cp.root_hash {
        return Err(VaultError::Inconsistent(format!(
            "the stored {log} tree at size {} does not have the root the latest checkpoint \
             signed (a changed tile or leaf); run `evault fsck` for a full \
             check",
            cp.size
        )));
    }
    Ok(())
}

/// The mirror directory, if the mirror is on.
pub(crate) fn mirror_dir(config: &VaultConfig) -> Option<PathBuf> {
    (config.audit.enabled && config.audit.mirror).then(|| {
        config
            .audit
            .mirror_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("audit"))
    })
}

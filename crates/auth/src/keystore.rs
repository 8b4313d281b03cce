//! Service-account keys: the JSON keystore file, its validation and atomic
//! rewrite, and the live [`Keystore`] the server verifies tokens against,
//! reloaded when the file changes (poll) or on SIGHUP so that revoking a key
//! takes effect without a restart.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde_json::{Map, Value};

use super::roles::Role;

/// Shortest accepted HMAC secret: RFC 7518 §3.2 asks for a key at least as
/// long as the SHA-256 output.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest key id or principal; they appear in logs and the audit trail.
const MAX_NAME_LEN: usize = 256;

/// Secrets in the file may be padded or not (hand-written files vary);
/// tokens themselves are parsed strictly elsewhere.
const LENIENT_B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An HMAC secret. Its `Debug` prints `[redacted]` so that a key can be
/// logged or put in an error without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// 32 fresh random bytes.
    pub fn generate() -> Result<Secret, String> {
        let mut bytes = vec![0u8; MIN_SECRET_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the system random number generator failed".to_string())?;
        Ok(Secret(bytes))
    }

    /// Decodes base64url (padded or not); at least [`MIN_SECRET_LEN`] bytes.
    /// The error never quotes the text.
    pub fn from_base64url(text: &str) -> Result<Secret, String> {
        let bytes = LENIENT_B64URL
            .decode(text.trim_end_matches('=').as_bytes())
            .map_err(|_| "secret is not base64url".to_string())?;
        if bytes.len() < MIN_SECRET_LEN {
            return Err(format!(
                "secret decodes to {} bytes; at least {MIN_SECRET_LEN} are required",
                bytes.len()
            ));
        }
        Ok(Secret(bytes))
    }

    /// Unpadded base64url, as written to the keystore file.
    pub(crate) fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// The raw key bytes, for HMAC only.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A fresh secret as unpadded base64url (32 random bytes).
pub fn generate_secret() -> Result<String, String> {
    Secret::generate().map(|s| s.to_base64url())
}

/// A fresh key id: `"<principal>-<8 hex digits>"`.
pub fn generate_key_id(principal: &str) -> Result<String, String> {
    let mut bytes = [0u8; 4];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_string())?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{principal}-{hex}"))
}

/// One service-account key: who signs with it and what it may claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// Named by the token's `kid`; unique in the keystore.
    pub key_id: String,
    /// The only `sub` a token signed with this key may carry.
    pub principal: String,
    /// Roles a token signed with this key may claim.
    pub roles: Vec<Role>,
    pub secret: Secret,
    /// After this instant the key verifies nothing (rotation grace periods).
    pub expires_at: Option<SystemTime>,
}

impl ServiceAccountKey {
    /// Whether the key has expired at `now` (no leeway: it is our clock).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Whether tokens signed with this key may claim `role`.
    pub fn grants(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// `expires_at` as RFC 3339 (UTC, seconds).
    /// (`None` as well for a time RFC 3339 cannot hold; `validate` refuses
    /// those.)
    pub fn expires_at_rfc3339(&self) -> Option<String> {
        self.expires_at.and_then(format_time)
    }

    /// Checks the fields a file could get wrong; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let label = key_label(&self.key_id);
        check_name(&self.key_id).map_err(|e| format!("{label}: key_id {e}"))?;
        check_name(&self.principal).map_err(|e| format!("{label}: principal {e}"))?;
        if self.roles.is_empty() {
            return Err(format!("{label}: roles must not be empty"));
        }
        if self.expires_at.is_some_and(|t| format_time(t).is_none()) {
            return Err(format!(
                "{label}: expires_at must be between 1970 and the end of 9999"
            ));
        }
        if self.secret.0.len() < MIN_SECRET_LEN {
            return Err(format!(
                "{label}: secret is shorter than {MIN_SECRET_LEN} bytes"
            ));
        }
        Ok(())
    }
}

/// The last second RFC 3339 (four-digit years) can express.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// `t` as RFC 3339 UTC seconds, or `None` outside 1970..=9999 (humantime
/// would fail to format it, and `to_string` would panic).
fn format_time(t: SystemTime) -> Option<String> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (secs <= MAX_UNIX_SECS).then(|| humantime::format_rfc3339_seconds(t).to_string())
}

/// How a key is named in an error message.
fn key_label(key_id: &str) -> String {
    format!("key {:?}", super::failure::clip(key_id))
}

/// Key ids and principals: non-empty visible ASCII, bounded.
fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} bytes"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII (no spaces or control characters)".into());
    }
    Ok(())
}

/// The keystore file's content: `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeystoreFile {
    pub keys: Vec<ServiceAccountKey>,
}

/// Field order of a key in the written file.
#[derive(Serialize)]
struct KeyOut<'a> {
    key_id: &'a str,
    principal: &'a str,
    roles: &'a [Role],
    secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    keys: Vec<KeyOut<'a>>,
}

const KEY_FIELDS: [&str; 5] = ["key_id", "principal", "roles", "secret", "expires_at"];

impl KeystoreFile {
    /// Reads and validates the file at `path`. Warns when the file is
    /// readable by group or others: it holds secrets.
    pub fn load(path: &Path) -> Result<KeystoreFile, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "service-account keystore is readable by group or others; chmod 600 it"
            );
        }
        KeystoreFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates keystore JSON. Unknown fields are errors (a
    /// misspelt `expires_at` must not silently make a key eternal). Errors
    /// never quote a secret.
    pub fn parse(text: &str) -> Result<KeystoreFile, String> {
        let top: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut top) = top else {
            return Err("not a JSON object with a \"keys\" array".into());
        };
        let keys = match top.remove("keys") {
            Some(Value::Array(keys)) => keys,
            Some(_) => return Err("\"keys\" is not an array".into()),
            None => return Err("no \"keys\" array".into()),
        };
        if let Some(extra) = top.keys().next() {
            return Err(format!("unknown top-level field {extra:?}"));
        }
        let keys = keys
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_key(i, v))
            .collect::<Result<Vec<_>, _>>()?;
        let file = KeystoreFile { keys };
        file.validate()?;
        Ok(file)
    }

    /// Every key valid and key ids unique.
    pub fn validate(&self) -> Result<(), String> {
        let mut ids = BTreeSet::new();
        for key in &self.keys {
            key.validate()?;
            if !ids.insert(key.key_id.as_str()) {
                return Err(format!("{}: duplicate key_id", key_label(&key.key_id)));
            }
        }
        Ok(())
    }

    /// The file's JSON text (with secrets: for writing to disk only).
    fn to_json(&self) -> Result<String, String> {
        let out = FileOut {
            keys: self
                .keys
                .iter()
                .map(|k| KeyOut {
                    key_id: &k.key_id,
                    principal: &k.principal,
                    roles: &k.roles,
                    secret: k.secret.to_base64url(),
                    expires_at: k.expires_at_rfc3339(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&out)
            .map(|s| s + "\n")
            .map_err(|e| format!("encoding the keystore: {e}"))
    }

    /// The key named `key_id`.
    pub fn find(&self, key_id: &str) -> Option<&ServiceAccountKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// Validates, then replaces `path` atomically: a temp file (mode 0600)
    /// in the same directory, fsync, rename over, fsync the directory. A
    /// crash leaves either the old file or the new one, never half of one,
    /// and the watcher never reads a partial file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        self.validate()?;
        let text = self.to_json()?;
        let dir = parent_dir(path);
        let name = path
            .file_name()
            .ok_or_else(|| format!("{}: not a file path", path.display()))?
            .to_string_lossy()
            .into_owned();
        let mut suffix = [0u8; 6];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| "the system random number generator failed".to_string())?;
        let tmp = dir.join(format!(".{name}.tmp-{}", URL_SAFE_NO_PAD.encode(suffix)));
        let written = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(format!("writing {}: {e}", path.display()));
        }
        sync_dir(&dir).map_err(|e| format!("syncing {}: {e}", dir.display()))
    }

    /// Creates an empty keystore (`{"keys": []}`, mode 0600) if `path` does
    /// not exist, and its parent directory (mode 0700) if that is missing.
    /// Returns whether it created the file.
    pub fn create_if_missing(path: &Path) -> Result<bool, String> {
        if fs::symlink_metadata(path).is_ok() {
            return Ok(false);
        }
        let dir = parent_dir(path);
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(format!("creating {}: {e}", path.display())),
        };
        f.write_all(b"{\"keys\": []}\n")
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        sync_dir(&dir).map_err(|e| format!("syncing {}: {e}", dir.display()))?;
        Ok(true)
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// One element of `keys`, checked field by field so that no error message
/// can echo the secret (serde's would quote an unexpected value).
fn parse_key(index: usize, v: Value) -> Result<ServiceAccountKey, String> {
    let Value::Object(mut obj) = v else {
        return Err(format!("key #{index}: not a JSON object"));
    };
    let label = match obj.get("key_id") {
        Some(Value::String(id)) => key_label(id),
        _ => format!("key #{index}"),
    };
    if let Some(extra) = obj.keys().find(|k| !KEY_FIELDS.contains(&k.as_str())) {
        return Err(format!("{label}: unknown field {extra:?}"));
    }
    let string = |obj: &mut Map<String, Value>, field: &str| match obj.remove(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(format!("{label}: {field} is not a string")),
    };
    let key_id = string(&mut obj, "key_id")?.ok_or_else(|| format!("{label}: no key_id"))?;
    let principal =
        string(&mut obj, "principal")?.ok_or_else(|| format!("{label}: no principal"))?;
    let secret_text = string(&mut obj, "secret")?.ok_or_else(|| format!("{label}: no secret"))?;
    let expires_text = string(&mut obj, "expires_at")?;
    let roles = match obj.remove("roles") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|r| match r {
                Value::String(s) => s.parse::<Role>().map_err(|e| format!("{label}: {e}")),
                _ => Err(format!("{label}: roles must be strings")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(_)) => return Err(format!("{label}: roles must not be empty")),
        Some(_) => return Err(format!("{label}: roles is not an array")),
        None => return Err(format!("{label}: no roles")),
    };
    let mut unique = Vec::with_capacity(roles.len());
    for r in roles {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    let secret = Secret::from_base64url(&secret_text).map_err(|e| format!("{label}: {e}"))?;
    let expires_at = expires_text
        .map(|t| parse_time(&t).map_err(|e| format!("{label}: expires_at {e}")))
        .transpose()?;
    let key = ServiceAccountKey {
        key_id,
        principal,
        roles: unique,
        secret,
        expires_at,
    };
    key.validate()?;
    Ok(key)
}

/// RFC 3339 text to a `SystemTime` (offsets accepted, sub-second precision
/// kept to the millisecond).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let ms = crate::rfc3339::parse_ms(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 timestamp"))?;
    let ms = u64::try_from(ms).map_err(|_| format!("{text:?} is before 1970"))?;
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or_else(|| format!("{text:?} is out of range"))
}

/// An immutable snapshot of the keys, indexed by key id. A request keeps
/// the snapshot it started with even if the file is reloaded meanwhile.
#[derive(Debug, Default)]
pub struct Keys {
    by_id: HashMap<String, ServiceAccountKey>,
}

impl Keys {
    pub fn new(keys: impl IntoIterator<Item = ServiceAccountKey>) -> Keys {
        Keys {
            by_id: keys.into_iter().map(|k| (k.key_id.clone(), k)).collect(),
        }
    }

    pub fn get(&self, key_id: &str) -> Option<&ServiceAccountKey> {
        self.by_id.get(key_id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServiceAccountKey> {
        self.by_id.values()
    }
}

/// What identifies a version of the file without reading it; a rename over
/// the file changes the inode, an in-place edit the size or times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = fs::metadata(path).ok()?;
    Some(Fingerprint {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// The live keystore: the current [`Keys`] snapshot and the file it
/// comes from.
pub struct Keystore {
    path: PathBuf,
    keys: RwLock<Arc<Keys>>,
    /// Serialises reloads, and remembers the file version last read (so a
    /// broken file is reported once, not at every poll).
    seen: Mutex<Option<Fingerprint>>,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("keys", &self.keys().len())
            .finish()
    }
}

impl Keystore {
    /// Opens the keystore at `path`, creating an empty one if missing.
    pub fn open(path: &Path) -> Result<Arc<Keystore>, String> {
        if KeystoreFile::create_if_missing(path)? {
            tracing::info!(path = %path.display(), "created an empty service-account keystore");
        }
        let seen = fingerprint(path);
        let file = KeystoreFile::load(path)?;
        tracing::info!(path = %path.display(), keys = file.keys.len(), "service-account keystore loaded");
        Ok(Arc::new(Keystore {
            path: path.to_path_buf(),
            keys: RwLock::new(Arc::new(Keys::new(file.keys))),
            seen: Mutex::new(seen),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current keys; cheap (one `Arc` clone).
    pub fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the file. On error the previous keys stay in force (a typo
    /// while editing must not lock every pipeline out), the error is logged
    /// and returned.
    pub fn reload(&self) -> Result<usize, String> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut seen)
    }

    fn reload_locked(&self, seen: &mut Option<Fingerprint>) -> Result<usize, String> {
        // Fingerprint before reading: a change racing the read is seen
        // again at the next poll.
        *seen = fingerprint(&self.path);
        match KeystoreFile::load(&self.path) {
            Ok(file) => {
                let n = file.keys.len();
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(Keys::new(file.keys));
                tracing::info!(path = %self.path.display(), keys = n, "service-account keystore reloaded");
                Ok(n)
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    keys = self.keys().len(),
                    "service-account keystore not reloaded; keeping the previous keys"
                );
                Err(e)
            }
        }
    }

    /// Reloads if the file's metadata changed since the last read.
    fn reload_if_changed(&self) -> Option<Result<usize, String>> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if fingerprint(&self.path) == *seen {
            return None;
        }
        Some(self.reload_locked(&mut seen))
    }

    /// Watches the file: checks its metadata every `poll` and reloads on a
    /// change, and reloads on SIGHUP. Must be called inside a tokio runtime
    /// (the SIGHUP handler is installed before this returns). The task ends
    /// when the keystore is dropped; abort the handle to stop it sooner.
    pub fn spawn_watcher(self: &Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; keystore reloads on file changes only");
                None
            }
        };
        let weak: Weak<Keystore> = Arc::downgrade(self);
        let poll = poll.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let sighup = async {
                    match hup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    got = sighup => {
                        if got.is_none() {
                            hup = None;
                            continue;
                        }
                        tracing::info!("SIGHUP: reloading the service-account keystore");
                        true
                    }
                };
                let Some(store) = weak.upgrade() else { return };
                let done = tokio::task::spawn_blocking(move || {
                    if forced {
                        let _ = store.reload();
                    } else {
                        let _ = store.reload_if_changed();
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(error = %e, "keystore reload task failed");
                }
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose;

    pub(crate) fn test_key(key_id: &str, principal: &str, roles: &[Role]) -> ServiceAccountKey {
        ServiceAccountKey {
            key_id: key_id.into(),
            principal: principal.into(),
            roles: roles.to_vec(),
            secret: Secret(vec![7u8; 32]),
            expires_at: None,
        }
    }

    fn secret_b64() -> String {
        general_purpose::URL_SAFE_NO_PAD.encode([42u8; 32])
    }

    fn key_json(fields: &str) -> String {
        format!("{{\"keys\": [{{{fields}}}]}}")
    }

    #[test]
    fn parses_a_valid_file_padded_or_not() {
        let s = secret_b64();
        let text = key_json(&format!(
            r#""key_id": "ci-1", "principal": "ci-pipeline", "roles": ["ingester"], "secret": "{s}", "expires_at": "2027-01-01T00:00:00Z""#
        ));
        let f = KeystoreFile::parse(&text).unwrap();
        assert_eq!(f.keys.len(), 1);
        let k = &f.keys[0];
        assert_eq!(k.roles, vec![Role::Ingester]);
        assert_eq!(k.secret.expose(), &[42u8; 32]);
        assert_eq!(
            k.expires_at_rfc3339().as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        let padded = general_purpose::URL_SAFE.encode([42u8; 32]);
        assert!(padded.ends_with('='));
        let text = key_json(&format!(
            r#""key_id": "k", "principal": "p", "roles": ["admin"], "secret": "{padded}""#
        ));
        assert_eq!(KeystoreFile::parse(&text).unwrap().keys[0].secret, k.secret);
    }

    #[test]
    fn validation_errors_name_the_key_and_never_the_secret() {
        let s = secret_b64();
        let short = general_purpose::URL_SAFE_NO_PAD.encode([1u8; 16]);
        let cases: Vec<(String, &str)> = vec![
            ("[]".into(), "not a JSON object"),
            ("{\"keys\": {}}".into(), "not an array"),
            ("{\"keys\": [], \"x\": 1}".into(), "unknown top-level field"),
            (
                key_json(r#""principal": "p", "roles": ["admin"], "secret": "x""#),
                "no key_id",
            ),
            (
                key_json(&format!(
                    r#""key_id": "", "principal": "p", "roles": ["admin"], "secret": "{s}""#
                )),
                "key_id is empty",
            ),
            (
                key_json(&format!(
                    r#""key_id": "a b", "principal": "p", "roles": ["admin"], "secret": "{s}""#
                )),
                "visible ASCII",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p\u00e9", "roles": ["admin"], "secret": "{s}""#
                )),
                "principal must be visible ASCII",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p", "roles": [], "secret": "{s}""#
                )),
                "roles must not be empty",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p", "roles": ["root"], "secret": "{s}""#
                )),
                "unknown role \"root\"",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p", "roles": "admin", "secret": "{s}""#
                )),
                "roles is not an array",
            ),
            (
                key_json(
                    r#""key_id": "k", "principal": "p", "roles": ["admin"], "secret": "not*base64!""#,
                ),
                "secret is not base64url",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p", "roles": ["admin"], "secret": "{short}""#
                )),
                "at least 32",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p", "roles": ["admin"], "secret": "{s}", "expires_at": "tomorrow""#
                )),
                "expires_at",
            ),
            (
                key_json(&format!(
                    r#""key_id": "k", "principal": "p", "roles": ["admin"], "secret": "{s}", "expire_at": "2027-01-01T00:00:00Z""#
                )),
                "unknown field \"expire_at\"",
            ),
            (
                format!(
                    r#"{{"keys": [{{"key_id": "k", "principal": "p", "roles": ["admin"], "secret": "{s}"}}, {{"key_id": "k", "principal": "q", "roles": ["admin"], "secret": "{s}"}}]}}"#
                ),
                "duplicate key_id",
            ),
        ];
        for (text, want) in cases {
            let err = KeystoreFile::parse(&text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains(&s), "secret leaked: {err}");
            assert!(!err.contains(&short), "secret leaked: {err}");
            assert!(!err.contains("not*base64"), "secret leaked: {err}");
            if text.contains("\"key_id\": \"k\"") {
                assert!(err.contains("key \"k\""), "{err}");
            }
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let k = test_key("k", "p", &[Role::Admin]);
        let dbg = format!(
            "{k:?} {:?}",
            KeystoreFile {
                keys: vec![k.clone()]
            }
        );
        assert!(dbg.contains("[redacted]"));
        assert!(!dbg.contains(&k.secret.to_base64url()));
        assert!(!dbg.contains("7, 7"));
    }

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keys.json");
        assert!(KeystoreFile::create_if_missing(&path).unwrap());
        assert!(!KeystoreFile::create_if_missing(&path).unwrap());
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(KeystoreFile::load(&path).unwrap(), KeystoreFile::default());

        let mut key = test_key("ci-1", "ci", &[Role::Ingester, Role::Auditor]);
        key.secret = Secret::generate().unwrap();
        key.expires_at = Some(parse_time("2030-05-06T07:08:09Z").unwrap());
        let file = KeystoreFile {
            keys: vec![key, test_key("adm", "ops", &[Role::Admin])],
        };
        file.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(KeystoreFile::load(&path).unwrap(), file);
        // No temp file left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        let mut bad = file.clone();
        bad.keys[1].key_id = "ci-1".into();
        assert!(bad.save(&path).unwrap_err().contains("duplicate"));
        assert_eq!(KeystoreFile::load(&path).unwrap(), file);
    }

    #[test]
    fn expiry_must_be_writable() {
        let mut k = test_key("k", "p", &[Role::Admin]);
        k.expires_at = Some(UNIX_EPOCH + Duration::from_secs(MAX_UNIX_SECS + 1));
        assert_eq!(k.expires_at_rfc3339(), None);
        assert!(k.validate().unwrap_err().contains("9999"));
        k.expires_at = Some(UNIX_EPOCH + Duration::from_secs(MAX_UNIX_SECS));
        assert_eq!(
            k.expires_at_rfc3339().as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        k.validate().unwrap();
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn generated_secrets_and_ids() {
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 43);
        assert_eq!(Secret::from_base64url(&s).unwrap().expose().len(), 32);
        assert_ne!(s, generate_secret().unwrap());
        let id = generate_key_id("ci").unwrap();
        assert!(id.starts_with("ci-") && id.len() == 11, "{id}");
    }

    #[test]
    fn reload_keeps_previous_keys_on_an_invalid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let file = KeystoreFile {
            keys: vec![test_key("a", "p", &[Role::Admin])],
        };
        file.save(&path).unwrap();
        let ks = Keystore::open(&path).unwrap();
        assert_eq!(ks.keys().len(), 1);
        let before = ks.keys();
        fs::write(&path, "{\"keys\": [{\"key_id\": \"a\"}]}").unwrap();
        assert!(ks.reload().is_err());
        assert!(ks.keys().get("a").is_some());
        KeystoreFile::default().save(&path).unwrap();
        assert_eq!(ks.reload().unwrap(), 0);
        assert!(ks.keys().is_empty());
        // A snapshot taken before the reload is unaffected.
        assert!(before.get("a").is_some());
    }

    #[test]
    fn open_creates_a_missing_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/keys.json");
        let ks = Keystore::open(&path).unwrap();
        assert!(ks.keys().is_empty());
        assert_eq!(ks.path(), path);
    }
}

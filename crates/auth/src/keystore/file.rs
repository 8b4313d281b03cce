//! The keystore file: its JSON format (`{"keys": [...]}`), checked field
//! by field, and its atomic rewrite with mode 0600.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde_json::{Map, Value};

use super::key::{ServiceAccountKey, key_label};
use super::secret::Secret;
use crate::rfc3339::parse_time;
use crate::roles::Role;

/// The keystore file's content: `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeystoreFile {
    /// The keys, in file order.
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

    /// The file's JSON text, with secrets: for the keystore file or the
    /// shared store's keystore table only. Validates first.
    pub fn to_json_with_secrets(&self) -> Result<String, String> {
        self.validate()?;
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
        let text = self.to_json_with_secrets()?;
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

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose;

    use super::*;
    use crate::keystore::tests::test_key;

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
                    r#""key_id": "k", "principal": "evault", "roles": ["ingester"], "secret": "{s}""#
                )),
                "is reserved",
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
}

//! `evault sa …` and `evault token mint`: service-account keys in the local
//! keystore file, and the HS256 tokens pipelines present.
//!
//! Every edit is load → change → save through `KeystoreFile`, so the file
//! is validated, stays 0600 and is replaced atomically (a running server
//! watching it never reads half a file). Edits hold an exclusive lock on
//! the file so two concurrent `evault sa` runs cannot lose each other's
//! change. Secrets are never printed: they stay in the keystore, and
//! `token mint` signs with them on this machine.

use std::path::Path;
use std::time::{Duration, SystemTime};

use evault_auth::{
    KeystoreFile, Role, Secret, ServiceAccountKey, TokenPolicy, generate_key_id, mint_service_token,
};
use serde_json::{Value, json};

use crate::error::{CliError, CliResult};

/// Where the keystore is, and whether the user named it (a flag, an
/// EVAULT_* variable or the config file) or it is the built-in default.
/// With a PostgreSQL store the keys are in its database, not in the file.
pub struct KeystoreLocation {
    pub path: std::path::PathBuf,
    pub explicit: bool,
    /// The PostgreSQL store's URL (`--store`, `EVAULT_STORE`, `store =`).
    pub store: Option<String>,
}

/// The keystore a command works on: the local file, or the database every
/// node of a PostgreSQL store reads.
enum Target<'a> {
    File(&'a Path),
    Db(Box<crate::sa_db::DbKeystore>),
}

impl<'a> Target<'a> {
    fn of(at: &'a KeystoreLocation) -> Result<Target<'a>, CliError> {
        Ok(match &at.store {
            None => Target::File(at.path.as_path()),
            Some(url) => Target::Db(Box::new(crate::sa_db::DbKeystore::open(
                url,
                &evault_store::postgres::PgOptions::default(),
            )?)),
        })
    }

    /// Where the keys are, for messages.
    fn shown(&self) -> String {
        match self {
            Target::File(path) => path.display().to_string(),
            Target::Db(db) => db.shown(),
        }
    }

    fn load(&self) -> Result<KeystoreFile, String> {
        match self {
            Target::File(path) => KeystoreFile::load(path),
            Target::Db(db) => db.load().map(|(_, file)| file),
        }
    }

    fn edit<T>(
        &self,
        change: impl FnOnce(&mut KeystoreFile) -> Result<T, String>,
    ) -> Result<T, String> {
        match self {
            Target::File(path) => edit(path, change),
            Target::Db(db) => db.edit(change).map(|(_, out)| out),
        }
    }
}

/// "No keystore here" with where that is and what to do.
fn no_keystore(at: &KeystoreLocation, init_helps: bool) -> CliError {
    let abs = std::path::absolute(&at.path).unwrap_or_else(|_| at.path.clone());
    let why = if at.explicit {
        "the path given"
    } else {
        "the default, ./evault-data in the current directory"
    };
    let mut hint = "run this where the vault's data directory is, or name its keystore with \
                    --data-dir DIR or --service-accounts FILE (or EVAULT_DATA_DIR / \
                    EVAULT_SERVICE_ACCOUNTS)"
        .to_string();
    if init_helps {
        hint.push_str("; to start a new keystore there, add --init");
    }
    CliError::usage(format!("no keystore at {} ({why})", abs.display())).hint(hint)
}

#[derive(clap::Subcommand)]
pub enum SaCommand {
    /// Add a service account key (prints key id; the secret stays in the keystore file)
    Create {
        /// Start a new keystore if there is none. Needed only at the default
        /// path (./evault-data): a keystore named with --data-dir,
        /// --service-accounts, their EVAULT_* variables or the config file
        /// is created when missing.
        #[arg(long)]
        init: bool,
        /// Who tokens signed with this key act as (their `sub`).
        #[arg(long)]
        principal: String,
        /// Roles the key may grant: ingester, auditor, admin (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Key id (default: "<principal>-<8 hex digits>").
        #[arg(long)]
        key_id: Option<String>,
        /// Expire the key after this long (e.g. 90d); default: never.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys: id, principal, roles, expiry (never secrets).
    List,
    /// Replace a key by a new one (same principal and roles, new secret);
    /// prints the new key id.
    Rotate {
        /// The key to replace.
        key_id: String,
        /// Id of the new key (default: "<principal>-<8 hex digits>").
        #[arg(long)]
        new_key_id: Option<String>,
        /// Keep the old key working this long (e.g. 1h) so pipelines can
        /// switch; default: remove it now.
        #[arg(long)]
        keep_old_for: Option<String>,
        /// Expire the new key after this long (e.g. 90d); default: never.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Remove a key: tokens signed with it stop working as soon as the
    /// server reloads the file.
    Revoke {
        /// The key to remove.
        key_id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Print a token signed with a keystore key
    Mint {
        /// The keystore key to sign with (`evault sa list` shows them).
        #[arg(long)]
        key_id: String,
        /// Lifetime (at most 24h, the server's default maximum).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Roles to put in the token (default: all the key's roles).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
}

pub fn run_sa(cmd: SaCommand, at: &KeystoreLocation, json: bool) -> CliResult {
    let now = SystemTime::now();
    let target = Target::of(at)?;
    let shown = target.shown();
    // Only `create` makes a keystore file; the others need one to be
    // there (a database always has one, perhaps empty).
    let creates = matches!(cmd, SaCommand::Create { .. });
    if let Target::File(keystore) = &target
        && !creates
        && !keystore.exists()
    {
        return Err(no_keystore(at, false));
    }
    match cmd {
        SaCommand::Create {
            init,
            principal,
            roles,
            key_id,
            expires_in,
        } => {
            let roles = parse_roles(&roles)?;
            let expires_at = expires_in
                .map(|d| after(now, "--expires-in", &d))
                .transpose()?;
            if let Target::File(keystore) = &target {
                // A new keystore at the default path is usually the wrong
                // directory, not the wish for a second keystore.
                if !keystore.exists() && !at.explicit && !init {
                    return Err(no_keystore(at, true));
                }
                KeystoreFile::create_if_missing(keystore)?;
            }
            let key =
                target.edit(|file| create_key(file, &principal, roles, key_id, expires_at))?;
            if json {
                print_json(&json!({"keystore": shown, "created": key_json(&key, now)}));
            } else {
                crate::say!(
                    "evault: created key {} for {} ({}){} in {}",
                    key.key_id,
                    key.principal,
                    roles_text(&key.roles),
                    expiry_text(&key),
                    shown
                );
                crate::say!(
                    "evault: mint a token with: evault token mint --key-id {}",
                    key.key_id
                );
                println!("{}", key.key_id);
            }
        }
        SaCommand::List => {
            let file = target.load()?;
            if json {
                let keys: Vec<Value> = file.keys.iter().map(|k| key_json(k, now)).collect();
                print_json(&json!({"keystore": shown, "keys": keys}));
            } else if file.keys.is_empty() {
                crate::say!("evault: no service-account keys in {shown}");
            } else {
                print_table(&file.keys, now);
            }
        }
        SaCommand::Rotate {
            key_id,
            new_key_id,
            keep_old_for,
            expires_in,
        } => {
            let keep_until = keep_old_for
                .map(|d| after(now, "--keep-old-for", &d))
                .transpose()?;
            let expires_at = expires_in
                .map(|d| after(now, "--expires-in", &d))
                .transpose()?;
            let (new, old) = target
                .edit(|file| rotate_key(file, &key_id, new_key_id, keep_until, expires_at))?;
            if json {
                print_json(&json!({
                    "keystore": shown,
                    "created": key_json(&new, now),
                    "old": match &old {
                        Some(k) => json!({"key_id": k.key_id, "removed": false, "expires_at": k.expires_at_rfc3339()}),
                        None => json!({"key_id": key_id, "removed": true}),
                    },
                }));
            } else {
                match &old {
                    Some(k) => crate::say!(
                        "evault: key {} keeps working until {}",
                        k.key_id,
                        k.expires_at_rfc3339().unwrap_or_default()
                    ),
                    None => crate::say!("evault: key {key_id} removed"),
                }
                crate::say!(
                    "evault: new key {} for {} ({}){}",
                    new.key_id,
                    new.principal,
                    roles_text(&new.roles),
                    expiry_text(&new)
                );
                println!("{}", new.key_id);
            }
        }
        SaCommand::Revoke { key_id } => {
            let key = target.edit(|file| revoke_key(file, &key_id))?;
            if json {
                print_json(&json!({"keystore": shown, "revoked": key_json(&key, now)}));
            } else {
                let when = match &target {
                    Target::File(_) => {
                        format!("a running server stops accepting it once it reloads {shown}")
                    }
                    Target::Db(_) => format!(
                        "every node stops accepting it within a second (each polls {shown} every {} ms)",
                        crate::serve::KEYSTORE_POLL.as_millis()
                    ),
                };
                println!("revoked key {} of {}; {when}", key.key_id, key.principal);
            }
        }
    }
    Ok(())
}

pub fn run_token(cmd: TokenCommand, at: &KeystoreLocation, json: bool) -> CliResult {
    let TokenCommand::Mint { key_id, ttl, roles } = cmd;
    let now = SystemTime::now();
    let ttl = parse_ttl(&ttl)?;
    let target = Target::of(at)?;
    if let Target::File(keystore) = &target
        && !keystore.exists()
    {
        return Err(no_keystore(at, false));
    }
    let file = target.load()?;
    let key = file.find(&key_id).ok_or_else(|| {
        CliError::usage(format!("unknown key id {key_id:?} in {}", target.shown()))
            .hint("`evault sa list` shows the keys")
    })?;
    let roles = if roles.is_empty() {
        key.roles.clone()
    } else {
        parse_roles(&roles)?
    };
    let token = mint_service_token(key, &roles, ttl, now)?;
    if json {
        let expires = humantime::format_rfc3339_seconds(now + ttl).to_string();
        print_json(&json!({
            "token": token,
            "key_id": key.key_id,
            "principal": key.principal,
            "roles": roles,
            "expires_at": expires,
        }));
    } else {
        println!("{token}");
    }
    Ok(())
}

/// The token lifetime: at least a second, at most what the server accepts
/// by default (a longer token would only be refused there).
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("--ttl {text:?}: {e}"))?;
    let max = TokenPolicy::default().max_lifetime;
    if ttl > max {
        return Err(format!(
            "--ttl {text} is longer than {}, the server's maximum token lifetime",
            humantime::format_duration(max)
        ));
    }
    if ttl.as_secs() == 0 {
        return Err(format!("--ttl {text} is shorter than one second"));
    }
    Ok(ttl)
}

/// `now + duration text`, for expiry flags.
fn after(now: SystemTime, flag: &str, text: &str) -> Result<SystemTime, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{flag} {text:?}: {e}"))?;
    now.checked_add(d)
        .ok_or_else(|| format!("{flag} {text:?} is too far in the future"))
}

/// Role names from the command line, deduplicated; at least one.
fn parse_roles(names: &[String]) -> Result<Vec<Role>, String> {
    let mut roles = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let role: Role = name.parse()?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        return Err("give at least one role (ingester, auditor, admin)".into());
    }
    Ok(roles)
}

/// Loads the keystore under an exclusive lock, applies `change`, saves.
fn edit<T>(
    path: &Path,
    change: impl FnOnce(&mut KeystoreFile) -> Result<T, String>,
) -> Result<T, String> {
    // Lock the file itself: a save renames a new file over it, and a
    // waiter then reads the new content by path once it gets the lock.
    let lock = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", path.display()))?;
    let mut file = KeystoreFile::load(path)?;
    let out = change(&mut file)?;
    file.save(path)?;
    Ok(out)
}

/// A key id that is not taken: the given one, or a generated one.
fn new_key_id(
    file: &KeystoreFile,
    given: Option<String>,
    principal: &str,
) -> Result<String, String> {
    let id = match given {
        Some(id) => id,
        None => generate_key_id(principal)?,
    };
    if file.find(&id).is_some() {
        return Err(format!("key id {id:?} already exists"));
    }
    Ok(id)
}

/// Adds a key with a fresh secret; returns it.
fn create_key(
    file: &mut KeystoreFile,
    principal: &str,
    roles: Vec<Role>,
    key_id: Option<String>,
    expires_at: Option<SystemTime>,
) -> Result<ServiceAccountKey, String> {
    let key = ServiceAccountKey {
        key_id: new_key_id(file, key_id, principal)?,
        principal: principal.to_string(),
        roles,
        secret: Secret::generate()?,
        expires_at,
    };
    key.validate()?;
    file.keys.push(key.clone());
    Ok(key)
}

/// Adds a new key for the principal and roles of `key_id`, and removes the
/// old key or, with `keep_old_until`, makes it expire then (never later
/// than it already would). Returns the new key and the old one if kept.
fn rotate_key(
    file: &mut KeystoreFile,
    key_id: &str,
    new_key_id: Option<String>,
    keep_old_until: Option<SystemTime>,
    expires_at: Option<SystemTime>,
) -> Result<(ServiceAccountKey, Option<ServiceAccountKey>), String> {
    let i = file
        .keys
        .iter()
        .position(|k| k.key_id == key_id)
        .ok_or_else(|| format!("unknown key id {key_id:?}"))?;
    let (principal, roles) = (file.keys[i].principal.clone(), file.keys[i].roles.clone());
    let new = create_key(file, &principal, roles, new_key_id, expires_at)?;
    let old = match keep_old_until {
        None => {
            file.keys.remove(i);
            None
        }
        Some(until) => {
            let old = &mut file.keys[i];
            old.expires_at = Some(old.expires_at.map_or(until, |t| t.min(until)));
            Some(old.clone())
        }
    };
    Ok((new, old))
}

/// Removes `key_id`; returns it.
fn revoke_key(file: &mut KeystoreFile, key_id: &str) -> Result<ServiceAccountKey, String> {
    let i = file
        .keys
        .iter()
        .position(|k| k.key_id == key_id)
        .ok_or_else(|| format!("unknown key id {key_id:?}"))?;
    Ok(file.keys.remove(i))
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn expiry_text(key: &ServiceAccountKey) -> String {
    match key.expires_at_rfc3339() {
        Some(t) => format!(", expires {t}"),
        None => String::new(),
    }
}

/// A key as JSON, without its secret.
fn key_json(key: &ServiceAccountKey, now: SystemTime) -> Value {
    json!({
        "key_id": key.key_id,
        "principal": key.principal,
        "roles": key.roles,
        "expires_at": key.expires_at_rfc3339(),
        "expired": key.is_expired(now),
    })
}

fn print_table(keys: &[ServiceAccountKey], now: SystemTime) {
    let rows: Vec<[String; 4]> = keys
        .iter()
        .map(|k| {
            let expires = match k.expires_at_rfc3339() {
                Some(t) if k.is_expired(now) => format!("{t} (expired)"),
                Some(t) => t,
                None => "never".into(),
            };
            [
                k.key_id.clone(),
                k.principal.clone(),
                roles_text(&k.roles),
                expires,
            ]
        })
        .collect();
    let header = ["KEY ID", "PRINCIPAL", "ROLES", "EXPIRES"].map(String::from);
    let mut width = [0usize; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2]
        );
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file_with(ids: &[&str]) -> KeystoreFile {
        let mut f = KeystoreFile::default();
        for id in ids {
            create_key(
                &mut f,
                "ci",
                vec![Role::Ingester, Role::Auditor],
                Some((*id).into()),
                None,
            )
            .unwrap();
        }
        f
    }

    #[test]
    fn create_generates_ids_and_refuses_duplicates() {
        let mut f = file_with(&["ci-1"]);
        let k = create_key(&mut f, "deploy", vec![Role::Admin], None, None).unwrap();
        assert!(
            k.key_id.starts_with("deploy-") && k.key_id.len() == 15,
            "{}",
            k.key_id
        );
        assert_ne!(f.keys[0].secret, f.keys[1].secret);
        let err =
            create_key(&mut f, "x", vec![Role::Admin], Some("ci-1".into()), None).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        let err = create_key(&mut f, "bad principal", vec![Role::Admin], None, None);
        assert!(err.is_err());
        assert_eq!(f.keys.len(), 2);
    }

    #[test]
    fn roles_and_durations_are_checked() {
        assert_eq!(
            parse_roles(&["ingester".into(), " auditor".into(), "ingester".into()]).unwrap(),
            vec![Role::Ingester, Role::Auditor]
        );
        assert!(parse_roles(&["root".into()]).unwrap_err().contains("root"));
        assert!(parse_roles(&[]).is_err());
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86400));
        assert!(parse_ttl("25h").unwrap_err().contains("maximum"));
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn rotate_removes_or_keeps_the_old_key() {
        let now = SystemTime::now();
        let mut f = file_with(&["ci-1", "ci-2"]);
        let (new, old) = rotate_key(&mut f, "ci-1", Some("ci-3".into()), None, None).unwrap();
        assert!(old.is_none());
        assert_eq!(new.principal, "ci");
        assert_eq!(new.roles, vec![Role::Ingester, Role::Auditor]);
        assert!(f.find("ci-1").is_none());
        assert!(f.find("ci-3").is_some());

        let until = now + Duration::from_secs(3600);
        let (_, old) = rotate_key(&mut f, "ci-2", None, Some(until), None).unwrap();
        assert_eq!(old.unwrap().expires_at, Some(until));
        assert_eq!(f.find("ci-2").unwrap().expires_at, Some(until));
        // Keeping never extends a key that expires sooner.
        let later = now + Duration::from_secs(7200);
        rotate_key(&mut f, "ci-2", None, Some(later), None).unwrap();
        assert_eq!(f.find("ci-2").unwrap().expires_at, Some(until));

        assert!(
            rotate_key(&mut f, "nope", None, None, None)
                .unwrap_err()
                .contains("nope")
        );
        assert!(
            rotate_key(&mut f, "ci-3", Some("ci-2".into()), None, None)
                .unwrap_err()
                .contains("already exists")
        );
        f.validate().unwrap();
    }

    #[test]
    fn revoke_removes_the_key() {
        let mut f = file_with(&["a", "b"]);
        assert_eq!(revoke_key(&mut f, "a").unwrap().key_id, "a");
        assert_eq!(f.keys.len(), 1);
        assert!(
            revoke_key(&mut f, "a")
                .unwrap_err()
                .contains("unknown key id")
        );
    }

    #[test]
    fn commands_edit_the_file_and_keep_it_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/service-accounts.json");
        // Not at the default path without --init: refused, nothing made.
        let default = KeystoreLocation {
            path: path.clone(),
            explicit: false,
            store: None,
        };
        let create = || SaCommand::Create {
            init: false,
            principal: "ci".into(),
            roles: vec!["ingester".into()],
            key_id: Some("ci-0".into()),
            expires_in: None,
        };
        let err = run_sa(create(), &default, true).unwrap_err();
        assert!(err.message.contains("no keystore at"), "{err:?}");
        assert!(err.hint.unwrap().contains("--init"));
        assert!(!path.exists());
        assert!(run_sa(SaCommand::List, &default, false).is_err());
        let at = KeystoreLocation {
            path: path.clone(),
            explicit: true,
            store: None,
        };
        let path = &at;
        run_sa(
            SaCommand::Create {
                init: false,
                principal: "ci".into(),
                roles: vec!["ingester".into()],
                key_id: Some("ci-1".into()),
                expires_in: Some("90d".into()),
            },
            path,
            true,
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&at.path), 0o600);
        assert_eq!(mode(at.path.parent().unwrap()), 0o700);
        run_sa(SaCommand::List, path, false).unwrap();
        run_token(
            TokenCommand::Mint {
                key_id: "ci-1".into(),
                ttl: "10m".into(),
                roles: vec![],
            },
            path,
            false,
        )
        .unwrap();
        let err = run_token(
            TokenCommand::Mint {
                key_id: "ci-1".into(),
                ttl: "1h".into(),
                roles: vec!["admin".into()],
            },
            path,
            false,
        )
        .unwrap_err();
        assert!(err.message.contains("does not grant role admin"), "{err:?}");
        let err = run_token(
            TokenCommand::Mint {
                key_id: "nope".into(),
                ttl: "1h".into(),
                roles: vec![],
            },
            path,
            false,
        )
        .unwrap_err();
        assert!(err.message.contains("nope"), "{err:?}");
        run_sa(
            SaCommand::Rotate {
                key_id: "ci-1".into(),
                new_key_id: Some("ci-2".into()),
                keep_old_for: Some("1h".into()),
                expires_in: None,
            },
            path,
            false,
        )
        .unwrap();
        run_sa(
            SaCommand::Revoke {
                key_id: "ci-1".into(),
            },
            path,
            false,
        )
        .unwrap();
        let f = KeystoreFile::load(&at.path).unwrap();
        assert_eq!(f.keys.len(), 1);
        assert_eq!(f.keys[0].key_id, "ci-2");
        assert_eq!(mode(&at.path), 0o600);
        // No temp files left behind.
        assert_eq!(
            std::fs::read_dir(at.path.parent().unwrap())
                .unwrap()
                .count(),
            1
        );
    }
}

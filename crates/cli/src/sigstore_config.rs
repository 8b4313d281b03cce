//! The `[sigstore]` table of the config file: the trusted roots Sigstore
//! bundles are verified against on ingest, and the policies that may refuse
//! them.
//!
//! ```toml
//! [sigstore]
//! # A path (named by its file stem, here `public-good`), or a table.
//! trusted_roots = [
//!     "/etc/evault/sigstore/public-good.json",
//!     { name = "staging", path = "/etc/evault/sigstore/trusted_root.json" },
//! ]
//!
//! [[sigstore.policy]]
//! name = "release"
//! identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
//! issuer = "https://token.actions.githubusercontent.com"
//! roots = ["public-good"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use evault_vault::sigstore::{Policy, SigstoreConfig, TrustRoots};
use serde::Deserialize;

/// The `[sigstore]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigstoreFileConfig {
    /// `trusted_root.json` files; a bundle verifies if any of them
    /// verifies it.
    #[serde(default)]
    pub trusted_roots: Vec<RootConfig>,
    /// `[[sigstore.policy]]` tables.
    #[serde(default)]
    pub policy: Vec<PolicyConfig>,
}

/// One entry of `trusted_roots`: a path, named by its file stem, or
/// `{ name, path }`. The name is what the `evault.sigstore.root` label and
/// a policy's `roots` say (the path stays on the server).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RootConfig {
    /// `"path/to/public-good.json"`: named `public-good`.
    Path(PathBuf),
    /// `{ name = "production", path = "..." }`.
    Named {
        /// The root's name.
        name: String,
        /// Its `trusted_root.json`.
        path: PathBuf,
    },
}

/// One `[[sigstore.policy]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// The selector: every one of these labels must be on the record.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub identity: Option<String>,
    pub identity_prefix: Option<String>,
    pub issuer: Option<String>,
    #[serde(default)]
    pub require_verified: bool,
    /// The bundle must have verified under one of these roots (by name).
    #[serde(default)]
    pub roots: Vec<String>,
}

/// The warning for an `identity_prefix` that does not end a path segment
/// or a name: `https://github.com/acme` also admits
/// `https://github.com/acme-evil/...`.
fn prefix_warning(p: &PolicyConfig) -> Option<String> {
    let prefix = p.identity_prefix.as_deref()?;
    (!prefix.is_empty() && !prefix.ends_with('/') && !prefix.ends_with('@')).then(|| {
        format!(
            "sigstore policy `{}`: identity_prefix {prefix:?} ends in neither `/` nor `@`, \
             so it also admits identities that merely start with the same characters",
            p.name
        )
    })
}

/// Loads the roots (relative paths from `base`, else the working
/// directory) and checks the policies; errors name what is wrong.
pub fn setup(
    file: Option<&SigstoreFileConfig>,
    base: Option<&Path>,
) -> Result<SigstoreConfig, String> {
    let Some(file) = file else {
        return Ok(SigstoreConfig::default());
    };
    let resolve = |p: &PathBuf| match base {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.clone(),
    };
    let named = file
        .trusted_roots
        .iter()
        .map(|r| match r {
            RootConfig::Path(p) => {
                let name = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "sigstore trusted root {}: no file name to name it by; \
                             give {{ name = \"...\", path = \"...\" }}",
                            p.display()
                        )
                    })?;
                Ok((name.to_string(), resolve(p)))
            }
            RootConfig::Named { name, path } => Ok((name.clone(), resolve(path))),
        })
        .collect::<Result<Vec<_>, String>>()?;
    let trusted_roots = TrustRoots::load_named(&named)?;
    for p in &file.policy {
        if let Some(w) = prefix_warning(p) {
            tracing::warn!("{w}");
        }
    }
    let policies = file
        .policy
        .iter()
        .map(|p| Policy {
            name: p.name.clone(),
            labels: p.labels.clone(),
            identity: p.identity.clone(),
            identity_prefix: p.identity_prefix.clone(),
            issuer: p.issuer.clone(),
            require_verified: p.require_verified,
            roots: p.roots.clone(),
        })
        .collect();
    let config = SigstoreConfig {
        trusted_roots,
        policies,
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<SigstoreConfig, String> {
        let file: crate::config::FileConfig = toml::from_str(toml).map_err(|e| e.to_string())?;
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore");
        setup(file.sigstore.as_ref(), Some(&base))
    }

    #[test]
    fn roots_and_policies_load_and_are_checked() {
        let c = parse(
            "[sigstore]\ntrusted_roots = [\"trusted_root.json\"]\n\
             [[sigstore.policy]]\nname = \"release\"\nlabels = { kind = \"release\" }\n\
             identity_prefix = \"https://github.com/acme/\"\n",
        )
        .unwrap();
        assert!(!c.trusted_roots.is_empty());
        assert_eq!(c.policies[0].labels["kind"], "release");

        let e = parse("[sigstore]\ntrusted_roots = [\"missing.json\"]\n").unwrap_err();
        assert!(
            e.starts_with("sigstore trusted root ") && e.contains("missing.json"),
            "{e}"
        );
        let e = parse("[sigstore]\ntrusted_roots = [\"a.txt\"]\n").unwrap_err();
        assert!(e.contains("not a trusted root"), "{e}");
        let e = parse("[[sigstore.policy]]\nname = \"x\"\n").unwrap_err();
        assert!(e.contains("requires nothing"), "{e}");
        let e = parse(
            "[[sigstore.policy]]\nname = \"x\"\nrequire_verified = true\n\
             [[sigstore.policy]]\nname = \"x\"\nrequire_verified = true\n",
        )
        .unwrap_err();
        assert!(e.contains("defined twice"), "{e}");
        assert!(parse("[sigstore]\ntrusted_root = []\n").is_err());
    }

    #[test]
    fn roots_are_named_and_policies_pin_them() {
        let c = parse(
            "[sigstore]\ntrusted_roots = [\"trusted_root.json\", \
             { name = \"staging\", path = \"rekor2-happy-path/trusted_root.json\" }]\n\
             [[sigstore.policy]]\nname = \"prod\"\nroots = [\"trusted_root\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.trusted_roots.names().collect::<Vec<_>>(),
            ["trusted_root", "staging"]
        );
        assert_eq!(c.policies[0].roots, ["trusted_root"]);
        // Two roots by one name (two `trusted_root.json`s): refused.
        let e = parse(
            "[sigstore]\ntrusted_roots = [\"trusted_root.json\", \
             \"rekor2-happy-path/trusted_root.json\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("two roots are named \"trusted_root\""), "{e}");
        // A policy pinning a root that is not configured.
        let e = parse(
            "[sigstore]\ntrusted_roots = [\"trusted_root.json\"]\n\
             [[sigstore.policy]]\nname = \"prod\"\nroots = [\"production\"]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("root \"production\" is not a configured trusted root"),
            "{e}"
        );
        // Selector keys: the ingest rules, and not the vault's namespace.
        for key in ["\"evault.sigstore.status\"", "\"Evault.x\"", "\"bad key\""] {
            let e = parse(&format!(
                "[[sigstore.policy]]\nname = \"x\"\nrequire_verified = true\nlabels = {{ {key} = \"v\" }}\n"
            ))
            .unwrap_err();
            assert!(e.starts_with("sigstore policy `x`: selector"), "{key}: {e}");
        }
    }

    #[test]
    fn an_open_ended_identity_prefix_is_warned_about() {
        let policy = |prefix: &str| PolicyConfig {
            name: "p".into(),
            labels: BTreeMap::new(),
            identity: None,
            identity_prefix: Some(prefix.into()),
            issuer: None,
            require_verified: false,
            roots: vec![],
        };
        assert!(prefix_warning(&policy("https://github.com/acme/")).is_none());
        assert!(prefix_warning(&policy("ci@")).is_none());
        let w = prefix_warning(&policy("https://github.com/acme")).unwrap();
        assert!(w.contains("ends in neither `/` nor `@`"), "{w}");
    }
}

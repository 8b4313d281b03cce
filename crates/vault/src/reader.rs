//! Who reads, and what they may see. Every vault read that returns
//! records, events, payloads, proofs of them or analytics takes a
//! [`Reader`], and the vault applies it, so no caller (REST handler, gRPC
//! method, a future route) can forget to.

/// What a reader may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadScope {
    /// Everything (auditors, admins).
    All,
    /// Only what the reader itself submitted (ingesters): its own records,
    /// analytics events and audit events.
    Own,
}

/// A principal reading from the vault, with its scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    principal: String,
    scope: ReadScope,
}

impl Reader {
    /// A reader that sees everything.
    pub fn all(principal: impl Into<String>) -> Reader {
        Reader {
            principal: principal.into(),
            scope: ReadScope::All,
        }
    }

    /// A reader that sees only what `principal` submitted.
    pub fn own(principal: impl Into<String>) -> Reader {
        Reader {
            principal: principal.into(),
            scope: ReadScope::Own,
        }
    }

    /// A reader with `scope`.
    pub fn new(principal: impl Into<String>, scope: ReadScope) -> Reader {
        Reader {
            principal: principal.into(),
            scope,
        }
    }

    /// The reading principal.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// What it may see.
    pub fn scope(&self) -> ReadScope {
        self.scope
    }

    /// Whether it may see what `owner` submitted.
    pub fn may_read(&self, owner: &str) -> bool {
        self.scope == ReadScope::All || self.principal == owner
    }

    /// The owner a listing must be narrowed to, or `None` for all.
    pub(crate) fn only_owner(&self) -> Option<String> {
        (self.scope == ReadScope::Own).then(|| self.principal.clone())
    }

    /// `Ok` if it may see `what` (submitted by `owner`), else the refusal
    /// that reads like "not found", with `reason` for the audit trail.
    pub(crate) fn check(
        &self,
        owner: &str,
        what: impl FnOnce() -> String,
        reason: &str,
    ) -> crate::Result<()> {
        if self.may_read(owner) {
            return Ok(());
        }
        Err(crate::VaultError::Hidden {
            what: what(),
            reason: reason.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_sees_only_its_own() {
        let r = Reader::own("a");
        assert!(r.may_read("a") && !r.may_read("b"));
        assert_eq!(r.only_owner().as_deref(), Some("a"));
        assert!(matches!(
            r.check("b", || "evidence x".into(), "not yours"),
            Err(crate::VaultError::Hidden { .. })
        ));
        let all = Reader::all("c");
        assert!(all.may_read("b") && all.only_owner().is_none());
        assert!(all.check("b", String::new, "").is_ok());
    }
}

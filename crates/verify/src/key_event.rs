//! Key events: the evidence records in which an evault log announces a
//! change of its own signing keys (docs/FORMATS.md, "Key rotation").
//!
//! A key event is a short statement,
//!
//! ```text
//! evault key-event v1
//! <origin>
//! <add|retire> <verifier key>
//! ```
//!
//! signed as a C2SP signed note by the log's Ed25519 keys: for `add`, by
//! the keys already in use (authority) and the new key (possession); for
//! `retire`, by the retired key and its successor. The record's payload is
//! that note; its labels repeat the statement and the signatures, so
//! whoever reads only the log's leaves (a monitor following tlog-tiles
//! entry bundles) can check the event without the payload.
//!
//! The rule a verifier applies: once the log holds the `retire` record of
//! key K at leaf index L, a checkpoint of a tree larger than L must carry a
//! signature by a key of the log that is not retired. K alone no longer
//! counts.

use std::collections::BTreeMap;

use evault_note::{Note, Verifiers, open};

/// The content type of a key event record's payload (a signed note).
pub const KEY_EVENT_TYPE: &str = "application/vnd.evault.key-event";
/// The first line of every key event statement.
pub const KEY_EVENT_HEADER: &str = "evault key-event v1";
/// Label: `add` or `retire`.
pub const LABEL_EVENT: &str = "evault.key.event";
/// Label: the verifier key added or retired.
pub const LABEL_SUBJECT: &str = "evault.key.subject";
/// Label: the origin of the log whose key changes.
pub const LABEL_ORIGIN: &str = "evault.key.origin";
/// Labels `evault.key.sig.0`, `.1`, …: the statement's signatures, each the
/// base64 of a signature line (key ID and signature), in line order.
pub const LABEL_SIG_PREFIX: &str = "evault.key.sig.";
/// The longest label value the vault accepts; a key event's labels fit.
const MAX_LABEL_VALUE: usize = 256;

/// What a key event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// A new key signs the log's checkpoints from now on.
    Add,
    /// A key stops counting for checkpoints of trees that hold this event.
    Retire,
}

impl KeyAction {
    /// `add` or `retire`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAction::Add => "add",
            KeyAction::Retire => "retire",
        }
    }

    fn parse(s: &str) -> Option<KeyAction> {
        match s {
            "add" => Some(KeyAction::Add),
            "retire" => Some(KeyAction::Retire),
            _ => None,
        }
    }
}

/// One key event: which log, what happens, to which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// The log's origin (also the name of each of its keys).
    pub origin: String,
    /// Added or retired.
    pub action: KeyAction,
    /// The verifier key (`name+hash+base64`) added or retired.
    pub subject: String,
}

impl KeyEvent {
    /// The statement the keys sign.
    pub fn statement(&self) -> String {
        format!(
            "{KEY_EVENT_HEADER}\n{}\n{} {}\n",
            self.origin,
            self.action.as_str(),
            self.subject
        )
    }

    /// The record labels of this event signed as `note` (the statement
    /// signed by the keys): the statement's parts and each signature line's
    /// base64. Errors if `note` is not this statement or a value would not
    /// fit in a label.
    pub fn labels(&self, note: &str) -> Result<BTreeMap<String, String>, String> {
        let text = self.statement();
        let sigs = note
            .strip_prefix(&text)
            .and_then(|rest| rest.strip_prefix('\n'))
            .ok_or("the signed note is not this key event's statement")?;
        let mut labels = BTreeMap::from([
            (LABEL_EVENT.to_string(), self.action.as_str().to_string()),
            (LABEL_SUBJECT.to_string(), self.subject.clone()),
            (LABEL_ORIGIN.to_string(), self.origin.clone()),
        ]);
        let prefix = format!("\u{2014} {} ", self.origin);
        for (i, line) in sigs.lines().enumerate() {
            let b64 = line
                .strip_prefix(&prefix)
                .ok_or("a signature line of the key event is not by one of the log's keys")?;
            labels.insert(format!("{LABEL_SIG_PREFIX}{i}"), b64.to_string());
        }
        if let Some((k, _)) = labels.iter().find(|(_, v)| v.len() > MAX_LABEL_VALUE) {
            return Err(format!(
                "the key event's {k} would be longer than {MAX_LABEL_VALUE} bytes (origin or \
                 key too long for a key event)"
            ));
        }
        Ok(labels)
    }

    /// The key event in a record's labels, with its signed note rebuilt
    /// from them; `Ok(None)` when the record is no key event (it has no
    /// [`LABEL_EVENT`] label). The signatures are not checked here
    /// ([`KeyEvent::open`]).
    pub fn from_labels(
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<(KeyEvent, String)>, String> {
        let Some(action) = labels.get(LABEL_EVENT) else {
            return Ok(None);
        };
        let action = KeyAction::parse(action).ok_or_else(|| {
            format!("key event label {LABEL_EVENT}={action:?} is neither add nor retire")
        })?;
        let get = |k: &str| {
            labels
                .get(k)
                .cloned()
                .ok_or_else(|| format!("key event without its {k} label"))
        };
        let event = KeyEvent {
            origin: get(LABEL_ORIGIN)?,
            action,
            subject: get(LABEL_SUBJECT)?,
        };
        if event.origin.contains('\n') || event.subject.contains('\n') {
            return Err("key event labels hold a line break".into());
        }
        let mut note = event.statement();
        note.push('\n');
        for i in 0.. {
            match labels.get(&format!("{LABEL_SIG_PREFIX}{i}")) {
                Some(b64) if !b64.contains(char::is_whitespace) => {
                    note.push_str(&format!("\u{2014} {} {b64}\n", event.origin));
                }
                Some(_) => return Err("a key event signature label holds white space".into()),
                None if i == 0 => return Err("key event without signatures".into()),
                None => break,
            }
        }
        Ok(Some((event, note)))
    }

    /// Opens `note` (this event's signed statement) with `known`, the keys
    /// the verifier trusts plus, for `add`, the subject. Returns the note
    /// with the signatures that verified. The statement must be signed by a
    /// trusted key other than the subject, and an added key must have
    /// signed it too (it proves the log holds the key).
    pub fn open(&self, note: &str, trusted: &Verifiers) -> Result<Note, String> {
        let opened = open(note.as_bytes(), trusted).map_err(|e| format!("key event: {e}"))?;
        if opened.text != self.statement() {
            return Err("key event note is not its statement".into());
        }
        let subject = evault_note::parse_verifier_key(&self.subject)
            .map_err(|e| format!("key event subject: {e}"))?;
        if subject.name != self.origin {
            return Err(format!(
                "key event subject {:?} is not named after the log's origin {:?}",
                self.subject, self.origin
            ));
        }
        let by_subject = opened.verified.iter().any(|s| s.key_id == subject.key_id);
        let by_other = opened.verified.iter().any(|s| s.key_id != subject.key_id);
        if !by_other {
            return Err(format!(
                "the {} of key {} is not signed by another trusted key of the log",
                self.action.as_str(),
                self.subject
            ));
        }
        if self.action == KeyAction::Add && !by_subject {
            return Err(format!(
                "the added key {} did not sign its key event",
                self.subject
            ));
        }
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evault_note::{Ed25519Signer, Signer, sign, verifier_for};

    fn key(seed: u8) -> Ed25519Signer {
        Ed25519Signer::from_seed("example.com/log", &[seed; 32]).unwrap()
    }

    fn trusted(keys: &[&Ed25519Signer]) -> Verifiers {
        let mut v = Verifiers::new();
        for k in keys {
            v.insert_boxed(verifier_for(k.verifier_key().as_str()).unwrap())
                .unwrap();
        }
        v
    }

    #[test]
    fn labels_round_trip_and_verify() {
        let (a, b) = (key(1), key(2));
        let event = KeyEvent {
            origin: "example.com/log".into(),
            action: KeyAction::Add,
            subject: b.verifier_key().as_str().into(),
        };
        let note = sign(&event.statement(), &[&a as &dyn Signer, &b]).unwrap();
        let labels = event.labels(&note).unwrap();
        let (back, rebuilt) = KeyEvent::from_labels(&labels).unwrap().unwrap();
        assert_eq!(back, event);
        assert_eq!(rebuilt, note);
        // Trusting A (and knowing B from the statement): verifies.
        assert!(back.open(&rebuilt, &trusted(&[&a, &b])).is_ok());
        // Signed by B alone: nobody trusted vouches for it.
        let alone = sign(&event.statement(), &[&b as &dyn Signer]).unwrap();
        let err = event.open(&alone, &trusted(&[&a, &b])).unwrap_err();
        assert!(err.contains("another trusted key"), "{err}");
        // Signed by A alone: B never proved it holds the key.
        let no_b = sign(&event.statement(), &[&a as &dyn Signer]).unwrap();
        let err = event.open(&no_b, &trusted(&[&a, &b])).unwrap_err();
        assert!(err.contains("did not sign"), "{err}");
        // A changed label breaks the signatures.
        let mut forged = labels.clone();
        forged.insert(LABEL_EVENT.into(), "retire".into());
        let (ev, n) = KeyEvent::from_labels(&forged).unwrap().unwrap();
        assert!(ev.open(&n, &trusted(&[&a, &b])).is_err());
    }

    #[test]
    fn records_without_the_label_are_no_key_events() {
        assert_eq!(KeyEvent::from_labels(&BTreeMap::new()), Ok(None));
        let bad = BTreeMap::from([(LABEL_EVENT.to_string(), "rename".to_string())]);
        assert!(KeyEvent::from_labels(&bad).is_err());
        let unsigned = BTreeMap::from([
            (LABEL_EVENT.to_string(), "add".to_string()),
            (LABEL_ORIGIN.to_string(), "o".to_string()),
            (LABEL_SUBJECT.to_string(), "k".to_string()),
        ]);
        assert!(
            KeyEvent::from_labels(&unsigned)
                .unwrap_err()
                .contains("signatures")
        );
    }
}

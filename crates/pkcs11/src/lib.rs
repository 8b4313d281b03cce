//! An Ed25519 note [`Signer`] whose private key lives in a PKCS#11 token.
//!
//! The key is addressed by an RFC 7512 URI ([`Pkcs11Uri`]) and used through
//! `CKM_EDDSA` in its pure Ed25519 form (no context, no pre-hash), so the
//! signatures are exactly those of a key file (C2SP signed-note type `0x01`).
//! The private key never leaves the token: evault reads only the public key
//! (`CKA_EC_POINT` of the matching public-key object) and asks the token to
//! sign.
//!
//! A failed signature (a closed session, a token taken out and put back, a
//! restarted HSM daemon) drops the session and tries once more on a new one,
//! logging in again; if that fails too, the caller gets
//! [`SignError::Backend`] naming the token, and the next call tries afresh.
//! Every signature the token returns is verified with the public key before
//! it is used, so a faulty token cannot make evault publish a bad note.
//!
//! [`generate_ed25519`] creates a key pair inside a token (sensitive, not
//! extractable), for provisioning and tests.

#![forbid(unsafe_code)]

mod uri;

use core::fmt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use evault_note::key::{ALG_ED25519, VerifierKeyText};
use evault_note::{Ed25519Verifier, SignError, Signer, Verifier, is_valid_name, key_id};
use zeroize::Zeroizing;

pub use uri::{Pkcs11Uri, UriError};

/// The environment variable read for the user PIN when the URI gives
/// neither `pin-source` nor `pin-value`.
pub const PIN_ENV: &str = "EVAULT_PKCS11_PIN";

/// DER of the Ed25519 curve OID 1.3.101.112 (RFC 8410), for `CKA_EC_PARAMS`.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// DER PrintableString "edwards25519", the older `CKA_EC_PARAMS` form some
/// tokens (SoftHSM 2.6 among them) report.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// Why a PKCS#11 signer could not be opened or a key generated.
#[derive(Debug)]
pub enum Pkcs11Error {
    /// The URI is not usable.
    Uri(UriError),
    /// The key name (the log's origin) is not a valid note key name.
    InvalidName(String),
    /// The PKCS#11 module could not be loaded or initialised.
    Module {
        /// The module path.
        path: PathBuf,
        /// What failed.
        error: CkError,
    },
    /// The user PIN could not be read.
    Pin(String),
    /// No token matches the URI.
    TokenNotFound(String),
    /// More than one token matches the URI.
    TokenAmbiguous(String),
    /// No private key matches the URI.
    KeyNotFound(String),
    /// More than one private key matches the URI.
    KeyAmbiguous(String),
    /// The key is not an Ed25519 key, or its public key cannot be read.
    NotEd25519(String),
    /// A key with this label or ID already exists ([`generate_ed25519`]).
    KeyExists(String),
    /// The token refused an operation.
    Token {
        /// What was being done, and on which token.
        context: String,
        /// The PKCS#11 error.
        error: CkError,
    },
}

impl fmt::Display for Pkcs11Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkcs11Error::Uri(e) => e.fmt(f),
            Pkcs11Error::InvalidName(n) => write!(f, "invalid signer key name {n:?}"),
            Pkcs11Error::Module { path, error } => {
                write!(f, "loading PKCS#11 module {}: {error}", path.display())
            }
            Pkcs11Error::Pin(e) => write!(f, "PKCS#11 user PIN: {e}"),
            Pkcs11Error::TokenNotFound(w) => write!(f, "no PKCS#11 token matches {w}"),
            Pkcs11Error::TokenAmbiguous(w) => {
                write!(
                    f,
                    "more than one PKCS#11 token matches {w}; add serial= or slot-id="
                )
            }
            Pkcs11Error::KeyNotFound(w) => write!(f, "no Ed25519 private key matches {w}"),
            Pkcs11Error::KeyAmbiguous(w) => {
                write!(
                    f,
                    "more than one private key matches {w}; add id= or object="
                )
            }
            Pkcs11Error::NotEd25519(w) => write!(f, "{w}"),
            Pkcs11Error::KeyExists(w) => write!(f, "a key already matches {w}; not overwriting it"),
            Pkcs11Error::Token { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

impl std::error::Error for Pkcs11Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Pkcs11Error::Uri(e) => Some(e),
            Pkcs11Error::Module { error, .. } | Pkcs11Error::Token { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<UriError> for Pkcs11Error {
    fn from(e: UriError) -> Self {
        Pkcs11Error::Uri(e)
    }
}

/// A loaded module.
///
/// `gate` holds its generation: how many times it was initialised again.
/// Sessions are opened, used and closed under the read guard;
/// [`Module::reinitialize`] takes the write guard, so no call is ever in
/// flight while `C_Finalize` runs, and a session of an older generation is
/// recognised and forgotten (its handle may now name someone else's).
struct Module {
    path: String,
    ctx: Pkcs11,
    gate: RwLock<u64>,
}

impl Module {
    fn read(&self) -> RwLockReadGuard<'_, u64> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Finalises and initialises the module again, unless someone already
    /// did since `seen` (the generation the caller's failure happened in).
    ///
    /// Some tokens (SoftHSM among them) do not come back from being taken
    /// out until the library is initialised again.
    fn reinitialize(&self, seen: u64) -> Result<(), Pkcs11Error> {
        let mut generation = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if *generation != seen {
            return Ok(());
        }
        let _ = self.ctx.clone().finalize();
        *generation += 1;
        self.ctx
            .initialize(init_args())
            .map_err(|error| Pkcs11Error::Module {
                path: PathBuf::from(&self.path),
                error,
            })
    }
}

fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Returns the module at `path`, loading and initialising it on first use.
/// PKCS#11 allows a single `C_Initialize` per process, so every signer and
/// provisioning call of the process shares one context per module path.
fn module(path: &str) -> Result<Arc<Module>, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<String, Arc<Module>>>> = OnceLock::new();
    let mut map = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(m) = map.get(path) {
        return Ok(Arc::clone(m));
    }
    let err = |error| Pkcs11Error::Module {
        path: PathBuf::from(path),
        error,
    };
    let ctx = Pkcs11::new(path).map_err(err)?;
    match ctx.initialize(init_args()) {
        // Another component of the process initialised it: share it.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(e)),
    }
    let m = Arc::new(Module {
        path: path.to_owned(),
        ctx,
        gate: RwLock::new(0),
    });
    map.insert(path.to_owned(), Arc::clone(&m));
    Ok(m)
}

/// Whether retrying cannot help, and could hurt: a wrong or locked PIN (each
/// retry is a failed login, and tokens lock the PIN after a few), or a key
/// that is missing, ambiguous or not the one evault started with.
fn is_final(e: &Pkcs11Error) -> bool {
    match e {
        Pkcs11Error::Pin(_)
        | Pkcs11Error::KeyNotFound(_)
        | Pkcs11Error::KeyAmbiguous(_)
        | Pkcs11Error::NotEd25519(_)
        | Pkcs11Error::InvalidName(_)
        | Pkcs11Error::Uri(_) => true,
        Pkcs11Error::Token {
            error: CkError::Pkcs11(rv, _),
            ..
        } => matches!(
            rv,
            RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked
        ),
        _ => false,
    }
}

/// Reads the user PIN named by the URI, or from [`PIN_ENV`]. A PIN given in
/// the URI is moved out of it, so the URI kept afterwards holds none.
fn read_pin(uri: &mut Pkcs11Uri) -> Result<AuthPin, Pkcs11Error> {
    if let Some(v) = uri.pin_value.take() {
        return Ok(AuthPin::from(v));
    }
    if let Some(path) = &uri.pin_source {
        return read_pin_file(Path::new(path));
    }
    match std::env::var(PIN_ENV) {
        Ok(v) => Ok(AuthPin::from(v)),
        Err(_) => Err(Pkcs11Error::Pin(format!(
            "none given: set pin-source=<file> in the URI or {PIN_ENV}"
        ))),
    }
}

/// Reads a PIN file: its first line, which must not be readable by group or
/// others.
fn read_pin_file(path: &Path) -> Result<AuthPin, Pkcs11Error> {
    use std::io::Read as _;
    let fail = |e: std::io::Error| Pkcs11Error::Pin(format!("{}: {e}", path.display()));
    // Opened once; the mode checked is that of the file read.
    let mut file = std::fs::File::open(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = file.metadata().map_err(fail)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Pkcs11Error::Pin(format!(
                "{} has mode {mode:03o}; it must not be readable by group or others (chmod 600)",
                path.display()
            )));
        }
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(fail)?;
    let pin = text.lines().next().unwrap_or("");
    if pin.is_empty() {
        return Err(Pkcs11Error::Pin(format!("{} is empty", path.display())));
    }
    Ok(AuthPin::from(pin.to_owned()))
}

/// Finds the one slot whose token matches the URI.
fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, Pkcs11Error> {
    let what = uri.describe();
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|error| Pkcs11Error::Token {
            context: "listing PKCS#11 slots".into(),
            error,
        })?;
    let mut found = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        let info = ctx
            .get_token_info(slot)
            .map_err(|error| Pkcs11Error::Token {
                context: format!("reading the token in slot {}", slot.id()),
                error,
            })?;
        let matches = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w == have.trim_end())
        };
        if matches(&uri.token, info.label())
            && matches(&uri.serial, info.serial_number())
            && matches(&uri.manufacturer, info.manufacturer_id())
            && matches(&uri.model, info.model())
        {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Pkcs11Error::TokenNotFound(what)),
        _ => Err(Pkcs11Error::TokenAmbiguous(what)),
    }
}

/// Opens a session on the URI's token and logs the user in.
fn open_session(
    ctx: &Pkcs11,
    uri: &Pkcs11Uri,
    pin: &AuthPin,
    rw: bool,
) -> Result<Session, Pkcs11Error> {
    let slot = find_slot(ctx, uri)?;
    let what = uri.describe();
    // Closed explicitly, never on drop: after a re-initialisation an old
    // handle may name a new session of someone else.
    let session = if rw {
        ctx.open_rw_session_no_drop(slot)
    } else {
        ctx.open_ro_session_no_drop(slot)
    }
    .map_err(|error| Pkcs11Error::Token {
        context: format!("opening a session on {what}"),
        error,
    })?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(error) => {
            let _ = session.close();
            Err(Pkcs11Error::Token {
                context: format!("logging in to {what}"),
                error,
            })
        }
    }
}

/// The template that selects the URI's key of class `class`.
fn key_template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

/// Finds the URI's private key and returns it with its Ed25519 public key.
fn find_key(session: &Session, uri: &Pkcs11Uri) -> Result<(ObjectHandle, [u8; 32]), Pkcs11Error> {
    let what = uri.describe();
    let token_err = |context: String| move |error| Pkcs11Error::Token { context, error };
    let keys = session
        .find_objects(&key_template(uri, ObjectClass::PRIVATE_KEY))
        .map_err(token_err(format!("searching {what}")))?;
    let key = match keys.as_slice() {
        [k] => *k,
        [] => return Err(Pkcs11Error::KeyNotFound(what)),
        _ => return Err(Pkcs11Error::KeyAmbiguous(what)),
    };
    let attrs = session
        .get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams])
        .map_err(token_err(format!("reading {what}")))?;
    let mut is_edwards = false;
    let mut params = None;
    for a in attrs {
        match a {
            Attribute::KeyType(t) => is_edwards = t == KeyType::EC_EDWARDS,
            Attribute::EcParams(p) => params = Some(p),
            _ => {}
        }
    }
    if !is_edwards || !params.as_deref().is_some_and(is_ed25519_params) {
        return Err(Pkcs11Error::NotEd25519(format!(
            "{what} is not an Ed25519 key (CKK_EC_EDWARDS on edwards25519)"
        )));
    }
    // The public half: the public-key object with the same label/ID.
    let publics = session
        .find_objects(&key_template(uri, ObjectClass::PUBLIC_KEY))
        .map_err(token_err(format!("searching the public key of {what}")))?;
    let [public] = publics.as_slice() else {
        return Err(Pkcs11Error::NotEd25519(format!(
            "{what}: want exactly one matching public-key object to read the public key from, found {}",
            publics.len()
        )));
    };
    let point = session
        .get_attributes(*public, &[AttributeType::EcPoint])
        .map_err(token_err(format!("reading the public key of {what}")))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .unwrap_or_default();
    let public = ec_point_to_ed25519(&point).ok_or_else(|| {
        Pkcs11Error::NotEd25519(format!(
            "{what}: CKA_EC_POINT is not a 32-byte Ed25519 key ({} bytes)",
            point.len()
        ))
    })?;
    Ok((key, public))
}

fn is_ed25519_params(p: &[u8]) -> bool {
    p == ED25519_OID || p == ED25519_NAME
}

/// `CKA_EC_POINT` is a DER OCTET STRING holding the key (PKCS#11 3.0); some
/// tokens return the 32 bytes bare.
fn ec_point_to_ed25519(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, key @ ..] if key.len() == 32 => key.try_into().ok(),
        key if key.len() == 32 => key.try_into().ok(),
        _ => None,
    }
}

/// An open session on the key, and the module generation it belongs to.
/// Its session is never closed on drop: only [`Pkcs11Signer`] closes it, and
/// only while its generation is current.
struct Open {
    session: Session,
    key: ObjectHandle,
    generation: u64,
}

/// An Ed25519 note signer backed by a PKCS#11 token.
pub struct Pkcs11Signer {
    name: String,
    key_id: u32,
    public: [u8; 32],
    verifier: Ed25519Verifier,
    uri: Pkcs11Uri,
    pin: AuthPin,
    module: Arc<Module>,
    // One session at a time; signing is serial anyway. Locked before the
    // module's gate, never after.
    state: Mutex<Option<Open>>,
}

impl Pkcs11Signer {
    /// Opens the key named by `uri` to sign notes as `name` (the log's
    /// origin): loads the module, finds the token, logs in, finds the
    /// Ed25519 key and reads its public key.
    pub fn open(uri: &str, name: &str) -> Result<Self, Pkcs11Error> {
        let mut uri = Pkcs11Uri::parse(uri)?;
        if !is_valid_name(name) {
            return Err(Pkcs11Error::InvalidName(name.to_owned()));
        }
        let pin = read_pin(&mut uri)?;
        let module = module(&uri.module_path)?;
        let gate = module.read();
        let session = open_session(&module.ctx, &uri, &pin, false)?;
        let found = find_key(&session, &uri).and_then(|(key, public)| {
            Ed25519Verifier::from_public_key(name, &public)
                .map(|v| (key, public, v))
                .map_err(|e| {
                    Pkcs11Error::NotEd25519(format!("{}: public key refused: {e}", uri.describe()))
                })
        });
        let (key, public, verifier) = match found {
            Ok(found) => found,
            Err(e) => {
                let _ = session.close();
                return Err(e);
            }
        };
        let open = Open {
            session,
            key,
            generation: *gate,
        };
        drop(gate);
        Ok(Pkcs11Signer {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, &public),
            public,
            verifier,
            uri,
            pin,
            module,
            state: Mutex::new(Some(open)),
        })
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Returns the verifier for this signer's key.
    pub fn verifier(&self) -> Ed25519Verifier {
        self.verifier.clone()
    }

    /// Describes the key (token and label, never the PIN).
    pub fn describe(&self) -> String {
        self.uri.describe()
    }

    /// Opens a session on the key, checking it is still the same key. Runs
    /// under the module's read guard.
    fn reopen(&self, generation: u64) -> Result<Open, Pkcs11Error> {
        let session = open_session(&self.module.ctx, &self.uri, &self.pin, false)?;
        match find_key(&session, &self.uri) {
            Ok((key, public)) if public == self.public => Ok(Open {
                session,
                key,
                generation,
            }),
            Ok(_) => {
                let _ = session.close();
                Err(Pkcs11Error::NotEd25519(format!(
                    "{} now holds a different public key than when evault started; \
                     refusing to sign with it",
                    self.uri.describe()
                )))
            }
            Err(e) => {
                let _ = session.close();
                Err(e)
            }
        }
    }

    /// One attempt, under the module's read guard: forget a session of an
    /// older generation, open one if there is none, sign. On failure the
    /// session is closed and the generation of the attempt returned.
    fn attempt(&self, state: &mut Option<Open>, msg: &[u8]) -> Result<Vec<u8>, (Pkcs11Error, u64)> {
        let gate = self.module.read();
        let generation = *gate;
        if state.as_ref().is_some_and(|o| o.generation != generation) {
            // Not closed: after re-initialisation its handle may name a
            // session of someone else.
            *state = None;
        }
        if state.is_none() {
            *state = Some(self.reopen(generation).map_err(|e| (e, generation))?);
        }
        let open = state.as_ref().expect("a session was just opened");
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        match open.session.sign(&mechanism, open.key, msg) {
            Ok(sig) => Ok(sig),
            Err(error) => {
                if let Some(open) = state.take() {
                    let _ = open.session.close();
                }
                Err((
                    Pkcs11Error::Token {
                        context: format!("signing with {}", self.uri.describe()),
                        error,
                    },
                    generation,
                ))
            }
        }
    }

    /// Signs, recovering from a stale session (a new session) and from a
    /// token that went away and came back (the module initialised again).
    /// Errors that a retry cannot mend (the PIN, the key) end it at once.
    fn sign_with_recovery(&self, msg: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = match self.attempt(&mut state, msg) {
            Ok(sig) => return Ok(sig),
            Err((e, _)) if is_final(&e) => return Err(e),
            Err((_, g)) => g,
        };
        // A stale session or a lost login: a new session.
        let generation = match self.attempt(&mut state, msg) {
            Ok(sig) => return Ok(sig),
            Err((e, _)) if is_final(&e) => return Err(e),
            Err((_, g)) => g.max(generation),
        };
        // The token went away and came back: initialise the module again.
        self.module.reinitialize(generation)?;
        self.attempt(&mut state, msg).map_err(|(e, _)| e)
    }
}

impl Signer for Pkcs11Signer {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let sig = self
            .sign_with_recovery(msg)
            .map_err(|e| SignError::Backend(Box::new(e)))?;
        if !self.verifier.verify(msg, &sig) {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let gate = self.module.read();
            if let Some(open) = state.take()
                && open.generation == *gate
            {
                let _ = open.session.close();
            }
            return Err(SignError::Backend(
                format!(
                    "{} returned a signature that does not verify with its public key",
                    self.uri.describe()
                )
                .into(),
            ));
        }
        Ok(sig)
    }

    fn verifier_key(&self) -> VerifierKeyText {
        self.verifier.verifier_key()
    }
}

impl Drop for Pkcs11Signer {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(open) = state {
            let gate = self.module.read();
            if open.generation == *gate {
                let _ = open.session.close();
            }
        }
    }
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("key", &self.uri.describe())
            .finish_non_exhaustive()
    }
}

/// Generates an Ed25519 key pair inside the token named by `uri`, labelled
/// and identified as the URI says (`object=` and/or `id=`), and returns its
/// public key.
///
/// The private key is created sensitive and not extractable: it can sign,
/// and nothing can read it out. Refuses if a key already matches the URI.
pub fn generate_ed25519(uri: &str) -> Result<[u8; 32], Pkcs11Error> {
    let mut uri = Pkcs11Uri::parse(uri)?;
    let pin = read_pin(&mut uri)?;
    let module = module(&uri.module_path)?;
    let _gate = module.read();
    let session = open_session(&module.ctx, &uri, &pin, true)?;
    let result = generate_in(&session, &uri);
    let _ = session.close();
    result
}

fn generate_in(session: &Session, uri: &Pkcs11Uri) -> Result<[u8; 32], Pkcs11Error> {
    let what = uri.describe();
    let existing = session
        .find_objects(&key_template(uri, ObjectClass::PRIVATE_KEY))
        .map_err(|error| Pkcs11Error::Token {
            context: format!("searching {what}"),
            error,
        })?;
    if !existing.is_empty() {
        return Err(Pkcs11Error::KeyExists(what));
    }
    let mut common = Vec::new();
    if let Some(label) = &uri.object {
        common.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        common.push(Attribute::Id(id.clone()));
    }
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(ED25519_OID.to_vec()),
    ];
    public.extend(common.iter().cloned());
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ];
    private.extend(common);
    let generate = |public: &[Attribute]| {
        session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, public, &private)
    };
    let (pub_handle, _) = match generate(&public) {
        Ok(pair) => pair,
        // Older tokens name the curve instead of giving its OID.
        Err(_) => {
            public[2] = Attribute::EcParams(ED25519_NAME.to_vec());
            generate(&public).map_err(|error| Pkcs11Error::Token {
                context: format!("generating an Ed25519 key pair in {what}"),
                error,
            })?
        }
    };
    let point = session
        .get_attributes(pub_handle, &[AttributeType::EcPoint])
        .map_err(|error| Pkcs11Error::Token {
            context: format!("reading the new public key of {what}"),
            error,
        })?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .unwrap_or_default();
    ec_point_to_ed25519(&point).ok_or_else(|| {
        Pkcs11Error::NotEd25519(format!("{what}: the token returned no 32-byte public key"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_forms() {
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(&[7; 32]);
        assert_eq!(ec_point_to_ed25519(&der), Some([7; 32]));
        assert_eq!(ec_point_to_ed25519(&[9; 32]), Some([9; 32]));
        assert_eq!(ec_point_to_ed25519(&der[..33]), None);
        assert_eq!(ec_point_to_ed25519(&[]), None);
        assert!(is_ed25519_params(ED25519_OID));
        assert!(is_ed25519_params(ED25519_NAME));
        assert!(!is_ed25519_params(b"\x13\x0aedwards448"));
    }
}

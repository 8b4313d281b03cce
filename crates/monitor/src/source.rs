//! Where a log's resources come from: an HTTP(S) prefix or a local
//! directory in the tlog-tiles layout. Nothing here is trusted: a source
//! only returns bytes, bounded in size, and says why it could not.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evault_merkle::tiles::{TILE_WIDTH, TileId, TileReader, entries_path};
use flate2::read::GzDecoder;

/// Largest checkpoint note accepted: the text and up to 100 signature lines
/// (C2SP signed-note) fit many times over.
pub const MAX_CHECKPOINT: usize = 64 * 1024;
/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with its
/// 2-byte length (C2SP tlog-tiles).
pub const MAX_BUNDLE: usize = TILE_WIDTH as usize * (2 + u16::MAX as usize);

/// Why a resource could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The source answered that the resource does not exist (HTTP 404, or
    /// no such file).
    NotFound(String),
    /// The source answered with another error (HTTP 4xx/5xx).
    Refused(String),
    /// The source could not be reached or read (connection, timeout, I/O).
    Unreachable(String),
    /// The body is longer than the bound for its kind of resource.
    TooLarge {
        /// What was fetched.
        what: String,
        /// The bound, in bytes.
        limit: usize,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NotFound(m) | FetchError::Refused(m) | FetchError::Unreachable(m) => {
                f.write_str(m)
            }
            FetchError::TooLarge { what, limit } => {
                write!(f, "{what} is larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// A log's static resources, by path relative to its prefix
/// (`checkpoint`, `tile/0/000.p/7`, `tile/entries/000`).
pub trait LogSource {
    /// The prefix, for messages.
    fn describe(&self) -> String;
    /// The resource at `path`, at most `limit` bytes once decoded.
    fn get(&self, path: &str, limit: usize) -> Result<Vec<u8>, FetchError>;
}

/// Opens the source a prefix names: `http://…` or `https://…` (the token,
/// if any, is sent as a Bearer token), `file://…`, or a directory path.
pub fn open_source(
    prefix: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Box<dyn LogSource>, String> {
    if prefix.starts_with("http://") || prefix.starts_with("https://") {
        return Ok(Box::new(HttpSource::new(prefix, token, timeout)));
    }
    if let Some(path) = prefix.strip_prefix("file://") {
        return Ok(Box::new(DirSource::new(path)));
    }
    if prefix.contains("://") {
        return Err(format!(
            "log prefix {prefix:?}: only http://, https://, file:// and directory paths are supported"
        ));
    }
    Ok(Box::new(DirSource::new(prefix)))
}

/// The canonical form of a prefix as the state file keeps it: a URL with
/// one trailing slash, or an absolute directory path.
pub fn normalize_prefix(prefix: &str) -> Result<String, String> {
    if prefix.is_empty() {
        return Err("empty log prefix".into());
    }
    if prefix.starts_with("http://") || prefix.starts_with("https://") {
        return Ok(format!("{}/", prefix.trim_end_matches('/')));
    }
    let path = prefix.strip_prefix("file://").unwrap_or(prefix);
    if prefix.contains("://") && !prefix.starts_with("file://") {
        return Err(format!(
            "log prefix {prefix:?}: only http://, https://, file:// and directory paths are supported"
        ));
    }
    let abs = std::path::absolute(path).map_err(|e| format!("log prefix {prefix:?}: {e}"))?;
    Ok(abs.display().to_string())
}

/// A log served over HTTP(S).
pub struct HttpSource {
    prefix: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl HttpSource {
    /// A source at `prefix`; every request gives up after `timeout`.
    pub fn new(prefix: &str, token: Option<&str>, timeout: Duration) -> HttpSource {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("evault-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpSource {
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            token: token.map(str::to_string),
            agent,
        }
    }
}

/// A short description of an error reply: its problem+json title and
/// detail when it has them, else its first line.
fn describe_reply(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let title = v.get("title").and_then(|t| t.as_str()).unwrap_or("error");
        return match v.get("detail").and_then(|d| d.as_str()) {
            Some(d) => format!("{status} {title}: {d}"),
            None => format!("{status} {title}"),
        };
    }
    let first = text.lines().next().unwrap_or("").trim();
    let first: String = first.chars().take(200).collect();
    if first.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {first}")
    }
}

impl LogSource for HttpSource {
    fn describe(&self) -> String {
        self.prefix.clone()
    }

    fn get(&self, path: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}{path}", self.prefix);
        // C2SP tlog-tiles: clients SHOULD accept gzip and identity.
        let mut req = self
            .agent
            .get(&url)
            .header("Accept-Encoding", "gzip, identity");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req
            .call()
            .map_err(|e| FetchError::Unreachable(format!("GET {url}: {e}")))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_vec()
                .unwrap_or_default();
            let msg = format!("GET {url}: {}", describe_reply(status, &body));
            return Err(if status == 404 {
                FetchError::NotFound(msg)
            } else {
                FetchError::Refused(msg)
            });
        }
        let gzip = resp
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        // Compressed bytes of incompressible data are a little longer than
        // the data; the decoded length is bounded separately below.
        let raw_limit = if gzip {
            limit + limit / 64 + 1024
        } else {
            limit
        };
        let raw = resp
            .body_mut()
            .with_config()
            .limit(raw_limit as u64 + 1)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge {
                    what: url.clone(),
                    limit,
                },
                e => FetchError::Unreachable(format!("GET {url}: reading the body: {e}")),
            })?;
        if raw.len() > raw_limit {
            return Err(FetchError::TooLarge { what: url, limit });
        }
        let data = if gzip {
            let mut out = Vec::new();
            GzDecoder::new(raw.as_slice())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| FetchError::Refused(format!("GET {url}: bad gzip body: {e}")))?;
            out
        } else {
            raw
        };
        if data.len() > limit {
            return Err(FetchError::TooLarge { what: url, limit });
        }
        Ok(data)
    }
}

/// A log laid out in a local directory (or a mounted copy of one).
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// A source over the directory `root`.
    pub fn new(root: impl AsRef<Path>) -> DirSource {
        DirSource {
            root: root.as_ref().to_path_buf(),
        }
    }
}

impl LogSource for DirSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn get(&self, path: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        let file = self.root.join(path);
        let shown = file.display().to_string();
        let f = std::fs::File::open(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FetchError::NotFound(format!("{shown}: not found")),
            _ => FetchError::Unreachable(format!("{shown}: {e}")),
        })?;
        let mut data = Vec::new();
        f.take(limit as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| FetchError::Unreachable(format!("{shown}: {e}")))?;
        if data.len() > limit {
            return Err(FetchError::TooLarge { what: shown, limit });
        }
        Ok(data)
    }
}

/// The log's current checkpoint note, as served.
pub fn fetch_checkpoint(src: &dyn LogSource) -> Result<Vec<u8>, FetchError> {
    src.get("checkpoint", MAX_CHECKPOINT)
}

/// Fetches `path`; if a partial resource is gone, its full counterpart
/// (C2SP tlog-tiles lets a log delete a partial tile once the full one
/// exists, and lets clients fall back to the full one), cut to `width`
/// items by `cut`. What comes back is unverified.
fn with_full_fallback(
    src: &dyn LogSource,
    partial: bool,
    path: &str,
    full_path: &str,
    limit: usize,
    full_limit: usize,
    cut: impl Fn(Vec<u8>) -> Vec<u8>,
) -> Result<Vec<u8>, FetchError> {
    match src.get(path, limit) {
        Err(FetchError::NotFound(msg)) if partial => match src.get(full_path, full_limit) {
            Ok(full) => Ok(cut(full)),
            Err(FetchError::NotFound(_)) => Err(FetchError::NotFound(msg)),
            Err(e) => Err(e),
        },
        other => other,
    }
}

/// The contents of hash tile `tile`, unverified. Anything but exactly
/// `tile.byte_len()` bytes is for the caller to refuse.
pub fn fetch_tile(src: &dyn LogSource, tile: TileId) -> Result<Vec<u8>, FetchError> {
    let full = TileId {
        width: TILE_WIDTH,
        ..tile
    };
    let want = tile.byte_len();
    with_full_fallback(
        src,
        tile.is_partial(),
        &tile.path(),
        &full.path(),
        want,
        full.byte_len(),
        |mut data| {
            // A full tile of the right size starts with the partial one.
            if data.len() == full.byte_len() {
                data.truncate(want);
            }
            data
        },
    )
}

/// The entry bundle `index` at `width` entries, unverified.
pub fn fetch_bundle(src: &dyn LogSource, index: u64, width: u16) -> Result<Vec<u8>, FetchError> {
    with_full_fallback(
        src,
        width < TILE_WIDTH,
        &entries_path(index, width),
        &entries_path(index, TILE_WIDTH),
        MAX_BUNDLE,
        MAX_BUNDLE,
        // The caller reads only the first `width` entries of a full bundle.
        |data| data,
    )
}

/// Serves tiles to `evault_merkle`'s tile reader (used to diagnose a
/// mismatch, never to accept a tree).
pub(crate) struct SourceTiles<'a>(pub &'a dyn LogSource);

impl TileReader for SourceTiles<'_> {
    type Error = FetchError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, FetchError> {
        tiles.iter().map(|t| fetch_tile(self.0, *t)).collect()
    }
}

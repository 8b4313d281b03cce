//! A tlog-tiles log written by the test (tiles from `evault-merkle`,
//! checkpoint signed with `evault-note`), and a tiny static HTTP server
//! over a directory that the test can tamper with.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use evault_merkle::tiles::{TILE_WIDTH, TileBuilder, encode_entry_bundle, entries_path};
use evault_merkle::{Hash, leaf_hash};
use evault_note::{
    Checkpoint, Ed25519Signer, MlDsaCosigner, Signer, generate_ed25519, generate_mldsa44, sign,
};

/// A log in tlog-tiles layout under `dir`, grown by [`TestLog::append`].
pub struct TestLog {
    pub dir: PathBuf,
    pub origin: String,
    pub signer: Box<dyn Signer>,
    /// The signer key text, to sign a fork with the same key.
    pub skey: String,
    pub vkey: String,
    /// Keys that sign each checkpoint after `signer` (e.g. ML-DSA-44 beside
    /// Ed25519).
    pub also: Vec<Box<dyn Signer>>,
    builder: TileBuilder,
    entries: Vec<Vec<u8>>,
}

impl TestLog {
    /// An empty log with a fresh key named after `origin`.
    pub fn new(dir: &Path, origin: &str) -> TestLog {
        let (skey, _) = generate_ed25519(origin).expect("key");
        TestLog::with_key(dir, origin, skey.expose_secret())
    }

    /// An empty log with a fresh ML-DSA-44 key (C2SP tlog-checkpoint's
    /// recommendation for a log's own signature; timestamp 0).
    pub fn new_mldsa(dir: &Path, origin: &str) -> TestLog {
        let (skey, _) = generate_mldsa44(origin).expect("key");
        TestLog::with_key(dir, origin, skey.expose_secret())
    }

    /// An empty log signed by the signer key `skey`, Ed25519 or ML-DSA-44
    /// (a fork shares it).
    pub fn with_key(dir: &Path, origin: &str, skey: &str) -> TestLog {
        let signer: Box<dyn Signer> = match Ed25519Signer::from_signer_key(skey) {
            Ok(s) => Box::new(s),
            Err(_) => Box::new(
                MlDsaCosigner::from_signer_key(skey)
                    .expect("signer")
                    .with_fixed_timestamp(0),
            ),
        };
        std::fs::create_dir_all(dir).expect("log dir");
        let vkey = signer.verifier_key().as_str().to_string();
        TestLog {
            dir: dir.to_path_buf(),
            origin: origin.to_string(),
            signer,
            skey: skey.to_string(),
            vkey,
            also: Vec::new(),
            builder: TileBuilder::new(),
            entries: Vec::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.builder.size()
    }

    pub fn root(&self) -> Hash {
        self.builder.root()
    }

    /// Appends entries: writes every tile and entry bundle they touched
    /// (earlier partial ones stay, as a log keeps them for old
    /// checkpoints) and a new signed checkpoint; returns the note.
    pub fn append(&mut self, entries: &[Vec<u8>]) -> String {
        let old = self.size();
        let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        for (tile, data) in self.builder.append(&hashes) {
            self.write(&tile.path(), &data);
        }
        self.entries.extend_from_slice(entries);
        let size = self.size();
        let tile = TILE_WIDTH as u64;
        for index in old / tile..size.div_ceil(tile) {
            let begin = (index * tile) as usize;
            let end = ((index + 1) * tile).min(size) as usize;
            let bundle = encode_entry_bundle(&self.entries[begin..end]).expect("bundle");
            self.write(&entries_path(index, (end - begin) as u16), &bundle);
        }
        let note = self.sign(size, self.root());
        self.write("checkpoint", note.as_bytes());
        note
    }

    /// A checkpoint note for any size and root, signed by the log's key.
    pub fn sign(&self, size: u64, root: Hash) -> String {
        let text = Checkpoint::new(self.origin.clone(), size, root).to_text();
        let signers: Vec<&dyn Signer> = std::iter::once(self.signer.as_ref())
            .chain(self.also.iter().map(|s| s.as_ref()))
            .collect();
        sign(&text, &signers).expect("sign")
    }

    /// Writes `data` at `path` under the log directory.
    pub fn write(&self, path: &str, data: &[u8]) {
        let file = self.dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, data).expect("write");
    }

    pub fn read(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(path)).expect("read")
    }

    /// Flips one bit of byte `offset` of the file at `path`.
    pub fn flip(&self, path: &str, offset: usize) {
        let mut data = self.read(path);
        data[offset] ^= 0x01;
        self.write(path, &data);
    }
}

/// `n` entries that are not evault records: binary, of varying length
/// (some empty), different for each `seed`.
pub fn opaque_entries(seed: u8, start: usize, n: usize) -> Vec<Vec<u8>> {
    (start..start + n)
        .map(|i| {
            let len = i % 37;
            (0..len)
                .map(|j| (i as u8) ^ (j as u8).wrapping_mul(31) ^ seed)
                .collect()
        })
        .collect()
}

/// A request the server saw: path and whether it carried a bearer token.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub bearer: Option<String>,
}

/// Serves files under `root` over HTTP/1.1, one connection at a time,
/// `Connection: close`. Entry bundles are gzip-encoded when asked.
pub struct StaticServer {
    pub url: String,
    pub gzip: Arc<AtomicBool>,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl StaticServer {
    pub fn start(root: &Path) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let gzip = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, h, s, root) = (gzip.clone(), hits.clone(), stop.clone(), root.to_path_buf());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve_one(stream, &root, g.load(Ordering::SeqCst), &h);
                }
            }
        });
        StaticServer {
            url: format!("http://{addr}/"),
            gzip,
            hits,
            stop,
            addr,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_one(
    stream: TcpStream,
    root: &Path,
    gzip: bool,
    hits: &Mutex<Vec<Hit>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut bearer = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            bearer = v.trim().strip_prefix("Bearer ").map(str::to_string);
        }
    }
    hits.lock().expect("hits").push(Hit {
        path: path.clone(),
        bearer,
    });
    let file = root.join(&path);
    let mut out = stream;
    let body = (!path.contains("..") && file.is_file())
        .then(|| std::fs::read(&file).ok())
        .flatten();
    match body {
        Some(body) => {
            let (body, enc) = if gzip && path.starts_with("tile/entries/") {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&body)?;
                (e.finish()?, "Content-Encoding: gzip\r\n")
            } else {
                (body, "")
            };
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{enc}\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        }
        None => {
            let body = b"not found\n";
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
        }
    }
    out.flush()
}

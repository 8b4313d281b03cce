//! Evidence bundles: a genuine bundle round-trips and verifies, is byte for
//! byte reproducible, a byte flipped in any kind of member is caught and
//! named, and hostile archives are refused with a typed error.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use evault_merkle::MemoryTree;
use evault_note::{Checkpoint, Ed25519Signer, Verifiers, sign};
use evault_verify::evb::{
    self, BundleContents, BundleEntry, Check, NewerCheckpoint, NoPayloadSink, PayloadSource,
    ReadError, ReadLimits, Selection,
};
use evault_verify::evidence::hex;
use evault_verify::{ConsistencyProof, Evidence};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "vault.example/log";

fn payload(i: u64) -> Vec<u8> {
    format!("payload of record {i}").into_bytes()
}

fn record(i: u64) -> Evidence {
    let p = payload(i);
    Evidence {
        id: format!("01936f0e-8f3a-7cc2-9b1e-{i:012x}"),
        leaf_index: i,
        content_type: "text/plain".into(),
        sha256: hex(&Sha256::digest(&p)),
        size: p.len() as u64,
        labels: BTreeMap::from([(
            "team".to_string(),
            if i.is_multiple_of(2) { "a" } else { "b" }.to_string(),
        )]),
        ingested_at: format!("2026-11-23T11:30:{:02}.000Z", i % 60),
        ingested_by: "sa:ci".into(),
        idempotency_key: None,
    }
}

struct Payloads;

impl PayloadSource for Payloads {
    fn open(&mut self, record: &Evidence) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(io::Cursor::new(payload(record.leaf_index))))
    }
}

struct Fixture {
    contents: BundleContents,
    verifiers: Verifiers,
    /// A newer checkpoint (size 50) the bundle's is consistent with.
    newer: String,
    /// A still newer one (size 60) the bundle carries no proof to.
    newest: String,
}

fn fixture() -> Fixture {
    let signer = Ed25519Signer::from_seed(ORIGIN, &[9; 32]).unwrap();
    let verifiers = Verifiers::new().with(signer.verifier()).unwrap();
    let mut tree = MemoryTree::new();
    for i in 0..60 {
        tree.push(record(i).leaf_hash().unwrap());
    }
    let note = |size: u64| {
        let cp = Checkpoint::new(ORIGIN, size, tree.root_at(size).unwrap());
        sign(&cp.to_text(), &[&signer]).unwrap()
    };
    let selection = Selection {
        leaf_from: Some(5),
        leaf_to: Some(25),
        labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
        payloads: true,
        ..Selection::default()
    };
    let entries = (6..25)
        .step_by(2)
        .map(|i| BundleEntry {
            record: record(i),
            inclusion_proof: tree.inclusion_proof(i, 40).unwrap(),
        })
        .collect();
    let proof = ConsistencyProof {
        from: 40,
        to: 50,
        proof: tree
            .consistency_proof(40, 50)
            .unwrap()
            .iter()
            .map(|h| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(h)
            })
            .collect(),
    };
    Fixture {
        contents: BundleContents {
            checkpoint: note(40),
            selection,
            entries,
            erasures: Vec::new(),
            newer: Some(NewerCheckpoint {
                checkpoint: note(50),
                proof,
            }),
        },
        verifiers,
        newer: note(50),
        newest: note(60),
    }
}

fn write(contents: &BundleContents) -> Vec<u8> {
    let mut out = Vec::new();
    evb::write_bundle(&mut out, contents, Some(&mut Payloads)).unwrap();
    out
}

fn read(bytes: &[u8]) -> Result<evb::ReadBundle, ReadError> {
    evb::read_bundle(bytes, &ReadLimits::default(), &mut NoPayloadSink)
}

#[test]
fn round_trip_verifies() {
    let f = fixture();
    let bytes = write(&f.contents);
    assert!(evb::is_bundle(&bytes));
    let bundle = read(&bytes).unwrap();
    assert_eq!(bundle.manifest.format, evb::BUNDLE_FORMAT);
    assert_eq!(bundle.manifest.records, 10);
    assert_eq!(bundle.payloads.len(), 10);
    let report = evb::verify_bundle(&bundle, &f.verifiers, Some(ORIGIN), None);
    assert!(report.verified, "{report:#?}");
    assert_eq!((report.tree_size, report.records), (40, 10));
    assert_eq!(report.signed_by, vec![ORIGIN.to_string()]);
    assert_eq!(report.consistency.len(), 1);
    assert_eq!(
        (report.consistency[0].to, report.consistency[0].source),
        (50, "bundle")
    );
    let ids: Vec<_> = report
        .entries
        .iter()
        .map(|r| r.leaf_index.unwrap())
        .collect();
    assert_eq!(ids, (6..25).step_by(2).collect::<Vec<_>>());

    // The newer checkpoint given by the caller is the one the bundle proves.
    let r = evb::verify_bundle(&bundle, &f.verifiers, None, Some(&f.newer));
    assert!(r.verified, "{r:#?}");
    assert_eq!(
        r.consistency.last().map(|c| (c.to, c.source)),
        Some((50, "given"))
    );
    // The bundle's own checkpoint, given again: equal roots suffice.
    let r = evb::verify_bundle(&bundle, &f.verifiers, None, Some(&f.contents.checkpoint));
    assert!(r.verified, "{r:#?}");
    // One the bundle has no proof for: said so, and not verified.
    let r = evb::verify_bundle(&bundle, &f.verifiers, None, Some(&f.newest));
    assert!(!r.verified);
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    assert_eq!(r.failures[0].check, Check::ConsistencyUnavailable);
    assert!(
        r.failures[0].detail.contains("size 60"),
        "{}",
        r.failures[0].detail
    );

    // A sink sees every payload's exact bytes (what an import stores).
    struct Keep(BTreeMap<String, Vec<u8>>);
    impl evb::PayloadSink for Keep {
        fn payload(&mut self, sha256: &str, data: &mut dyn Read) -> io::Result<()> {
            let mut v = Vec::new();
            data.read_to_end(&mut v)?;
            self.0.insert(sha256.to_string(), v);
            Ok(())
        }
    }
    let mut keep = Keep(BTreeMap::new());
    evb::read_bundle(&bytes[..], &ReadLimits::default(), &mut keep).unwrap();
    for e in &f.contents.entries {
        assert_eq!(keep.0[&e.record.sha256], payload(e.record.leaf_index));
    }

    // Without payloads and without a newer checkpoint, too.
    let mut lean = f.contents.clone();
    lean.selection.payloads = false;
    lean.newer = None;
    let mut out = Vec::new();
    evb::write_bundle(&mut out, &lean, None).unwrap();
    let b = read(&out).unwrap();
    assert!(b.payloads.is_empty() && b.consistency.is_none());
    let r = evb::verify_bundle(&b, &f.verifiers, None, None);
    assert!(r.verified, "{r:#?}");
    let r = evb::verify_bundle(&b, &f.verifiers, None, Some(&f.newer));
    assert_eq!(r.failures[0].check, Check::ConsistencyUnavailable);
    assert!(r.failures[0].detail.contains("carries none"));
}

#[test]
fn writes_are_reproducible_and_headers_fixed() {
    let f = fixture();
    let a = write(&f.contents);
    let b = write(&f.contents);
    assert_eq!(a, b);
    let tar = zstd::decode_all(&a[..]).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert!(h.as_ustar().is_some());
        names.push(String::from_utf8(e.path_bytes().to_vec()).unwrap());
    }
    assert_eq!(
        &names[..6],
        [
            "manifest.json",
            "checkpoint",
            "records.jsonl",
            "proofs.jsonl",
            "newer-checkpoint",
            "consistency.json"
        ]
    );
    let payloads = &names[6..];
    assert_eq!(payloads.len(), 10);
    assert!(payloads.windows(2).all(|w| w[0] < w[1]), "sorted by digest");
    // A different input gives different bytes.
    let mut other = f.contents.clone();
    other.entries.pop();
    assert_ne!(write(&other), a);
}

/// Decompresses `bundle`, lets `edit` change the bytes of member `name`,
/// and compresses it again (as an attacker who rewrites a bundle would).
fn tamper(bundle: &[u8], name: &str, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut tar = zstd::decode_all(bundle).unwrap();
    let (start, len) = {
        let mut archive = tar::Archive::new(&tar[..]);
        let found = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path_bytes() == name.as_bytes())
            .expect("member");
        (found.raw_file_position() as usize, found.size() as usize)
    };
    edit(&mut tar[start..start + len]);
    zstd::encode_all(&tar[..], 3).unwrap()
}

/// Flips the lowest bit of the byte `skip` bytes after the first `needle`.
fn flip_after(data: &mut [u8], needle: &str, skip: usize) {
    let at = data
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("needle")
        + needle.len()
        + skip;
    data[at] ^= 1;
}

fn nth_line_start(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    data.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i + 1)
        .unwrap()
}

#[test]
fn a_flipped_byte_in_each_kind_of_member_is_caught_and_named() {
    let f = fixture();
    let good = write(&f.contents);
    let verify = |bytes: &[u8]| {
        let b = read(bytes).expect("still a well-formed archive");
        evb::verify_bundle(&b, &f.verifiers, Some(ORIGIN), None)
    };
    let has = |r: &evb::BundleReport, check: Check, member: &str| {
        r.failures
            .iter()
            .any(|x| x.check == check && x.member.as_deref() == Some(member))
    };

    // Manifest: the root it states.
    let r = verify(&tamper(&good, "manifest.json", |d| {
        flip_after(d, "\"root_hash\":\"", 3)
    }));
    assert!(!r.verified);
    assert!(
        has(&r, Check::Manifest, "manifest.json"),
        "{:#?}",
        r.failures
    );
    // Manifest: a member's digest.
    let r = verify(&tamper(&good, "manifest.json", |d| {
        flip_after(d, "\"name\":\"proofs.jsonl\"", 30)
    }));
    assert!(
        has(&r, Check::MemberDigest, "proofs.jsonl"),
        "{:#?}",
        r.failures
    );

    // Checkpoint: a byte of its root line breaks the signature.
    let r = verify(&tamper(&good, "checkpoint", |d| flip_after(d, "\n40\n", 2)));
    assert!(!r.verified);
    assert!(
        has(&r, Check::Checkpoint, "checkpoint"),
        "{:#?}",
        r.failures
    );
    assert!(has(&r, Check::MemberDigest, "checkpoint"));

    // A record: the fourth one's submitter.
    let r = verify(&tamper(&good, "records.jsonl", |d| {
        let at = nth_line_start(d, 3);
        flip_after(&mut d[at..], "\"ingested_by\":\"sa:c", 0)
    }));
    assert!(!r.verified);
    assert!(has(&r, Check::MemberDigest, "records.jsonl"));
    let bad: Vec<_> = r.failed_records().collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0].leaf_index, Some(12));
    assert_eq!(bad[0].id.as_deref(), Some(record(12).id.as_str()));
    assert_eq!(bad[0].failures[0].check, Check::Inclusion);

    // A record that no longer parses (a member name changed) is still
    // named by its id and leaf index.
    let r = verify(&tamper(&good, "records.jsonl", |d| {
        flip_after(d, "\"ingested_b", 0)
    }));
    let bad: Vec<_> = r.failed_records().collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0].id.as_deref(), Some(record(6).id.as_str()));
    assert_eq!((bad[0].leaf_index, bad[0].line), (Some(6), 1));
    assert_eq!(bad[0].failures[0].check, Check::Record);

    // A proof: the second record's first hash.
    let r = verify(&tamper(&good, "proofs.jsonl", |d| {
        let at = nth_line_start(d, 1);
        flip_after(&mut d[at..], "\"inclusion_proof\":[\"", 5)
    }));
    let bad: Vec<_> = r.failed_records().collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0].leaf_index, Some(8));
    assert!(matches!(
        bad[0].failures[0].check,
        Check::Inclusion | Check::Proof
    ));
    assert!(has(&r, Check::MemberDigest, "proofs.jsonl"));

    // A payload: record 20's.
    let member = evb::payload_member(&record(20).sha256);
    let r = verify(&tamper(&good, &member, |d| d[0] ^= 1));
    let bad: Vec<_> = r.failed_records().collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0].leaf_index, Some(20));
    assert_eq!(bad[0].failures[0].check, Check::Payload);
    assert_eq!(bad[0].failures[0].member.as_deref(), Some(member.as_str()));
    assert!(has(&r, Check::MemberDigest, &member));

    // The consistency proof.
    let r = verify(&tamper(&good, "consistency.json", |d| {
        flip_after(d, "\"proof\":[\"", 2)
    }));
    assert!(
        has(&r, Check::Consistency, "newer-checkpoint"),
        "{:#?}",
        r.failures
    );
    assert!(has(&r, Check::MemberDigest, "consistency.json"));
    assert!(
        r.entries.iter().all(|e| e.ok),
        "records themselves still verify"
    );

    // The newer checkpoint.
    let r = verify(&tamper(&good, "newer-checkpoint", |d| {
        flip_after(d, "\n50\n", 2)
    }));
    assert!(
        has(&r, Check::Consistency, "newer-checkpoint"),
        "{:#?}",
        r.failures
    );

    // The wrong key: the checkpoint is named, every record still reported.
    let other = Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap();
    let wrong = Verifiers::new().with(other.verifier()).unwrap();
    let r = evb::verify_bundle(&read(&good).unwrap(), &wrong, None, None);
    assert!(!r.verified);
    assert!(has(&r, Check::Checkpoint, "checkpoint"));
    assert!(
        r.failures
            .iter()
            .any(|x| x.detail.contains("not signed by the given key"))
    );
}

/// A raw ustar member: header (name as given, any type, any declared size)
/// and data padded to 512 bytes.
fn member(name: &[u8], kind: tar::EntryType, data: &[u8], declared: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(declared);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn regular(name: &str, data: &[u8]) -> Vec<u8> {
    member(
        name.as_bytes(),
        tar::EntryType::Regular,
        data,
        data.len() as u64,
    )
}

fn compress(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut tar: Vec<u8> = parts.concat();
    tar.extend_from_slice(&[0; 1024]);
    zstd::encode_all(&tar[..], 3).unwrap()
}

/// The members of a genuine bundle, by name.
fn genuine_members() -> BTreeMap<String, Vec<u8>> {
    let f = fixture();
    let mut c = f.contents;
    c.newer = None;
    c.selection.payloads = false;
    let tar = zstd::decode_all(&write(&c)[..]).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (String::from_utf8(e.path_bytes().to_vec()).unwrap(), data)
        })
        .collect()
}

#[test]
fn hostile_archives_are_refused_with_clear_errors() {
    let g = genuine_members();
    let m = |name: &str| regular(name, &g[name]);
    let err = |bytes: Vec<u8>| read(&bytes).expect_err("must be refused");

    let e = err(compress(&[regular("../x", b"owned")]));
    assert!(
        matches!(&e, ReadError::PathTraversal(n) if n == "../x"),
        "{e}"
    );
    let e = err(compress(&[
        m("manifest.json"),
        regular("a/../../x", b"owned"),
    ]));
    assert!(matches!(&e, ReadError::PathTraversal(_)), "{e}");
    // The same path given by a pax extended header or a GNU long name.
    let e = err(compress(&[
        m("manifest.json"),
        member(b"PaxHeader", tar::EntryType::XHeader, b"13 path=../x\n", 13),
        m("checkpoint"),
    ]));
    assert!(
        matches!(&e, ReadError::PathTraversal(n) if n == "../x"),
        "{e}"
    );
    let e = err(compress(&[
        m("manifest.json"),
        member(
            b"././@LongLink",
            tar::EntryType::GNULongName,
            b"../../y\0",
            8,
        ),
        m("checkpoint"),
    ]));
    assert!(
        matches!(&e, ReadError::PathTraversal(n) if n == "../../y"),
        "{e}"
    );
    let e = err(compress(&[regular("/etc/passwd", b"owned")]));
    assert!(
        matches!(&e, ReadError::AbsolutePath(n) if n == "/etc/passwd"),
        "{e}"
    );

    let e = err(compress(&[
        m("manifest.json"),
        member(b"checkpoint", tar::EntryType::Symlink, b"", 0),
    ]));
    assert!(
        matches!(&e, ReadError::NotARegularFile { name, kind } if name == "checkpoint" && kind == "symbolic link"),
        "{e}"
    );
    let e = err(compress(&[
        m("manifest.json"),
        member(b"checkpoint", tar::EntryType::Link, b"", 0),
    ]));
    assert!(
        matches!(&e, ReadError::NotARegularFile { kind, .. } if kind == "hard link"),
        "{e}"
    );
    let e = err(compress(&[member(
        b"manifest.json",
        tar::EntryType::Directory,
        b"",
        0,
    )]));
    assert!(matches!(&e, ReadError::NotARegularFile { .. }), "{e}");

    // A member declaring 10 GB: refused from its header, nothing read.
    let mut huge = member(b"checkpoint", tar::EntryType::Regular, b"", 10 << 30);
    huge.truncate(512);
    let e = err(compress(&[m("manifest.json"), huge]));
    assert!(
        matches!(&e, ReadError::MemberTooLarge { name, size, .. } if name == "checkpoint" && *size == 10 << 30),
        "{e}"
    );
    // A manifest declaring 10 GB.
    let mut huge = member(b"manifest.json", tar::EntryType::Regular, b"", 10 << 30);
    huge.truncate(512);
    let e = err(compress(&[huge]));
    assert!(matches!(&e, ReadError::MemberTooLarge { .. }), "{e}");

    let e = err(compress(&[
        m("manifest.json"),
        m("checkpoint"),
        m("checkpoint"),
    ]));
    assert!(
        matches!(&e, ReadError::Duplicate(n) if n == "checkpoint"),
        "{e}"
    );
    let e = err(compress(&[m("manifest.json"), m("manifest.json")]));
    assert!(
        matches!(&e, ReadError::Duplicate(n) if n == "manifest.json"),
        "{e}"
    );
    let e = err(compress(&[
        m("manifest.json"),
        m("checkpoint"),
        m("proofs.jsonl"),
    ]));
    assert!(
        matches!(&e, ReadError::Missing(n) if n == "records.jsonl"),
        "{e}"
    );
    let e = err(compress(&[m("manifest.json"), m("checkpoint")]));
    assert!(
        matches!(&e, ReadError::Missing(n) if n == "records.jsonl"),
        "{e}"
    );
    let e = err(compress(&[m("checkpoint")]));
    assert!(
        matches!(&e, ReadError::Missing(n) if n == "manifest.json"),
        "{e}"
    );
    let e = err(compress(&[
        m("manifest.json"),
        m("checkpoint"),
        m("records.jsonl"),
        m("proofs.jsonl"),
        regular("run.sh", b"#!/bin/sh"),
    ]));
    assert!(
        matches!(&e, ReadError::Unexpected(n) if n == "run.sh"),
        "{e}"
    );
    let e = err(compress(&[
        m("manifest.json"),
        regular("records.jsonl", b"x\n"),
    ]));
    assert!(
        matches!(&e, ReadError::Missing(n) if n == "checkpoint"),
        "{e}"
    );

    // Truncated anywhere: mid-frame, or after the magic only.
    let f = fixture();
    let whole = write(&f.contents);
    for cut in [whole.len() / 2, whole.len() - 1, 10, 3] {
        let e = err(whole[..cut].to_vec());
        assert!(matches!(e, ReadError::Truncated), "cut at {cut}: {e}");
    }
    // A whole zstd frame around a tar cut short (inside a member, inside
    // a header).
    let tar = zstd::decode_all(&whole[..]).unwrap();
    for cut in [700, 1027, (tar.len() / 2) | 1] {
        let e = err(zstd::encode_all(&tar[..cut], 3).unwrap());
        assert!(matches!(e, ReadError::Truncated), "tar cut at {cut}: {e}");
    }
    let e = err(br#"{"record": {}}"#.to_vec());
    assert!(matches!(e, ReadError::NotABundle), "{e}");
    // Data after the archive's end.
    let mut tar = zstd::decode_all(&whole[..]).unwrap();
    tar.extend_from_slice(b"more");
    let e = err(zstd::encode_all(&tar[..], 3).unwrap());
    assert!(matches!(e, ReadError::TrailingData), "{e}");
}

#[test]
fn a_zstd_bomb_stops_at_the_ratio_limit() {
    // A manifest that lists a 3 GiB payload, then 3 GiB of zeros that
    // compress to almost nothing: the reader must stop early.
    let g = genuine_members();
    let mut manifest: evb::Manifest = serde_json::from_slice(&g["manifest.json"]).unwrap();
    let size: u64 = 3 << 30;
    let sha = hex(&[0u8; 32]);
    manifest.members.push(evb::MemberDigest {
        name: evb::payload_member(&sha),
        size,
        sha256: sha.clone(),
    });
    manifest.payloads = 1;
    let mut mbytes = serde_json::to_vec(&manifest).unwrap();
    mbytes.push(b'\n');
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    for part in [
        regular("manifest.json", &mbytes),
        regular("checkpoint", &g["checkpoint"]),
        regular("records.jsonl", &g["records.jsonl"]),
        regular("proofs.jsonl", &g["proofs.jsonl"]),
    ] {
        enc.write_all(&part).unwrap();
    }
    let mut header = member(
        evb::payload_member(&sha).as_bytes(),
        tar::EntryType::Regular,
        b"",
        size,
    );
    header.truncate(512);
    enc.write_all(&header).unwrap();
    // 256 MiB of the 3 GiB is enough: the limit trips long before.
    io::copy(&mut io::repeat(0).take(256 << 20), &mut enc).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
    let e = read(&bomb).expect_err("bomb");
    assert!(
        matches!(e, ReadError::CompressionRatio { limit: 1000 }),
        "{e}"
    );

    // With a lower total limit, the total trips first.
    let limits = ReadLimits {
        max_total: 1 << 20,
        ..ReadLimits::default()
    };
    let e = evb::read_bundle(&bomb[..], &limits, &mut NoPayloadSink).expect_err("bomb");
    assert!(
        matches!(
            e,
            ReadError::TotalTooLarge { .. } | ReadError::MemberTooLarge { .. }
        ),
        "{e}"
    );
}

// A forger who rewrites members *and* re-seals the manifest (every listed
// size and digest made to match again) defeats the member digests, which
// only catch accidents: what the manifest cannot vouch for (records,
// proofs, payloads, selection) must still be caught by the checks of
// their meaning, each named with its record.

/// The full fixture (payloads, a newer checkpoint), written and read back.
fn genuine() -> (Fixture, evb::ReadBundle) {
    let f = fixture();
    let b = read(&write(&f.contents)).unwrap();
    (f, b)
}

/// Makes every manifest entry (size and SHA-256) and the manifest's own
/// bytes agree with the members as they now are.
fn reseal(b: &mut evb::ReadBundle) {
    let mut now: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut put = |name: &str, bytes: &[u8]| {
        now.insert(
            name.to_string(),
            (bytes.len() as u64, hex(&Sha256::digest(bytes))),
        );
    };
    put(evb::CHECKPOINT, &b.checkpoint);
    put(evb::RECORDS, &b.records);
    put(evb::PROOFS, &b.proofs);
    if let Some(e) = &b.erasures {
        put(evb::ERASURES, e);
    }
    if let Some(n) = &b.newer_checkpoint {
        put(evb::NEWER_CHECKPOINT, n);
    }
    if let Some(c) = &b.consistency {
        put(evb::CONSISTENCY, c);
    }
    for p in &b.payloads {
        now.insert(
            evb::payload_member(&p.name_sha256),
            (p.size, p.actual_sha256.clone()),
        );
    }
    b.manifest.members.retain(|m| now.contains_key(&m.name));
    for m in &mut b.manifest.members {
        (m.size, m.sha256) = now[&m.name].clone();
    }
    b.digests = now.into_iter().map(|(k, (_, d))| (k, d)).collect();
    b.manifest.payloads = b.payloads.len() as u64;
    b.manifest_bytes = serde_json::to_vec(&b.manifest).unwrap();
    b.manifest_bytes.push(b'\n');
}

/// The lines of a JSONL member, without their newlines.
fn jsonl(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn unjsonl(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// Rewrites line `i` of a JSONL member as JSON, by `edit`.
fn edit_line(bytes: &mut Vec<u8>, i: usize, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut lines = jsonl(bytes);
    let mut v: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
    edit(&mut v);
    lines[i] = v.to_string();
    *bytes = unjsonl(&lines);
}

/// Verifies `b` and returns the report, which must fail.
fn forged(f: &Fixture, b: &evb::ReadBundle) -> evb::BundleReport {
    let r = evb::verify_bundle(b, &f.verifiers, Some(ORIGIN), None);
    assert!(!r.verified, "a forgery verified: {r:#?}");
    // Re-sealing leaves no digest for the member check to catch.
    assert!(
        r.failures.iter().all(|x| x.check != Check::MemberDigest),
        "{:#?}",
        r.failures
    );
    r
}

/// `(line, check, detail)` of every record failure.
fn record_failures(r: &evb::BundleReport) -> Vec<(u64, Check, String)> {
    r.entries
        .iter()
        .flat_map(|e| {
            e.failures
                .iter()
                .map(|x| (e.line, x.check, x.detail.clone()))
        })
        .collect()
}

fn has(failures: &[(u64, Check, String)], line: u64, check: Check, words: &str) -> bool {
    failures
        .iter()
        .any(|(l, c, d)| *l == line && *c == check && d.contains(words))
}

#[test]
fn a_relabelled_record_fails_its_selection_and_its_inclusion() {
    let (f, mut b) = genuine();
    edit_line(&mut b.records, 2, |v| v["labels"]["team"] = "b".into());
    reseal(&mut b);
    let r = forged(&f, &b);
    let fs = record_failures(&r);
    assert!(
        has(
            &fs,
            3,
            Check::Selection,
            "does not carry the selected label team=a"
        ),
        "{fs:#?}"
    );
    assert!(has(&fs, 3, Check::Inclusion, "do not lead to"), "{fs:#?}");
    assert_eq!(r.failed_records().count(), 1, "{fs:#?}");
    assert_eq!(r.entries[2].leaf_index, Some(10));
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
}

#[test]
fn a_narrowed_selection_names_every_record_outside_it() {
    // Records are leaves 6, 8, …, 24; leaf i was ingested at second i.
    type Narrow = Box<dyn Fn(&mut Selection)>;
    let cases: Vec<(&str, Narrow, Vec<u64>)> = vec![
        (
            "is outside the selected range",
            Box::new(|s| s.leaf_to = Some(10)),
            (10..25).step_by(2).collect(),
        ),
        (
            "is outside the selected range",
            Box::new(|s| s.leaf_from = Some(20)),
            vec![6, 8, 10, 12, 14, 16, 18],
        ),
        (
            "is not the selected \"application/json\"",
            Box::new(|s| s.content_type = Some("application/json".into())),
            (6..25).step_by(2).collect(),
        ),
        (
            "before the selected 2026-11-23T11:30:20.000Z",
            Box::new(|s| s.since = Some("2026-11-23T11:30:20.000Z".into())),
            vec![6, 8, 10, 12, 14, 16, 18],
        ),
        (
            "not before the selected 2026-11-23T11:30:10.000Z",
            Box::new(|s| s.until = Some("2026-11-23T11:30:10.000Z".into())),
            (10..25).step_by(2).collect(),
        ),
        (
            "not the selected \"sa:other\"",
            Box::new(|s| s.ingested_by = Some("sa:other".into())),
            (6..25).step_by(2).collect(),
        ),
    ];
    for (words, narrow, outside) in cases {
        let (f, mut b) = genuine();
        narrow(&mut b.manifest.selection);
        reseal(&mut b);
        let r = forged(&f, &b);
        let failed: Vec<u64> = r.failed_records().filter_map(|e| e.leaf_index).collect();
        assert_eq!(failed, outside, "{words}");
        for e in r.failed_records() {
            assert_eq!(e.failures.len(), 1, "{:#?}", e.failures);
            assert_eq!(e.failures[0].check, Check::Selection);
            assert!(e.failures[0].detail.contains(words), "{:#?}", e.failures);
        }
    }

    // A time that would not order as the records' own form does.
    let (f, mut b) = genuine();
    b.manifest.selection.since = Some("yesterday".into());
    reseal(&mut b);
    let r = forged(&f, &b);
    assert!(
        r.failures.iter().any(|x| x.check == Check::Manifest
            && x.detail
                .contains("selection since \"yesterday\" is not of the form")),
        "{:#?}",
        r.failures
    );
}

#[test]
fn records_out_of_order_or_beyond_the_checkpoint_are_named() {
    let (f, mut b) = genuine();
    for member in [&mut b.records, &mut b.proofs] {
        let mut lines = jsonl(member);
        lines.swap(0, 1);
        *member = unjsonl(&lines);
    }
    reseal(&mut b);
    let fs = record_failures(&forged(&f, &b));
    assert!(
        has(&fs, 2, Check::Order, "leaf 6 does not follow leaf 8"),
        "{fs:#?}"
    );

    let (f, mut b) = genuine();
    edit_line(&mut b.records, 9, |v| v["leaf_index"] = 45.into());
    edit_line(&mut b.proofs, 9, |v| v["leaf_index"] = 45.into());
    reseal(&mut b);
    let fs = record_failures(&forged(&f, &b));
    assert!(
        has(
            &fs,
            10,
            Check::Order,
            "leaf 45 is beyond the checkpoint's size 40"
        ),
        "{fs:#?}"
    );
}

#[test]
fn forged_proof_lines_are_named() {
    // One proof line fewer than records.
    let (f, mut b) = genuine();
    let mut lines = jsonl(&b.proofs);
    lines.pop();
    b.proofs = unjsonl(&lines);
    reseal(&mut b);
    let r = forged(&f, &b);
    assert!(
        r.failures
            .iter()
            .any(|x| x.check == Check::Proof && x.detail == "9 proofs for 10 records"),
        "{:#?}",
        r.failures
    );
    assert!(has(&record_failures(&r), 10, Check::Proof, "no proof line"));

    // Not a proof line; a proof of another leaf; an element that is not a hash.
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|v| *v = serde_json::json!({"leaf": 1})),
            "not a valid proof line",
        ),
        (
            Box::new(|v| v["leaf_index"] = 8.into()),
            "the proof is for leaf 8, the record is leaf 6",
        ),
        (
            Box::new(|v| v["inclusion_proof"][0] = "AAAA".into()),
            "proof element 0 is not base64 of 32 bytes",
        ),
    ];
    for (edit, words) in cases {
        let (f, mut b) = genuine();
        edit_line(&mut b.proofs, 0, edit);
        reseal(&mut b);
        let r = forged(&f, &b);
        let fs = record_failures(&r);
        assert!(has(&fs, 1, Check::Proof, words), "{words}: {fs:#?}");
        assert_eq!(r.failed_records().count(), 1, "{fs:#?}");
    }
}

#[test]
fn forged_counts_lines_and_manifest_form_are_named() {
    let (f, mut b) = genuine();
    reseal(&mut b);
    b.manifest.records = 11;
    b.manifest_bytes = serde_json::to_vec(&b.manifest).unwrap();
    b.manifest_bytes.push(b'\n');
    let r = forged(&f, &b);
    assert!(
        r.failures
            .iter()
            .any(|x| x.detail == "10 records, the manifest says 11"),
        "{:#?}",
        r.failures
    );

    // The last record without its newline.
    let (f, mut b) = genuine();
    b.records.pop();
    reseal(&mut b);
    let r = forged(&f, &b);
    assert!(
        r.failures
            .iter()
            .any(|x| x.member.as_deref() == Some(evb::RECORDS)
                && x.detail == "the last line has no final newline"),
        "{:#?}",
        r.failures
    );

    // The same manifest, pretty-printed: bytes no check would cover.
    let (f, mut b) = genuine();
    b.manifest_bytes = serde_json::to_vec_pretty(&b.manifest).unwrap();
    let r = forged(&f, &b);
    assert!(
        r.failures
            .iter()
            .any(|x| x.check == Check::Manifest && x.detail.contains("canonical form")),
        "{:#?}",
        r.failures
    );

    // A member the manifest lists that was never read.
    let (f, mut b) = genuine();
    b.digests.remove(evb::PROOFS);
    let r = evb::verify_bundle(&b, &f.verifiers, None, None);
    assert!(
        r.failures.iter().any(|x| x.check == Check::MemberDigest
            && x.member.as_deref() == Some(evb::PROOFS)
            && x.detail == "not read"),
        "{:#?}",
        r.failures
    );
}

#[test]
fn forged_payloads_are_named_by_record_and_member() {
    // Other bytes under the record's digest; other length; gone; extra.
    let (f, mut b) = genuine();
    b.payloads[0].actual_sha256 = hex(&Sha256::digest(b"forged"));
    b.payloads[1].size += 1;
    let gone = b.payloads.remove(2).name_sha256;
    b.payloads.push(evb::PayloadSeen {
        name_sha256: hex(&[0xee; 32]),
        actual_sha256: hex(&[0xee; 32]),
        size: 1,
    });
    reseal(&mut b);
    let r = forged(&f, &b);
    let line_of = |sha: &str| {
        r.entries
            .iter()
            .zip(&f.contents.entries)
            .find(|(_, e)| e.record.sha256 == sha)
            .map(|(x, _)| x.line)
            .unwrap()
    };
    let fs = record_failures(&r);
    let p0 = &b.payloads[0].name_sha256;
    let p1 = &b.payloads[1].name_sha256;
    assert!(
        has(&fs, line_of(p0), Check::Payload, "the payload's SHA-256 is"),
        "{fs:#?}"
    );
    assert!(
        has(&fs, line_of(p1), Check::Payload, "the record says"),
        "{fs:#?}"
    );
    assert!(
        has(&fs, line_of(&gone), Check::Payload, "not in the bundle"),
        "{fs:#?}"
    );
    assert_eq!(r.failed_records().count(), 3, "{fs:#?}");
    assert!(
        r.failures.iter().any(|x| x.check == Check::Payload
            && x.member == Some(evb::payload_member(&hex(&[0xee; 32])))
            && x.detail == "no record in the bundle has this payload"),
        "{:#?}",
        r.failures
    );
}

#[test]
fn forged_consistency_and_forked_newer_checkpoints_are_refused() {
    let (f, mut b) = genuine();
    b.consistency = Some(b"[]".to_vec());
    reseal(&mut b);
    let r = forged(&f, &b);
    assert!(
        r.failures
            .iter()
            .any(|x| x.check == Check::Consistency
                && x.detail.starts_with("not a consistency proof")),
        "{:#?}",
        r.failures
    );

    // A given newer checkpoint that does not open, and one of a fork: the
    // same key signed another root for size 50.
    let (f, b) = genuine();
    let r = evb::verify_bundle(&b, &f.verifiers, None, Some("not a note"));
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    assert_eq!(r.failures[0].check, Check::NewerCheckpoint);
    let signer = Ed25519Signer::from_seed(ORIGIN, &[9; 32]).unwrap();
    let fork = sign(&Checkpoint::new(ORIGIN, 50, [7; 32]).to_text(), &[&signer]).unwrap();
    let r = evb::verify_bundle(&b, &f.verifiers, None, Some(&fork));
    assert!(!r.verified);
    assert!(
        r.failures.iter().any(|x| x.check == Check::Consistency
            && x.detail.contains("not consistent with the given one")),
        "{:#?}",
        r.failures
    );
    // An older given checkpoint cannot be proven by a bundle.
    let older = sign(&Checkpoint::new(ORIGIN, 30, [7; 32]).to_text(), &[&signer]).unwrap();
    let r = evb::verify_bundle(&b, &f.verifiers, None, Some(&older));
    assert!(
        r.failures
            .iter()
            .any(|x| x.check == Check::ConsistencyUnavailable
                && x.detail.contains("is older than the bundle's")),
        "{:#?}",
        r.failures
    );
}

#[test]
fn the_writer_refuses_what_it_cannot_vouch_for() {
    let f = fixture();
    let refused = |c: &BundleContents, source: Option<&mut dyn PayloadSource>| {
        let mut out = Vec::new();
        evb::write_bundle(&mut out, c, source)
            .expect_err("must be refused")
            .to_string()
    };
    let mut c = f.contents.clone();
    c.entries.swap(0, 1);
    let e = refused(&c, Some(&mut Payloads));
    assert!(
        e.contains("ascending leaf order") && e.contains("leaf 6 follows 8"),
        "{e}"
    );

    let mut c = f.contents.clone();
    c.entries[9].record.leaf_index = 40;
    let e = refused(&c, Some(&mut Payloads));
    assert!(
        e.contains("(leaf 40) is not in the checkpoint of size 40"),
        "{e}"
    );

    let mut c = f.contents.clone();
    c.checkpoint = "not a checkpoint".into();
    let e = refused(&c, Some(&mut Payloads));
    assert!(e.contains("not a tlog checkpoint"), "{e}");

    let mut c = f.contents.clone();
    c.entries[0].record.sha256 = c.entries[0].record.sha256.to_uppercase();
    let e = refused(&c, Some(&mut Payloads));
    assert!(e.contains("sha256 is not lower-case hex"), "{e}");

    let mut c = f.contents.clone();
    c.entries[1].record.sha256 = c.entries[0].record.sha256.clone();
    c.entries[1].record.size += 1;
    let e = refused(&c, Some(&mut Payloads));
    assert!(e.contains("the same sha256 but different sizes"), "{e}");

    let e = refused(&f.contents, None);
    assert!(e.contains("no payload source was given"), "{e}");

    // A source whose bytes are short, or not what the record says.
    struct Short;
    impl PayloadSource for Short {
        fn open(&mut self, _: &Evidence) -> io::Result<Box<dyn Read + '_>> {
            Ok(Box::new(io::Cursor::new(b"short".to_vec())))
        }
    }
    let e = refused(&f.contents, Some(&mut Short));
    assert!(
        e.contains("payload of record") && e.contains("bytes early"),
        "{e}"
    );
    struct Other;
    impl PayloadSource for Other {
        fn open(&mut self, r: &Evidence) -> io::Result<Box<dyn Read + '_>> {
            Ok(Box::new(io::Cursor::new(vec![b'x'; r.size as usize])))
        }
    }
    let e = refused(&f.contents, Some(&mut Other));
    assert!(
        e.contains("its SHA-256 is") && e.contains("the record says"),
        "{e}"
    );
    struct Gone;
    impl PayloadSource for Gone {
        fn open(&mut self, _: &Evidence) -> io::Result<Box<dyn Read + '_>> {
            Err(io::Error::new(io::ErrorKind::NotFound, "blob missing"))
        }
    }
    let e = refused(&f.contents, Some(&mut Gone));
    assert!(
        e.starts_with("writing the bundle:") && e.contains("blob missing"),
        "{e}"
    );
}

#[test]
fn a_manifest_the_format_does_not_allow_is_refused_before_any_member() {
    let g = genuine_members();
    let base: evb::Manifest = serde_json::from_slice(&g[evb::MANIFEST]).unwrap();
    let with = |edit: &dyn Fn(&mut evb::Manifest)| {
        let mut m = base.clone();
        edit(&mut m);
        let mut bytes = serde_json::to_vec(&m).unwrap();
        bytes.push(b'\n');
        let mut parts = vec![regular(evb::MANIFEST, &bytes)];
        for name in [evb::CHECKPOINT, evb::RECORDS, evb::PROOFS] {
            parts.push(regular(name, &g[name]));
        }
        read(&compress(&parts)).expect_err("must be refused")
    };
    let payload = |sha: String, size: u64| evb::MemberDigest {
        name: evb::payload_member(&sha),
        size,
        sha256: sha,
    };
    type Edit = Box<dyn Fn(&mut evb::Manifest)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|m| m.format = "evault/bundle/v9".into()),
            "evault/bundle/v9",
        ),
        (
            Box::new(|m| m.members.swap(0, 1)),
            "members must start with checkpoint, records.jsonl, proofs.jsonl",
        ),
        (
            Box::new(|m| {
                m.members.push(evb::MemberDigest {
                    name: "run.sh".into(),
                    size: 1,
                    sha256: hex(&[1; 32]),
                })
            }),
            "\"run.sh\" is not one of the format's",
        ),
        (
            Box::new(move |m| {
                m.members.push(payload(hex(&[2; 32]), 1));
                m.members.push(payload(hex(&[1; 32]), 1));
                m.payloads = 2;
            }),
            "ascending digest order",
        ),
        (
            Box::new(move |m| {
                m.members.push(payload(hex(&[1; 32]), 1));
            }),
            "says 0 payloads but lists 1",
        ),
        (
            Box::new(move |m| {
                m.members.push(payload(hex(&[1; 32]), 10 << 30));
                m.payloads = 1;
            }),
            "more than the limit of",
        ),
        (
            Box::new(|m| m.members[0].sha256 = "ABC".into()),
            "is not 64 lower-case hex digits",
        ),
    ];
    for (edit, words) in cases {
        let e = with(&*edit).to_string();
        assert!(e.contains(words), "{words:?} not in {e:?}");
    }

    // The header's size disagreeing with the manifest's.
    let mut m = base.clone();
    m.members[0].size += 1;
    let mut bytes = serde_json::to_vec(&m).unwrap();
    bytes.push(b'\n');
    let e = read(&compress(&[
        regular(evb::MANIFEST, &bytes),
        regular(evb::CHECKPOINT, &g[evb::CHECKPOINT]),
    ]))
    .expect_err("size mismatch");
    assert!(
        matches!(&e, ReadError::SizeMismatch { name, .. } if name == evb::CHECKPOINT),
        "{e}"
    );
    assert!(e.to_string().contains("checkpoint"), "{e}");
}

#[test]
fn read_errors_say_what_and_where() {
    let cases = [
        (ReadError::NotABundle, "not an evidence bundle"),
        (ReadError::Truncated, "truncated"),
        (ReadError::Corrupt("bad frame".into()), "damaged: bad frame"),
        (
            ReadError::PathTraversal("../x".into()),
            "\"../x\" has a path that leaves",
        ),
        (
            ReadError::AbsolutePath("/etc/x".into()),
            "\"/etc/x\" has an absolute path",
        ),
        (
            ReadError::NotARegularFile {
                name: "checkpoint".into(),
                kind: "symbolic link".into(),
            },
            "\"checkpoint\" is a symbolic link, not a regular file",
        ),
        (
            ReadError::MemberTooLarge {
                name: "records.jsonl".into(),
                size: 10,
                limit: 5,
            },
            "records.jsonl",
        ),
        (
            ReadError::SizeMismatch {
                name: "proofs.jsonl".into(),
                header: 3,
                manifest: 4,
            },
            "proofs.jsonl",
        ),
        (ReadError::TotalTooLarge { limit: 7 }, "more than 7 bytes"),
        (ReadError::CompressionRatio { limit: 1000 }, "1000"),
        (
            ReadError::Duplicate("checkpoint".into()),
            "\"checkpoint\" occurs twice",
        ),
        (
            ReadError::Missing("checkpoint".into()),
            "\"checkpoint\" is missing",
        ),
        (ReadError::Unexpected("run.sh".into()), "run.sh"),
        (ReadError::TrailingData, "data follows the end"),
        (ReadError::BadManifest("odd".into()), "manifest.json: odd"),
        (ReadError::UnsupportedFormat("v9".into()), "v9"),
        (
            ReadError::Sink(io::Error::other("disk full")),
            "storing a payload: disk full",
        ),
    ];
    for (e, words) in cases {
        assert!(e.to_string().contains(words), "{words:?} not in {e}");
    }
}

// Erased payloads: the bundle carries the tombstone, proven against its
// checkpoint, instead of the payload.

/// A tombstone record at `leaf` for the record at `erased`, by `by`.
fn tombstone(leaf: u64, erased: u64, by: &str) -> Evidence {
    let body = format!("tombstone {leaf}");
    Evidence {
        id: format!("01936f0e-8f3a-7cc2-9b1e-{leaf:012x}"),
        leaf_index: leaf,
        content_type: evb::TOMBSTONE_TYPE.into(),
        sha256: hex(&Sha256::digest(body.as_bytes())),
        size: body.len() as u64,
        labels: BTreeMap::from([
            (evb::TOMBSTONE_ERASES.to_string(), record(erased).id),
            (evb::TOMBSTONE_ERASES_LEAF.to_string(), erased.to_string()),
        ]),
        ingested_at: "2026-11-23T11:31:00.000Z".into(),
        ingested_by: by.into(),
        idempotency_key: None,
    }
}

/// A log of records 0..10, then tombstones: leaf 10 erases leaf 3 (by
/// evault), leaf 11 erases leaf 5 (by evault), leaf 12 "erases" leaf 5 but
/// was submitted by `sa:ci`. The bundle holds records 0..8 with payloads
/// against the checkpoint at size 13; `erase` lists (erased leaf, tombstone
/// leaf) pairs.
struct Erasures {
    tree: MemoryTree,
    verifiers: Verifiers,
    note: String,
}

const ERASE_SIZE: u64 = 13;

fn erasure_log() -> Erasures {
    let signer = Ed25519Signer::from_seed(ORIGIN, &[9; 32]).unwrap();
    let verifiers = Verifiers::new().with(signer.verifier()).unwrap();
    let mut tree = MemoryTree::new();
    for r in (0..10).map(record).chain([
        tombstone(10, 3, "evault"),
        tombstone(11, 5, "evault"),
        tombstone(12, 5, "sa:ci"),
    ]) {
        tree.push(r.leaf_hash().unwrap());
    }
    let cp = Checkpoint::new(ORIGIN, ERASE_SIZE, tree.root_at(ERASE_SIZE).unwrap());
    let note = sign(&cp.to_text(), &[&signer]).unwrap();
    Erasures {
        tree,
        verifiers,
        note,
    }
}

fn tombstone_at(leaf: u64) -> Evidence {
    match leaf {
        10 => tombstone(10, 3, "evault"),
        11 => tombstone(11, 5, "evault"),
        12 => tombstone(12, 5, "sa:ci"),
        _ => unreachable!("no tombstone at leaf {leaf}"),
    }
}

fn erasure_contents(log: &Erasures, erase: &[(u64, u64)]) -> BundleContents {
    BundleContents {
        checkpoint: log.note.clone(),
        selection: Selection {
            payloads: true,
            ..Selection::default()
        },
        entries: (0..8)
            .map(|i| BundleEntry {
                record: record(i),
                inclusion_proof: log.tree.inclusion_proof(i, ERASE_SIZE).unwrap(),
            })
            .collect(),
        erasures: erase
            .iter()
            .map(|&(erased, t)| evb::ErasureEntry {
                erased_leaf: erased,
                tombstone: tombstone_at(t),
                inclusion_proof: log.tree.inclusion_proof(t, ERASE_SIZE).unwrap(),
            })
            .collect(),
        newer: None,
    }
}

/// Payloads of records only (the writer must never ask for an erased one).
struct NotErased(Vec<u64>);

impl PayloadSource for NotErased {
    fn open(&mut self, record: &Evidence) -> io::Result<Box<dyn Read + '_>> {
        assert!(
            !self.0.contains(&record.leaf_index),
            "the writer asked for the erased payload of leaf {}",
            record.leaf_index
        );
        Ok(Box::new(io::Cursor::new(payload(record.leaf_index))))
    }
}

fn erasure_bundle(log: &Erasures, erase: &[(u64, u64)]) -> (Vec<u8>, evb::ReadBundle) {
    let mut out = Vec::new();
    let mut source = NotErased(erase.iter().map(|&(e, _)| e).collect());
    let written =
        evb::write_bundle(&mut out, &erasure_contents(log, erase), Some(&mut source)).unwrap();
    assert_eq!(written.erasures, erase.len() as u64);
    let b = read(&out).unwrap();
    (out, b)
}

fn verify_erasures(log: &Erasures, b: &evb::ReadBundle) -> evb::BundleReport {
    evb::verify_bundle(b, &log.verifiers, Some(ORIGIN), None)
}

/// The `Check::Erasure` failures of the record at `leaf`.
fn erasure_failures(r: &evb::BundleReport, leaf: u64) -> Vec<String> {
    r.entries
        .iter()
        .filter(|e| e.leaf_index == Some(leaf))
        .flat_map(|e| e.failures.iter())
        .filter(|f| f.check == Check::Erasure)
        .map(|f| f.detail.clone())
        .collect()
}

#[test]
fn an_erased_payload_is_carried_as_its_tombstone_and_verifies() {
    let log = erasure_log();
    let (bytes, b) = erasure_bundle(&log, &[(3, 10), (5, 11)]);
    assert_eq!(b.manifest.erasures, 2);
    assert_eq!(b.manifest.payloads, 6);
    assert!(b.erasures.is_some());
    let names: Vec<&str> = b.manifest.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        &names[..4],
        &[evb::CHECKPOINT, evb::RECORDS, evb::PROOFS, evb::ERASURES]
    );
    for erased in [3, 5] {
        let member = evb::payload_member(&record(erased).sha256);
        assert!(
            !names.contains(&member.as_str()),
            "{member} is in the bundle"
        );
    }
    // No byte of an erased payload is anywhere in the bundle.
    let tar = zstd::decode_all(&bytes[..]).unwrap();
    for erased in [3, 5] {
        let p = payload(erased);
        assert!(
            !tar.windows(p.len()).any(|w| w == p),
            "payload {erased} is in the bundle"
        );
    }
    let report = verify_erasures(&log, &b);
    assert!(report.verified, "{report:#?}");
    assert_eq!((report.records, report.payloads, report.erased), (8, 6, 2));
    let erased_by: Vec<(Option<u64>, Option<String>)> = report
        .entries
        .iter()
        .filter(|e| e.erased_by.is_some())
        .map(|e| (e.leaf_index, e.erased_by.clone()))
        .collect();
    assert_eq!(
        erased_by,
        vec![
            (Some(3), Some(tombstone(10, 3, "evault").id)),
            (Some(5), Some(tombstone(11, 5, "evault").id))
        ]
    );
    // Reproducible, like every bundle.
    assert_eq!(erasure_bundle(&log, &[(3, 10), (5, 11)]).0, bytes);
}

#[test]
fn a_bundle_without_erasures_has_no_erasures_member_or_count() {
    let log = erasure_log();
    let (_, b) = erasure_bundle(&log, &[]);
    assert!(b.erasures.is_none());
    assert!(!String::from_utf8_lossy(&b.manifest_bytes).contains("erasures"));
    let report = verify_erasures(&log, &b);
    assert!(report.verified, "{report:#?}");
    assert_eq!(report.erased, 0);
}

#[test]
fn a_tombstone_of_another_record_does_not_excuse_a_missing_payload() {
    let log = erasure_log();
    // Leaf 11 erased leaf 5, not leaf 3.
    let (_, b) = erasure_bundle(&log, &[(3, 11)]);
    let report = verify_erasures(&log, &b);
    assert!(!report.verified);
    assert_eq!(report.erased, 0);
    let fs = erasure_failures(&report, 3);
    assert!(
        fs.iter()
            .any(|d| d.contains("evault.erases is") && d.contains(&record(3).id)),
        "{fs:#?}"
    );
    assert_eq!(report.failed_records().count(), 1, "{report:#?}");
}

#[test]
fn a_tombstone_not_by_evault_is_refused() {
    let log = erasure_log();
    // Leaf 12 names leaf 5 in its labels, but a client submitted it.
    let (_, b) = erasure_bundle(&log, &[(5, 12)]);
    let report = verify_erasures(&log, &b);
    assert!(!report.verified);
    let fs = erasure_failures(&report, 5);
    assert!(
        fs.iter()
            .any(|d| d.contains("ingested by \"sa:ci\", not \"evault\"")),
        "{fs:#?}"
    );
}

#[test]
fn a_tombstone_with_a_broken_proof_is_refused() {
    let log = erasure_log();
    let (_, mut b) = erasure_bundle(&log, &[(3, 10)]);
    let mut erasures = b.erasures.take().unwrap();
    edit_line(&mut erasures, 0, |v| {
        v["inclusion_proof"][0] = base64_of(&[7u8; 32]).into();
    });
    b.erasures = Some(erasures);
    reseal(&mut b);
    let report = verify_erasures(&log, &b);
    assert!(!report.verified);
    assert!(
        report
            .failures
            .iter()
            .all(|x| x.check != Check::MemberDigest)
    );
    let fs = erasure_failures(&report, 3);
    assert!(
        fs.iter()
            .any(|d| d.contains("the tombstone is not in the checkpoint")),
        "{fs:#?}"
    );

    // A tombstone edited to say what the proof does not prove fails too.
    let (_, mut b) = erasure_bundle(&log, &[(3, 10)]);
    let mut erasures = b.erasures.take().unwrap();
    edit_line(&mut erasures, 0, |v| {
        v["tombstone"]["ingested_at"] = "2026-11-23T11:32:00.000Z".into()
    });
    b.erasures = Some(erasures);
    reseal(&mut b);
    let fs = erasure_failures(&verify_erasures(&log, &b), 3);
    assert!(
        fs.iter()
            .any(|d| d.contains("the tombstone is not in the checkpoint")),
        "{fs:#?}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn an_erasure_of_a_payload_the_bundle_carries_is_refused() {
    let log = erasure_log();
    let (_, mut b) = erasure_bundle(&log, &[(3, 10)]);
    // The "erased" payload is in the bundle after all.
    let r = record(3);
    b.payloads.push(evb::PayloadSeen {
        name_sha256: r.sha256.clone(),
        actual_sha256: r.sha256.clone(),
        size: r.size,
    });
    reseal(&mut b);
    let report = verify_erasures(&log, &b);
    assert!(!report.verified);
    let fs = erasure_failures(&report, 3);
    assert!(fs.iter().any(|d| d.contains("yet carries it")), "{fs:#?}");
}

#[test]
fn a_missing_payload_without_its_erasures_line_fails() {
    let log = erasure_log();
    let (_, mut b) = erasure_bundle(&log, &[(3, 10)]);
    // Dropping the member and its count leaves a plain missing payload.
    b.erasures = None;
    b.manifest.erasures = 0;
    reseal(&mut b);
    let report = verify_erasures(&log, &b);
    assert!(!report.verified);
    assert_eq!(report.erased, 0);
    let bad: Vec<_> = report.failed_records().collect();
    assert_eq!(bad.len(), 1, "{report:#?}");
    assert_eq!(bad[0].leaf_index, Some(3));
    assert_eq!(bad[0].failures[0].check, Check::Payload);
    assert!(bad[0].failures[0].detail.contains("not in the bundle"));
}

#[test]
fn an_erasures_line_for_a_leaf_not_in_the_bundle_fails() {
    let log = erasure_log();
    let (_, mut b) = erasure_bundle(&log, &[(3, 10)]);
    let mut erasures = b.erasures.take().unwrap();
    edit_line(&mut erasures, 0, |v| v["leaf_index"] = 9.into());
    b.erasures = Some(erasures);
    reseal(&mut b);
    let report = verify_erasures(&log, &b);
    assert!(!report.verified);
    // Leaf 3 lost its excuse; leaf 9 is not a record of the bundle.
    assert_eq!(
        report
            .failed_records()
            .map(|r| r.leaf_index)
            .collect::<Vec<_>>(),
        vec![Some(3)]
    );
    assert!(
        report.failures.iter().any(|f| f.check == Check::Erasure
            && f.detail
                .contains("names leaf 9, which is not a record of the bundle")),
        "{:#?}",
        report.failures
    );
}

#[test]
fn the_erasures_count_and_member_go_together() {
    let log = erasure_log();
    let (_, b) = erasure_bundle(&log, &[(3, 10)]);
    let members = genuine_tar_members(&b);
    // A manifest that hides the count of a member it lists is refused by
    // the reader, before anything is verified.
    let mut m = b.manifest.clone();
    m.erasures = 0;
    let e = read(&retar(&m, &members)).unwrap_err();
    assert!(
        matches!(&e, ReadError::BadManifest(d) if d.contains("says 0 erasures but lists")),
        "{e}"
    );
}

/// Every member after the manifest, as written.
fn genuine_tar_members(b: &evb::ReadBundle) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (evb::CHECKPOINT.to_string(), b.checkpoint.clone()),
        (evb::RECORDS.to_string(), b.records.clone()),
        (evb::PROOFS.to_string(), b.proofs.clone()),
    ];
    if let Some(e) = &b.erasures {
        out.push((evb::ERASURES.to_string(), e.clone()));
    }
    for p in &b.payloads {
        out.push((
            evb::payload_member(&p.name_sha256),
            payload((0..8).find(|&i| record(i).sha256 == p.name_sha256).unwrap()),
        ));
    }
    out
}

/// A bundle of `manifest` and `members`, in that order.
fn retar(manifest: &evb::Manifest, members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut json = serde_json::to_vec(manifest).unwrap();
    json.push(b'\n');
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, bytes).unwrap();
    };
    add(evb::MANIFEST, &json);
    for (n, b) in members {
        add(n, b);
    }
    zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
}

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

//! The conformance cases of [`ComplianceStore`](crate::ComplianceStore):
//! erasure, legal holds, retention policies. A driver without the part
//! (`Store::compliance` is `None`) passes them trivially.

use std::collections::BTreeMap;

use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileBuilder;

use super::{Open, row};
use crate::prelude::*;
use crate::{
    AppendBatch, ErasureRow, EvidenceRow, HoldRow, ListQuery, LogId, Payload, RetentionRow,
    Selector, StoreError,
};

fn erasure(leaf: u64, tombstone: u64) -> ErasureRow {
    ErasureRow {
        leaf_index: leaf,
        tombstone_leaf: tombstone,
        reason_sha256: [7; 32],
        reason: "subject access request".into(),
        basis: "request".into(),
        erased_at_ms: 1_700_000_000_000,
        erased_by: "admin".into(),
    }
}

fn append(store: &dyn Store, tiles: &mut TileBuilder, rows: &[EvidenceRow]) {
    let old_size = tiles.size();
    let leaves: Vec<_> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let touched = tiles.append(&leaves);
    store
        .append(&AppendBatch::new(old_size, rows, &touched))
        .expect("the store takes a valid batch");
}

/// Appends `tombstones` and erases with them, as the sequencer does;
/// `tiles` advances only if the store accepts.
fn erase(
    store: &dyn Store,
    tiles: &mut TileBuilder,
    tombstones: &[EvidenceRow],
    erasures: &[ErasureRow],
) -> crate::Result<()> {
    let mut next = tiles.clone();
    let leaves: Vec<_> = tombstones.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let touched = next.append(&leaves);
    let c = store.compliance().expect("the case checked for the part");
    c.erase(
        &AppendBatch::new(tiles.size(), tombstones, &touched),
        erasures,
    )?;
    *tiles = next;
    Ok(())
}

/// An erasure appends its tombstone and drops the payload in one
/// transaction: the leaf stays, the record reads as erased (also after a
/// reopen), the erasure row is kept; a bad erasure writes nothing.
pub fn erasure_keeps_the_leaf_and_drops_the_payload(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    if store.compliance().is_none() {
        return;
    }
    let mut tiles = TileBuilder::new();
    let mut rows: Vec<_> = (0..4).map(row).collect();
    rows[2].payload = Payload::Inline(b"erase me".repeat(2000));
    rows[2].analytics = None;
    append(&*store, &mut tiles, &rows);
    let c = store.compliance().expect("checked above");
    // A tombstone outside the batch, or an erased record that does not
    // exist, fails and writes nothing of either.
    assert!(erase(&*store, &mut tiles, &[row(4)], &[erasure(2, 9)]).is_err());
    assert!(erase(&*store, &mut tiles, &[row(4)], &[erasure(40, 4)]).is_err());
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 4);
    assert_eq!(c.erasure(2).unwrap(), None);
    assert_eq!(store.record_by_index(2).unwrap().unwrap(), rows[2]);

    erase(&*store, &mut tiles, &[row(4)], &[erasure(2, 4)]).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
    let erased = store.record_by_index(2).unwrap().unwrap();
    assert_eq!(erased.payload, Payload::Erased { tombstone_leaf: 4 });
    // The leaf data (what the tree commits to) is untouched.
    assert_eq!(erased.leaf_data, rows[2].leaf_data);
    assert_eq!(c.erasure(2).unwrap(), Some(erasure(2, 4)));
    assert_eq!(c.list_erasures(None, 10).unwrap(), vec![erasure(2, 4)]);
    assert_eq!(c.list_erasures(Some(2), 10).unwrap(), vec![]);
    // Erased once only.
    assert!(erase(&*store, &mut tiles, &[row(5)], &[erasure(2, 5)]).is_err());
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
    // Found by digest, erased or not.
    let sharers = c.records_by_sha256(&rows[2].sha256).unwrap();
    assert_eq!(
        sharers.iter().map(|r| r.leaf_index).collect::<Vec<_>>(),
        vec![2]
    );
    // The retention sweep's candidates leave it out.
    let unerased: Vec<u64> = c
        .unerased(&ListQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .items
        .iter()
        .map(|r| r.leaf_index)
        .collect();
    assert_eq!(unerased, vec![0, 1, 3, 4]);
    c.reclaim(std::time::Duration::from_secs(10)).unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.record_by_index(2).unwrap().unwrap().payload,
        Payload::Erased { tombstone_leaf: 4 }
    );
}

/// A record cannot be appended as erased.
pub fn an_erased_row_cannot_be_appended(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    let mut tiles = TileBuilder::new();
    let mut r = row(0);
    r.payload = Payload::Erased { tombstone_leaf: 0 };
    let touched = tiles.append(&[leaf_hash(&r.leaf_data)]);
    assert!(
        store
            .append(&AppendBatch::new(0, std::slice::from_ref(&r), &touched))
            .is_err()
    );
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
}

/// Holds and policies are stored, listed, released and deleted; ids are
/// unique.
pub fn holds_and_retention_policies_round_trip(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    let Some(c) = store.compliance() else {
        return;
    };
    let selector = Selector {
        labels: BTreeMap::from([("case".to_owned(), "case-1".to_owned())]),
        content_type: Some("application/json".into()),
    };
    let hold = HoldRow {
        id: "h1".into(),
        selector: selector.clone(),
        reason_sha256: [1; 32],
        reason: "litigation".into(),
        created_at_ms: 10,
        created_by: "admin".into(),
        released: None,
    };
    c.put_hold(&hold).unwrap();
    assert!(
        matches!(c.put_hold(&hold), Err(StoreError::Duplicate(_))),
        "ids are unique"
    );
    assert_eq!(c.list_holds().unwrap(), vec![hold.clone()]);
    assert!(selector.matches(&row(1)));
    assert!(!selector.matches(&row(4)));
    assert!(c.release_hold("h1", 20, "boss").unwrap());
    assert!(!c.release_hold("h1", 30, "boss").unwrap(), "released once");
    assert!(!c.release_hold("nope", 30, "boss").unwrap());
    assert_eq!(
        c.list_holds().unwrap()[0].released,
        Some((20, "boss".to_owned()))
    );

    let policy = RetentionRow {
        id: "r1".into(),
        name: "ci logs".into(),
        selector: Selector::default(),
        keep_for_ms: 1000,
        created_at_ms: 5,
        created_by: "admin".into(),
    };
    c.put_retention(&policy).unwrap();
    assert!(matches!(
        c.put_retention(&policy),
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(c.list_retention().unwrap(), vec![policy]);
    assert!(c.delete_retention("r1").unwrap());
    assert!(!c.delete_retention("r1").unwrap());
    assert!(c.list_retention().unwrap().is_empty());
    drop(store);
    let store = open(dir.path());
    let c = store.compliance().expect("the part is still there");
    assert_eq!(c.list_holds().unwrap().len(), 1, "kept across a reopen");
}

/// A hold placed after the vault checked (holds are written outside the
/// sequencer) still stops the erasure: the store checks active holds
/// inside the erase transaction, fails with [`StoreError::Held`] naming
/// the hold, and writes nothing.
pub fn an_active_hold_refuses_the_erase_inside_its_transaction(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    if store.compliance().is_none() {
        return;
    }
    let mut tiles = TileBuilder::new();
    let rows: Vec<_> = (0..4).map(row).collect();
    append(&*store, &mut tiles, &rows);
    let c = store.compliance().expect("checked above");
    let hold = |id: &str, case: &str, content_type: Option<&str>| HoldRow {
        id: id.into(),
        selector: Selector {
            labels: BTreeMap::from([("case".to_owned(), case.to_owned())]),
            content_type: content_type.map(str::to_owned),
        },
        reason_sha256: [1; 32],
        reason: "litigation".into(),
        created_at_ms: 1,
        created_by: "legal".into(),
        released: None,
    };
    // Record 2 is case-2, application/json. A hold on another case, or on
    // another content type, does not cover it.
    c.put_hold(&hold("h-other", "case-1", None)).unwrap();
    c.put_hold(&hold("h-pdf", "case-2", Some("application/pdf")))
        .unwrap();
    // Media types compare by essence, case-insensitively.
    c.put_hold(&hold(
        "h-json",
        "case-2",
        Some("Application/JSON; charset=utf-8"),
    ))
    .unwrap();
    match erase(&*store, &mut tiles, &[row(4)], &[erasure(2, 4)]) {
        Err(StoreError::Held { hold, leaf_index }) => {
            assert_eq!((hold.as_str(), leaf_index), ("h-json", 2));
        }
        other => panic!("a held record was erased: {other:?}"),
    }
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 4);
    assert_eq!(c.erasure(2).unwrap(), None);
    assert_eq!(
        store.record_by_index(2).unwrap().unwrap().payload,
        rows[2].payload
    );
    // Released, the same erase goes through.
    assert!(c.release_hold("h-json", 2, "legal").unwrap());
    erase(&*store, &mut tiles, &[row(4)], &[erasure(2, 4)]).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
}

/// Records sharing a digest are found on both sides of the follower's
/// cursor, without their inline bytes (an inline payload reads as empty;
/// external stays external).
pub fn records_by_sha256_skips_inline_bytes(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    let Some(c) = store.compliance() else {
        return;
    };
    let mut tiles = TileBuilder::new();
    let mut rows: Vec<_> = (0..4).map(row).collect();
    rows[2].payload = Payload::Inline(b"inline bytes".repeat(100));
    rows[3].sha256 = rows[2].sha256;
    rows[3].payload = Payload::External;
    append(&*store, &mut tiles, &rows);
    // Leaf 2 below the follower's cursor, leaf 3 past it: both found.
    assert_eq!(store.index_evidence(3, 100).unwrap(), 3);
    let found = c.records_by_sha256(&rows[2].sha256).unwrap();
    assert_eq!(
        found
            .iter()
            .map(|r| (r.leaf_index, r.payload.clone()))
            .collect::<Vec<_>>(),
        vec![(2, Payload::Inline(Vec::new())), (3, Payload::External)]
    );
}

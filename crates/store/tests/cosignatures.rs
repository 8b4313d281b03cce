//! The cosignature table: one line per log, size, witness and cosigner key
//! (a witness signing again adds nothing), the witnessed size under a k-of-n
//! policy (only distinct, configured witnesses count), and all of it after
//! a reopen.

mod common;

use common::fresh;
use evault_store::{Cosignature, CosignatureStore, LogId, SqliteStore, Store};

fn cosig(witness: &str, n: u8) -> Cosignature {
    Cosignature {
        witness: witness.into(),
        key: format!("{witness}+0000000{n}"),
        line: format!("\u{2014} {witness} sig{n}"),
        received_ms: 1_700_000_000_000 + i64::from(n),
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn cosigs(store: &SqliteStore) -> &dyn CosignatureStore {
    store.cosignatures().expect("SQLite keeps cosignatures")
}

#[test]
fn cosignatures_are_kept_per_log_and_size_and_count_distinct_witnesses() {
    let (_dir, path, store) = fresh();
    let c = cosigs(&store);
    assert!(c.cosignatures_at(LogId::Evidence, 5).unwrap().is_empty());
    assert_eq!(
        c.witnessed_size(LogId::Evidence, 1, &names(&["a"]))
            .unwrap(),
        None
    );

    c.put_cosignatures(LogId::Evidence, 5, &[cosig("a", 1)])
        .unwrap();
    // A witness with two keys (Ed25519 and ML-DSA-44) gives two lines, and
    // still counts once.
    c.put_cosignatures(LogId::Evidence, 5, &[cosig("b", 1), cosig("b", 2)])
        .unwrap();
    // The same key signing again (a retry: a new timestamp, or another
    // randomised ML-DSA signature): the first line is kept.
    let mut again = cosig("a", 1);
    again.line = "\u{2014} a another-signature".into();
    again.received_ms = 1;
    c.put_cosignatures(LogId::Evidence, 5, &[again]).unwrap();
    c.put_cosignatures(LogId::Evidence, 9, &[cosig("a", 3)])
        .unwrap();
    c.put_cosignatures(LogId::Audit, 7, &[cosig("a", 4), cosig("c", 1)])
        .unwrap();

    let check = |c: &dyn CosignatureStore| {
        assert_eq!(
            c.cosignatures_at(LogId::Evidence, 5).unwrap(),
            [cosig("a", 1), cosig("b", 1), cosig("b", 2)]
        );
        assert_eq!(
            c.cosignatures_at(LogId::Evidence, 9).unwrap(),
            [cosig("a", 3)]
        );
        assert!(c.cosignatures_at(LogId::Evidence, 7).unwrap().is_empty());
        let all = names(&["a", "b", "c"]);
        assert_eq!(c.witnessed_size(LogId::Evidence, 1, &all).unwrap(), Some(9));
        assert_eq!(c.witnessed_size(LogId::Evidence, 2, &all).unwrap(), Some(5));
        assert_eq!(c.witnessed_size(LogId::Evidence, 3, &all).unwrap(), None);
        assert_eq!(c.witnessed_size(LogId::Audit, 2, &all).unwrap(), Some(7));
        // A witness no longer configured does not count.
        let without_b = names(&["a", "c"]);
        assert_eq!(
            c.witnessed_size(LogId::Evidence, 2, &without_b).unwrap(),
            None
        );
        assert_eq!(
            c.witnessed_size(LogId::Evidence, 1, &names(&["b"]))
                .unwrap(),
            Some(5)
        );
        assert_eq!(c.witnessed_size(LogId::Evidence, 1, &[]).unwrap(), None);
    };
    check(c);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    check(cosigs(&store));
}

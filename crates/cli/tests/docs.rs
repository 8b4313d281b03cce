//! docs/COMPLIANCE.md names, for each control, the tests that show it. A
//! renamed or deleted test would leave the map pointing at nothing, so each
//! named file must exist and each named test must be a function in it.

use std::path::Path;

/// The backticked spans of a table cell, in order.
fn spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_compliance_map_names_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/COMPLIANCE.md")).expect("docs/COMPLIANCE.md");
    let mut named = 0;
    for row in doc
        .lines()
        .filter(|l| l.starts_with("| CC") || l.starts_with("| A1"))
    {
        let shown = row.trim_end_matches('|').rsplit('|').next().unwrap();
        let parts: Vec<&str> = shown.split(';').collect();
        assert!(!shown.trim().is_empty(), "a control without a test: {row}");
        for part in parts {
            let spans = spans(part);
            let (file, tests) = spans
                .split_first()
                .unwrap_or_else(|| panic!("no file in `{part}` of {row}"));
            let path = root.join(file);
            assert!(
                path.exists(),
                "COMPLIANCE.md names {file}, which does not exist"
            );
            if path.is_dir() {
                assert!(
                    tests.is_empty(),
                    "{file} is a directory: name a file for its tests"
                );
                named += 1;
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for test in tests {
                assert!(
                    text.contains(&format!("fn {test}(")),
                    "COMPLIANCE.md names {test} in {file}, which has no such function"
                );
                named += 1;
            }
            if tests.is_empty() {
                named += 1;
            }
        }
    }
    assert!(
        named >= 30,
        "the map names {named} files and tests; the table was not parsed"
    );
}

//! Every `DSK_API` function of include/dsk/*.h is declared in dsk-sys, and nothing else is.
//! The header directory comes from DSK_INCLUDE_DIR (ctest sets it), else the source tree.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn include_dir() -> PathBuf {
    match std::env::var("DSK_INCLUDE_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include/dsk"),
    }
}

/// Removes /* */ and // comments and preprocessor lines, which is all the headers need: their
/// declarations are plain C.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = match rest[i + 2..].find("*/") {
            Some(j) => &rest[i + 2 + j + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap())
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names declared as `DSK_API <type> dsk_name(`; a declaration may span lines.
pub fn header_functions() -> BTreeSet<String> {
    let dir = include_dir();
    let mut names = BTreeSet::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("h") {
            continue;
        }
        let text = strip(&std::fs::read_to_string(&path).unwrap());
        for decl in text.split("DSK_API").skip(1) {
            let head = decl.split('(').next().unwrap();
            let name = head
                .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| !w.is_empty())
                .unwrap_or("");
            assert!(name.starts_with("dsk_"), "odd DSK_API declaration in {}: {head:?}", path.display());
            names.insert(name.to_string());
        }
    }
    names
}

#[test]
fn every_header_function_is_declared() {
    let headers = header_functions();
    assert!(headers.len() >= 40, "found only {} DSK_API functions in {}", headers.len(), include_dir().display());
    let declared: BTreeSet<String> = dsk_sys::FUNCTIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(declared.len(), dsk_sys::FUNCTIONS.len(), "a function is declared twice");
    let missing: Vec<_> = headers.difference(&declared).collect();
    let extra: Vec<_> = declared.difference(&headers).collect();
    assert!(missing.is_empty(), "DSK_API functions not declared in dsk-sys: {missing:?}");
    assert!(extra.is_empty(), "dsk-sys declares functions the headers lack: {extra:?}");
}

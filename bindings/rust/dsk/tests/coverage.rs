//! Every function dsk-sys declares (and dsk-sys's own test ties that list to the headers) is
//! called somewhere in the safe crate's source, so no part of the C API lacks a safe wrapper.

#[test]
fn every_function_is_used_by_the_safe_crate() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut text = String::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let unused: Vec<&str> = dsk::sys::FUNCTIONS
        .iter()
        .copied()
        .filter(|name| !text.contains(&format!("sys::{name}(")))
        .collect();
    assert!(unused.is_empty(), "not wrapped by the safe crate: {unused:?}");
}

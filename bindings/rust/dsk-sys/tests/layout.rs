//! Compares every struct layout and constant of dsk-sys with the manifest the C build writes
//! (`<build>/capi/abi/layout.txt`, format in capi/abi/README.md), in both directions: a line
//! the Rust side does not cover fails, and so does a Rust item the manifest does not list.

use std::collections::{BTreeMap, BTreeSet};

fn manifest() -> String {
    let path = std::env::var("DSK_LAYOUT_MANIFEST")
        .expect("DSK_LAYOUT_MANIFEST must name capi/abi/layout.txt (ctest sets it)");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every fact Rust knows, as manifest lines ("sizeof X 8" etc.), in a set.
fn rust_lines() -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for layout in dsk_sys::LAYOUTS.iter().flat_map(|group| group.iter()) {
        lines.insert(format!("sizeof {} {}", layout.name, layout.size));
        lines.insert(format!("alignof {} {}", layout.name, layout.align));
        for (field, offset) in layout.fields {
            lines.insert(format!("offsetof {}.{} {}", layout.name, field, offset));
        }
    }
    for (name, value) in dsk_sys::CONSTANTS {
        lines.insert(format!("const {name} {value}"));
    }
    for (name, value) in dsk_sys::STRING_CONSTANTS {
        lines.insert(format!("const {name} \"{value}\""));
    }
    lines
}

#[test]
fn layout_matches_manifest() {
    let text = manifest();
    let rust = rust_lines();
    let mut manifest_lines = BTreeSet::new();
    let mut problems = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(3, ' ').collect();
        assert_eq!(fields.len(), 3, "malformed manifest line {line:?}");
        manifest_lines.insert(line.to_string());
        if !rust.contains(line) {
            problems.push(format!("manifest has `{line}`; dsk-sys differs or lacks it"));
        }
    }
    assert!(manifest_lines.len() > 100, "manifest looks truncated ({} lines)", manifest_lines.len());
    for line in &rust {
        if !manifest_lines.contains(line) {
            problems.push(format!("dsk-sys has `{line}`; the manifest differs or lacks it"));
        }
    }
    assert!(problems.is_empty(), "layout mismatches:\n{}", problems.join("\n"));
}

/// Field order matters too (a swap of two equal-sized fields keeps every offset set-equal only by
/// accident); check the fields of each type appear in the manifest's order.
#[test]
fn field_order_matches_manifest() {
    let text = manifest();
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("offsetof ") {
            let key = rest.split(' ').next().unwrap();
            let (ty, field) = key.split_once('.').unwrap();
            order.entry(ty.to_string()).or_default().push(field.to_string());
        }
    }
    for layout in dsk_sys::LAYOUTS.iter().flat_map(|group| group.iter()) {
        let rust: Vec<String> = layout.fields.iter().map(|(f, _)| f.to_string()).collect();
        let c = order.get(layout.name).cloned().unwrap_or_default();
        assert_eq!(rust, c, "field order of {}", layout.name);
    }
}

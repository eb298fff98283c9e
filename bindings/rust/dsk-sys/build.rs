//! Finds libdsk: $DSK_LIB_DIR (a build tree's lib/ or an install prefix's lib/) wins, else the
//! `pkg-config` binary (no crates: the bindings must build offline with std only).
//!
//! Link arguments such as -rpath only apply to this package's own targets, so the directory is
//! also handed to dependents as `DEP_DSK_LIB_DIR` (thanks to `links = "dsk"`); their build
//! scripts add the rpath for their tests, examples and doctests.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DSK_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");

    let mut dirs: Vec<String> = Vec::new();
    let mut libs: Vec<String> = Vec::new();
    match env::var("DSK_LIB_DIR") {
        Ok(dir) if !dir.is_empty() => {
            if !Path::new(&dir).join("libdsk.so").exists() {
                // Not fatal: the directory may hold libdsk.dylib, or be populated later.
                println!("cargo:warning=DSK_LIB_DIR={dir} has no libdsk.so");
            }
            println!("cargo:rerun-if-changed={dir}/libdsk.so");
            dirs.push(dir);
            libs.push("dsk".to_string());
        }
        _ => match pkg_config_libs() {
            Some((d, l)) => {
                dirs = d;
                libs = l;
            }
            None => {
                println!(
                    "cargo:warning=neither DSK_LIB_DIR nor `pkg-config --libs dsk` found libdsk; \
                     relying on the default linker search path"
                );
                libs.push("dsk".to_string());
            }
        },
    }

    for dir in &dirs {
        println!("cargo:rustc-link-search=native={dir}");
        // rpath so that test binaries and examples run without LD_LIBRARY_PATH.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    for lib in &libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // Dependents read this as DEP_DSK_LIB_DIR (colon-separated).
    println!("cargo:lib_dir={}", dirs.join(":"));
}

/// `pkg-config --libs dsk` split into -L directories and -l names; None when pkg-config or the
/// dsk.pc file is missing.
fn pkg_config_libs() -> Option<(Vec<String>, Vec<String>)> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(pkg_config).args(["--libs", "dsk"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut dirs = Vec::new();
    let mut libs = Vec::new();
    for word in text.split_whitespace() {
        if let Some(d) = word.strip_prefix("-L") {
            dirs.push(d.to_string());
        } else if let Some(l) = word.strip_prefix("-l") {
            libs.push(l.to_string());
        }
    }
    if libs.is_empty() {
        libs.push("dsk".to_string());
    }
    Some((dirs, libs))
}

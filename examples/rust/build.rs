//! dsk-sys links libdsk, but its -rpath only reaches dsk-sys's own binaries; repeat it here so
//! this crate's tests and doctests find libdsk without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_DSK_LIB_DIR");
    if let Ok(dirs) = std::env::var("DEP_DSK_LIB_DIR") {
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}

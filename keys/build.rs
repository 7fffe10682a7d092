//! Embeds every `keys/*.asc` (the project's trusted public keys) into the library, so
//! `KeyRing::embedded()` needs no file at run time. Adding or removing a key reruns this.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut keys: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("read keys/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "asc"))
        .collect();
    keys.sort();
    let mut out = String::from("pub(crate) const EMBEDDED_KEYS: &[(&str, &[u8])] = &[\n");
    for k in &keys {
        println!("cargo:rerun-if-changed={}", k.display());
        let name = k.file_name().unwrap().to_string_lossy();
        out.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            k.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_keys.rs");
    fs::write(dest, out).expect("write embedded_keys.rs");
}

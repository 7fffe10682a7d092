//! Embeds the trusted public keys into the library, so `KeyRing::embedded()` needs no file at
//! run time: every `keys/*.asc` of the repository, plus the files named (':'-separated,
//! absolute paths) by `COREOS_TRUSTED_KEYS` when the binary is built — how a vendor builds an
//! installer that trusts its release key without committing it here. Changing either reruns
//! this; a named file that does not exist fails the build.

use std::{env, fs, path::PathBuf};

/// Build-time variable naming extra trusted key files.
const TRUSTED_KEYS_ENV: &str = "COREOS_TRUSTED_KEYS";

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-env-changed={TRUSTED_KEYS_ENV}");
    let mut keys: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("read keys/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "asc"))
        .collect();
    keys.sort();
    if let Ok(list) = env::var(TRUSTED_KEYS_ENV) {
        for p in list.split(':').filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_absolute() && p.is_file(),
                "{TRUSTED_KEYS_ENV}: {} is not an absolute path to a key file",
                p.display()
            );
            keys.push(p);
        }
    }
    let mut out = String::from("pub(crate) const EMBEDDED_KEYS: &[(&str, &[u8])] = &[\n");
    for k in &keys {
        println!("cargo:rerun-if-changed={}", k.display());
        let name = k.file_name().unwrap().to_string_lossy();
        let path = k.display().to_string();
        out.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_keys.rs");
    fs::write(dest, out).expect("write embedded_keys.rs");
}

//! `coreos-install iso show|customize` reads an ISO the user hands it: the primary volume
//! descriptor, directory records down to `COREOS/EMBED.TXT`, the index's lines, and each area
//! (a `#`-padded kernel-argument area, a newc cpio configuration image). Any bytes must give a
//! customization or an error, never a panic, a hang or an allocation past the areas' limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// One file per fuzzing process, rewritten for each input (the reader takes a `File`).
fn scratch() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("iso-inspect-{}.iso", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(scratch(), data).expect("writing the scratch ISO");
    let f = std::fs::File::open(scratch()).expect("opening the scratch ISO");
    let _ = liveboot::iso9660::find_file(&f, liveboot::embed::INDEX_PATH);
    if let Ok(c) = liveboot::embed::inspect(&f) {
        // What was read must render back into areas of the sizes the builder reserves.
        let _ = liveboot::embed::kargs_area(&c.kargs, liveboot::embed::KARGS_AREA_LEN);
        let _ = liveboot::embed::config_area(&c.files, liveboot::embed::CONFIG_AREA_LEN);
    }
});

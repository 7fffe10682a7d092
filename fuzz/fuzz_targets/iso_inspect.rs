//! `coreos-install iso show|customize` reads an ISO the user hands it: the primary volume
//! descriptor, directory records down to `COREOS/EMBED.TXT`, the index's lines, and each area
//! (a `#`-padded kernel-argument area, a newc cpio configuration image). Any bytes must give a
//! customization or an error, never a panic, a hang or an allocation past the areas' limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::FromRawFd;
use std::sync::OnceLock;

/// One file in memory per fuzzing process (memfd), rewritten for each input: the reader takes
/// a `File`. A scratch file on disk was written back tens of GB an hour (ext4 flushes a file
/// rewritten by truncation) and was left behind.
fn scratch() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        // SAFETY: a NUL-terminated name and no other arguments.
        let fd = unsafe { libc::memfd_create(c"iso-inspect".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: the descriptor was just made and nothing else owns it.
        unsafe { File::from_raw_fd(fd) }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = scratch();
    f.set_len(0).expect("emptying the scratch ISO");
    f.write_all_at(data, 0).expect("writing the scratch ISO");
    let _ = liveboot::iso9660::find_file(f, liveboot::embed::INDEX_PATH);
    if let Ok(c) = liveboot::embed::inspect(f) {
        // What was read must render back into areas of the sizes the builder reserves.
        let _ = liveboot::embed::kargs_area(&c.kargs, liveboot::embed::KARGS_AREA_LEN);
        let _ = liveboot::embed::config_area(&c.files, liveboot::embed::CONFIG_AREA_LEN);
    }
});

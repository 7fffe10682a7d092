//! The vendor's way to ship a trust root and a mirror (README "Trust root and mirror"): an
//! installer built with `COREOS_TRUSTED_KEYS` naming the release key and
//! `COREOS_INSTALL_BASE_URL` naming the mirror downloads and verifies a release with neither
//! `-b` nor `-k`; `-k` still replaces the built-in keys; the installer built without them
//! (ci/test's) refuses the same mirror and says what to pass. The vendor build is a debug build of
//! coreos-install in its own target folder under `.cache`, so the binaries the other tests
//! run are never rebuilt.

use e2e::install_fixture::{install, mirror, MirrorBase, IMAGE};
use e2e::nginx::Nginx;
use e2e::{cache, lock, repo, run, run_fail, sha256_file};
use std::path::{Path, PathBuf};
use std::process::Command;

/// coreos-install built with `COREOS_TRUSTED_KEYS=key` (absolute) and
/// `COREOS_INSTALL_BASE_URL=base` (the mirror's port changes, so each run recompiles the
/// installer crate, and only it).
fn vendor_installer(key: &Path, base: &str) -> PathBuf {
    let _lock = lock("trusted-keys-target");
    let target = cache().join("trusted-keys-target");
    // The rustc beside this cargo, named outright: through rustup's proxy, rustc would obey
    // the rust-toolchain.toml some crates ship (ff pins 1.56.0) when cargo builds them in
    // their own folder.
    let rustc = Path::new(env!("CARGO")).with_file_name("rustc");
    run(Command::new(env!("CARGO"))
        .env("RUSTC", &rustc)
        .args(["build", "--quiet", "-p", "coreos-install", "--target-dir"])
        .arg(&target)
        .env("COREOS_TRUSTED_KEYS", key)
        .env("COREOS_INSTALL_BASE_URL", base)
        // No debug info: the build is for one run, and it links in half the time.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .current_dir(repo()));
    // .cargo/config.toml names the target triple, so the binary is under it.
    let bin = target.join("x86_64-unknown-linux-gnu/debug/coreos-install");
    assert!(bin.is_file(), "no {}", bin.display());
    bin
}

#[test]
fn an_installer_built_with_the_release_key_and_mirror_needs_neither_b_nor_k() {
    let m = mirror();
    let key = m.key.canonicalize().unwrap();
    let web = Nginx::start(&m.dir);
    let template = web.url("{board}");
    let vendor = vendor_installer(&key, &template);

    let out = tempfile::tempdir().unwrap();
    let mut c = Command::new(&vendor);
    c.arg("-D").arg(out.path()).env("NO_PROXY", "127.0.0.1");
    run(&mut c);
    assert_eq!(
        sha256_file(&out.path().join(IMAGE)),
        sha256_file(&m.image())
    );

    // -k replaces the built-in keys: a key that did not sign the release is refused.
    let wrong = tempfile::tempdir().unwrap();
    let mut c = Command::new(&vendor);
    c.arg("-D")
        .arg(wrong.path())
        .args(["-b", &web.base(), "-k"])
        .arg(&m.other_key)
        .env("NO_PROXY", "127.0.0.1");
    let msg = run_fail(&mut c);
    assert!(msg.contains("signature verification failed"), "{msg}");
    assert!(!wrong.path().join(IMAGE).exists());

    // The installer built without the variable has no key for this mirror.
    let stock = tempfile::tempdir().unwrap();
    let msg = run_fail(&mut install(&[
        "-D",
        stock.path().to_str().unwrap(),
        "-b",
        &web.base(),
    ]));
    assert!(
        msg.contains(
            "no signing keys are built into this coreos-install; pass the release key with -k"
        ),
        "{msg}"
    );
    assert!(!stock.path().join(IMAGE).exists());
}

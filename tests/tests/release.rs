//! `coreos-build keygen` and `coreos-build release`, judged by gpg, coreutils, bunzip2, lbzip2
//! and bmaptool.

use e2e::{bin, debian_minbase, require, run, run_fail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const IMAGE: &str = "coreos_production_image.bin";

fn build() -> Command {
    Command::new(bin("coreos-build"))
}

/// A keygen key pair in `dir`: (secret, public).
fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    run(build()
        .arg("keygen")
        .arg("--output")
        .arg(dir)
        .args(["--uid", "Test Release <test@example.com>"]));
    (dir.join("signing-key.asc"), dir.join("signing-key.pub.asc"))
}

/// A sparse raw disk image with a GPT and a real ext4 (the minbase /usr) at 300 MiB: what the
/// compressor sees in a production image (data, runs of zeros, large holes).
fn raw_image(dir: &Path) -> PathBuf {
    require("mkfs.ext4");
    require("sgdisk");
    let usr = debian_minbase().join("usr");
    let fs_img = dir.join("usr.ext4");
    run(Command::new("truncate").args(["-s", "1G"]).arg(&fs_img));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d"])
        .arg(&usr)
        .arg(&fs_img));
    let raw = dir.join(IMAGE);
    run(Command::new("truncate").args(["-s", "2300M"]).arg(&raw));
    run(Command::new("sgdisk")
        .args(["-n", "1:2048:+100M", "-n", "2:614400:+1G"])
        .arg(&raw));
    run(Command::new("dd")
        .arg(format!("if={}", fs_img.display()))
        .arg(format!("of={}", raw.display()))
        .args(["bs=1M", "seek=300", "conv=sparse,notrunc", "status=none"]));
    fs::remove_file(&fs_img).unwrap();
    raw
}

fn release(raw: &Path, mirror: &Path, key: Option<&Path>) -> Command {
    let mut c = build();
    c.arg("-q")
        .arg("release")
        .arg("--from-image")
        .arg(raw)
        .args(["--version", "1.2.3", "--no-oem"]);
    c.arg("--output")
        .arg(mirror)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    if let Some(k) = key {
        c.arg("--signing-key").arg(k);
    }
    c
}

fn gpg_home(public: &Path) -> tempfile::TempDir {
    require("gpg");
    let home = tempfile::tempdir().unwrap();
    run(Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--import"])
        .arg(public));
    home
}

fn gpg_verify(home: &Path, args: &[&Path]) -> String {
    let out = run(Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--verify"])
        .args(args));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of one `# <TYPE> HASH` section, for `<type>sum -c`.
fn section(digests: &str, header: &str) -> String {
    let mut out = String::new();
    let mut on = false;
    for l in digests.lines() {
        if l.starts_with('#') {
            on = l == header;
        } else if on {
            out.push_str(l);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no {header} section in:\n{digests}");
    out
}

fn sum_check(dir: &Path, tool: &str, lines: &str) {
    require(tool);
    let list = dir.join(format!(".{tool}.list"));
    fs::write(&list, lines).unwrap();
    run(Command::new(tool)
        .arg("--strict")
        .arg("-c")
        .arg(&list)
        .current_dir(dir));
    fs::remove_file(list).unwrap();
}

fn decompress(tool: &str, file: &Path) -> Vec<u8> {
    require(tool);
    run(Command::new(tool).arg("-d").arg("-c").arg(file)).stdout
}

#[test]
fn release_is_verified_by_real_tools_and_reproducible() {
    let t = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&t.path().join("keys"));
    let raw = raw_image(t.path());
    let mirror = t.path().join("mirror");
    run(&mut release(&raw, &mirror, Some(&secret)));
    let dir = mirror.join("amd64-usr/1.2.3");
    let bz2 = dir.join(format!("{IMAGE}.bz2"));
    assert_eq!(
        fs::read_link(mirror.join("amd64-usr/current")).unwrap(),
        Path::new("1.2.3")
    );
    assert!(mirror.join("amd64-usr/current/version.txt").exists());
    assert!(
        !dir.join(IMAGE).exists(),
        "the raw image stays out of the mirror"
    );
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temp files left: {names:?}"
    );

    // gpg accepts the detached signature and the clearsigned DIGESTS.
    let home = gpg_home(&public);
    let out = gpg_verify(home.path(), &[&dir.join(format!("{IMAGE}.bz2.sig")), &bz2]);
    assert!(out.contains("Good signature"), "{out}");
    let out = gpg_verify(
        home.path(),
        &[&dir.join(format!("{IMAGE}.bz2.DIGESTS.asc"))],
    );
    assert!(out.contains("Good signature"), "{out}");

    // coreutils agree with every section of DIGESTS.
    let digests = fs::read_to_string(dir.join(format!("{IMAGE}.bz2.DIGESTS"))).unwrap();
    sum_check(&dir, "md5sum", &section(&digests, "# MD5 HASH"));
    sum_check(&dir, "sha1sum", &section(&digests, "# SHA1 HASH"));
    sum_check(&dir, "sha512sum", &section(&digests, "# SHA512 HASH"));

    // bunzip2 and lbzip2 give back exactly the raw image.
    let original = fs::read(&raw).unwrap();
    assert!(
        decompress("bunzip2", &bz2) == original,
        "bunzip2 output differs from the raw image"
    );
    assert!(
        decompress("lbzip2", &bz2) == original,
        "lbzip2 output differs from the raw image"
    );

    // bmaptool copy with our bmap reproduces the image (and checks every range's sha256).
    require("bmaptool");
    let copy = t.path().join("copy.img");
    run(Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(dir.join(format!("{IMAGE}.bmap")))
        .arg(&raw)
        .arg(&copy));
    assert!(
        fs::read(&copy).unwrap() == original,
        "bmaptool copy differs from the raw image"
    );
    fs::remove_file(&copy).unwrap();
    drop(original);

    // Within 2% of bzip2 -9 on the same raw image.
    require("bzip2");
    let reference = run(Command::new("sh")
        .arg("-c")
        .arg(format!("bzip2 -9 -c '{}' | wc -c", raw.display())));
    let reference: u64 = String::from_utf8_lossy(&reference.stdout)
        .trim()
        .parse()
        .unwrap();
    let ours = fs::metadata(&bz2).unwrap().len();
    assert!(
        ours as f64 <= reference as f64 * 1.02,
        "ours {ours} bytes, bzip2 -9 {reference} bytes"
    );

    // Same inputs and SOURCE_DATE_EPOCH: byte-identical, signatures included, over three
    // runs (the third into the first's mirror, replacing its files).
    let sums = |dir: &Path| -> Vec<String> {
        names
            .iter()
            .map(|n| e2e::sha256_file(&dir.join(n)))
            .collect()
    };
    let first = sums(&dir);
    let mirror2 = t.path().join("mirror2");
    run(&mut release(&raw, &mirror2, Some(&secret)));
    assert_eq!(sums(&mirror2.join("amd64-usr/1.2.3")), first, "{names:?}");
    run(&mut release(&raw, &mirror, Some(&secret)));
    assert_eq!(sums(&dir), first, "{names:?}");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// The release's copies cross filesystems: the work folder on a tmpfs, the mirror on the
/// disk (ext4), so `copy_file_range` says EXDEV and the copies read and write instead. The
/// raw image, the OEM image and the ami artifact arrive whole and sparse.
#[test]
fn release_from_a_tmpfs_work_dir_to_a_mirror_on_disk() {
    require("sgdisk");
    let work = Tmpfs::mount("2g");
    let t = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = t.path().join("usr");
    fs::create_dir_all(usr.join("boot")).unwrap();
    fs::create_dir_all(usr.join("bin")).unwrap();
    fs::write(usr.join("boot/vmlinuz"), b"MZ kernel".repeat(1000)).unwrap();
    fs::write(usr.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    let mirror = t.path().join("mirror");
    run(build()
        .args(["-q", "release", "--version", "2.0.0", "--oem", "ec2"])
        .args(["--formats", "ami", "--include-raw"])
        .arg("--usr")
        .arg(&usr)
        .arg("--work-dir")
        .arg(work.0.path())
        .arg("--output")
        .arg(&mirror)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let dir = mirror.join("amd64-usr/2.0.0");
    let raw = dir.join(IMAGE);
    assert_eq!(
        e2e::sha256_file(&raw),
        e2e::sha256_file(&work.0.path().join(IMAGE)),
        "the raw image in the mirror is not the one built"
    );
    let used = |p: &Path| {
        let o = run(Command::new("du").args(["-B1", "-s"]).arg(p));
        let o = String::from_utf8_lossy(&o.stdout).into_owned();
        o.split_whitespace().next().unwrap().parse::<u64>().unwrap()
    };
    assert!(
        used(&raw) < 256 << 20,
        "the copy is not sparse: {} bytes used",
        used(&raw)
    );
    let ami = dir.join("coreos_production_ami_image.bin");
    let v = run(Command::new("sgdisk").arg("-v").arg(&ami));
    assert!(String::from_utf8_lossy(&v.stdout).contains("No problems found"));
    let digests = fs::read_to_string(dir.join("coreos_production_ami_image.bin.DIGESTS")).unwrap();
    sum_check(&dir, "sha512sum", &section(&digests, "# SHA512 HASH"));
    assert!(dir.join("coreos_production_ec2_image.bin.bz2").is_file());
}

#[test]
fn bad_signing_keys_fail_before_any_file_is_written() {
    let t = tempfile::tempdir().unwrap();
    let (_, public) = keygen(&t.path().join("keys"));
    let raw = t.path().join(IMAGE);
    fs::File::create(&raw).unwrap().set_len(16 << 20).unwrap();
    let garbage = t.path().join("garbage.asc");
    fs::write(&garbage, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnot base64 !!\n-----END PGP PRIVATE KEY BLOCK-----\n").unwrap();
    let missing = t.path().join("missing.asc");
    for (key, expect) in [
        (&public, "signing key"),
        (&garbage, "garbage.asc"),
        (&missing, "missing.asc"),
    ] {
        let mirror = t.path().join("mirror");
        let msg = run_fail(&mut release(&raw, &mirror, Some(key)));
        assert!(
            msg.contains(expect),
            "error for {} does not name it:\n{msg}",
            key.display()
        );
        assert!(
            !mirror.exists(),
            "{} was created although the key {} is bad",
            mirror.display(),
            key.display()
        );
    }
}

#[test]
fn keygen_writes_a_private_secret_key_gpg_imports() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(t.path());
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&public)
        .unwrap()
        .contains("BEGIN PGP PUBLIC KEY BLOCK"));
    let home = gpg_home(&public);
    let out = run(Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--import"])
        .arg(&secret));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secret keys imported: 1"),
        "{out:?}"
    );
    // It refuses to overwrite an existing key.
    let msg = run_fail(build().arg("keygen").arg("--output").arg(t.path()));
    assert!(msg.contains("refusing to overwrite"), "{msg}");
}

#[test]
fn unsigned_release_warns_and_has_no_signatures() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join(IMAGE);
    let f = fs::File::create(&raw).unwrap();
    f.set_len(20 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"some data", 9 << 20).unwrap();
    let mirror = t.path().join("mirror");
    let out = run(&mut release(&raw, &mirror, None));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNSIGNED"));
    let dir = mirror.join("amd64-usr/1.2.3");
    assert!(dir.join(format!("{IMAGE}.bz2.DIGESTS")).exists());
    assert!(!dir.join(format!("{IMAGE}.bz2.sig")).exists());
    assert!(decompress("bunzip2", &dir.join(format!("{IMAGE}.bz2"))) == fs::read(&raw).unwrap());
}

/// The whole release from a /usr tree: the image built by `image::build`, the verity and
/// contents files, and one image per OEM, each signed.
#[test]
fn full_release_from_usr_has_every_file_and_oem() {
    let t = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&t.path().join("keys"));
    let mirror = t.path().join("mirror");
    run(build()
        .args(["-q", "release", "--version", "4.5.6", "--group", "stable"])
        .arg("--usr")
        .arg(debian_minbase().join("usr"))
        .arg("--output")
        .arg(&mirror)
        .arg("--signing-key")
        .arg(&secret)
        .arg("--include-raw")
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let dir = mirror.join("amd64-usr/4.5.6");
    for f in [
        "coreos_production_image.bin.bz2",
        "coreos_production_image.bin.bz2.sig",
        "coreos_production_image.bin.bz2.DIGESTS",
        "coreos_production_image.bin.bz2.DIGESTS.asc",
        "version.txt",
        "coreos_production_image.bin.bmap",
        "coreos_production_image_verity.txt",
        "coreos_production_image_contents.txt",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    let home = gpg_home(&public);
    let main = fs::read(dir.join("coreos_production_image.bin.bz2")).unwrap();
    for oem in [
        "vagrant",
        "virtualbox",
        "gce",
        "ec2",
        "metal",
        "digitalocean",
        "packet",
    ] {
        let bz2 = dir.join(format!("coreos_production_{oem}_image.bin.bz2"));
        let out = gpg_verify(
            home.path(),
            &[
                &dir.join(format!("coreos_production_{oem}_image.bin.bz2.sig")),
                &bz2,
            ],
        );
        assert!(out.contains("Good signature"), "{oem}: {out}");
        let digests =
            fs::read_to_string(dir.join(format!("coreos_production_{oem}_image.bin.bz2.DIGESTS")))
                .unwrap();
        sum_check(&dir, "sha512sum", &section(&digests, "# SHA512 HASH"));
        assert!(
            fs::read(&bz2).unwrap() != main,
            "{oem} image is the generic image"
        );
    }
    assert!(
        fs::read_to_string(mirror.join("amd64-usr/current/version.txt"))
            .unwrap()
            .contains("4.5.6")
    );

    // USR-A is compressed once, by the update files, and its streams are spliced into every
    // image's .bz2: lbzip2 gives back the raw image, an OEM image holds the very same USR-A,
    // and the update's .bin.bz2 is that partition.
    let raw = dir.join(IMAGE);
    let part = e2e::partitions::sgdisk_info(&raw, 3);
    let sector = |field: &str| -> u64 { part[field].split(' ').next().unwrap().parse().unwrap() };
    let (first, last) = (sector("First sector"), sector("Last sector"));
    let usr_a = (first * 512, (last + 1 - first) * 512);
    let unpack = |name: &str| -> PathBuf {
        require("lbzip2");
        let out = t.path().join(name.trim_end_matches(".bz2"));
        run(Command::new("sh").arg("-c").arg(format!(
            "lbzip2 -dc '{}' | dd of='{}' bs=1M conv=sparse status=none",
            dir.join(name).display(),
            out.display()
        )));
        out
    };
    let main_raw = unpack("coreos_production_image.bin.bz2");
    assert!(
        e2e::same_content(&main_raw, &raw),
        "the image .bz2 does not decode to the raw image"
    );
    fs::remove_file(&main_raw).unwrap();
    let usr = e2e::partitions::extract(&raw, usr_a.0, usr_a.1);
    let ec2 = unpack("coreos_production_ec2_image.bin.bz2");
    let ec2_usr = e2e::partitions::extract(&ec2, usr_a.0, usr_a.1);
    assert!(
        e2e::same_content(usr.path(), ec2_usr.path()),
        "the ec2 image's USR-A differs from the generic image's"
    );
    fs::remove_file(&ec2).unwrap();
    let update = unpack("coreos_production_update.bin.bz2");
    assert!(
        e2e::same_content(usr.path(), &update),
        "coreos_production_update.bin.bz2 is not the image's USR-A"
    );
}

/// `--formats`: the platform artifacts land in the version folder, each with DIGESTS that
/// coreutils accept and signatures gpg accepts; an unknown format fails before any file exists.
#[test]
fn formats_add_signed_artifacts_to_the_mirror() {
    require("qemu-img");
    let t = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&t.path().join("keys"));
    let usr = debian_minbase().join("usr");
    let with_formats = |mirror: &Path, formats: &[&str]| {
        let mut c = build();
        c.args(["-q", "release", "--version", "7.8.9", "--no-oem"])
            .arg("--usr")
            .arg(&usr)
            .arg("--output")
            .arg(mirror)
            .arg("--signing-key")
            .arg(&secret)
            .env("SOURCE_DATE_EPOCH", "1700000000");
        for f in formats {
            c.args(["--formats", f]);
        }
        c
    };

    let bad = t.path().join("bad-mirror");
    let msg = run_fail(&mut with_formats(&bad, &["gce,floppy"]));
    assert!(
        msg.contains("floppy") && msg.contains("ami_vmdk"),
        "the error names neither the bad format nor the valid ones:\n{msg}"
    );
    assert!(!bad.exists(), "{} was created", bad.display());

    let mirror = t.path().join("mirror");
    run(with_formats(&mirror, &["gce", "ami_vmdk", "azure"]).arg("--include-raw"));
    let dir = mirror.join("amd64-usr/7.8.9");
    let home = gpg_home(&public);
    for name in [
        "coreos_production_gce.tar.gz",
        "coreos_production_ami_vmdk_image.vmdk",
        "coreos_production_azure_image.vhd.bz2",
    ] {
        let file = dir.join(name);
        assert!(file.is_file(), "{name} missing in {}", dir.display());
        let out = gpg_verify(home.path(), &[&dir.join(format!("{name}.sig")), &file]);
        assert!(out.contains("Good signature"), "{name}: {out}");
        let out = gpg_verify(home.path(), &[&dir.join(format!("{name}.DIGESTS.asc"))]);
        assert!(out.contains("Good signature"), "{name}.DIGESTS.asc: {out}");
        let digests = fs::read_to_string(dir.join(format!("{name}.DIGESTS"))).unwrap();
        assert!(digests.contains(&format!("  {name}\n")), "{digests}");
        sum_check(&dir, "sha512sum", &section(&digests, "# SHA512 HASH"));
        sum_check(&dir, "md5sum", &section(&digests, "# MD5 HASH"));
    }
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(dir.join("coreos_production_ami_vmdk_image.vmdk")));
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("\"streamOptimized\""), "{info}");

    // The Azure VHD is published as .vhd.bz2: lbzip2 gives back the very VHD `vm --format
    // azure` makes of the same image, which qemu-img reads as a fixed VHD of the azure
    // layout's 63737856 sectors.
    require("lbzip2");
    let vhd = t.path().join("azure.vhd");
    run(Command::new("sh").arg("-c").arg(format!(
        "lbzip2 -dc '{}' | dd of='{}' bs=1M conv=sparse status=none",
        dir.join("coreos_production_azure_image.vhd.bz2").display(),
        vhd.display()
    )));
    let vm = t.path().join("vm");
    run(build()
        .args(["-q", "vm", "--format", "azure", "--image"])
        .arg(dir.join(IMAGE))
        .arg("--output")
        .arg(&vm)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(
        e2e::same_content(&vhd, &vm.join("coreos_production_azure_image.vhd")),
        "the released .vhd.bz2 is not the VHD `vm --format azure` makes"
    );
    let info = run(Command::new("qemu-img")
        .args(["info", "-f", "vpc", "--output=json"])
        .arg(&vhd));
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains(&format!("\"virtual-size\": {},", 63737856u64 * 512)),
        "{info}"
    );
    fs::remove_dir_all(&vm).unwrap();
    fs::remove_file(&vhd).unwrap();

    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temp files left: {names:?}"
    );
    let leftovers: Vec<String> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coreos-release-"))
        .collect();
    assert!(leftovers.is_empty(), "work folders left: {leftovers:?}");
}

/// A Vagrant catalog Vagrant can use: the release refuses `--formats vagrant` without the
/// mirror's URL (before writing anything); with it, the real `vagrant box add` takes the
/// catalog's URL from nginx serving the mirror, and `vagrant box list` shows the box.
#[test]
fn vagrant_adds_the_box_from_the_served_catalog() {
    require("vagrant");
    let t = tempfile::tempdir().unwrap();
    let usr = e2e::sample_os().join("usr");
    let mirror = t.path().join("mirror");
    let web = e2e::nginx::Nginx::start(&mirror);
    let release = |mirror_url: Option<&str>| {
        let mut c = build();
        c.args(["-q", "release", "--version", "1234.5.6", "--no-oem"])
            .args(["--formats", "vagrant"])
            .arg("--usr")
            .arg(&usr)
            .arg("--output")
            .arg(&mirror)
            .env("SOURCE_DATE_EPOCH", "1700000000");
        if let Some(u) = mirror_url {
            c.args(["--mirror-url", u]);
        }
        c
    };
    let msg = run_fail(&mut release(None));
    assert!(msg.contains("--mirror-url"), "{msg}");
    assert!(!mirror.exists(), "{} was created", mirror.display());

    run(&mut release(Some(&web.url(""))));
    let catalog_url = web.url("amd64-usr/1234.5.6/coreos_production_vagrant.json");
    let catalog =
        fs::read_to_string(mirror.join("amd64-usr/1234.5.6/coreos_production_vagrant.json"))
            .unwrap();
    assert!(
        catalog.contains(&web.url("amd64-usr/1234.5.6/coreos_production_vagrant.box")),
        "{catalog}"
    );
    // Vagrant resolves a relative URL against its working directory: run it somewhere else.
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let vagrant = |args: &[&str]| {
        let mut c = Command::new("vagrant");
        c.args(args)
            .current_dir(&elsewhere)
            .env("VAGRANT_HOME", t.path().join("vagrant-home"))
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("NO_PROXY", "127.0.0.1")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY");
        String::from_utf8_lossy(&run(&mut c).stdout).into_owned()
    };
    vagrant(&["box", "add", &catalog_url]);
    let list = vagrant(&["box", "list"]);
    assert!(
        list.lines().any(|l| l.starts_with("coreos ")
            && l.contains("virtualbox")
            && l.contains("1234.5.6")),
        "vagrant box list: {list}"
    );
}

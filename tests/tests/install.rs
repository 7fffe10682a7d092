//! coreos-install end to end, as root: a signed mirror served by nginx (or by the test's own
//! fault-injecting server), loop devices as target disks, and real tools as judges (sgdisk -v,
//! e2fsck -fn, debugfs, sha256 of partitions). The test bed is `e2e::install_fixture`; hostile
//! servers, odd disks, key policy and kills have files of their own (`install_*.rs`).

use e2e::httpfault::{Fault, FaultServer};
use e2e::install_fixture::*;
use e2e::{cache, run, run_fail, sha256_file, Loop};
use std::fs;
use std::process::Command;

#[test]
fn happy_path_from_nginx_with_cloud_config() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(512);
    let (_t, cloud) = write_tmp("cloud.yml", CLOUD);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
        "-c",
        cloud.to_str().unwrap(),
    ]));
    assert_success(&out, &d);
    assert_installed(&d, &m.raw, &[9]);
    assert_eq!(
        debugfs_cat(&d, 9, "/var/lib/coreos-install/user_data"),
        CLOUD.as_bytes()
    );
    // The kernel sees the new partitions.
    assert!(
        d.lo.part(9).exists(),
        "no {} after install",
        d.lo.part(9).display()
    );
}

#[test]
fn image_only_through_a_symlinked_device_path() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    // A symlinked device path, as /dev/disk/by-id/... .
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("by-id-disk");
    std::os::unix::fs::symlink(&d.lo.dev, &link).unwrap();
    let out = run(&mut install(&[
        "-d",
        link.to_str().unwrap(),
        "-V",
        "current",
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Success!"));
    assert_installed(&d, &m.raw, &[]);
    // The backup GPT moved to the end of the larger disk.
    let t = table(&d);
    assert!(t.contains(&format!("{} sectors", 300 * MIB / 512)), "{t}");
    assert!(
        d.lo.part(3).exists(),
        "no {} after install",
        d.lo.part(3).display()
    );
}

/// Issue 30: an unattended install onto a disk larger than the image hung for good in an
/// entropy-starved live system, waiting for /dev/random while it moved the backup GPT. Nothing
/// in an install needs randomness, so under strace the installer opens neither random device
/// and makes no getrandom(2) call that could block (std's hash seeds use GRND_INSECURE), on a
/// disk larger than the image (the backup GPT moved) and with a cloud-config injected.
#[test]
fn an_install_onto_a_larger_disk_never_waits_for_entropy() {
    e2e::require("strace");
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(400);
    let (_t, cloud) = write_tmp("cloud.yml", CLOUD);
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("strace.log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=getrandom,open,openat", "-o"])
        .arg(&trace)
        .arg(e2e::bin("coreos-install"))
        .args(["-d", &dev(&d), "-b", &web.base(), "-k"])
        .arg(&m.key)
        .arg("-c")
        .arg(&cloud)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env("NO_PROXY", "127.0.0.1");
    let out = run(&mut cmd);
    assert_success(&out, &d);
    let log = fs::read_to_string(&trace).unwrap();
    assert!(
        log.contains("openat(") && log.contains("getrandom("),
        "strace saw no calls at all:\n{log}"
    );
    let waits: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("\"/dev/random\"")
                || l.contains("\"/dev/urandom\"")
                || (l.contains("getrandom(")
                    && !l.contains("GRND_NONBLOCK")
                    && !l.contains("GRND_INSECURE"))
        })
        .collect();
    assert!(
        waits.is_empty(),
        "the installer asked for randomness that can block:\n{}",
        waits.join("\n")
    );
    // And it moved the backup GPT to the end of the larger disk.
    let v = Command::new("sgdisk")
        .arg("-v")
        .arg(&d.lo.dev)
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains("No problems found"), "{v}");
}

#[test]
fn oem_image_is_chosen() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-o",
        "packet",
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Success! {VERSION} (packet)")));
    assert_installed(&d, &m.oem_raw, &[]);
    assert!(
        String::from_utf8_lossy(&debugfs_cat(&d, 6, "/grub.cfg")).contains("set oem_id=\"packet\"")
    );
}

#[test]
fn oem_without_its_image_sets_oem_id_on_the_base_image() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    let (_t, ign) = write_tmp("config.ign", "{\"ignition\":{\"version\":\"3.0.0\"}}");
    run(&mut install(&[
        "-d",
        &dev(&d),
        "-o",
        "azure",
        "-i",
        ign.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert_installed(&d, &m.raw, &[6]);
    let grub = String::from_utf8_lossy(&debugfs_cat(&d, 6, "/grub.cfg")).into_owned();
    assert_eq!(
        grub.lines().find(|l| l.starts_with("set oem_id")),
        Some("set oem_id=\"azure\""),
        "{grub}"
    );
    assert_eq!(debugfs_cat(&d, 6, "/config.ign"), fs::read(&ign).unwrap());
}

#[test]
fn local_file_with_signature_and_without() {
    let m = mirror();
    let d = disk(300);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-f",
        m.image().to_str().unwrap(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert_installed(&d, &m.raw, &[]);
    // The version comes from the installed USR-A, not from a file name.
    assert_success(&out, &d);

    let tmp = tempfile::tempdir().unwrap();
    let unsigned = tmp.path().join("unsigned.bin.bz2");
    fs::copy(m.image(), &unsigned).unwrap();
    let d2 = disk(300);
    let before = sha256_file(&d2.file);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d2),
        "-f",
        unsigned.to_str().unwrap(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert!(msg.contains("unsigned.bin.bz2.sig"), "{msg}");
    assert_eq!(
        sha256_file(&d2.file),
        before,
        "a refused install touched the disk"
    );
    let out = run(&mut install(&[
        "-d",
        &dev(&d2),
        "-f",
        unsigned.to_str().unwrap(),
        "--insecure",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNVERIFIED"));
    assert_installed(&d2, &m.raw, &[]);
}

#[test]
fn dry_run_writes_nothing() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    let before = sha256_file(&d.file);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-y",
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("Settings:") && s.contains(&format!("VERSION={VERSION}")),
        "{s}"
    );
    assert_eq!(sha256_file(&d.file), before);
}

#[test]
fn bad_signatures_are_refused() {
    let m = mirror();
    let good = fs::read(m.image()).unwrap();
    // A signature over other bytes.
    let t = variant(&m, &good, None);
    let rel = t.path().join(BOARD).join(VERSION);
    let mut other = good.clone();
    other.extend_from_slice(b"x");
    fs::write(rel.join("other"), &other).unwrap();
    sign(&m, &rel.join("other"), "release@example.com");
    fs::rename(rel.join("other.sig"), rel.join(format!("{IMAGE}.sig"))).unwrap();
    let web = Nginx::start(t.path());
    must_fail(
        &web.base(),
        &m.key,
        &["signature verification failed", IMAGE],
    );
    drop(web);

    // Signed by a key we do not trust.
    let t = variant(&m, &good, Some("other@example.com"));
    let web = Nginx::start(t.path());
    must_fail(&web.base(), &m.key, &["signature verification failed"]);
    drop(web);

    // One byte changed after signing.
    let mut tampered = good.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let t = variant(&m, &tampered, None);
    let web = Nginx::start(t.path());
    must_fail(&web.base(), &m.key, &[IMAGE]);
}

#[test]
fn missing_signature_image_or_version() {
    let m = mirror();
    let srv = FaultServer::start(m.dir.clone(), ".sig", Fault::NotFound);
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &["Image signature unavailable", ".bin.bz2.sig"],
    );
    let srv = FaultServer::start(m.dir.clone(), IMAGE, Fault::NotFound);
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &["Image URL unavailable", "404", IMAGE],
    );
    let srv = FaultServer::start(m.dir.clone(), "version.txt", Fault::NotFound);
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &["version.txt unavailable", "404"],
    );
}

#[test]
fn truncated_and_trailing_garbage_are_refused_even_when_signed() {
    let m = mirror();
    let good = fs::read(m.image()).unwrap();
    // Cut inside the last stream, and inside the last stream's header (the release's .bz2
    // is one stream per chunk, each starting with "BZh9" and the block magic).
    let header = b"BZh9\x31\x41\x59\x26\x53\x59";
    let last = good
        .windows(header.len())
        .rposition(|w| w == header)
        .expect("a stream header");
    for cut in [good.len() - 1000, last + 5] {
        let t = variant(&m, &good[..cut], Some("release@example.com"));
        let web = Nginx::start(t.path());
        let msg = must_fail(&web.base(), &m.key, &[IMAGE]);
        assert!(
            msg.contains("truncated") || msg.contains("ended"),
            "cut at {cut}: {msg}"
        );
    }
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"garbage after the last stream\n");
    let t = variant(&m, &garbage, Some("release@example.com"));
    let web = Nginx::start(t.path());
    must_fail(&web.base(), &m.key, &["trailing data"]);
}

#[test]
fn drop_mid_body_resumes_and_500s_are_retried() {
    let m = mirror();
    for fault in [
        Fault::DropAfter {
            after: 3 * MIB + 123,
            times: 2,
        },
        Fault::Status {
            code: 500,
            times: 2,
        },
    ] {
        let srv = FaultServer::start(m.dir.clone(), IMAGE, fault);
        let d = disk(300);
        run(&mut install(&[
            "-d",
            &dev(&d),
            "-b",
            &format!("{}/{BOARD}", srv.url()),
            "-k",
            m.key.to_str().unwrap(),
        ]));
        assert_installed(&d, &m.raw, &[]);
        let log = srv.requests();
        let gets: Vec<_> = log
            .iter()
            .filter(|l| l.contains(IMAGE) && !l.contains(".sig"))
            .collect();
        assert_eq!(gets.len(), 3, "{fault:?}: {log:?}");
        if let Fault::DropAfter { after, .. } = fault {
            assert!(
                gets[1].ends_with(&format!("Some({after})")),
                "the resume did not ask for a Range: {log:?}"
            );
            assert!(
                gets[2].ends_with(&format!("Some({})", 2 * after)),
                "the second resume: {log:?}"
            );
        }
    }
}

#[test]
fn lying_content_length_is_an_error() {
    let m = mirror();
    let srv = FaultServer::start(m.dir.clone(), IMAGE, Fault::LyingLength { extra: 1000 });
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        // The resumed answer gives the true length: the file is not the one first announced.
        &[IMAGE, "length"],
    );
}

#[test]
fn refused_targets_stay_untouched() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let key = m.key.to_str().unwrap().to_string();
    // Too small for the image.
    let d = disk(100);
    let before = sha256_file(&d.file);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(msg.contains("too small") && msg.contains(&dev(&d)), "{msg}");
    assert_eq!(sha256_file(&d.file), before);
    // Broken configs and keys.
    let d = disk(300);
    let before = sha256_file(&d.file);
    let (_t, cloud) = write_tmp("cloud.yml", "#cloud-config\nusers: [unclosed\n");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-c",
        cloud.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(
        msg.contains("cloud.yml") && msg.contains("not valid"),
        "{msg}"
    );
    let (_t2, noheader) = write_tmp("plain.yml", "hostname: x\n");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-c",
        noheader.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(msg.contains("plain.yml"), "{msg}");
    let (_t3, ign) = write_tmp("bad.ign", "{not json");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-i",
        ign.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(msg.contains("bad.ign") && msg.contains("JSON"), "{msg}");
    let (_t4, badkey) = write_tmp("key.asc", "not a key");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-k",
        badkey.to_str().unwrap(),
    ]));
    assert!(msg.contains("key.asc"), "{msg}");
    assert_eq!(sha256_file(&d.file), before);
    // A missing device, and none at all.
    let msg = run_fail(&mut install(&[
        "-d",
        "/dev/coreos-install-no-such-disk",
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(
        msg.contains("/dev/coreos-install-no-such-disk") && msg.contains("does not exist"),
        "{msg}"
    );
    let msg = run_fail(&mut install(&["-b", &web.base()]));
    assert!(msg.contains("-d is required"), "{msg}");
}

#[test]
fn mounted_disk_and_partition_are_refused() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let key = m.key.to_str().unwrap().to_string();
    // A disk holding the image, its ROOT partition mounted.
    let tmp = tempfile::tempdir_in(cache()).unwrap();
    let file = tmp.path().join("disk.img");
    fs::copy(&m.raw, &file).unwrap();
    let lo = Loop::attach(&file, true);
    let part9 = lo.part(9);
    let before = sha256_file(&file);
    let mnt = tempfile::tempdir().unwrap();
    // Read-only and without journal replay, so mounting itself does not change the disk.
    run(Command::new("mount")
        .args(["-o", "ro,noload"])
        .arg(&part9)
        .arg(mnt.path()));
    let msg = run_fail(&mut install(&[
        "-d",
        lo.dev.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    run(Command::new("umount").arg(mnt.path()));
    assert!(
        msg.contains("mounted") && msg.contains(&part9.display().to_string()),
        "{msg}"
    );
    // A partition as the target.
    let msg = run_fail(&mut install(&[
        "-d",
        part9.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(
        msg.contains("is a partition") && msg.contains(&lo.dev.display().to_string()),
        "{msg}"
    );
    assert_eq!(sha256_file(&file), before);
}

#[test]
fn download_only_fetches_and_verifies() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let out = tempfile::tempdir().unwrap();
    run(&mut install(&[
        "-D",
        out.path().to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert_eq!(
        sha256_file(&out.path().join(IMAGE)),
        sha256_file(&m.image())
    );
    assert!(out.path().join(format!("{IMAGE}.sig")).exists());
    let wrong = tempfile::tempdir().unwrap();
    let msg = run_fail(&mut install(&[
        "-D",
        wrong.path().to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        m.other_key.to_str().unwrap(),
    ]));
    assert!(msg.contains("signature verification failed"), "{msg}");
    assert!(
        !wrong.path().join(IMAGE).exists(),
        "an unverified download kept its final name"
    );
}

use super::*;
use std::process::Command;

/// GRUB's own parser (grub-script-check, grub-common) accepts the script.
fn grub_parses(name: &str, script: &str) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, script).unwrap();
    let out = Command::new("grub-script-check")
        .arg(&p)
        .output()
        .expect("grub-script-check (grub-common)");
    assert!(
        out.status.success(),
        "grub-script-check {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn grub_parses_both_configs() {
    grub_parses("memdisk.cfg", &memdisk_cfg());
    grub_parses("grub.cfg", &main_cfg());
    // A syntax error is caught (the check can fail).
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("bad.cfg"), "if [ a = a ]; then\n").unwrap();
    assert!(!Command::new("grub-script-check")
        .arg(d.path().join("bad.cfg"))
        .status()
        .unwrap()
        .success());
}

#[test]
fn main_cfg_is_static_and_complete() {
    // Static: two images that differ in every input (hash, salt, size, GUID, version, slot
    // attributes) get the same grub.cfg, while their slot configs and views differ.
    use crate::bootloader::{config_files, BootInputs, GRUB_CFG_PATH};
    use disk::slots::{Slot, SlotAttrs};
    let inputs = |n: u8| BootInputs {
        verity_root_hash: format!("{n:02x}").repeat(32),
        usr_fs_blocks: 1000 + u64::from(n),
        verity_salt: format!("{n:02x}"),
        usr_partuuid: uuid::Uuid::from_bytes([n; 16]),
        version: format!("{n}.0.0"),
        slots: vec![(
            Slot::A,
            SlotAttrs {
                priority: n,
                tries: n,
                successful: n == 2,
            },
        )],
    };
    let (a, b) = (
        config_files(&inputs(1)).unwrap(),
        config_files(&inputs(2)).unwrap(),
    );
    let file = |files: &[(String, Vec<u8>)], path: &str| {
        files.iter().find(|f| f.0 == path).unwrap().1.clone()
    };
    assert!(file(&a, GRUB_CFG_PATH) == file(&b, GRUB_CFG_PATH));
    for differs in ["coreos/usr-a.cfg", "coreos/grub/grubenv"] {
        assert!(file(&a, differs) != file(&b, differs), "{differs}");
    }
    let cfg = String::from_utf8(file(&a, GRUB_CFG_PATH)).unwrap();
    assert!(!cfg.contains("@@") && !cfg.contains("@L@"), "{cfg}");
    assert!(!cfg.contains("usrhash=0") && !cfg.contains("PARTLABEL=USR"));
    // The view is loaded through a whitelist of exactly the six slot variables.
    assert!(cfg.contains("load_env -f \"$slot_env\" a_prio a_tries a_ok b_prio b_tries b_ok;"));
    assert!(cfg.contains("regexp '^(([0-9]|1[0-5]) ){4}[01] [01]$' \"$a_prio $a_tries $b_prio $b_tries $a_ok $b_ok\""));
    // Every count from 15 down has its decrement, for both slots, and the result is saved.
    for l in ["a", "b"] {
        for n in 1..=15 {
            assert!(
                cfg.contains(&format!(
                    "[ \"${l}_tries\" = {n} ]; then set {l}_tries={}\n",
                    n - 1
                )),
                "{l}: {n}"
            );
        }
        assert!(cfg.contains(&format!("save_env -f \"$slot_env\" {l}_tries")));
        assert!(cfg.contains(&format!("source \"($esp)/coreos/usr-{l}.cfg\"")));
        assert!(cfg.contains(&format!("-f \"($esp)/coreos/vmlinuz-{l}\"")));
    }
    assert!(cfg.contains("source \"($esp)/coreos/grub/fallback.cfg\""));
    // Without a usable view only the fallback slot may boot: every slot starts unbootable.
    let fallback = &cfg[cfg.find("if [ \"$view\" = none ]").unwrap()..];
    let fallback = &fallback[..fallback.find("\nfi\n").unwrap()];
    for l in ["a", "b"] {
        assert!(
            fallback.contains(&format!("set {l}_prio=0\n")),
            "{fallback}"
        );
        assert!(fallback.contains(&format!("set {l}_ok=0\n")), "{fallback}");
        assert!(!fallback.contains(&format!("set {l}_ok=1\n")), "{fallback}");
    }
    assert!(fallback.contains(
        "if [ \"$fallback_slot\" = b ]; then set b_prio=1; set b_ok=1; else set a_prio=1; set a_ok=1; fi"
    ));
    assert!(cfg.contains("verity.usr=PARTUUID=$usr_uuid verity.usrhash=$usr_hash"));
}

#[test]
fn memdisk_prefers_the_boot_disk() {
    let m = memdisk_cfg();
    assert!(
        m.contains("regexp --set 1:boot_disk '^\\(([^,)]+)' \"$cmdpath\""),
        "{m}"
    );
    assert!(
        m.contains("--label EFI-SYSTEM --hint \"$boot_disk,\""),
        "{m}"
    );
    assert!(
        m.contains("configfile \"($esp)/coreos/grub/grub.cfg\""),
        "{m}"
    );
    assert!(!m.contains("verity"));
}

//! The main `grub.cfg`, as CoreOS's `build_library/grub.cfg` (reference §2.3) for stock GRUB:
//! the OEM partition's `grub.cfg` is sourced first (it may set `oem_id`, `linux_append`,
//! `linux_console` and its own terminal), then serial-console defaults, then one entry per USR
//! partition. Stock GRUB has no `gptprio.next`, so USR-A is the default.
//!
//! Kernel command line read by the initramfs (CoreOS's names, plus what stock veritysetup needs
//! that CoreOS's initramfs hard-coded):
//! `mount.usr=/dev/mapper/usr verity.usr=PARTLABEL=USR-A verity.usrhash=<root hash>
//!  verity.usrdatablocks=<fs blocks> [verity.usrsalt=<salt>]`; the hash tree starts at
//! `fs blocks * 4096` in the partition, as `disk_util verity` put it.

use super::BootInputs;
use anyhow::bail;

/// The early config embedded with `grub-mkimage -c`: go straight to the memdisk's grub.cfg.
pub const EARLY_CFG: &str = "configfile (memdisk)/grub.cfg\n";

/// The memdisk's grub.cfg: find the ESP (by FAT label, else by the file) and load the main
/// grub.cfg from it. Fixed, so the GRUB images do not depend on the image being built.
pub const MEMDISK_CFG: &str = r#"# coreos-build: load the main grub.cfg from the ESP.
search --no-floppy --set root --label EFI-SYSTEM
if [ -z "$root" ]; then
    search --no-floppy --set root --file /coreos/grub/grub.cfg
fi
configfile ($root)/coreos/grub/grub.cfg
"#;

/// The values written into grub.cfg, checked.
#[derive(Debug, Clone)]
pub struct CfgParams {
    pub root_hash: String,
    pub data_blocks: u64,
    pub salt: String,
}

impl CfgParams {
    pub fn from_inputs(inputs: &BootInputs) -> anyhow::Result<CfgParams> {
        let hash = inputs.verity_root_hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !is_hex(&hash) {
            bail!(
                "verity root hash {:?} is not 64 hex digits (sha256)",
                inputs.verity_root_hash
            );
        }
        let salt = inputs.verity_salt.trim().to_ascii_lowercase();
        if !salt.len().is_multiple_of(2) || !is_hex(&salt) {
            bail!("verity salt {:?} is not hex bytes", inputs.verity_salt);
        }
        if inputs.usr_fs_blocks == 0 {
            bail!("USR-A filesystem size is 0 blocks: nothing for dm-verity to cover");
        }
        Ok(CfgParams {
            root_hash: hash,
            data_blocks: inputs.usr_fs_blocks,
            salt,
        })
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Render the main grub.cfg.
pub fn main_cfg(p: &CfgParams) -> String {
    let salt = if p.salt.is_empty() {
        String::new()
    } else {
        format!(" verity.usrsalt={}", p.salt)
    };
    let verity_a = format!(
        "mount.usr=/dev/mapper/usr verity.usr=PARTLABEL=USR-A verity.usrhash={} verity.usrdatablocks={}{}",
        p.root_hash, p.data_blocks, salt
    );
    TEMPLATE.replace("@@VERITY_A@@", &verity_a)
}

const TEMPLATE: &str = r#"# coreos-build: GRUB configuration for BIOS and UEFI (loaded from the ESP by the GRUB images).
set default="coreos-a"
set timeout=1

set linux_root="root=LABEL=ROOT"
set linux_console=""
set oem_id=""
set linux_append=""

# The ESP (FAT label EFI-SYSTEM) holds the kernels and initramfs images.
search --no-floppy --set root --label EFI-SYSTEM
if [ -z "$root" ]; then
    search --no-floppy --set root --file /coreos/vmlinuz-a
fi

# The OEM partition (filesystem label OEM, else partition 6 of the boot disk) may set
# oem_id, linux_append, linux_console and its own terminal.
search --no-floppy --set oem_part --label OEM --hint "$root"
if [ -z "$oem_part" ]; then
    regexp --set 1:boot_disk '^([^,]+)' "$root"
    set oem_part="$boot_disk,gpt6"
fi
if [ -f "($oem_part)/grub.cfg" ]; then
    source "($oem_part)/grub.cfg"
fi

# Without an OEM console, use both the screen and the first serial port (the serial port last,
# so that it is /dev/console and early-boot output reaches it).
if [ -z "$linux_console" ]; then
    serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
    terminal_input serial console
    terminal_output serial console
    set linux_console="console=tty0 console=ttyS0,115200n8"
fi

set oem=""
if [ -n "$oem_id" ]; then
    set oem="coreos.oem.id=$oem_id"
fi

set linux_cmdline="rootflags=rw mount.usrflags=ro consoleblank=0 $linux_root $linux_console $oem $linux_append"

menuentry "CoreOS USR-A" --id=coreos-a {
    linux /coreos/vmlinuz-a @@VERITY_A@@ $linux_cmdline
    initrd /coreos/initrd-a
}

# USR-B's root hash is only known when an update writes it, so B mounts without verity.
menuentry "CoreOS USR-B" --id=coreos-b {
    linux /coreos/vmlinuz-b mount.usr=PARTLABEL=USR-B $linux_cmdline
    initrd /coreos/initrd-b
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(hash: &str, salt: &str, blocks: u64) -> BootInputs {
        BootInputs {
            verity_root_hash: hash.into(),
            usr_fs_blocks: blocks,
            verity_salt: salt.into(),
        }
    }

    #[test]
    fn cfg_carries_verity_arguments_for_usr_a_only() {
        let hash = "ab".repeat(32);
        let p = CfgParams::from_inputs(&inputs(&hash, "0011", 260094)).unwrap();
        let cfg = main_cfg(&p);
        let a = cfg
            .lines()
            .find(|l| l.contains("linux /coreos/vmlinuz-a"))
            .unwrap();
        assert!(a.contains(&format!("verity.usrhash={hash}")), "{a}");
        assert!(a.contains("verity.usr=PARTLABEL=USR-A"), "{a}");
        assert!(a.contains("verity.usrdatablocks=260094"), "{a}");
        assert!(a.contains("verity.usrsalt=0011"), "{a}");
        let b = cfg
            .lines()
            .find(|l| l.contains("linux /coreos/vmlinuz-b"))
            .unwrap();
        assert!(!b.contains("verity"), "{b}");
        assert!(cfg.contains("set default=\"coreos-a\""));
        assert!(cfg.contains("source \"($oem_part)/grub.cfg\""));
        assert!(!cfg.contains("@@"));
    }

    #[test]
    fn memdisk_cfg_loads_the_esp_file_and_knows_no_hash() {
        let esp_path = format!("($root)/{}", super::super::GRUB_CFG_PATH);
        assert!(
            MEMDISK_CFG.contains(&format!("configfile {esp_path}\n")),
            "{MEMDISK_CFG}"
        );
        assert!(MEMDISK_CFG.contains("--label EFI-SYSTEM"));
        assert!(!MEMDISK_CFG.contains("verity"));
    }

    #[test]
    fn empty_salt_is_left_out() {
        let p = CfgParams::from_inputs(&inputs(&"0f".repeat(32), "", 10)).unwrap();
        assert!(!main_cfg(&p).contains("usrsalt"));
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = CfgParams::from_inputs(&inputs("xyz", "", 10))
            .unwrap_err()
            .to_string();
        assert!(e.contains("root hash"), "{e}");
        let e = CfgParams::from_inputs(&inputs(&"ab".repeat(32), "abc", 10))
            .unwrap_err()
            .to_string();
        assert!(e.contains("salt"), "{e}");
        let e = CfgParams::from_inputs(&inputs(&"ab".repeat(32), "", 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 blocks"), "{e}");
    }
}

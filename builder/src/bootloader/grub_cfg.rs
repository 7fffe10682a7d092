//! The GRUB configuration: a fixed memdisk config that finds the ESP of the disk GRUB started
//! from, and the main `grub.cfg` on that ESP, which is static — the same bytes for every image
//! and every update. What changes lives in files the updater writes (`disk::slots::esp_files`):
//! `coreos/grub/grubenv` (the GPT slot attributes as GRUB sees them), `coreos/usr-X.cfg` (a
//! slot's PARTUUID and dm-verity root hash) and `coreos/grub/fallback.cfg`.
//!
//! Slot selection with stock GRUB modules only (`loadenv`, `regexp`, `test`), by the contract
//! (CoreOS's `gptprio.next`): the highest priority among slots with tries > 0 or successful,
//! ties to USR-A; a slot boots only with its kernel and a well-formed config. Before a
//! slot with tries left boots, one try is spent with `save_env` and read back; when it cannot be
//! recorded, that slot does not boot unless it is proven good (CoreOS's gptprio would boot it
//! anyway). A missing or malformed grubenv boots the slot named in fallback.cfg (the last one
//! marked good), spending nothing.
//!
//! Kernel command line read by the initramfs (CoreOS's names, plus what stock veritysetup needs
//! that CoreOS's initramfs hard-coded): `mount.usr=/dev/mapper/usr verity.usr=PARTUUID=<uuid>
//! verity.usrhash=<root hash> verity.usrdatablocks=<fs blocks> [verity.usrsalt=<salt>]`; the
//! hash tree starts at `fs blocks * 4096` in the partition, as `disk_util verity` put it.

use disk::slots::attrs::MAX_TRIES;
use disk::slots::esp_files::{config_path, kernel_path, FALLBACK_PATH, GRUBENV_PATH};
use disk::slots::grub_view::var_names;
use disk::slots::Slot;

/// The early config embedded with `grub-mkimage -c`: go straight to the memdisk's grub.cfg.
pub const EARLY_CFG: &str = "configfile (memdisk)/grub.cfg\n";

/// Finds the ESP (FAT label EFI-SYSTEM, else the file holding the main config) on the disk GRUB
/// started from first — `$cmdpath` is `(hd1,gpt1)/EFI/boot` under UEFI, `(hd0)` under BIOS — so
/// a second CoreOS disk or a live stick cannot take over the boot; other disks only when that
/// disk has none. Sets `esp` (e.g. `hd1,gpt1`) and `esp_disk` (`hd1`).
const FIND_ESP: &str = r#"set boot_disk=""
regexp --set 1:boot_disk '^\(([^,)]+)' "$cmdpath"
set esp=""
if [ -n "$boot_disk" ]; then
    search --no-floppy --set esp --label EFI-SYSTEM --hint "$boot_disk,"
    if [ -z "$esp" ]; then
        search --no-floppy --set esp --file /coreos/grub/grub.cfg --hint "$boot_disk,"
    fi
else
    search --no-floppy --set esp --label EFI-SYSTEM
    if [ -z "$esp" ]; then
        search --no-floppy --set esp --file /coreos/grub/grub.cfg
    fi
fi
set esp_disk=""
regexp --set 1:esp_disk '^([^,]+)' "$esp"
export esp
export esp_disk
"#;

/// The memdisk's grub.cfg: find the ESP and load the main grub.cfg from it. Fixed, so the GRUB
/// images do not depend on the image being built.
pub fn memdisk_cfg() -> String {
    format!(
        "# coreos-build: load the main grub.cfg from the ESP of the disk GRUB started from.\n\
         {FIND_ESP}set root=\"$esp\"\nconfigfile \"($esp)/{}\"\n",
        super::GRUB_CFG_PATH
    )
}

/// The main grub.cfg (the same for every image).
pub fn main_cfg() -> String {
    let slots: String = Slot::ALL.iter().map(|&s| slot_functions(s)).collect();
    let view_vars: Vec<String> = Slot::ALL.iter().flat_map(|&s| var_names(s)).collect();
    let mut view_check = Vec::new();
    for s in Slot::ALL {
        let [p, t, _] = var_names(s);
        view_check.push(format!("${p} ${t}"));
    }
    for s in Slot::ALL {
        view_check.push(format!("${}", var_names(s)[2]));
    }
    let clear_view: String = view_vars
        .iter()
        .map(|v| format!("set {v}=\"\"\n"))
        .collect();
    let fallback_view: String = Slot::ALL
        .iter()
        .flat_map(|&s| {
            let [p, t, ok] = var_names(s);
            [
                format!("    set {p}=0\n"),
                format!("    set {t}=0\n"),
                format!("    set {ok}=0\n"),
            ]
        })
        .collect();
    MAIN_TEMPLATE
        .replace("@@FIND_ESP@@", &indent(FIND_ESP))
        .replace("@@GRUBENV@@", GRUBENV_PATH)
        .replace("@@FALLBACK@@", FALLBACK_PATH)
        .replace("@@CLEAR_VIEW@@", &clear_view)
        .replace("@@VIEW_VARS@@", &view_vars.join(" "))
        .replace("@@VIEW_VALUES@@", &view_check.join(" "))
        .replace("@@FALLBACK_VIEW@@", &fallback_view)
        .replace("@@SLOT_FUNCTIONS@@", &slots)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Per slot: `coreos_check_X` (may it boot?), `coreos_try_X` (spend a try before booting it).
fn slot_functions(slot: Slot) -> String {
    let l = slot.letter();
    let [prio, tries, ok] = var_names(slot);
    // No arithmetic in GRUB script: one branch per count.
    let mut decrement = String::new();
    for n in (1..=MAX_TRIES).rev() {
        let kw = if n == MAX_TRIES { "if" } else { "elif" };
        decrement.push_str(&format!(
            "    {kw} [ \"${tries}\" = {n} ]; then set {tries}={}\n",
            n - 1
        ));
    }
    decrement.push_str("    fi\n");
    SLOT_TEMPLATE
        .replace("@@DECREMENT@@", &decrement)
        .replace("@@KERNEL@@", &kernel_path(slot))
        .replace("@@CONFIG@@", &config_path(slot))
        .replace("@@LABEL@@", slot.label())
        .replace("@@PRIO@@", &prio)
        .replace("@@TRIES@@", &tries)
        .replace("@@OK@@", &ok)
        .replace("@L@", l)
}

const SLOT_TEMPLATE: &str = r#"
# @@LABEL@@ may boot: priority above 0, a try left or proven good, its kernel and a
# well-formed config (@@CONFIG@@ is written last by the updater, after kernel and initrd).
function coreos_check_@L@ {
    set @L@_boot=0
    set @L@_uuid=""
    set @L@_hash=""
    set @L@_blocks=""
    set @L@_salt=""
    set @L@_version=""
    if [ "$@@PRIO@@" -gt 0 ]; then
        if [ "$@@TRIES@@" -gt 0 -o "$@@OK@@" = 1 ]; then
            if [ -f "($esp)/@@KERNEL@@" -a -f "($esp)/@@CONFIG@@" ]; then
                source "($esp)/@@CONFIG@@"
                if regexp '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12} [0-9a-f]{64} [1-9][0-9]* ([0-9a-f][0-9a-f])*$' "$@L@_uuid $@L@_hash $@L@_blocks $@L@_salt"; then
                    set @L@_boot=1
                else
                    echo "coreos: @@CONFIG@@ is malformed: @@LABEL@@ does not boot"
                fi
            fi
        fi
    fi
}

# Before @@LABEL@@ boots with tries left, spend one: save it to grubenv and read it back. If
# that fails, only slots proven good may boot, and nothing more is written.
function coreos_try_@L@ {
    if [ "$@@TRIES@@" -gt 0 ]; then
        set spent=0
        if [ "$view" = grubenv ]; then
@@DECREMENT@@            set want="$@@TRIES@@"
            if save_env -f "$slot_env" @@TRIES@@; then
                set @@TRIES@@=""
                if load_env -f "$slot_env" @@TRIES@@; then
                    if [ "$@@TRIES@@" = "$want" ]; then set spent=1; fi
                fi
            fi
        fi
        if [ "$spent" != 1 ]; then
            echo "coreos: the try of @@LABEL@@ cannot be recorded in $slot_env"
            set view=readonly
            if [ "$a_ok" != 1 ]; then set a_boot=0; fi
            if [ "$b_ok" != 1 ]; then set b_boot=0; fi
            if [ "$@@OK@@" != 1 ]; then set slot=""; fi
        fi
    fi
}
"#;

const MAIN_TEMPLATE: &str = r#"# coreos-build: GRUB configuration for BIOS and UEFI (loaded from the ESP by the GRUB images).
# Static: which USR slot boots is decided from coreos/grub/grubenv, which coreos-update renders
# from the GPT attributes (the truth, as cgpt reads it); each slot's dm-verity root hash is in
# its coreos/usr-X.cfg.
set default="coreos"
set timeout=1

set linux_root="root=LABEL=ROOT"
set linux_console=""
set oem_id=""
set linux_append=""

# The ESP of the boot disk (the memdisk config found it; again when loaded another way).
if [ -z "$esp" ]; then
@@FIND_ESP@@fi
set root="$esp"

# The OEM partition of the same disk (filesystem label OEM, else partition 6) may set oem_id,
# linux_append, linux_console and its own terminal.
set oem_part=""
search --no-floppy --set oem_part --label OEM --hint "$esp_disk,"
set oem_disk=""
regexp --set 1:oem_disk '^([^,]+)' "$oem_part"
if [ "$oem_disk" != "$esp_disk" ]; then
    set oem_part="$esp_disk,gpt6"
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

# --- USR slot selection ---------------------------------------------------------------
set slot_env="($esp)/@@GRUBENV@@"
@@CLEAR_VIEW@@set view=none
if load_env -f "$slot_env" @@VIEW_VARS@@; then
    if regexp '^(([0-9]|1[0-5]) ){4}[01] [01]$' "@@VIEW_VALUES@@"; then
        set view=grubenv
    fi
fi
if [ "$view" = none ]; then
    set fallback_slot=a
    if [ -f "($esp)/@@FALLBACK@@" ]; then
        source "($esp)/@@FALLBACK@@"
    fi
    if [ "$fallback_slot" != b ]; then set fallback_slot=a; fi
    echo "coreos: $slot_env is missing or malformed: booting the last slot marked good ($fallback_slot)"
    # Only the last slot marked good is trusted, and no try is spent: the other slot may be an
    # update that never proved itself (or failed its trial), which grubenv can no longer say.
@@FALLBACK_VIEW@@    if [ "$fallback_slot" = b ]; then set b_prio=1; set b_ok=1; else set a_prio=1; set a_ok=1; fi
fi
@@SLOT_FUNCTIONS@@
# The highest priority among the slots that may boot; ties to USR-A.
function coreos_pick {
    set slot=""
    set slot_prio=0
    if [ "$a_boot" = 1 ]; then
        set slot=a
        set slot_prio="$a_prio"
    fi
    if [ "$b_boot" = 1 ]; then
        if [ "$b_prio" -gt "$slot_prio" ]; then
            set slot=b
            set slot_prio="$b_prio"
        fi
    fi
}

coreos_check_a
coreos_check_b
coreos_pick
if [ "$slot" = a ]; then coreos_try_a; fi
if [ "$slot" = b ]; then coreos_try_b; fi
if [ -z "$slot" ]; then coreos_pick; fi

if [ "$slot" = a ]; then
    set usr_label="USR-A"
    set usr_uuid="$a_uuid"
    set usr_hash="$a_hash"
    set usr_blocks="$a_blocks"
    set usr_salt="$a_salt"
    set usr_version="$a_version"
fi
if [ "$slot" = b ]; then
    set usr_label="USR-B"
    set usr_uuid="$b_uuid"
    set usr_hash="$b_hash"
    set usr_blocks="$b_blocks"
    set usr_salt="$b_salt"
    set usr_version="$b_version"
fi
if [ -z "$slot" ]; then
    echo "coreos: no USR slot can boot (run coreos-update status from a rescue system)"
else
    set usr_salt_arg=""
    if [ -n "$usr_salt" ]; then
        set usr_salt_arg="verity.usrsalt=$usr_salt"
    fi
    menuentry "CoreOS $usr_label $usr_version" --id=coreos {
        linux "($esp)/coreos/vmlinuz-$slot" mount.usr=/dev/mapper/usr verity.usr=PARTUUID=$usr_uuid verity.usrhash=$usr_hash verity.usrdatablocks=$usr_blocks $usr_salt_arg $linux_cmdline
        if [ -f "($esp)/coreos/initrd-$slot" ]; then
            initrd "($esp)/coreos/initrd-$slot"
        fi
    }
fi
"#;

#[cfg(test)]
#[path = "grub_cfg_tests.rs"]
mod tests;

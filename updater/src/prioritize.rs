//! `coreos-update prioritize --slot a|b`: what CoreOS's `cgpt prioritize` of a USR partition
//! did (that slot above every other, the rest renumbered below it, priority 0 kept), and GRUB's
//! view rendered at once, so the very next boot follows it — CoreOS's manual rollback. The
//! spent tries GRUB recorded are taken first (sync's rule). Nothing is written when nothing
//! changes.

use crate::cli::PrioritizeArgs;
use crate::esp::Esp;
use crate::slot_state::{fold_spent_tries, next_boot, slot_attrs};
use crate::target::UpdateDisk;
use anyhow::{bail, Result};

pub fn run(args: &PrioritizeArgs) -> Result<()> {
    let disk = UpdateDisk::open(args.disk.disk.as_deref(), true)?;
    let slot = args.slot;
    let mut esp = Esp::open(&disk)?;
    if esp.slot_config(slot)?.is_none() || !esp.has_kernel(slot)? {
        bail!(
            "{slot} on {} has no boot configuration or kernel on the ESP: GRUB cannot boot it",
            disk.name()
        );
    }
    let mut gpt = disk.slots()?;
    let before = slot_attrs(&gpt);
    fold_spent_tries(&mut gpt, &esp.grub_view()?, &esp.written_tries()?)?;
    let part = disk.usr(&gpt, slot)?;
    gpt.prioritize(part.number)?;
    if slot_attrs(&gpt) != before || !gpt.damaged.is_empty() {
        gpt.write(&disk.file)?;
    }
    esp.write_grub_view(&slot_attrs(&gpt))?;
    esp.close()?;
    let now = disk.usr(&gpt, slot)?.attrs;
    match next_boot(&gpt) {
        Some(s) if s == slot => {
            println!("coreos-update: {slot} prioritized ({now}); it boots next")
        }
        other => println!(
            "coreos-update: {slot} prioritized ({now}), but it has no tries left and is not marked \
             good: {} boots next",
            other.map_or("no slot".to_string(), |s| s.to_string())
        ),
    }
    Ok(())
}

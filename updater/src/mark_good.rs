//! `coreos-update mark-good` (coreos-setgoodroot: `cgpt add -S1 -T0; cgpt prioritize`): the
//! booted slot, or `--slot`, becomes successful with no tries left and the highest priority;
//! GRUB's view is rendered and the fallback names it.

use crate::cli::MarkGoodArgs;
use crate::esp::Esp;
use crate::slot_state::{fold_spent_tries, slot_attrs};
use crate::target::UpdateDisk;
use anyhow::{bail, Result};
use disk::slots::SlotAttrs;

pub fn run(args: &MarkGoodArgs) -> Result<()> {
    let disk = UpdateDisk::open(args.disk.disk.as_deref(), true)?;
    let slot = match (args.slot, disk.booted) {
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => bail!(
            "the running system did not boot from {}: name the slot with --slot a|b",
            disk.name()
        ),
    };
    let mut esp = Esp::open(&disk)?;
    if esp.slot_config(slot)?.is_none() || !esp.has_kernel(slot)? {
        bail!(
            "{slot} on {} has no boot configuration or kernel on the ESP: it cannot boot, so it is not marked good",
            disk.name()
        );
    }
    let mut gpt = disk.slots()?;
    // What GRUB recorded for the other slot is kept (sync's rule).
    fold_spent_tries(&mut gpt, &esp.grub_view()?)?;
    let part = disk.usr(&gpt, slot)?;
    gpt.set(
        part.number,
        SlotAttrs {
            successful: true,
            tries: 0,
            ..part.attrs
        },
    )?;
    gpt.prioritize(part.number)?;
    gpt.write(&disk.file)?;
    esp.write_grub_view(&slot_attrs(&gpt))?;
    esp.write_fallback(slot)?;
    esp.close()?;
    let now = disk.usr(&gpt, slot)?.attrs;
    println!("coreos-update: {slot} marked good ({now})");
    Ok(())
}

//! `coreos-update mark-good` (coreos-setgoodroot: `cgpt add -S1 -T0; cgpt prioritize`): the
//! booted slot, or `--slot`, becomes successful with no tries left; GRUB's view is rendered.
//!
//! The booted slot is raised to the highest priority (and named the fallback) only while the
//! GPT still prefers it (GRUB's rule, the running slot counting as bootable): an operator who ran `cgpt add -P`/`cgpt prioritize` for the other slot,
//! or `cgpt add -P0` on this one, since this boot began (CoreOS's manual rollback) is not undone,
//! and an update whose grubenv write a power cut lost stays pending. `--slot` (an operator's own
//! command) raises as coreos-setgoodroot did. Nothing is written when nothing changes.

use crate::cli::MarkGoodArgs;
use crate::esp::Esp;
use crate::slot_state::{fold_spent_tries, preferred, slot_attrs};
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
    let before = slot_attrs(&gpt);
    // What GRUB recorded for the other slot is kept (sync's rule).
    fold_spent_tries(&mut gpt, &esp.grub_view()?, &esp.written_tries()?)?;
    let part = disk.usr(&gpt, slot)?;
    gpt.set(
        part.number,
        SlotAttrs {
            successful: true,
            tries: 0,
            ..part.attrs
        },
    )?;
    let raise = args.slot.is_some() || preferred(&gpt, slot) == Some(slot);
    if raise {
        gpt.prioritize(part.number)?;
    } else {
        tracing::info!(
            "{slot} is not raised: the GPT prefers {} (a cgpt edit, or an update still pending)",
            preferred(&gpt, slot).map_or("no slot".to_string(), |s| s.to_string())
        );
    }
    if slot_attrs(&gpt) != before || !gpt.damaged.is_empty() {
        gpt.write(&disk.file)?;
    }
    esp.write_grub_view(&slot_attrs(&gpt))?;
    if raise {
        esp.write_fallback(slot)?;
    }
    esp.close()?;
    let now = disk.usr(&gpt, slot)?.attrs;
    println!("coreos-update: {slot} marked good ({now})");
    Ok(())
}

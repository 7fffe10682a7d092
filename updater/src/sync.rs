//! `coreos-update sync`: early in every boot, take the try GRUB spent into the GPT (GRUB only
//! ever lowers `tries`, so the lower count is the newer where priority and successful agree),
//! then render GRUB's view from the GPT — the GPT wins on any other difference (a manual
//! `cgpt add`, an apply whose last step did not happen, a corrupt grubenv). A slot config that
//! names another PARTUUID than its partition has (a disk cloned with `sgdisk -G`) is rewritten.

use crate::cli::DiskArgs;
use crate::esp::{Esp, GrubView};
use crate::slot_state::{fold_spent_tries, slot_attrs};
use crate::target::UpdateDisk;
use anyhow::Result;

pub fn run(args: &DiskArgs) -> Result<()> {
    let disk = UpdateDisk::open(args.disk.as_deref(), true)?;
    let mut esp = Esp::open(&disk)?;
    let mut gpt = disk.slots()?;
    let view = esp.grub_view()?;
    let changes = fold_spent_tries(&mut gpt, &view, &esp.written_tries()?)?;
    for d in &gpt.damaged {
        tracing::warn!("{}: {d}; rewriting both GPT copies", disk.name());
    }
    if !changes.is_empty() || !gpt.damaged.is_empty() {
        gpt.write(&disk.file)?;
    }
    match &view {
        GrubView::Missing => tracing::warn!("GRUB's view of the slots was missing; rewritten"),
        GrubView::Malformed(why) => tracing::warn!("{why}; rewritten from the GPT"),
        GrubView::Slots(_) => {}
    }
    // A cloned disk (`sgdisk -G`) has new partition GUIDs: a slot config naming the old one
    // would send the kernel looking for a partition that is not there. The slot is the same
    // partition (its label), and dm-verity's root hash still decides what it may hold.
    for p in gpt.usr_partitions() {
        let Some(slot) = disk::slots::Slot::from_label(&p.label) else {
            continue;
        };
        if let Some(mut c) = esp.slot_config(slot)? {
            if c.partuuid != p.part_guid {
                println!(
                    "coreos-update: {slot}: its boot config named PARTUUID {}, the partition is {}                      now (a cloned disk?): rewritten",
                    c.partuuid, p.part_guid
                );
                c.partuuid = p.part_guid;
                esp.write_config(&c)?;
            }
        }
    }
    esp.write_grub_view(&slot_attrs(&gpt))?;
    esp.close()?;
    for c in &changes {
        println!(
            "coreos-update: {}: GRUB spent a try ({} -> {})",
            c.slot, c.before, c.after
        );
    }
    Ok(())
}

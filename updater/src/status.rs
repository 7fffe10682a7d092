//! `coreos-update status`: both slots as the GPT has them (what `cgpt show` reads), the
//! version in each, whether each has its boot files on the ESP, which one boots next, and
//! whether GRUB's view agrees.

use crate::cli::DiskArgs;
use crate::esp::{Esp, GrubView};
use crate::slot_state::{next_boot, slot_attrs};
use crate::target::UpdateDisk;
use anyhow::Result;

pub fn run(args: &DiskArgs) -> Result<()> {
    let disk = UpdateDisk::open(args.disk.as_deref(), false)?;
    let gpt = disk.slots()?;
    let esp = Esp::open_for_reading(&disk)?;
    let next = next_boot(&gpt);
    match disk.booted {
        Some(s) => println!("disk {} (running {s})", disk.name()),
        None => println!("disk {}", disk.name()),
    }
    for p in gpt.usr_partitions() {
        let Some(slot) = disk::slots::Slot::from_label(&p.label) else {
            continue;
        };
        let version = crate::release_info::read(&disk.file, &p)
            .and_then(|r| r.version)
            .unwrap_or_else(|| "unknown".into());
        let config = esp.slot_config(slot)?;
        let stale = config.as_ref().is_some_and(|c| c.partuuid != p.part_guid);
        let bootable = config.is_some() && esp.has_kernel(slot)?;
        let mut notes = Vec::new();
        if next == Some(slot) {
            notes.push("boots next");
        }
        if disk.booted == Some(slot) {
            notes.push("running");
        }
        println!(
            "{slot} partition={} version={version} priority={} tries={} successful={} boot-files={}{}{}",
            p.number,
            p.attrs.priority,
            p.attrs.tries,
            p.attrs.successful as u8,
            match (bootable, stale) {
                (true, false) => "yes",
                (true, true) => "stale (its config names another PARTUUID: a cloned disk? sync rewrites it)",
                _ => "no",
            },
            if notes.is_empty() { "" } else { "  " },
            notes.join(", ")
        );
    }
    let gpt_view: std::collections::BTreeMap<_, _> = slot_attrs(&gpt).into_iter().collect();
    let view = esp.grub_view()?;
    // What GRUB does with today's grubenv (its rule; a missing or unusable view boots the
    // fallback slot), and what the GPT, rendered by the next sync, will make it do.
    let name = |s: Option<disk::slots::Slot>| s.map_or("no slot".to_string(), |s| s.to_string());
    let grub_next = match &view {
        GrubView::Slots(v) => {
            let slots: Vec<_> = v.iter().map(|(s, a)| (*s, *a)).collect();
            let attrs: Vec<_> = slots.iter().map(|s| s.1).collect();
            disk::slots::select::next_boot(&attrs).map(|i| slots[i].0)
        }
        GrubView::Missing | GrubView::Malformed(_) => esp.fallback()?,
    };
    println!(
        "GRUB boots next: {} (from today's grubenv); after the next sync: {}",
        name(grub_next),
        name(next)
    );
    match view {
        GrubView::Slots(v) if v == gpt_view => println!("GRUB's view: same as the GPT"),
        GrubView::Slots(v) => {
            let text: Vec<String> = v.iter().map(|(s, a)| format!("{s} {a}")).collect();
            println!(
                "GRUB's view: {} (differs; the next sync takes GRUB's spent tries and renders the rest from the GPT)",
                text.join(", ")
            )
        }
        GrubView::Missing => println!("GRUB's view: missing (GRUB boots the fallback slot)"),
        GrubView::Malformed(why) => {
            println!("GRUB's view: unusable, {why} (GRUB boots the fallback slot)")
        }
    }
    if !gpt.damaged.is_empty() {
        println!("GPT: {}", gpt.damaged.join("; "));
    }
    Ok(())
}

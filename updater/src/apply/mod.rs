//! `coreos-update apply`: a verified payload into the passive slot, which then boots next, once.
//!
//! Crash safety, the argument (a power cut or kill at any point leaves a disk that boots the
//! active slot through dm-verity):
//! - GRUB boots a slot only when grubenv marks it bootable **and** the slot's config
//!   (`coreos/usr-X.cfg`) is on the ESP with its kernel; the config is removed first and written
//!   last. The GPT attributes are the truth that `sync` renders grubenv from.
//! 1. Nothing is written until the whole payload is verified (signature, every blob, board,
//!    version, size); any refusal leaves the disk byte for byte as it was.
//! 2. The passive slot is made unbootable: its config (then kernel, initrd) removed from the
//!    ESP, synced; GPT attributes 0 (both copies); grubenv rendered from the GPT.
//! 3. The partition is written (payload pass 2: every blob checked again, the result's SHA-256
//!    checked), synced. A cut here leaves a slot GRUB cannot boot: no config, priority 0.
//! 4. Its kernel (from the payload), initrd (from the new USR) and config (the root hash derived
//!    from the written, checked tree) go onto the ESP, config last, synced. Still priority 0.
//! 5. GPT: passive tries 1, successful 0, prioritized above every other slot (coreos-postinst's
//!    `cgpt add -S0 -T1; cgpt prioritize`), both copies, synced.
//! 6. grubenv rendered from the GPT: from now on GRUB tries the new slot once.
//!
//! A cut between 5 and 6 boots the active slot once more (grubenv still says priority 0); its
//! `sync` renders the new view, and its `mark-good` then puts the active slot back on top, as
//! coreos-setgoodroot would: the update is superseded and `apply` must run again.
//!
//! `COREOS_UPDATE_FAULT` stops the process dead at a named point, for tests (see `fault`).

mod fault;
mod payload_file;
mod slot_boot;

use crate::cli::ApplyArgs;
use crate::esp::Esp;
use crate::slot_state::{kept_by_update, slot_attrs};
use crate::target::UpdateDisk;
use anyhow::{anyhow, bail, Context, Result};
use disk::slots::SlotAttrs;
use fault::{Fault, FaultPlan};
use payload_file::Obtained;
use std::fs::File;

pub fn run(args: &ApplyArgs) -> Result<()> {
    let faults = FaultPlan::from_env()?;
    let ui = fetch::progress::Ui::new();
    let key = keys::PayloadPublicKey::from_file(&args.key)
        .with_context(|| format!("reading the payload key {}", args.key.display()))?;
    let disk = UpdateDisk::open(args.disk.disk.as_deref(), true)?;
    let gpt = disk.slots()?;
    let active = disk
        .booted
        .or_else(|| kept_by_update(&gpt))
        .ok_or_else(|| {
            anyhow!(
                "no slot of {} can boot: nothing to update from",
                disk.name()
            )
        })?;
    let passive = active.other();
    if disk.booted == Some(passive) {
        bail!("refusing to write {passive}: the running system booted from it");
    }
    let passive_part = disk.usr(&gpt, passive)?;
    let running = crate::release_info::read(&disk.file, &disk.usr(&gpt, active)?);
    let board = running
        .as_ref()
        .and_then(|r| r.board.clone())
        .ok_or_else(|| {
            anyhow!(
                "cannot read the board of {active} on {} (its /share/coreos/release)",
                disk.name()
            )
        })?;
    disk.check_unused(passive_part.number, passive_part.offset(), passive.label())?;
    // Refused while mounted, before anything is written.
    let mut esp = Esp::open(&disk)?;

    let running_version = running.and_then(|r| r.version);
    let payload = match payload_file::obtain(args, running_version.as_deref(), &ui)? {
        Obtained::Payload(p) => p,
        Obtained::UpToDate(version) => {
            println!(
                "coreos-update: {active} of {} already runs {version}, the mirror's current \
                 version: nothing to apply",
                disk.name()
            );
            return Ok(());
        }
    };
    let verified = payload_file::verify(&payload, &key, &ui)?;
    let info = verified.info().clone();
    let what = payload.path.display().to_string();
    match info.board.as_deref() {
        Some(b) if b == board => {}
        Some(b) => bail!(
            "{what} is an update for board {b}, but {active} of {} runs {board}",
            disk.name()
        ),
        None => bail!("{what} names no board: refusing it for {board}"),
    }
    let version = info
        .version
        .clone()
        .ok_or_else(|| anyhow!("{what} names no version"))?;
    if let Some(want) = &payload.expected_version {
        if *want != version {
            bail!("{what} is version {version}, not the requested {want}");
        }
    }
    if info.partition_size > passive_part.bytes() || info.partition_size % 4096 != 0 {
        bail!(
            "{what} writes {} bytes; {passive} (partition {}) holds {}",
            info.partition_size,
            passive_part.number,
            passive_part.bytes()
        );
    }
    tracing::info!("{what}: version {version} for {board}, verified; writing {passive}");

    // Step 2: the passive slot cannot boot.
    esp.remove_slot(passive)?;
    esp.sync()?;
    let mut gpt = disk.slots()?;
    gpt.set(passive_part.number, SlotAttrs::default())?;
    gpt.write(&disk.file)?;
    esp.write_grub_view(&slot_attrs(&gpt))?;
    esp.sync()?;
    faults.at(Fault::BeforeSlotWrite);

    // Step 3: the partition.
    let mut bar = ui.bar("write", Some(info.partition_size));
    let half = info.partition_size / 2;
    let applied = payload::apply(
        File::open(&payload.path).with_context(|| format!("opening {what}"))?,
        &verified,
        &disk.file,
        passive_part.offset(),
        &mut |n| {
            bar.set(n);
            if n >= half {
                faults.at(Fault::DuringSlotWrite);
            }
        },
    )
    .with_context(|| {
        format!(
            "writing {what} into {passive} (partition {})",
            passive_part.number
        )
    })?;
    bar.finish();
    faults.at(Fault::AfterSlotWrite);

    // Step 4: its boot files, config last.
    let boot = slot_boot::from_partition(&disk.file, &passive_part, passive, &version)?;
    esp.write_slot(&boot.config, &applied.kernel, boot.initrd.as_deref())?;
    esp.sync()?;
    faults.at(Fault::BeforeAttributes);

    // Step 5: the GPT (coreos-postinst).
    let mut gpt = disk.slots()?;
    let now = disk.usr(&gpt, passive)?;
    gpt.set(
        now.number,
        SlotAttrs {
            tries: 1,
            successful: false,
            ..now.attrs
        },
    )?;
    gpt.prioritize(now.number)?;
    gpt.write(&disk.file)?;
    faults.at(Fault::BetweenGptAndGrubenv);

    // Step 6: GRUB's view.
    esp.write_grub_view(&slot_attrs(&gpt))?;
    esp.close()?;
    let attrs = disk.usr(&gpt, passive)?.attrs;
    println!(
        "coreos-update: {version} written to {passive} of {} ({attrs}); it boots next, once: \
         it stays only if that boot marks it good",
        disk.name()
    );
    Ok(())
}

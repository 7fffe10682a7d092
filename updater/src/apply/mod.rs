//! `coreos-update apply`: a verified payload into the passive slot, which then boots next, once.
//!
//! Crash safety, the argument (a power cut or kill at any point leaves a disk that boots the
//! active slot through dm-verity):
//! - GRUB boots a slot only when grubenv marks it bootable **and** the slot's config
//!   (`coreos/usr-X.cfg`) is on the ESP with its kernel; the config is removed first and written
//!   last. The GPT attributes are the truth that `sync` renders grubenv from.
//! 1. Nothing is written until the whole payload is verified (signature, every blob, board,
//!    channel, version, size) and allowed (`policy`: not from a boot on trial, no downgrade,
//!    not a version that failed its trial here); any refusal leaves the disk byte for byte as
//!    it was.
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
//! `sync` renders the new view, and its `mark-good` leaves the pending slot on top (it raises
//! the booted slot only while the GPT prefers it), so the boot after that tries the update.
//!
//! `COREOS_UPDATE_FAULT` stops the process dead at a named point, for tests (see `fault`).

mod fault;
mod payload_file;
mod slot_boot;

use crate::cli::ApplyArgs;
use crate::esp::Esp;
use crate::policy::{self, Refused};
use crate::slot_state::{kept_by_update, slot_attrs};
use crate::target::UpdateDisk;
use anyhow::{anyhow, bail, Context, Result};
use disk::slots::{GptSlots, Slot, SlotAttrs, UsrPartition};
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
    check_trial(&disk, &gpt, &passive_part, args.force)?;
    let active_part = disk.usr(&gpt, active)?;
    let running = crate::release_info::read(&disk.file, &active_part);
    let board = running
        .as_ref()
        .and_then(|r| r.board.clone())
        .ok_or_else(|| {
            anyhow!(
                "cannot read the board of {active} on {} (its /share/coreos/release)",
                disk.name()
            )
        })?;
    let channel = crate::release_info::machine_channel(
        &disk.file,
        &active_part,
        disk.root.as_ref(),
        disk.booted.is_some(),
    );
    let _passive_hold =
        disk.check_unused(passive_part.number, passive_part.offset(), passive.label())?;
    // Refused while mounted, before anything is written.
    let mut esp = Esp::open(&disk)?;

    // A release that failed its trial here is not written again (see `failed_trial`).
    let passive_failed = failed_trial(&esp, passive, passive_part.attrs)?;
    let mut failed = esp.failed_versions()?;
    failed.extend(passive_failed.clone());
    let running_version = running.and_then(|r| r.version);
    // The version a payload claims (unsigned version.txt) and then the one it is signed as.
    let check_version = |version: &str| -> Result<(), Refused> {
        policy::check_not_downgrade(running_version.as_deref(), version, args.allow_downgrade)?;
        if !args.retry_failed && failed.iter().any(|f| f == version) {
            return Err(Refused::FailedBefore {
                version: version.to_string(),
            });
        }
        Ok(())
    };
    let payload = match payload_file::obtain(args, running_version.as_deref(), &check_version, &ui)?
    {
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
        Some(b) => {
            return Err(anyhow::Error::new(Refused::OtherBoard {
                machine: board.clone(),
                payload: b.to_string(),
            })
            .context(format!(
                "{what} is an update for board {b}, but {active} of {} runs {board}",
                disk.name()
            )))
        }
        None => bail!("{what} names no board: refusing it for {board}"),
    }
    policy::check_channel(channel.as_deref(), info.channel.as_deref())
        .with_context(|| format!("{what} (signed release channel)"))?;
    let version = info
        .version
        .clone()
        .ok_or_else(|| anyhow!("{what} names no version"))?;
    if let Some(want) = &payload.expected_version {
        if *want != version {
            bail!("{what} is version {version}, not the requested {want}");
        }
    }
    check_version(&version).with_context(|| format!("{what} is signed as version {version}"))?;
    if info.partition_size > passive_part.bytes() || info.partition_size % 4096 != 0 {
        bail!(
            "{what} writes {} bytes; {passive} (partition {}) holds {}",
            info.partition_size,
            passive_part.number,
            passive_part.bytes()
        );
    }
    tracing::info!("{what}: version {version} for {board}, verified; writing {passive}");

    // Step 2: the passive slot cannot boot. What it held failed its trial: remembered first,
    // as the slot's own evidence (attributes, config) goes now.
    if let Some(v) = &passive_failed {
        tracing::info!("{passive} held {v}, which failed its trial boot: remembered on the ESP");
        esp.remember_failed(v)?;
    }
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

/// From a boot that is itself on trial (the running slot not marked good), writing the other
/// slot would destroy the last one known to boot: refused unless `force`, which says what goes.
fn check_trial(
    disk: &UpdateDisk,
    gpt: &GptSlots,
    passive_part: &UsrPartition,
    force: bool,
) -> Result<()> {
    let Some(booted) = disk.booted else {
        return Ok(());
    };
    if disk.usr(gpt, booted)?.attrs.successful {
        return Ok(());
    }
    let refusal = Refused::UnprovenTrial {
        running: booted.to_string(),
        passive: booted.other().to_string(),
        passive_version: crate::release_info::read(&disk.file, passive_part)
            .and_then(|r| r.version),
        passive_good: passive_part.attrs.successful,
    };
    if !force {
        return Err(refusal.into());
    }
    let Refused::UnprovenTrial {
        passive,
        passive_version,
        passive_good,
        ..
    } = refusal
    else {
        unreachable!()
    };
    tracing::warn!(
        "--force: {booted} is on trial, yet {passive} (version {}{}) is overwritten now",
        passive_version.as_deref().unwrap_or("unknown"),
        if passive_good {
            ", the only slot marked good"
        } else {
            ""
        }
    );
    Ok(())
}

/// The version in `slot` when that slot failed its trial boot: it was fully written (its
/// config is on the ESP) and made to boot (priority above 0), GRUB spent its try, and no boot
/// marked it good. A slot whose apply stopped before the attributes has priority 0; a
/// pending one still has its try.
fn failed_trial(esp: &Esp, slot: Slot, attrs: SlotAttrs) -> Result<Option<String>> {
    if attrs.priority == 0 || attrs.tries > 0 || attrs.successful {
        return Ok(None);
    }
    Ok(esp.slot_config(slot)?.map(|c| c.version))
}

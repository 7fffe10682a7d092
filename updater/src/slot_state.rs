//! The slots' state on one disk: the GPT attributes are the truth; GRUB's view on the ESP is
//! rendered from them, and the one thing GRUB writes there (a spent try) is folded back.

use crate::esp::GrubView;
use anyhow::Result;
use disk::slots::grub_view::fold_grub_record;
use disk::slots::{select, GptSlots, Slot, SlotAttrs};
use std::collections::BTreeMap;

/// USR-A and USR-B with their GPT attributes, in table order.
pub fn slot_attrs(gpt: &GptSlots) -> Vec<(Slot, SlotAttrs)> {
    gpt.usr_partitions()
        .into_iter()
        .filter_map(|p| Some((Slot::from_label(&p.label)?, p.attrs)))
        .collect()
}

/// The slot the contract's rule picks from the GPT attributes.
pub fn next_boot(gpt: &GptSlots) -> Option<Slot> {
    pick(gpt, select::next_boot)
}

/// The slot the GPT prefers for the next boot, as GRUB's rule picks it (`select::next_boot`:
/// highest priority among slots with tries left or marked good, ties to the first), where the
/// running slot `booted` counts as bootable: its trial boot already spent its try.
pub fn preferred(gpt: &GptSlots, booted: Slot) -> Option<Slot> {
    let mut best: Option<(Slot, u8)> = None;
    for (slot, a) in slot_attrs(gpt) {
        let eligible = a.bootable() || slot == booted;
        if eligible && a.priority > best.map_or(0, |b| b.1) {
            best = Some((slot, a.priority));
        }
    }
    best.map(|b| b.0)
}

/// The slot an offline `apply` keeps (see `select::kept_by_update`): a pending update that
/// never booted is overwritten, never the last slot known to work.
pub fn kept_by_update(gpt: &GptSlots) -> Option<Slot> {
    pick(gpt, select::kept_by_update)
}

fn pick(gpt: &GptSlots, rule: fn(&[SlotAttrs]) -> Option<usize>) -> Option<Slot> {
    let slots = slot_attrs(gpt);
    let attrs: Vec<SlotAttrs> = slots.iter().map(|s| s.1).collect();
    rule(&attrs).map(|i| slots[i].0)
}

/// What changed in one slot's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub slot: Slot,
    pub before: SlotAttrs,
    pub after: SlotAttrs,
}

/// Take the tries GRUB spent (its view's lower `tries` where priority and successful agree,
/// and the GPT still holds the count last written, `written`) into `gpt`; nothing is written
/// here. A missing or malformed view records nothing.
pub fn fold_spent_tries(
    gpt: &mut GptSlots,
    view: &GrubView,
    written: &BTreeMap<Slot, u8>,
) -> Result<Vec<Change>> {
    let GrubView::Slots(grub) = view else {
        return Ok(Vec::new());
    };
    let mut changes = Vec::new();
    for p in gpt.usr_partitions() {
        let Some(slot) = Slot::from_label(&p.label) else {
            continue;
        };
        let Some(&g) = grub.get(&slot) else { continue };
        let after = fold_grub_record(p.attrs, g, written.get(&slot).copied());
        if after != p.attrs {
            gpt.set(p.number, after)?;
            changes.push(Change {
                slot,
                before: p.attrs,
                after,
            });
        }
    }
    Ok(changes)
}

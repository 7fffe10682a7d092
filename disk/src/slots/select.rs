//! Which slot boots next: GRUB's `gptprio.next` (coreos/grub `gptprio.c`) scans the coreos-usr
//! entries in table order and takes one with a try left or proven good whose priority is
//! strictly greater than the best so far — so priority 0 never boots and ties go to the lower
//! partition number. Booting a slot with tries left spends one first.

use super::SlotAttrs;

/// The index into `slots` (in table order) of the slot that boots next, if any.
pub fn next_boot(slots: &[SlotAttrs]) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, s) in slots.iter().enumerate() {
        if s.bootable() && s.priority > best.map_or(0, |b| b.1) {
            best = Some((i, s.priority));
        }
    }
    best.map(|b| b.0)
}

/// The slot an update must keep when no running system says which one it booted (an offline
/// disk): the highest-priority slot that proved itself, so a pending update that never booted
/// is replaced again rather than the last slot known to work; with none proven, the next boot.
pub fn kept_by_update(slots: &[SlotAttrs]) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, s) in slots.iter().enumerate() {
        if s.successful && s.priority > best.map_or(0, |b| b.1) {
            best = Some((i, s.priority));
        }
    }
    best.map(|b| b.0).or_else(|| next_boot(slots))
}

/// The attributes after a boot of this slot: one try fewer when it has tries left.
pub fn spend_try(s: SlotAttrs) -> SlotAttrs {
    SlotAttrs {
        tries: s.tries.saturating_sub(1),
        ..s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(priority: u8, tries: u8, successful: bool) -> SlotAttrs {
        SlotAttrs {
            priority,
            tries,
            successful,
        }
    }

    #[test]
    fn fresh_image_boots_usr_a() {
        assert_eq!(next_boot(&[s(1, 0, true), s(0, 0, false)]), Some(0));
    }

    #[test]
    fn an_applied_update_boots_once_then_rolls_back() {
        let mut b = s(2, 1, false);
        let a = s(1, 0, true);
        assert_eq!(next_boot(&[a, b]), Some(1));
        b = spend_try(b);
        assert_eq!(b, s(2, 0, false));
        assert_eq!(next_boot(&[a, b]), Some(0), "never marked good: back to A");
    }

    #[test]
    fn ties_go_to_the_lower_partition_and_zero_never_wins() {
        assert_eq!(next_boot(&[s(2, 0, true), s(2, 1, false)]), Some(0));
        assert_eq!(next_boot(&[s(0, 5, true), s(0, 1, true)]), None);
        assert_eq!(next_boot(&[s(3, 0, false), s(1, 0, false)]), None);
        assert_eq!(next_boot(&[]), None);
    }

    #[test]
    fn an_offline_update_keeps_the_proven_slot_not_a_pending_one() {
        let (a, pending) = (s(1, 0, true), s(2, 1, false));
        assert_eq!(next_boot(&[a, pending]), Some(1));
        assert_eq!(
            kept_by_update(&[a, pending]),
            Some(0),
            "B is replaced again"
        );
        assert_eq!(
            kept_by_update(&[a, s(2, 0, true)]),
            Some(1),
            "B proved itself"
        );
        assert_eq!(kept_by_update(&[a, s(2, 0, false)]), Some(0), "rolled back");
        assert_eq!(kept_by_update(&[s(0, 0, false), s(1, 2, false)]), Some(1));
        assert_eq!(kept_by_update(&[s(0, 0, true), s(0, 0, false)]), None);
    }

    #[test]
    fn spending_stops_at_zero() {
        assert_eq!(spend_try(s(1, 0, true)), s(1, 0, true));
        assert_eq!(spend_try(s(1, 15, false)), s(1, 14, false));
    }
}

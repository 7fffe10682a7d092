//! The three A/B fields in a GPT entry's 64-bit attributes (UEFI 2.10 §5.3.3, bits 48–63 are
//! type-specific; cgpt's layout, seismograph `cgptlib_internal.h`):
//! `CGPT_ATTRIBUTE_PRIORITY_OFFSET` 48 (4 bits), `CGPT_ATTRIBUTE_TRIES_OFFSET` 52 (4 bits),
//! `CGPT_ATTRIBUTE_SUCCESSFUL_OFFSET` 56 (1 bit). Every other bit is kept as it is.

use super::SlotError;

pub const PRIORITY_OFFSET: u32 = 48;
pub const TRIES_OFFSET: u32 = 52;
pub const SUCCESSFUL_OFFSET: u32 = 56;
/// `CGPT_ATTRIBUTE_MAX_PRIORITY`, `CGPT_ATTRIBUTE_MAX_TRIES`.
pub const MAX_PRIORITY: u8 = 15;
pub const MAX_TRIES: u8 = 15;

const PRIORITY_MASK: u64 = 0xf << PRIORITY_OFFSET;
const TRIES_MASK: u64 = 0xf << TRIES_OFFSET;
const SUCCESSFUL_MASK: u64 = 1 << SUCCESSFUL_OFFSET;

/// Priority, tries left and successful of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotAttrs {
    pub priority: u8,
    pub tries: u8,
    pub successful: bool,
}

impl SlotAttrs {
    /// The fields of a GPT entry's attributes.
    pub fn from_bits(bits: u64) -> SlotAttrs {
        SlotAttrs {
            priority: ((bits & PRIORITY_MASK) >> PRIORITY_OFFSET) as u8,
            tries: ((bits & TRIES_MASK) >> TRIES_OFFSET) as u8,
            successful: bits & SUCCESSFUL_MASK != 0,
        }
    }

    /// `bits` with these three fields in place of its own; the other bits unchanged.
    pub fn to_bits(self, bits: u64) -> u64 {
        let cleared = bits & !(PRIORITY_MASK | TRIES_MASK | SUCCESSFUL_MASK);
        cleared
            | ((self.priority.min(MAX_PRIORITY) as u64) << PRIORITY_OFFSET)
            | ((self.tries.min(MAX_TRIES) as u64) << TRIES_OFFSET)
            | if self.successful { SUCCESSFUL_MASK } else { 0 }
    }

    /// Bootable by the selection rule: priority above 0 and a try left or proven good.
    pub fn bootable(self) -> bool {
        self.priority > 0 && (self.tries > 0 || self.successful)
    }

    /// The fields with `edit` applied, as `cgpt add` does.
    pub fn edited(self, edit: AttrEdit) -> SlotAttrs {
        SlotAttrs {
            priority: edit.priority.unwrap_or(self.priority),
            tries: edit.tries.unwrap_or(self.tries),
            successful: edit.successful.unwrap_or(self.successful),
        }
    }
}

impl std::fmt::Display for SlotAttrs {
    /// As `cgpt show` prints them: `priority=1 tries=0 successful=1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "priority={} tries={} successful={}",
            self.priority, self.tries, self.successful as u8
        )
    }
}

/// `cgpt add -P N -T N -S N`: the fields given are set, the others kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttrEdit {
    pub priority: Option<u8>,
    pub tries: Option<u8>,
    pub successful: Option<bool>,
}

impl AttrEdit {
    /// Checked as cgpt's `cmd_add.c` checks its options (`-P` 0–15, `-T` 0–15, `-S` 0–1).
    pub fn new(
        priority: Option<u32>,
        tries: Option<u32>,
        successful: Option<u32>,
    ) -> Result<AttrEdit, SlotError> {
        let check = |v: Option<u32>, max: u32, what: &str| match v {
            Some(n) if n > max => Err(SlotError::Invalid(format!(
                "{what} {n} is out of range (0-{max})"
            ))),
            v => Ok(v.map(|n| n as u8)),
        };
        Ok(AttrEdit {
            priority: check(priority, MAX_PRIORITY as u32, "priority")?,
            tries: check(tries, MAX_TRIES as u32, "tries")?,
            successful: check(successful, 1, "successful")?.map(|s| s == 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coreos_build_time_values() {
        // disk_util: USR-A `cgpt add -S1 -P1` = 0x0101000000000000; USR-B zero.
        let a = SlotAttrs {
            priority: 1,
            tries: 0,
            successful: true,
        };
        assert_eq!(a.to_bits(0), 0x0101_0000_0000_0000);
        assert_eq!(SlotAttrs::from_bits(0x0101_0000_0000_0000), a);
        assert_eq!(SlotAttrs::from_bits(0), SlotAttrs::default());
        // After coreos-postinst on USR-B: priority 2, tries 1, successful 0.
        let b = SlotAttrs {
            priority: 2,
            tries: 1,
            successful: false,
        };
        assert_eq!(b.to_bits(0), 0x0012_0000_0000_0000);
    }

    #[test]
    fn other_bits_are_kept() {
        let bits = 0xf000_0000_0000_0005u64 | (1 << 57);
        let with = SlotAttrs {
            priority: 15,
            tries: 15,
            successful: true,
        }
        .to_bits(bits);
        assert_eq!(with, bits | 0x01ff_0000_0000_0000);
        assert_eq!(SlotAttrs::default().to_bits(with), bits);
    }

    #[test]
    fn every_value_round_trips() {
        for p in 0..=15u8 {
            for t in 0..=15u8 {
                for s in [false, true] {
                    let a = SlotAttrs {
                        priority: p,
                        tries: t,
                        successful: s,
                    };
                    assert_eq!(SlotAttrs::from_bits(a.to_bits(u64::MAX)), a);
                }
            }
        }
    }

    #[test]
    fn bootable_is_the_selection_rule() {
        let s = |priority, tries, successful| SlotAttrs {
            priority,
            tries,
            successful,
        };
        assert!(s(1, 0, true).bootable());
        assert!(s(2, 1, false).bootable());
        assert!(!s(2, 0, false).bootable(), "no try left, never proven");
        assert!(!s(0, 3, true).bootable(), "priority 0 never boots");
    }

    #[test]
    fn edits_set_only_what_is_given_and_check_ranges() {
        let a = SlotAttrs {
            priority: 1,
            tries: 0,
            successful: true,
        };
        // coreos-postinst: cgpt add -S0 -T1
        let e = AttrEdit::new(None, Some(1), Some(0)).unwrap();
        assert_eq!(
            a.edited(e),
            SlotAttrs {
                priority: 1,
                tries: 1,
                successful: false
            }
        );
        assert!(AttrEdit::new(Some(16), None, None)
            .unwrap_err()
            .to_string()
            .contains("priority 16"));
        assert!(AttrEdit::new(None, Some(16), None).is_err());
        assert!(AttrEdit::new(None, None, Some(2)).is_err());
    }
}

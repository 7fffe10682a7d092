//! The A/B contract of CoreOS's USR slots, as `cgpt` and GRUB's `gptprio` kept it in the GPT:
//! per coreos-usr partition (type `5dfbf5f4-…`), priority in attribute bits 48–51, tries left
//! in 52–55, successful in 56 (seismograph `cgptlib_internal.h`).
//!
//! - `attrs`: the three fields and `cgpt add -P/-T/-S` on them.
//! - `prioritize`: `cgpt prioritize` (priority groups, renumbering, priority 0 stays 0).
//! - `select`: which slot boots next (`gptprio.next`'s rule) and spending a try.
//! - `table`: the attributes read from and written to a disk's GPT, both copies, CRCs right.
//! - `grub_view`: GRUB's writable mirror of the attributes (a grubenv block) and folding what
//!   GRUB recorded back into them.
//! - `esp_files`: where each slot's kernel, initrd and configuration live on the ESP.
//!
//! The GPT stays the one truth (`cgpt show` reads it); everything else is rendered from it.

pub mod attrs;
pub mod esp_files;
pub mod grub_view;
pub mod prioritize;
pub mod select;
pub mod table;

pub use attrs::{AttrEdit, SlotAttrs};
pub use table::{GptSlots, UsrPartition};

use uuid::{uuid, Uuid};

/// The partition type of CoreOS's USR slots (cgpt `coreos-usr`, `coreos-rootfs`).
pub const USR_TYPE: Uuid = uuid!("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6");

/// One of the two USR slots of the CoreOS layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// The partition label: `USR-A`, `USR-B`.
    pub fn label(self) -> &'static str {
        match self {
            Slot::A => "USR-A",
            Slot::B => "USR-B",
        }
    }

    /// The letter in ESP file names and GRUB variables: `a`, `b`.
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The slot an update writes while this one runs.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn from_label(label: &str) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| s.label() == label)
    }

    /// `a`/`b` (any case), or `USR-A`/`USR-B`.
    pub fn parse(s: &str) -> Option<Slot> {
        match s.to_ascii_lowercase().as_str() {
            "a" | "usr-a" => Some(Slot::A),
            "b" | "usr-b" => Some(Slot::B),
            _ => None,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("GPT entry {number}: {field} {value} {why}")]
    Entry {
        number: u32,
        field: &'static str,
        value: u64,
        why: String,
    },
}

impl SlotError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SlotError {
        let what = what.into();
        move |source| SlotError::Io { what, source }
    }
}

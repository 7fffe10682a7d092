//! Fault injection for tests: `COREOS_UPDATE_FAULT=<point>` makes `apply` stop dead at that
//! point with `std::process::abort` — no destructors, no flushing, as a `kill -9` leaves it.
//! Points, in the order apply reaches them: `before-slot-write` (the passive slot is
//! unbootable, nothing of the payload written), `during-slot-write` (half of the partition
//! written), `after-slot-write`, `before-attributes` (kernel, initrd and config on the ESP),
//! `between-gpt-and-grubenv`.

use anyhow::{bail, Result};

pub const ENV: &str = "COREOS_UPDATE_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    BeforeSlotWrite,
    DuringSlotWrite,
    AfterSlotWrite,
    BeforeAttributes,
    BetweenGptAndGrubenv,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::BeforeSlotWrite,
        Fault::DuringSlotWrite,
        Fault::AfterSlotWrite,
        Fault::BeforeAttributes,
        Fault::BetweenGptAndGrubenv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::BeforeSlotWrite => "before-slot-write",
            Fault::DuringSlotWrite => "during-slot-write",
            Fault::AfterSlotWrite => "after-slot-write",
            Fault::BeforeAttributes => "before-attributes",
            Fault::BetweenGptAndGrubenv => "between-gpt-and-grubenv",
        }
    }
}

/// The point `COREOS_UPDATE_FAULT` names, if any.
pub struct FaultPlan(Option<Fault>);

impl FaultPlan {
    pub fn from_env() -> Result<FaultPlan> {
        match std::env::var(ENV) {
            Err(_) => Ok(FaultPlan(None)),
            Ok(v) if v.is_empty() => Ok(FaultPlan(None)),
            Ok(v) => match Fault::ALL.into_iter().find(|f| f.name() == v) {
                Some(f) => Ok(FaultPlan(Some(f))),
                None => {
                    let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                    bail!("{ENV}={v:?} is not a fault point: {}", names.join(", "))
                }
            },
        }
    }

    /// Stop dead when `point` is the planned fault.
    pub fn at(&self, point: Fault) {
        if self.0 == Some(point) {
            eprintln!("coreos-update: {ENV}={}: stopping dead here", point.name());
            std::process::abort();
        }
    }
}

//! GRUB's view of the slots. Stock GRUB cannot read GPT attribute bits, so userland renders
//! them into the ESP's grubenv as `a_prio a_tries a_ok b_prio b_tries b_ok` (decimal; `ok` is
//! 0 or 1). grub.cfg loads exactly these names and writes back one thing only: a spent try
//! (`X_tries` one lower, with `save_env`). `fold_grub_record` takes that into the GPT.

use super::{Slot, SlotAttrs};
use crate::grubenv::{EnvBlock, EnvBlockError, ENVBLK_SIZE};
use std::collections::BTreeMap;

/// The grubenv variable names of one slot: (priority, tries, successful).
pub fn var_names(slot: Slot) -> [String; 3] {
    let l = slot.letter();
    [format!("{l}_prio"), format!("{l}_tries"), format!("{l}_ok")]
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ViewError {
    #[error("grubenv: {0}")]
    Block(#[from] EnvBlockError),
    #[error("grubenv: {name}={value:?} is not {what}")]
    BadValue {
        name: String,
        value: String,
        what: &'static str,
    },
    #[error("grubenv: no {0}")]
    Missing(String),
}

/// The block GRUB reads, `size` bytes (the existing file's size; `ENVBLK_SIZE` for a new one).
pub fn render(slots: &[(Slot, SlotAttrs)], size: usize) -> Result<Vec<u8>, ViewError> {
    let mut env = EnvBlock::default();
    for &(slot, a) in slots {
        let [p, t, s] = var_names(slot);
        env.set(&p, &a.priority.to_string())?;
        env.set(&t, &a.tries.to_string())?;
        env.set(&s, if a.successful { "1" } else { "0" })?;
    }
    Ok(env.render(size.max(ENVBLK_SIZE))?)
}

/// Every slot's attributes as the block holds them; any missing or malformed value is an
/// error (GRUB then boots the fallback slot, see grub.cfg).
pub fn parse(block: &[u8]) -> Result<BTreeMap<Slot, SlotAttrs>, ViewError> {
    let env = EnvBlock::parse(block)?;
    let number = |name: &str, max: u8, what: &'static str| -> Result<u8, ViewError> {
        let value = env
            .get(name)
            .ok_or_else(|| ViewError::Missing(name.into()))?;
        // As grub.cfg checks it: decimal without sign or leading zeros.
        let canonical = value
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= max && n.to_string() == value);
        canonical.ok_or_else(|| ViewError::BadValue {
            name: name.into(),
            value: value.into(),
            what,
        })
    };
    let mut out = BTreeMap::new();
    for slot in Slot::ALL {
        let [p, t, s] = var_names(slot);
        out.insert(
            slot,
            SlotAttrs {
                priority: number(&p, 15, "a priority 0-15")?,
                tries: number(&t, 15, "a try count 0-15")?,
                successful: number(&s, 1, "0 or 1")? == 1,
            },
        );
    }
    Ok(out)
}

/// The GPT attributes of a slot after what GRUB recorded at boot. GRUB only ever lowers
/// `tries` (one `save_env` per boot), so when priority and successful agree the lower count
/// is the newer one; on any other difference the GPT is right and GRUB's view is stale.
pub fn fold_grub_record(gpt: SlotAttrs, grub: SlotAttrs) -> SlotAttrs {
    if grub.priority == gpt.priority && grub.successful == gpt.successful && grub.tries < gpt.tries
    {
        SlotAttrs {
            tries: grub.tries,
            ..gpt
        }
    } else {
        gpt
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
    fn render_and_parse() {
        let b = render(&[(Slot::A, s(1, 0, true)), (Slot::B, s(2, 15, false))], 0).unwrap();
        assert_eq!(b.len(), 1024);
        assert!(b.starts_with(
            b"# GRUB Environment Block\na_prio=1\na_tries=0\na_ok=1\nb_prio=2\nb_tries=15\nb_ok=0\n###"
        ));
        let v = parse(&b).unwrap();
        assert_eq!(v[&Slot::A], s(1, 0, true));
        assert_eq!(v[&Slot::B], s(2, 15, false));
        // All of GRUB's variables fit the first sector, so a torn 1024-byte write cannot
        // leave half of them old.
        assert!(b[..512].ends_with(b"#"));
        assert_eq!(
            render(&[(Slot::A, s(1, 0, true))], 2048).unwrap().len(),
            2048
        );
    }

    #[test]
    fn malformed_views_are_refused() {
        let good = render(&[(Slot::A, s(1, 0, true)), (Slot::B, s(0, 0, false))], 0).unwrap();
        let text = String::from_utf8(good).unwrap();
        for (from, to, why) in [
            ("a_prio=1", "a_prio=x", "a_prio=\"x\""),
            ("a_prio=1", "a_prio=16", "a_prio=\"16\""),
            ("a_prio=1", "a_prio=01", "a_prio=\"01\""),
            ("b_ok=0", "b_ok=2", "b_ok=\"2\""),
            ("b_tries=0\n", "", "no b_tries"),
            ("# GRUB", "# GROB", "signature"),
        ] {
            let bad = text.replacen(from, to, 1);
            let e = parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{from}->{to}: {e}");
        }
    }

    #[test]
    fn sync_takes_a_spent_try_and_nothing_else() {
        let gpt = s(2, 1, false);
        assert_eq!(fold_grub_record(gpt, s(2, 0, false)), s(2, 0, false));
        // GRUB never raises tries: a higher count is a stale view.
        assert_eq!(
            fold_grub_record(s(2, 0, false), s(2, 1, false)),
            s(2, 0, false)
        );
        // Priority or successful differ: GPT wins (a manual cgpt change, an apply).
        assert_eq!(fold_grub_record(gpt, s(0, 0, false)), gpt);
        assert_eq!(fold_grub_record(gpt, s(2, 0, true)), gpt);
        assert_eq!(
            fold_grub_record(s(1, 3, true), s(1, 1, true)),
            s(1, 1, true)
        );
    }
}

//! GRUB's view of the slots. Stock GRUB cannot read GPT attribute bits, so userland renders
//! them into the ESP's grubenv as `a_prio a_tries a_ok b_prio b_tries b_ok` (decimal; `ok` is
//! 0 or 1). grub.cfg loads exactly these names and writes back one thing only: a spent try
//! (`X_tries` one lower, with `save_env`). `fold_grub_record` takes that into the GPT.
//!
//! Beside GRUB's count, `X_set` records the tries userland wrote (GRUB never touches it), so a
//! try GRUB spent (`X_tries < X_set`) is told from one an operator added with `cgpt add -T`
//! since (the GPT no longer says `X_set`): only a spent try is folded back.

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

/// The grubenv variable holding the tries userland wrote for `slot`.
pub fn written_tries_name(slot: Slot) -> String {
    format!("{}_set", slot.letter())
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
    for &(slot, a) in slots {
        env.set(&written_tries_name(slot), &a.tries.to_string())?;
    }
    Ok(env.render(size.max(ENVBLK_SIZE))?)
}

/// The tries userland wrote for each slot (`X_set`); a view rendered before they were
/// recorded, or a malformed value, gives none for that slot.
pub fn parse_written_tries(block: &[u8]) -> BTreeMap<Slot, u8> {
    let Ok(env) = EnvBlock::parse(block) else {
        return BTreeMap::new();
    };
    Slot::ALL
        .into_iter()
        .filter_map(|slot| {
            let v = env.get(&written_tries_name(slot))?;
            let n = v.parse::<u8>().ok().filter(|n| *n <= 15)?;
            Some((slot, n))
        })
        .collect()
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
///
/// `written`: the tries userland last rendered (`X_set`). With it, a try is folded only when
/// the GPT still holds exactly that count (so an operator's `cgpt add -T` since wins); without
/// it (a view from before `X_set`), the lower count is taken.
pub fn fold_grub_record(gpt: SlotAttrs, grub: SlotAttrs, written: Option<u8>) -> SlotAttrs {
    let spent = match written {
        Some(w) => gpt.tries == w && grub.tries < w,
        None => grub.tries < gpt.tries,
    };
    if grub.priority == gpt.priority && grub.successful == gpt.successful && spent {
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
            b"# GRUB Environment Block\na_prio=1\na_tries=0\na_ok=1\nb_prio=2\nb_tries=15\nb_ok=0\na_set=0\nb_set=15\n###"
        ));
        let v = parse(&b).unwrap();
        assert_eq!(v[&Slot::A], s(1, 0, true));
        assert_eq!(v[&Slot::B], s(2, 15, false));
        let w = parse_written_tries(&b);
        assert_eq!((w[&Slot::A], w[&Slot::B]), (0, 15));
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
        for w in [None, Some(1)] {
            let gpt = s(2, 1, false);
            assert_eq!(fold_grub_record(gpt, s(2, 0, false), w), s(2, 0, false));
            // Priority or successful differ: GPT wins (a manual cgpt change, an apply).
            assert_eq!(fold_grub_record(gpt, s(0, 0, false), w), gpt);
            assert_eq!(fold_grub_record(gpt, s(2, 0, true), w), gpt);
        }
        // GRUB never raises tries: a higher count is a stale view.
        assert_eq!(
            fold_grub_record(s(2, 0, false), s(2, 1, false), Some(1)),
            s(2, 0, false)
        );
        assert_eq!(
            fold_grub_record(s(1, 3, true), s(1, 1, true), Some(3)),
            s(1, 1, true)
        );
    }

    #[test]
    fn tries_an_operator_added_are_not_taken_for_spent_ones() {
        // Rendered 1; GRUB has not booted it; `cgpt add -T 3` since: the GPT's 3 stands.
        assert_eq!(
            fold_grub_record(s(2, 3, false), s(2, 1, false), Some(1)),
            s(2, 3, false)
        );
        // Without the record of what was written the two cannot be told apart.
        assert_eq!(
            fold_grub_record(s(2, 3, false), s(2, 1, false), None),
            s(2, 1, false)
        );
        // Rendered 3, GRUB spent one: folded.
        assert_eq!(
            fold_grub_record(s(2, 3, false), s(2, 2, false), Some(3)),
            s(2, 2, false)
        );
    }
}

//! Where the slots live on the EFI system partition, and the two small GRUB scripts that
//! describe them. Per slot: `coreos/vmlinuz-X`, `coreos/initrd-X` and `coreos/usr-X.cfg`
//! (everything slot-specific: the USR partition's PARTUUID and its dm-verity root hash, data
//! blocks and salt). `coreos/grub/grubenv` is GRUB's view of the GPT attributes (`grub_view`);
//! `coreos/grub/fallback.cfg` names the last slot marked good, for when grubenv is unusable.
//!
//! A slot's config is written last, after its partition, kernel and initrd are on disk, and
//! removed first when the slot is rewritten: grub.cfg boots no slot without it.

use super::{Slot, SlotError};
use uuid::Uuid;

pub const GRUBENV_PATH: &str = "coreos/grub/grubenv";
pub const FALLBACK_PATH: &str = "coreos/grub/fallback.cfg";
/// Versions that failed their trial boot on this disk, one a line: the updater does not write
/// them again (until asked). On the ESP because it belongs to the slots it describes (a disk
/// moved or cloned carries it), survives reboots and a wiped ROOT, and the updater already
/// edits the ESP in every command (on the device, or through the OS's mount of it).
pub const FAILED_VERSIONS_PATH: &str = "coreos/update/failed";

/// The versions listed in a failed-versions file (blank lines and `#` comments skipped).
pub fn parse_failed_versions(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The failed-versions file for `versions`.
pub fn render_failed_versions(versions: &[String]) -> String {
    let mut s = String::from("# versions that failed their trial boot (coreos-update)\n");
    for v in versions {
        s.push_str(v);
        s.push('\n');
    }
    s
}

pub fn kernel_path(slot: Slot) -> String {
    format!("coreos/vmlinuz-{}", slot.letter())
}

pub fn initrd_path(slot: Slot) -> String {
    format!("coreos/initrd-{}", slot.letter())
}

pub fn config_path(slot: Slot) -> String {
    format!("coreos/usr-{}.cfg", slot.letter())
}

/// What GRUB needs to boot one slot through dm-verity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotConfig {
    pub slot: Slot,
    /// The USR partition's unique GUID (`verity.usr=PARTUUID=…`).
    pub partuuid: Uuid,
    /// dm-verity root hash, 64 lowercase hex digits.
    pub root_hash: String,
    /// Filesystem blocks of 4096 bytes under verity; the hash tree starts after them.
    pub data_blocks: u64,
    /// dm-verity salt, lowercase hex (may be empty).
    pub salt: String,
    /// The OS version in the slot, for the boot menu (`[0-9A-Za-z.+_-]`).
    pub version: String,
}

/// The variables of a slot config, `X_uuid X_hash X_blocks X_salt X_version`.
pub fn config_var(slot: Slot, field: &str) -> String {
    format!("{}_{field}", slot.letter())
}

impl SlotConfig {
    /// Every field checked, so the rendered script cannot carry anything but values.
    pub fn check(&self) -> Result<(), SlotError> {
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let bad = |what: String| Err(SlotError::Invalid(format!("{} config: {what}", self.slot)));
        if self.root_hash.len() != 64 || !hex(&self.root_hash) {
            return bad(format!(
                "root hash {:?} is not 64 hex digits",
                self.root_hash
            ));
        }
        if !self.salt.len().is_multiple_of(2) || self.salt.len() > 512 || !hex(&self.salt) {
            return bad(format!("salt {:?} is not hex bytes", self.salt));
        }
        if self.data_blocks == 0 {
            return bad("0 data blocks".into());
        }
        let version_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        };
        if !version_ok(&self.version) {
            return bad(format!(
                "version {:?} has characters beyond [0-9A-Za-z._+-]",
                self.version
            ));
        }
        Ok(())
    }

    /// `coreos/usr-X.cfg`: GRUB script that only sets the slot's variables.
    pub fn render(&self) -> Result<String, SlotError> {
        self.check()?;
        let v = |f: &str| config_var(self.slot, f);
        Ok(format!(
            "# {label} (GRUB script, sourced by coreos/grub/grub.cfg; written by coreos-build or coreos-update)\n\
             set {u}=\"{uuid}\"\nset {h}=\"{hash}\"\nset {b}=\"{blocks}\"\nset {s}=\"{salt}\"\nset {ver}=\"{version}\"\n",
            label = self.slot.label(),
            u = v("uuid"),
            uuid = self.partuuid,
            h = v("hash"),
            hash = self.root_hash,
            b = v("blocks"),
            blocks = self.data_blocks,
            s = v("salt"),
            salt = self.salt,
            ver = v("version"),
            version = self.version,
        ))
    }

    /// Read a config back (`status`, tests); every field must be present and valid.
    pub fn parse(slot: Slot, text: &str) -> Result<SlotConfig, SlotError> {
        let get = |field: &str| -> Result<String, SlotError> {
            let prefix = format!("set {}=", config_var(slot, field));
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(|v| v.trim().trim_matches('"').to_string())
                .ok_or_else(|| {
                    SlotError::Invalid(format!(
                        "{} config has no {}",
                        slot,
                        config_var(slot, field)
                    ))
                })
        };
        let invalid = |what: String| SlotError::Invalid(format!("{slot} config: {what}"));
        let c = SlotConfig {
            slot,
            partuuid: get("uuid")?
                .parse()
                .map_err(|e| invalid(format!("PARTUUID: {e}")))?,
            root_hash: get("hash")?,
            data_blocks: get("blocks")?
                .parse()
                .map_err(|e| invalid(format!("data blocks: {e}")))?,
            salt: get("salt")?,
            version: get("version")?,
        };
        c.check()?;
        Ok(c)
    }
}

/// `coreos/grub/fallback.cfg`: the slot GRUB boots when grubenv is missing or malformed.
pub fn fallback_cfg(slot: Slot) -> String {
    format!(
        "# The last slot marked good: GRUB boots it when coreos/grub/grubenv is unusable.\nset fallback_slot={}\n",
        slot.letter()
    )
}

pub fn parse_fallback(text: &str) -> Option<Slot> {
    text.lines()
        .find_map(|l| l.strip_prefix("set fallback_slot="))
        .and_then(|v| Slot::parse(v.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SlotConfig {
        SlotConfig {
            slot: Slot::B,
            partuuid: "e03dd35c-7c2d-4a47-b3fe-27f15780a57c".parse().unwrap(),
            root_hash: "ab".repeat(32),
            data_blocks: 260094,
            salt: "00ff".into(),
            version: "1234.5.6".into(),
        }
    }

    #[test]
    fn slot_config_round_trips() {
        let c = config();
        let text = c.render().unwrap();
        assert!(
            text.contains("set b_uuid=\"e03dd35c-7c2d-4a47-b3fe-27f15780a57c\"\n"),
            "{text}"
        );
        assert!(text.contains(&format!("set b_hash=\"{}\"\n", "ab".repeat(32))));
        assert!(text.contains("set b_blocks=\"260094\"\nset b_salt=\"00ff\"\n"));
        assert_eq!(SlotConfig::parse(Slot::B, &text).unwrap(), c);
        assert!(
            SlotConfig::parse(Slot::A, &text).is_err(),
            "a B config is not A's"
        );
        assert_eq!(config_path(Slot::B), "coreos/usr-b.cfg");
        assert_eq!(kernel_path(Slot::A), "coreos/vmlinuz-a");
    }

    #[test]
    fn nothing_but_values_reaches_grub() {
        for (field, c) in [
            (
                "root hash",
                SlotConfig {
                    root_hash: "AB".repeat(32),
                    ..config()
                },
            ),
            (
                "salt",
                SlotConfig {
                    salt: "0".into(),
                    ..config()
                },
            ),
            (
                "version",
                SlotConfig {
                    version: "1\"; reboot; \"".into(),
                    ..config()
                },
            ),
            (
                "data blocks",
                SlotConfig {
                    data_blocks: 0,
                    ..config()
                },
            ),
        ] {
            let e = c.render().unwrap_err().to_string();
            assert!(e.contains(field.split(' ').next().unwrap()), "{field}: {e}");
        }
        let truncated = &config().render().unwrap()[..150];
        assert!(SlotConfig::parse(Slot::B, truncated).is_err());
    }

    #[test]
    fn fallback_names_a_slot() {
        assert_eq!(parse_fallback(&fallback_cfg(Slot::B)), Some(Slot::B));
        assert_eq!(parse_fallback("set fallback_slot=c\n"), None);
    }
}

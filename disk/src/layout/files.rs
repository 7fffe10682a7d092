//! Layouts from TOML: the built-in files (`layouts/*.toml`, embedded), a user's file that may
//! `inherits` one, and `resolve`, which places every partition as CoreOS's `disk_util` did.
//! Behind the `files` feature: a binary that only reads partition tables (the installer, the
//! updater) links no TOML parser.

use super::*;
use spec::LayoutSpec;
use std::path::Path;

/// The layouts shipped with the binaries.
const BUILTIN: &[(&str, &str)] = &[
    ("base", include_str!("../../../layouts/base.toml")),
    ("vm", include_str!("../../../layouts/vm.toml")),
    ("vagrant", include_str!("../../../layouts/vagrant.toml")),
    ("azure", include_str!("../../../layouts/azure.toml")),
];

impl Layout {
    /// A layout shipped with the binaries: `base`, `vm`, `vagrant` or `azure`.
    pub fn builtin(name: &str) -> Result<Layout, LayoutError> {
        let spec = builtin_spec(name)?;
        Layout::resolve(name, &spec)
    }

    /// A layout file with the same schema (it may `inherits = "base"`).
    pub fn from_file(path: &Path) -> Result<Layout, LayoutError> {
        let text = std::fs::read_to_string(path).map_err(|e| LayoutError::Parse {
            file: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Layout::from_toml(&name, &text, &path.display().to_string())
    }

    /// A built-in name, or else a path to a layout file.
    pub fn by_name_or_path(name: &str) -> Result<Layout, LayoutError> {
        if BUILTIN.iter().any(|(n, _)| *n == name) {
            Layout::builtin(name)
        } else if Path::new(name).exists() {
            Layout::from_file(Path::new(name))
        } else {
            Err(LayoutError::UnknownLayout(name.to_string()))
        }
    }

    /// Parse layout text (`file` is only used in messages).
    pub fn from_toml(name: &str, text: &str, file: &str) -> Result<Layout, LayoutError> {
        let spec = parse(text, file)?;
        let spec = match &spec.inherits {
            Some(parent) => spec.over(&builtin_spec(parent)?),
            None => spec,
        };
        Layout::resolve(name, &spec)
    }

    /// Place every partition as `disk_util` `LoadPartitionConfig` did and validate the result.
    pub fn resolve(name: &str, spec: &LayoutSpec) -> Result<Layout, LayoutError> {
        let m = &spec.metadata;
        let part_align = m.part_alignment.unwrap_or(4096).max(1);
        let disk_align = m.disk_alignment.unwrap_or(258048).max(1);
        if m.block_size.unwrap_or(512) != crate::SECTOR {
            return Err(LayoutError::Invalid(format!(
                "{name}: block_size must be 512"
            )));
        }
        if m.fs_block_size.unwrap_or(FS_BLOCK_SIZE) != FS_BLOCK_SIZE {
            return Err(LayoutError::Invalid(format!(
                "{name}: fs_block_size must be 4096"
            )));
        }
        let disk_guid = match &m.disk_guid {
            Some(g) => Uuid::parse_str(g)
                .map_err(|_| LayoutError::Invalid(format!("{name}: bad disk_guid {g:?}")))?,
            None => PRISTINE_DISK_GUID,
        };

        let mut specs: Vec<&PartitionSpec> = spec.partitions.iter().collect();
        specs.sort_by_key(|p| p.number);
        for w in specs.windows(2) {
            if w[0].number == w[1].number {
                return Err(LayoutError::DuplicateNumber(w[0].number));
            }
        }
        if specs.iter().any(|p| p.number == 0 || p.number > 128) {
            return Err(LayoutError::Invalid(format!(
                "{name}: partition numbers must be 1..=128"
            )));
        }

        let mut parts: Vec<Partition> = Vec::new();
        let mut next = GPT_RESERVED_SECTORS;
        for s in specs {
            let label = s.label.clone().unwrap_or_default();
            let pn = PartName(s.number, label.clone());
            let tname = s
                .type_name
                .as_deref()
                .ok_or_else(|| LayoutError::Missing(pn.clone(), "type"))?;
            if tname == "blank" {
                continue;
            }
            let type_guid = types::type_guid(tname)
                .ok_or_else(|| LayoutError::UnknownType(pn.clone(), tname.into()))?;
            if label.is_empty() {
                return Err(LayoutError::Missing(pn, "label"));
            }
            let sectors = s
                .blocks
                .ok_or_else(|| LayoutError::Missing(pn.clone(), "blocks"))?;
            if sectors == 0 {
                return Err(LayoutError::Empty(pn));
            }
            let first_lba = match s.first_lba {
                Some(f) => {
                    if f % part_align != 0 {
                        return Err(LayoutError::Misaligned(pn, f, part_align));
                    }
                    f
                }
                None => next.div_ceil(part_align) * part_align,
            };
            if let Some(prev) = parts
                .iter()
                .find(|q| first_lba <= q.last_lba() && q.first_lba < first_lba + sectors)
            {
                return Err(LayoutError::Overlap {
                    a: pn,
                    a_first: first_lba,
                    a_last: first_lba + sectors - 1,
                    b: PartName(prev.number, prev.label.clone()),
                    b_first: prev.first_lba,
                    b_last: prev.last_lba(),
                });
            }
            if first_lba < GPT_RESERVED_SECTORS {
                return Err(LayoutError::Overlap {
                    a: pn,
                    a_first: first_lba,
                    a_last: first_lba + sectors - 1,
                    b: PartName(0, "GPT header and entries".into()),
                    b_first: 0,
                    b_last: GPT_RESERVED_SECTORS - 1,
                });
            }
            let bytes = sectors * crate::SECTOR;
            let fs_blocks = s.fs_blocks.unwrap_or(bytes / FS_BLOCK_SIZE);
            if fs_blocks * FS_BLOCK_SIZE > bytes {
                return Err(LayoutError::FsTooLarge(
                    pn,
                    fs_blocks * FS_BLOCK_SIZE,
                    bytes,
                ));
            }
            if let Some(fs) = &s.fs_type {
                if !matches!(fs.as_str(), "ext2" | "ext4" | "vfat") {
                    return Err(LayoutError::UnknownFs(pn, fs.clone()));
                }
            }
            let (mut hybrid, mut prioritize, mut verity) = (false, false, false);
            for f in s.features.iter().flatten() {
                match f.as_str() {
                    "hybrid" | "syslinux" => hybrid = true,
                    "prioritize" => prioritize = true,
                    "verity" => verity = true,
                    other => return Err(LayoutError::UnknownFeature(pn, other.into())),
                }
            }
            let part_guid = match &s.uuid {
                Some(u) => {
                    Uuid::parse_str(u).map_err(|_| LayoutError::BadUuid(pn.clone(), u.clone()))?
                }
                None => derived_part_guid(&disk_guid, s.number, &label),
            };
            parts.push(Partition {
                number: s.number,
                label,
                type_guid,
                part_guid,
                first_lba,
                sectors,
                fs_type: s.fs_type.clone(),
                fs_blocks,
                hybrid,
                prioritize,
                verity,
                attributes: if hybrid { ATTR_LEGACY_BIOS_BOOTABLE } else { 0 },
                fs_bytes_per_inode: s.fs_bytes_per_inode.unwrap_or(4096),
                // 256 (ext4's large inodes: times past 2038) unless the ext2 form is asked for.
                fs_inode_size: s.fs_inode_size.unwrap_or(match s.fs_type.as_deref() {
                    Some("ext2") => 128,
                    _ => 256,
                }),
            });
            next = next.max(first_lba + sectors);
        }

        for (i, a) in parts.iter().enumerate() {
            if let Some(b) = parts[..i].iter().find(|b| b.label == a.label) {
                return Err(LayoutError::DuplicateLabel {
                    label: a.label.clone(),
                    a: PartName(b.number, b.label.clone()),
                    b: PartName(a.number, a.label.clone()),
                });
            }
        }
        if parts.iter().filter(|p| p.hybrid).count() > 1 {
            return Err(LayoutError::Invalid(format!(
                "{name}: only one partition may have the hybrid feature"
            )));
        }

        // "prioritize": in reverse disk order, successful=1 and priority i+1 (disk_util).
        let mut prio: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].prioritize).collect();
        prio.sort_by_key(|&i| parts[i].first_lba);
        for (rank, &i) in prio.iter().rev().enumerate() {
            parts[i].attributes |=
                ATTR_SUCCESSFUL | (((rank as u64 + 1) & 0xf) << ATTR_PRIORITY_SHIFT);
        }

        let end = parts
            .iter()
            .map(|p| p.first_lba + p.sectors)
            .max()
            .unwrap_or(GPT_RESERVED_SECTORS);
        let disk_sectors = (end + GPT_RESERVED_SECTORS).div_ceil(disk_align) * disk_align;
        Ok(Layout {
            name: name.to_string(),
            disk_guid,
            disk_sectors,
            partitions: parts,
        })
    }
}

fn parse(text: &str, file: &str) -> Result<LayoutSpec, LayoutError> {
    toml::from_str(text).map_err(|e| LayoutError::Parse {
        file: file.to_string(),
        msg: e.to_string(),
    })
}

fn builtin_spec(name: &str) -> Result<LayoutSpec, LayoutError> {
    let (_, text) = BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| LayoutError::UnknownLayout(name.into()))?;
    let spec = parse(text, &format!("layouts/{name}.toml"))?;
    match &spec.inherits {
        Some(parent) if parent != name => Ok(spec.over(&builtin_spec(parent)?)),
        Some(_) => Err(LayoutError::Invalid(format!(
            "layout {name} inherits itself"
        ))),
        None => Ok(spec),
    }
}

//! The layout file schema (TOML, the keys of CoreOS's `disk_layout.json`) and inheritance:
//! a variant names `inherits = "base"` and lists only the keys it overrides, partition by
//! partition (matched by number), as `disk_util` merged layouts.

use serde::Deserialize;

/// One layout file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LayoutSpec {
    /// A built-in layout this one starts from.
    pub inherits: Option<String>,
    #[serde(default)]
    pub metadata: MetadataSpec,
    #[serde(default, rename = "partition")]
    pub partitions: Vec<PartitionSpec>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetadataSpec {
    pub part_alignment: Option<u64>,
    pub disk_alignment: Option<u64>,
    pub block_size: Option<u64>,
    pub fs_block_size: Option<u64>,
    pub disk_guid: Option<String>,
}

/// One partition as written; every key optional so that variants can override a few.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub number: u32,
    pub label: Option<String>,
    /// A cgpt type name (`efi`, `coreos-rootfs`, ...), `blank`, or a raw GUID.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Size in 512-byte sectors.
    pub blocks: Option<u64>,
    /// First sector; normally computed. A fixed one must be aligned and not overlap.
    pub first_lba: Option<u64>,
    pub fs_type: Option<String>,
    pub fs_blocks: Option<u64>,
    pub fs_bytes_per_inode: Option<u64>,
    pub fs_inode_size: Option<u16>,
    pub mount: Option<String>,
    pub features: Option<Vec<String>>,
    pub uuid: Option<String>,
}

impl PartitionSpec {
    /// Apply the keys `over` sets on top of `self`.
    fn merge(&mut self, over: &PartitionSpec) {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* };
        }
        take!(
            label,
            type_name,
            blocks,
            first_lba,
            fs_type,
            fs_blocks,
            fs_bytes_per_inode,
            fs_inode_size,
            mount,
            features,
            uuid
        );
    }
}

impl MetadataSpec {
    fn merge(&mut self, over: &MetadataSpec) {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* };
        }
        take!(
            part_alignment,
            disk_alignment,
            block_size,
            fs_block_size,
            disk_guid
        );
    }
}

impl LayoutSpec {
    /// `self` (a variant) applied on top of `parent`.
    pub fn over(&self, parent: &LayoutSpec) -> LayoutSpec {
        let mut out = parent.clone();
        out.inherits = None;
        out.metadata.merge(&self.metadata);
        for p in &self.partitions {
            match out.partitions.iter_mut().find(|q| q.number == p.number) {
                Some(q) => q.merge(p),
                None => out.partitions.push(p.clone()),
            }
        }
        out
    }
}

//! The embedded descriptor of a stream-optimized VMDK (VMware Virtual Disk Format 5.0,
//! "The Descriptor File"; defaults as open-vmdk and qemu write them).

use sha2::{Digest, Sha256};

/// `ddb.adapterType`: the controller the guest sees the disk on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterType {
    /// VirtualBox and Vagrant (CoreOS `vmdk_ide`); geometry with 16 heads.
    Ide,
    /// VMware and EC2 VM Import (CoreOS `vmdk_scsi`/`vmdk_stream`); 255 heads.
    LsiLogic,
}

impl AdapterType {
    fn name(self) -> &'static str {
        match self {
            AdapterType::Ide => "ide",
            AdapterType::LsiLogic => "lsilogic",
        }
    }
    fn heads(self) -> u64 {
        match self {
            AdapterType::Ide => 16,
            AdapterType::LsiLogic => 255,
        }
    }
}

/// `createType`: how the extent is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateType {
    /// One compressed sparse extent with markers, for streaming (OVF/OVA, EC2, VirtualBox).
    StreamOptimized,
    /// One hosted sparse extent with embedded descriptor (VMware Workstation, Fusion, Player).
    MonolithicSparse,
}

impl CreateType {
    fn name(self) -> &'static str {
        match self {
            CreateType::StreamOptimized => "streamOptimized",
            CreateType::MonolithicSparse => "monolithicSparse",
        }
    }
}

/// Content IDs derived from a seed, so the same inputs give the same file (every other producer
/// draws them at random).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentId {
    pub cid: u32,
    pub long_content_id: [u8; 16],
}

impl ContentId {
    pub fn from_seed(seed: &[u8]) -> ContentId {
        let d = Sha256::digest(seed);
        let mut cid = u32::from_be_bytes(d[0..4].try_into().expect("4 bytes"));
        // 0xfffffffe and 0xffffffff mean "no parent" / "invalid" in parentCID.
        if cid >= 0xffff_fffe {
            cid = 0x1234_5678;
        }
        let mut long_content_id = [0u8; 16];
        long_content_id.copy_from_slice(&d[16..32]);
        ContentId {
            cid,
            long_content_id,
        }
    }
}

/// `ddb.virtualHWVersion`: 4 is what qemu and open-vmdk write and every consumer accepts.
const VIRTUAL_HW_VERSION: &str = "4";
/// `ddb.toolsVersion`: INT_MAX, open-vmdk's "unknown/latest".
const TOOLS_VERSION: &str = "2147483647";
const SECTORS_PER_TRACK: u64 = 63;

pub fn render(
    create_type: CreateType,
    capacity_sectors: u64,
    extent_file: &str,
    adapter: AdapterType,
    id: &ContentId,
) -> String {
    let heads = adapter.heads();
    let cylinders = (capacity_sectors / (heads * SECTORS_PER_TRACK)).clamp(1, 65535);
    let long: String = id
        .long_content_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         encoding=\"UTF-8\"\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"{create_type}\"\n\
         \n\
         # Extent description\n\
         RW {capacity_sectors} SPARSE \"{extent_file}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.longContentID = \"{long}\"\n\
         ddb.virtualHWVersion = \"{VIRTUAL_HW_VERSION}\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"{heads}\"\n\
         ddb.geometry.sectors = \"{SECTORS_PER_TRACK}\"\n\
         ddb.adapterType = \"{adapter}\"\n\
         ddb.toolsInstallType = \"4\"\n\
         ddb.toolsVersion = \"{TOOLS_VERSION}\"\n",
        cid = id.cid,
        adapter = adapter.name(),
        create_type = create_type.name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let id = ContentId::from_seed(b"abc");
        assert_eq!(id, ContentId::from_seed(b"abc"));
        assert_ne!(id, ContentId::from_seed(b"abd"));
        let d = render(
            CreateType::StreamOptimized,
            17805312,
            "x.vmdk",
            AdapterType::Ide,
            &id,
        );
        assert!(d.contains("createType=\"streamOptimized\""));
        assert!(d.contains("RW 17805312 SPARSE \"x.vmdk\""));
        assert!(d.contains("ddb.adapterType = \"ide\""));
        assert!(d.contains("ddb.geometry.cylinders = \"17664\""));
    }
}

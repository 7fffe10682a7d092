//! The OVF 1.0 envelope VirtualBox imports (CoreOS `build_library/virtualbox_ovf.sh`): one
//! VirtualSystem with a CPU, memory, two PIIX4 IDE controllers, a NAT E1000 NIC and the
//! stream-optimized disk, plus the optional `vbox:Machine` section (virtio NIC with our MAC).

use sha2::{Digest, Sha256};

/// Identities derived from the disk's fingerprint, so two builds of the same inputs match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineIds {
    /// 12 hex digits, VirtualBox's OUI 08:00:27 first.
    pub mac: String,
    pub disk_uuid: uuid::Uuid,
}

impl MachineIds {
    pub fn from_seed(seed: &[u8]) -> MachineIds {
        let d = Sha256::digest([b"ovf-machine-ids".as_slice(), seed].concat());
        let mac = format!("080027{:02X}{:02X}{:02X}", d[0], d[1], d[2]);
        let disk_uuid =
            uuid::Builder::from_random_bytes(d[16..32].try_into().expect("16 bytes")).into_uuid();
        MachineIds { mac, disk_uuid }
    }
}

pub struct OvfParams<'a> {
    pub vm_name: &'a str,
    pub vmdk_file: &'a str,
    /// Virtual disk size in bytes.
    pub capacity: u64,
    pub memory_mib: u32,
    pub cpus: u32,
    pub ids: &'a MachineIds,
}

const STREAM_OPTIMIZED: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(p: &OvfParams) -> String {
    let name = escape(p.vm_name);
    let vmdk = escape(p.vmdk_file);
    let (cap, mem, cpus, mac, uuid) = (
        p.capacity,
        p.memory_mib,
        p.cpus,
        &p.ids.mac,
        p.ids.disk_uuid,
    );
    format!(
        r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:href="{vmdk}" ovf:id="file1"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{cap}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{STREAM_OPTIMIZED}" vbox:uuid="{uuid}"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="100">
      <Info>The kind of installed guest operating system</Info>
      <Description>Linux26_64</Description>
      <vbox:OSType ovf:required="false">Linux26_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>{cpus} virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>{mem} MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{mem} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{mem}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Caption>ideController1</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.12-linux" uuid="{{{uuid}}}" name="{name}" OSType="Linux26_64">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="{cpus}">
          <HardwareVirtEx enabled="true"/>
          <HardwareVirtExNestedPaging enabled="true"/>
          <HardwareVirtExVPID enabled="true"/>
          <PAE enabled="true"/>
        </CPU>
        <Memory RAMSize="{mem}"/>
        <Chipset type="PIIX3"/>
        <Boot>
          <Order position="1" device="HardDisk"/>
          <Order position="2" device="DVD"/>
          <Order position="3" device="None"/>
          <Order position="4" device="None"/>
        </Boot>
        <BIOS>
          <ACPI enabled="true"/>
          <IOAPIC enabled="true"/>
        </BIOS>
        <RTC localOrUTC="local"/>
        <Network>
          <Adapter slot="0" enabled="true" MACAddress="{mac}" type="virtio">
            <NAT/>
          </Adapter>
        </Network>
        <UART>
          <Port slot="0" enabled="false" IOBase="0x3f8" IRQ="4" hostMode="Disconnected"/>
          <Port slot="1" enabled="false" IOBase="0x2f8" IRQ="3" hostMode="Disconnected"/>
        </UART>
      </Hardware>
      <StorageControllers>
        <StorageController name="IDE Controller" type="PIIX4" PortCount="2" useHostIOCache="true" Bootable="true">
          <AttachedDevice type="HardDisk" port="0" device="0">
            <Image uuid="{{{uuid}}}"/>
          </AttachedDevice>
        </StorageController>
      </StorageControllers>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_virtualbox_and_deterministic() {
        let a = MachineIds::from_seed(b"x");
        assert_eq!(a, MachineIds::from_seed(b"x"));
        assert_ne!(a.mac, MachineIds::from_seed(b"y").mac);
        assert!(
            a.mac.starts_with("080027")
                && a.mac.len() == 12
                && a.mac.chars().all(|c| c.is_ascii_hexdigit())
        );
    }

    #[test]
    fn names_disk_and_capacity() {
        let ids = MachineIds::from_seed(b"x");
        let p = OvfParams {
            vm_name: "coreos_production_virtualbox-1-0-0",
            vmdk_file: "d.vmdk",
            capacity: 9116319744,
            memory_mib: 1024,
            cpus: 1,
            ids: &ids,
        };
        let x = render(&p);
        assert!(x.contains(r#"ovf:capacity="9116319744""#));
        assert!(x.contains(&format!(r#"MACAddress="{}""#, ids.mac)));
        assert!(x.contains("#streamOptimized"));
    }
}

//! The OVF 1.0 descriptor of the VMware OVA (CoreOS `template_vmware.ovf`): one VirtualSystem
//! of hardware `vmx-13` with CPUs, memory, a paravirtual SCSI controller holding the
//! stream-optimized disk and a VmxNet3 NIC on "VM Network", plus a ProductSection whose
//! user-configurable `guestinfo.*` properties vSphere's "Deploy OVF Template" asks for — the
//! cloud-config the `vmware` OEM reads on first boot.

/// `vmx-13` (vSphere 6.5 and later): the manifest is SHA-256 (see `vmimage::ova`).
pub const VIRTUAL_HW_VERSION: u32 = 13;

pub struct VmwareOvfParams<'a> {
    pub vm_name: &'a str,
    pub vmdk_file: &'a str,
    /// Bytes of the VMDK file.
    pub vmdk_size: u64,
    /// Virtual disk size in bytes.
    pub capacity: u64,
    pub memory_mib: u32,
    pub cpus: u32,
}

const STREAM_OPTIMIZED: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// The guestinfo properties offered at deploy time: (key, label, description).
const PROPERTIES: &[(&str, &str, &str)] = &[
    ("guestinfo.hostname", "Hostname", "The machine's hostname."),
    (
        "guestinfo.coreos.config.data",
        "CoreOS cloud-config data",
        "A cloud-config for the first boot, encoded as guestinfo.coreos.config.data.encoding says.",
    ),
    (
        "guestinfo.coreos.config.data.encoding",
        "CoreOS cloud-config data encoding",
        "Encoding of the cloud-config data: empty (plain text), base64 or gzip+base64.",
    ),
    (
        "guestinfo.coreos.config.url",
        "CoreOS cloud-config URL",
        "A URL to fetch the cloud-config from, instead of the data.",
    ),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(p: &VmwareOvfParams) -> String {
    let name = escape(p.vm_name);
    let vmdk = escape(p.vmdk_file);
    let (size, cap, mem, cpus) = (p.vmdk_size, p.capacity, p.memory_mib, p.cpus);
    let hw = VIRTUAL_HW_VERSION;
    let properties: String = PROPERTIES
        .iter()
        .map(|(key, label, desc)| {
            format!(
                "      <Property ovf:key=\"{key}\" ovf:type=\"string\" ovf:userConfigurable=\"true\" ovf:value=\"\">\n        <Label>{label}</Label>\n        <Description>{}</Description>\n      </Property>\n",
                escape(desc)
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk}" ovf:id="file1" ovf:size="{size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{cap}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{STREAM_OPTIMIZED}"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="100" vmw:osType="other26xLinux64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-{hw:02}</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{mem}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{mem}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on "VM Network"</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="bios"/>
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="true"/>
    </VirtualHardwareSection>
    <ProductSection ovf:required="false">
      <Info>Settings read by the guest on its first boot (guestinfo)</Info>
      <Product>CoreOS</Product>
{properties}    </ProductSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_size_capacity_and_hardware() {
        let x = render(&VmwareOvfParams {
            vm_name: "coreos_production_vmware_ova-1-2-3",
            vmdk_file: "d.vmdk",
            vmdk_size: 12345,
            capacity: 9116319744,
            memory_mib: 1024,
            cpus: 2,
        });
        assert!(x.contains(r#"<File ovf:href="d.vmdk" ovf:id="file1" ovf:size="12345"/>"#));
        assert!(x.contains(r#"ovf:capacity="9116319744""#));
        assert!(x.contains("<vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>"));
        assert!(x.contains(r#"ovf:key="guestinfo.coreos.config.data""#));
    }
}

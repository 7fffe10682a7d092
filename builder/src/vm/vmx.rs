//! `coreos_production_vmware.vmx`: the VM configuration VMware Workstation, Fusion and Player
//! open (CoreOS `_write_vmx_conf`): `key = "value"` lines, the monolithicSparse disk on a
//! paravirtual SCSI controller, a vmxnet3 NIC, and the guestinfo keys cloud-config comes from.

/// Virtual hardware 11: Workstation 11, Fusion 7, ESXi 6.0 and later (pvscsi and vmxnet3 need 7+).
pub const VIRTUAL_HW_VERSION: u32 = 11;

pub struct VmxParams<'a> {
    pub display_name: &'a str,
    pub vmdk_file: &'a str,
    pub memory_mib: u32,
    pub cpus: u32,
}

fn quote(s: &str) -> String {
    // VMX values are double-quoted; `|22` is its escape for a quote, `|7C` for the bar.
    s.replace('|', "|7C").replace('"', "|22")
}

pub fn render(p: &VmxParams) -> String {
    let entries: Vec<(&str, String)> = vec![
        (".encoding", "UTF-8".into()),
        ("config.version", "8".into()),
        ("virtualHW.version", VIRTUAL_HW_VERSION.to_string()),
        ("displayName", quote(p.display_name)),
        ("guestOS", "other26xlinux-64".into()),
        ("memsize", p.memory_mib.to_string()),
        ("numvcpus", p.cpus.to_string()),
        ("cleanShutdown", "TRUE".into()),
        ("pciBridge0.present", "TRUE".into()),
        ("pciBridge4.present", "TRUE".into()),
        ("pciBridge4.virtualDev", "pcieRootPort".into()),
        ("pciBridge4.functions", "8".into()),
        ("scsi0.present", "TRUE".into()),
        ("scsi0.virtualDev", "pvscsi".into()),
        ("scsi0:0.present", "TRUE".into()),
        ("scsi0:0.deviceType", "scsi-hardDisk".into()),
        ("scsi0:0.fileName", quote(p.vmdk_file)),
        ("ethernet0.present", "TRUE".into()),
        ("ethernet0.virtualDev", "vmxnet3".into()),
        ("ethernet0.connectionType", "nat".into()),
        ("ethernet0.addressType", "generated".into()),
        ("serial0.present", "FALSE".into()),
        ("floppy0.present", "FALSE".into()),
        ("sound.present", "FALSE".into()),
        ("usb.present", "FALSE".into()),
        ("tools.syncTime", "TRUE".into()),
        ("powerType.powerOff", "soft".into()),
        ("powerType.reset", "soft".into()),
    ];
    let mut text = String::from(
        "#!/usr/bin/vmware\n\
         # Made by coreos-build vm --format vmware. A cloud-config for the first boot goes in\n\
         # guestinfo keys (read by coreos-cloudinit --oem=vmware), e.g.:\n\
         #   guestinfo.coreos.config.data = \"<base64 of the cloud-config>\"\n\
         #   guestinfo.coreos.config.data.encoding = \"base64\"\n\
         # or guestinfo.coreos.config.url = \"https://...\".\n",
    );
    for (k, v) in entries {
        text.push_str(&format!("{k} = \"{v}\"\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `key = "value"` pairs of a VMX file (comments and blank lines skipped); None when a
    /// line is neither.
    fn parse(text: &str) -> Option<Vec<(String, String)>> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once(" = ")?;
                let v = v.strip_prefix('"')?.strip_suffix('"')?;
                (!v.contains('"')).then(|| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_line_is_a_quoted_pair_naming_the_disk() {
        let text = render(&VmxParams {
            display_name: "coreos \"x\"",
            vmdk_file: "coreos_production_vmware_image.vmdk",
            memory_mib: 1024,
            cpus: 2,
        });
        let pairs = parse(&text).expect("parseable");
        let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("scsi0:0.fileName"),
            Some("coreos_production_vmware_image.vmdk")
        );
        assert_eq!(get("virtualHW.version"), Some("11"));
        assert_eq!(get("memsize"), Some("1024"));
        assert_eq!(get("displayName"), Some("coreos |22x|22"));
        assert!(parse("a = b\n").is_none());
    }
}

//! The Vagrant box for the VirtualBox provider (Vagrant's box format; CoreOS `_write_box_bundle`):
//! a gzipped tar of `box.ovf`, the VMDK, `metadata.json` and a Vagrantfile with CoreOS's
//! defaults, plus the catalog JSON that lets `vagrant box add` take a URL or path.

use serde::Serialize;

pub const METADATA_JSON: &str = "{\"provider\": \"virtualbox\"}\n";

/// CoreOS's box Vagrantfile (coreos-overlay `oem-vagrant/files/box/Vagrantfile`), without the
/// Ruby plugins for cloud-config hostname/network injection, and with `base_mac.rb` folded in.
pub fn vagrantfile(mac: &str) -> String {
    format!(
        r#"# -*- mode: ruby -*-
# vi: set ft=ruby :
# Defaults for the CoreOS box (made by coreos-build vm --format vagrant).

Vagrant.require_version ">= 1.6.0"

Vagrant.configure("2") do |config|
  # The OEM partition's cloud-config authorizes Vagrant's insecure key for "core".
  config.ssh.username = "core"
  config.ssh.insert_key = false

  # The NIC MAC in box.ovf, so the guest keeps its network configuration.
  config.vm.base_mac = "{mac}"

  # CoreOS has no VirtualBox guest additions and no shared-folder driver.
  config.vm.synced_folder ".", "/vagrant", disabled: true

  config.vm.provider :virtualbox do |vb|
    vb.check_guest_additions = false
    vb.functional_vboxsf = false
    vb.customize ["modifyvm", :id, "--natdnshostresolver1", "on"]
    vb.customize ["modifyvm", :id, "--natdnsproxy1", "on"]
  end
end
"#
    )
}

#[derive(Serialize)]
struct Catalog<'a> {
    name: &'a str,
    description: &'a str,
    versions: Vec<CatalogVersion<'a>>,
}

#[derive(Serialize)]
struct CatalogVersion<'a> {
    version: &'a str,
    providers: Vec<CatalogProvider<'a>>,
}

#[derive(Serialize)]
struct CatalogProvider<'a> {
    name: &'a str,
    url: &'a str,
    checksum_type: &'a str,
    checksum: &'a str,
}

/// `coreos_production_vagrant.json`: one version, one virtualbox provider.
pub fn catalog(name: &str, version: &str, url: &str, sha256: &str) -> String {
    let description = format!("CoreOS {name}");
    let c = Catalog {
        name,
        description: &description,
        versions: vec![CatalogVersion {
            version,
            providers: vec![CatalogProvider {
                name: "virtualbox",
                url,
                checksum_type: "sha256",
                checksum: sha256,
            }],
        }],
    };
    serde_json::to_string_pretty(&c).expect("plain data") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_shape() {
        let j: serde_json::Value =
            serde_json::from_str(&catalog("coreos-stable", "1.2.3", "file:///x.box", "ab"))
                .unwrap();
        assert_eq!(j["versions"][0]["providers"][0]["checksum"], "ab");
        assert_eq!(j["versions"][0]["version"], "1.2.3");
        assert!(vagrantfile("080027AABBCC").contains("config.vm.base_mac = \"080027AABBCC\""));
    }
}

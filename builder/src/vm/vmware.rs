//! The VMware artifacts (CoreOS `vmware` and `vmware_ova`):
//! - `vmware`: the hosted monolithicSparse VMDK and the `.vmx` that Workstation, Fusion and
//!   Player open;
//! - `vmware_ova`: one OVA for vSphere/ESXi ("Deploy OVF Template", `ovftool`): the OVF, its
//!   SHA-256 manifest and the stream-optimized VMDK.

use super::{artifact, file_name, vmware_ovf, vmx, write_text, Format, VMDK_LEVEL};
use crate::atomic_output::Pending;
use crate::progress::Ui;
use anyhow::Context;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use vmimage::ova::{DigestWriter, ManifestDigest, PackageFile};
use vmimage::vmdk::{AdapterType, ContentId, HostedOptions, StreamOptions};

/// What both artifacts are made from.
pub struct VmwareInputs<'a> {
    pub work: &'a File,
    pub outdir: &'a Path,
    pub seed: &'a [u8],
    pub vm_name: &'a str,
    pub memory_mib: u32,
    pub cpus: u32,
    pub workers: usize,
}

/// `coreos_production_vmware_image.vmdk` + `coreos_production_vmware.vmx`.
pub fn write_vmx_bundle(i: &VmwareInputs, ui: &Ui) -> anyhow::Result<Vec<PathBuf>> {
    let dest = artifact(i.outdir, Format::Vmware, "_image.vmdk");
    let out = Pending::create(&dest)?;
    let opts = HostedOptions {
        adapter: AdapterType::LsiLogic,
        content_id: ContentId::from_seed(i.seed),
        extent_file: file_name(&dest),
        workers: i.workers,
    };
    let pb = ui.bytes("vmdk", i.work.metadata()?.len());
    vmimage::vmdk::write_monolithic_sparse(i.work, &out.file, &opts, &|n| pb.set_position(n))
        .with_context(|| format!("writing {}", dest.display()))?;
    pb.finish_and_clear();
    let vmdk = out.commit()?;
    let text = vmx::render(&vmx::VmxParams {
        display_name: i.vm_name,
        vmdk_file: &file_name(&vmdk),
        memory_mib: i.memory_mib,
        cpus: i.cpus,
    });
    let conf = write_text(&artifact(i.outdir, Format::Vmware, ".vmx"), &text, 0o644)?;
    Ok(vec![vmdk, conf])
}

/// `coreos_production_vmware_ova.ova`: the stream-optimized VMDK is written to a temporary
/// file and hashed as it is written, then copied (in the kernel) into the package.
pub fn write_ova(i: &VmwareInputs, mtime: u64, ui: &Ui) -> anyhow::Result<PathBuf> {
    let base = format!("coreos_production_{}", Format::VmwareOva.name());
    let (ovf_name, vmdk_name) = (format!("{base}.ovf"), format!("{base}_image.vmdk"));
    let digest = ManifestDigest::for_virtual_hardware(vmware_ovf::VIRTUAL_HW_VERSION);
    // The VMDK lives only inside the OVA: its temporary file goes when `vmdk_out` drops.
    let vmdk_out = Pending::create(&i.outdir.join(&vmdk_name))?;
    let opts = StreamOptions {
        adapter: AdapterType::LsiLogic,
        content_id: ContentId::from_seed(i.seed),
        extent_file: vmdk_name.clone(),
        level: VMDK_LEVEL,
        workers: i.workers,
    };
    let pb = ui.bytes("vmdk", i.work.metadata()?.len());
    let mut hashing = DigestWriter::new(BufWriter::with_capacity(1 << 20, &vmdk_out.file), digest);
    let report =
        vmimage::vmdk::write_stream_optimized(i.work, &mut hashing, &opts, &|n| pb.set_position(n))
            .with_context(|| format!("writing {vmdk_name}"))?;
    let (vmdk_digest, vmdk_size) = hashing.finish().context("writing the VMDK")?;
    pb.finish_and_clear();

    let ovf = vmware_ovf::render(&vmware_ovf::VmwareOvfParams {
        vm_name: i.vm_name,
        vmdk_file: &vmdk_name,
        vmdk_size,
        capacity: report.capacity_bytes,
        memory_mib: i.memory_mib,
        cpus: i.cpus,
    });
    let ova_out = Pending::create(&artifact(i.outdir, Format::VmwareOva, ".ova"))?;
    let step = ui.step("ova");
    vmimage::ova::write_ova(
        &ova_out.file,
        &ovf_name,
        ovf.as_bytes(),
        &[PackageFile {
            name: &vmdk_name,
            file: &vmdk_out.file,
            digest_hex: vmdk_digest,
        }],
        digest,
        mtime,
    )
    .context("writing the OVA")?;
    step.finish_and_clear();
    drop(vmdk_out);
    ova_out.commit()
}

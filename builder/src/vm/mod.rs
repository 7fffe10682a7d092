//! `coreos-build vm`: a production image turned into a platform artifact, as CoreOS's
//! `image_to_vm.sh` did: copy the image, grow it to the format's layout, put the platform's OEM
//! tree into the OEM partition, then write the format's files (each under a temporary name,
//! renamed when complete).
//!
//! CONTRACT (release calls it): `build_artifacts(format, raw_image, outdir, &ArtifactOptions, ui)`.

mod gce;
mod gzip;
mod live;
mod ovf;
mod qemu;
mod raw_bz2;
mod tar_stream;
mod vagrant;
mod vhd;
mod vmware;
mod vmware_ovf;
mod vmx;
mod work_image;

use crate::atomic_output::Pending;
use crate::image::OemSource;
use crate::progress::Ui;
use anyhow::{bail, Context};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use vmimage::vmdk::{AdapterType, ContentId, StreamOptions};

/// The formats, named as image_to_vm.sh named them. Each variant's doc line is its entry in
/// `vm --help`: the files it writes and what they are for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// coreos_production_virtualbox_image.vmdk + .ovf: VirtualBox import (stream VMDK, IDE)
    Virtualbox,
    /// coreos_production_vagrant.box + .json: Vagrant box (virtualbox provider) and its catalog
    Vagrant,
    /// coreos_production_gce.tar.gz: GCE image import (disk.raw, whole GiB)
    Gce,
    /// coreos_production_ami_image.bin: raw disk for EC2 (OEM ec2)
    Ami,
    /// coreos_production_ami_vmdk_image.vmdk: stream VMDK for EC2 VM Import
    #[value(name = "ami_vmdk")]
    AmiVmdk,
    /// coreos_production_qemu_image.img + coreos_production_qemu.sh: qcow2 and its launcher
    Qemu,
    /// coreos_production_azure_image.vhd: fixed VHD for Azure upload (layout azure, 30 GiB)
    Azure,
    /// coreos_production_hyperv_image.vhd: fixed VHD for Hyper-V (New-VM -VHDPath)
    Hyperv,
    /// coreos_production_vmware_image.vmdk + coreos_production_vmware.vmx: Workstation/Fusion
    Vmware,
    /// coreos_production_vmware_ova.ova: OVA for vSphere/ESXi (OVF, SHA-256 manifest, stream VMDK)
    #[value(name = "vmware_ova")]
    VmwareOva,
    /// coreos_production_openstack_image.img: qcow2 for `openstack image create`
    Openstack,
    /// coreos_production_digitalocean_image.bin.bz2: raw disk for a DigitalOcean custom image
    Digitalocean,
    /// coreos_production_packet_image.bin.bz2: raw disk for Packet/Equinix Metal (coreos-install -o packet)
    Packet,
    /// Live hybrid ISO (BIOS and UEFI, CD and USB stick).
    Iso,
    /// Live PXE kernel, initramfs with the live USR, and command line.
    Pxe,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Virtualbox => "virtualbox",
            Format::Vagrant => "vagrant",
            Format::Gce => "gce",
            Format::Ami => "ami",
            Format::AmiVmdk => "ami_vmdk",
            Format::Qemu => "qemu",
            Format::Azure => "azure",
            Format::Hyperv => "hyperv",
            Format::Vmware => "vmware",
            Format::VmwareOva => "vmware_ova",
            Format::Openstack => "openstack",
            Format::Digitalocean => "digitalocean",
            Format::Packet => "packet",
            Format::Iso => "iso",
            Format::Pxe => "pxe",
        }
    }

    /// The layout the disk is grown to (CoreOS `vm_image_util.sh`); None keeps `base`.
    fn layout(self) -> Option<&'static str> {
        match self {
            Format::Virtualbox | Format::Gce | Format::Qemu => Some("vm"),
            Format::Vagrant => Some("vagrant"),
            Format::Ami | Format::AmiVmdk | Format::Iso | Format::Pxe => None,
            Format::Azure => Some("azure"),
            Format::Vmware | Format::VmwareOva | Format::Openstack => Some("vm"),
            Format::Hyperv | Format::Digitalocean | Format::Packet => None,
        }
    }

    /// The OEM tree the format gets; qemu (as in CoreOS) keeps the image's own.
    fn default_oem(self) -> Option<&'static str> {
        match self {
            Format::Virtualbox => Some("virtualbox"),
            Format::Vagrant => Some("vagrant"),
            Format::Gce => Some("gce"),
            Format::Ami | Format::AmiVmdk => Some("ec2"),
            Format::Qemu | Format::Iso | Format::Pxe => None,
            Format::Azure => Some("azure"),
            Format::Hyperv => Some("hyperv"),
            Format::Vmware | Format::VmwareOva => Some("vmware"),
            Format::Openstack => Some("openstack"),
            Format::Digitalocean => Some("digitalocean"),
            Format::Packet => Some("packet"),
        }
    }

    /// The name the work copy is written under: the artifact itself for the formats whose
    /// artifact is the disk (ami) or the disk plus a footer (the VHDs).
    fn work_copy_suffix(self) -> &'static str {
        match self {
            Format::Azure | Format::Hyperv => "_image.vhd",
            _ => "_image.bin",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Format> {
        <Format as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            let known: Vec<&str> = <Format as clap::ValueEnum>::value_variants()
                .iter()
                .map(|f| f.name())
                .collect();
            anyhow::anyhow!("unknown VM format {s:?} ({})", known.join(", "))
        })
    }
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  coreos-build vm --format qemu --image out/coreos_production_image.bin --output vm/
  coreos-build vm --format vagrant --image out/coreos_production_image.bin --output vm/ \\
      --box-url https://mirror.example/coreos_production_vagrant.box
  coreos-build vm --format gce --image out/coreos_production_image.bin --output vm/ --oem ./my-oem")]
pub struct Args {
    /// The artifact to make.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The production image (coreos_production_image.bin, raw).
    #[arg(long)]
    pub image: PathBuf,
    /// Folder for the artifacts.
    #[arg(long)]
    pub output: PathBuf,
    /// OEM tree for the OEM partition: a built-in name (oem/<name>) or a folder
    /// [default: the format's platform; qemu keeps the image's].
    #[arg(long)]
    pub oem: Option<String>,
    /// Write the artifacts from the image as it is: no copy, no resize, no OEM change
    /// (for an image already prepared; gce then needs a whole number of GiB).
    #[arg(long)]
    pub as_is: bool,
    /// Guest memory in MiB for the OVF, the VMX and the qemu launcher.
    #[arg(long, default_value_t = 1024)]
    pub memory: u32,
    /// URL of the box in the Vagrant catalog JSON [default: file:// URL of the output folder].
    #[arg(long)]
    pub box_url: Option<String>,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let oem = args.oem.as_deref().map(OemSource::parse).transpose()?;
    let req = Request {
        format: args.format,
        image: &args.image,
        outdir: &args.output,
        oem,
        as_is: args.as_is,
        memory_mib: args.memory,
        box_url: args.box_url,
    };
    for p in build(&req, ui)? {
        println!("{}", p.display());
    }
    Ok(())
}

/// What a caller of `build_artifacts` may set beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct ArtifactOptions {
    /// URL of the box in the Vagrant catalog JSON [default: file:// URL of the output folder,
    /// which names this machine's path and so differs between output folders].
    pub box_url: Option<String>,
}

/// Make `format`'s artifacts from `raw_image` in `outdir` with the defaults (the platform's
/// OEM tree, 1 GiB guests); returns the files written.
pub fn build_artifacts(
    format: Format,
    raw_image: &Path,
    outdir: &Path,
    opts: &ArtifactOptions,
    ui: &Ui,
) -> anyhow::Result<Vec<PathBuf>> {
    let req = Request {
        format,
        image: raw_image,
        outdir,
        oem: None,
        as_is: false,
        memory_mib: 1024,
        box_url: opts.box_url.clone(),
    };
    build(&req, ui)
}

struct Request<'a> {
    format: Format,
    image: &'a Path,
    outdir: &'a Path,
    oem: Option<OemSource>,
    as_is: bool,
    memory_mib: u32,
    box_url: Option<String>,
}

fn artifact(outdir: &Path, format: Format, suffix: &str) -> PathBuf {
    outdir.join(format!("coreos_production_{}{suffix}", format.name()))
}

/// `COREOS_VERSION` from the `version.txt` beside the image, if there is one.
fn image_version(image: &Path) -> Option<String> {
    let text = std::fs::read_to_string(image.parent()?.join("version.txt")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("COREOS_VERSION="))
        .map(|v| v.trim().trim_matches('"').to_string())
}

fn build(req: &Request, ui: &Ui) -> anyhow::Result<Vec<PathBuf>> {
    let format = req.format;
    if matches!(format, Format::Iso | Format::Pxe) {
        // The live media read the image as it is: no working copy, no OEM tree.
        let version = image_version(req.image).unwrap_or_else(|| "0.0.0".into());
        return live::build(format == Format::Iso, req.image, req.outdir, &version, ui);
    }
    work_image::check_coreos(req.image)?;
    std::fs::create_dir_all(req.outdir)
        .with_context(|| format!("creating {}", req.outdir.display()))?;
    let workers = disk::ordered_map::default_workers();

    // The working copy: for ami it is the artifact itself, for the others it is removed at the end.
    let mut work_out = None;
    let work_path: PathBuf = if req.as_is {
        if format == Format::Ami {
            bail!("--as-is with --format ami would only copy the image; copy it instead");
        }
        req.image.to_path_buf()
    } else {
        let out = Pending::create(&artifact(req.outdir, format, format.work_copy_suffix()))?;
        let work = &out.file;
        let src =
            File::open(req.image).with_context(|| format!("opening {}", req.image.display()))?;
        let pb = ui.bytes("copy", src.metadata()?.len());
        disk::sparse::copy(&src, work, Some(&|n| pb.set_position(n))).with_context(|| {
            format!(
                "copying {} to {}",
                req.image.display(),
                out.tmp_path().display()
            )
        })?;
        pb.finish_and_clear();
        if let Some(name) = format.layout() {
            let layout =
                disk::layout::Layout::builtin(name).with_context(|| format!("layout {name}"))?;
            work_image::grow_to_layout(work, &layout)?;
        }
        let oem = req
            .oem
            .clone()
            .or_else(|| format.default_oem().map(|o| OemSource::Builtin(o.into())));
        if let Some(oem) = &oem {
            crate::image::replace_oem(out.tmp_path(), oem, ui)
                .with_context(|| format!("putting OEM {oem:?} into the image"))?;
        }
        if format == Format::Gce {
            work_image::pad_to(work, gce::GIB)?;
        }
        let path = out.tmp_path().to_path_buf();
        work_out = Some(out);
        path
    };
    let work = File::open(&work_path)?;
    let seed = work_image::fingerprint(&work, format.name())?;
    let version = image_version(req.image).unwrap_or_else(|| "0.0.0".into());
    let vm_name = format!(
        "coreos_production_{}-{}",
        format.name(),
        version.replace(['.', '+'], "-")
    );

    let vmware = vmware::VmwareInputs {
        work: &work,
        outdir: req.outdir,
        seed: &seed,
        vm_name: &vm_name,
        memory_mib: req.memory_mib,
        cpus: VMWARE_CPUS,
        workers,
    };
    let mut written = Vec::new();
    match format {
        Format::Ami => {
            let out = work_out.take().expect("ami always has a work copy");
            written.push(out.commit()?);
        }
        Format::Azure | Format::Hyperv => {
            let time = disk::epoch::build_time()?;
            written.push(match work_out.take() {
                Some(out) => vhd::finish(out, &seed, time)?,
                None => vhd::copy_as_is(
                    &work_path,
                    &artifact(req.outdir, format, "_image.vhd"),
                    &seed,
                    time,
                )?,
            });
        }
        Format::Vmware => written.extend(vmware::write_vmx_bundle(&vmware, ui)?),
        Format::VmwareOva => {
            written.push(vmware::write_ova(&vmware, disk::epoch::build_time()?, ui)?)
        }
        Format::Openstack => {
            written.push(write_qcow2(
                &work,
                &artifact(req.outdir, format, "_image.img"),
                workers,
                ui,
            )?);
        }
        Format::Digitalocean | Format::Packet => {
            written.push(raw_bz2::write(
                &work_path,
                &artifact(req.outdir, format, "_image.bin.bz2"),
                ui,
            )?);
        }
        Format::AmiVmdk => {
            let dest = artifact(req.outdir, format, "_image.vmdk");
            let (out, _) = write_vmdk(&work, &dest, AdapterType::LsiLogic, &seed, workers, ui)?;
            written.push(out.commit()?);
        }
        Format::Virtualbox => {
            let dest = artifact(req.outdir, format, "_image.vmdk");
            let (out, capacity) = write_vmdk(&work, &dest, AdapterType::Ide, &seed, workers, ui)?;
            let vmdk = out.commit()?;
            let ids = ovf::MachineIds::from_seed(&seed);
            let text = ovf::render(&ovf::OvfParams {
                vm_name: &vm_name,
                vmdk_file: &file_name(&vmdk),
                capacity,
                memory_mib: req.memory_mib,
                cpus: 1,
                ids: &ids,
            });
            written.push(vmdk);
            written.push(write_text(
                &artifact(req.outdir, format, ".ovf"),
                &text,
                0o644,
            )?);
        }
        Format::Vagrant => written.extend(write_vagrant(
            req, &work, &seed, &vm_name, &version, workers, ui,
        )?),
        Format::Gce => {
            if work.metadata()?.len() % gce::GIB != 0 {
                bail!(
                    "{} is not a whole number of GiB, as GCE requires of disk.raw",
                    work_path.display()
                );
            }
            let dest = artifact(req.outdir, format, ".tar.gz");
            written.push(gce::write_archive(
                &work_path,
                &dest,
                disk::epoch::build_time()?,
                workers,
                ui,
            )?);
        }
        Format::Qemu => {
            let img = write_qcow2(
                &work,
                &artifact(req.outdir, format, "_image.img"),
                workers,
                ui,
            )?;
            let script = qemu::launcher(&file_name(&img), &vm_name, req.memory_mib);
            written.push(img);
            written.push(write_text(
                &artifact(req.outdir, format, ".sh"),
                &script,
                0o755,
            )?);
        }
        Format::Iso | Format::Pxe => unreachable!("the live formats return above"),
    }
    Ok(written)
}

/// The qcow2 image (qemu, openstack).
fn write_qcow2(work: &File, dest: &Path, workers: usize, ui: &Ui) -> anyhow::Result<PathBuf> {
    let out = Pending::create(dest)?;
    let pb = ui.bytes("qcow2", work.metadata()?.len());
    vmimage::qcow2::write_qcow2(work, &out.file, workers, &|n| pb.set_position(n))?;
    pb.finish_and_clear();
    out.commit()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_text(dest: &Path, text: &str, mode: u32) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut out = Pending::create(dest)?;
    out.file.write_all(text.as_bytes())?;
    out.file
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    out.commit()
}

/// Write the stream-optimized VMDK (not yet renamed); returns its virtual size.
fn write_vmdk(
    src: &File,
    dest: &Path,
    adapter: AdapterType,
    seed: &[u8],
    workers: usize,
    ui: &Ui,
) -> anyhow::Result<(Pending, u64)> {
    let out = Pending::create(dest)?;
    let opts = StreamOptions {
        adapter,
        content_id: ContentId::from_seed(seed),
        extent_file: file_name(dest),
        level: VMDK_LEVEL,
        workers,
    };
    let pb = ui.bytes("vmdk", src.metadata()?.len());
    let report = vmimage::vmdk::write_stream_optimized(
        src,
        BufWriter::with_capacity(1 << 20, &out.file),
        &opts,
        &|n| pb.set_position(n),
    )
    .with_context(|| format!("writing {}", dest.display()))?;
    pb.finish_and_clear();
    Ok((out, report.capacity_bytes))
}

/// zlib level of VMDK grains: on the Debian-minbase image's 64 KiB grains level 3 is as small
/// as qemu-img's level 6 (25 MB per 64 MB of data either way) for about two thirds of the CPU.
const VMDK_LEVEL: u32 = 3;
/// VMware guests get two vCPUs (CoreOS `CPUS=2`).
const VMWARE_CPUS: u32 = 2;
/// The box's VMDK is compressed already; a higher gzip level would spend time for nothing.
const BOX_GZIP_LEVEL: u32 = 1;

fn write_vagrant(
    req: &Request,
    work: &File,
    seed: &[u8],
    vm_name: &str,
    version: &str,
    workers: usize,
    ui: &Ui,
) -> anyhow::Result<Vec<PathBuf>> {
    use tar_stream::{Member, Source};
    let vmdk_name = "coreos_production_vagrant_image.vmdk";
    // The VMDK lives only inside the box: its temporary file goes when `vmdk_out` drops.
    let (vmdk_out, capacity) = write_vmdk(
        work,
        &req.outdir.join(vmdk_name),
        AdapterType::Ide,
        seed,
        workers,
        ui,
    )?;
    vmdk_out.file.sync_all()?;
    let ids = ovf::MachineIds::from_seed(seed);
    let box_ovf = ovf::render(&ovf::OvfParams {
        vm_name,
        vmdk_file: vmdk_name,
        capacity,
        memory_mib: req.memory_mib,
        cpus: 1,
        ids: &ids,
    });
    let members = vec![
        Member {
            name: "metadata.json".into(),
            mode: 0o644,
            source: Source::Bytes(vagrant::METADATA_JSON.into()),
        },
        Member {
            name: "Vagrantfile".into(),
            mode: 0o644,
            source: Source::Bytes(vagrant::vagrantfile(&ids.mac).into()),
        },
        Member {
            name: "box.ovf".into(),
            mode: 0o644,
            source: Source::Bytes(box_ovf.into()),
        },
        Member {
            name: vmdk_name.into(),
            mode: 0o644,
            source: Source::File(vmdk_out.tmp_path().to_path_buf()),
        },
    ];
    let pieces = tar_stream::pieces(members, disk::epoch::build_time()?)?;
    let dest = artifact(req.outdir, Format::Vagrant, ".box");
    let box_out = Pending::create(&dest)?;
    let pb = ui.bytes("box", pieces.iter().map(|p| p.len()).sum());
    let mut w = BufWriter::with_capacity(1 << 20, &box_out.file);
    gzip::write_gzip(pieces, &mut w, BOX_GZIP_LEVEL, workers, &|n| {
        pb.set_position(n)
    })?;
    drop(w);
    pb.finish_and_clear();
    drop(vmdk_out);
    let box_path = box_out.commit()?;

    let sha = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        std::io::copy(&mut File::open(&box_path)?, &mut h)?;
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let url = match &req.box_url {
        Some(u) => u.clone(),
        None => format!("file://{}", std::fs::canonicalize(&box_path)?.display()),
    };
    let catalog = vagrant::catalog("coreos", version, &url, &sha);
    let json = write_text(
        &artifact(req.outdir, Format::Vagrant, ".json"),
        &catalog,
        0o644,
    )?;
    Ok(vec![box_path, json])
}

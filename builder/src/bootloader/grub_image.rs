//! GRUB images made with `grub-mkimage` (grub-common; the one host build tool the builder runs):
//! the i386-pc core image for BIOS-BOOT and the x86_64-efi image for the ESP, each with the
//! early config and a memdisk (a tar holding `grub.cfg`) embedded, as CoreOS's `grub_install.sh`.

use super::grub_cfg::EARLY_CFG;
use anyhow::{bail, Context};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// GRUB module folders for each target (USR tree first, then the host).
#[derive(Debug, Default)]
pub struct ModuleDirs {
    pub pc: Option<PathBuf>,
    pub efi: Option<PathBuf>,
}

impl ModuleDirs {
    /// Module folders in the USR tree's `lib/grub`, else the host's `/usr/lib/grub`.
    pub fn find(usr: &Path) -> ModuleDirs {
        let [tree, host] = Self::roots(usr);
        Self::find_in(&tree, &host)
    }

    /// Every folder `find` looks in, for the error that names them.
    pub fn candidates(usr: &Path) -> Vec<PathBuf> {
        let roots = Self::roots(usr);
        roots
            .iter()
            .flat_map(|r| [GrubTarget::Pc, GrubTarget::Efi].map(|t| r.join(t.name())))
            .collect()
    }

    fn roots(usr: &Path) -> [PathBuf; 2] {
        [usr.join("lib/grub"), PathBuf::from("/usr/lib/grub")]
    }

    /// The host's module folders only.
    pub fn host() -> ModuleDirs {
        let host = Path::new("/usr/lib/grub");
        Self::find_in(host, host)
    }

    fn find_in(tree: &Path, host: &Path) -> ModuleDirs {
        let pick = |target: &str| {
            [tree.join(target), host.join(target)]
                .into_iter()
                .find(|d| d.join("moddep.lst").is_file() && d.join("kernel.img").is_file())
        };
        ModuleDirs {
            pc: pick(GrubTarget::Pc.name()),
            efi: pick(GrubTarget::Efi.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrubTarget {
    /// BIOS: core.img for the BIOS-BOOT partition.
    Pc,
    /// UEFI: `EFI/boot/bootx64.efi`.
    Efi,
}

impl GrubTarget {
    pub fn name(self) -> &'static str {
        match self {
            GrubTarget::Pc => "i386-pc",
            GrubTarget::Efi => "x86_64-efi",
        }
    }

    /// Modules embedded in the image (grub-mkimage adds their dependencies from moddep.lst).
    /// What the grub.cfg uses: GPT, FAT (ESP) and ext2 (OEM) reading, search by label/file,
    /// `source`/`configfile`, `regexp`, `test`, `loadenv` (the slots' grubenv), serial terminal
    /// and the Linux loader.
    fn modules(self) -> Vec<&'static str> {
        const COMMON: &[&str] = &[
            "part_gpt",
            "fat",
            "ext2",
            "search",
            "search_label",
            "search_fs_file",
            "normal",
            "linux",
            "configfile",
            "memdisk",
            "tar",
            "serial",
            "terminal",
            "echo",
            "test",
            "regexp",
            "loadenv",
            "boot",
        ];
        let specific: &[&str] = match self {
            GrubTarget::Pc => &["biosdisk"],
            GrubTarget::Efi => &["efi_gop", "all_video"],
        };
        specific.iter().chain(COMMON).copied().collect()
    }
}

/// Make one GRUB image with `grub.cfg` in its memdisk; returns the image bytes.
pub fn make(target: GrubTarget, module_dir: &Path, grub_cfg: &str) -> anyhow::Result<Vec<u8>> {
    make_image(target.name(), module_dir, grub_cfg, &target.modules())
}

/// `make` for any `grub-mkimage --format` and module list (the live ISO's images).
pub fn make_image(
    format: &str,
    module_dir: &Path,
    grub_cfg: &str,
    modules: &[&str],
) -> anyhow::Result<Vec<u8>> {
    let tmp = tempfile::tempdir().context("creating a temporary folder for grub-mkimage")?;
    let early = tmp.path().join("early.cfg");
    std::fs::write(&early, EARLY_CFG)?;
    let memdisk = tmp.path().join("memdisk.tar");
    std::fs::write(&memdisk, memdisk_tar(grub_cfg)?)?;
    // grub-mkimage fsyncs its output: into a file on disk that costs a flush, and removing
    // the file then frees (and, with `discard`, discards) its blocks synchronously, a tenth
    // of a second on some hosts. Its standard output into a memory file costs neither (a
    // pipe would fail its fsync).
    let out = memory_file().context("creating a memory file for grub-mkimage's output")?;
    let mut cmd = Command::new("grub-mkimage");
    cmd.arg("--format")
        .arg(format)
        .arg("--directory")
        .arg(module_dir)
        .args(["--prefix", "(memdisk)", "--compression", "auto"])
        .arg("--config")
        .arg(&early)
        .arg("--memdisk")
        .arg(&memdisk)
        .args(modules)
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::piped());
    let result = cmd.output().map_err(|e| {
        anyhow::anyhow!("cannot run grub-mkimage ({e}); install the grub-common package, or build without GRUB modules")
    })?;
    if !result.status.success() {
        bail!(
            "grub-mkimage --format {} --directory {} failed ({}): {}",
            format,
            module_dir.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    let mut image = Vec::new();
    let mut out = out;
    out.seek(SeekFrom::Start(0))
        .and_then(|_| out.read_to_end(&mut image))
        .context("reading grub-mkimage's output")?;
    Ok(image)
}

/// An anonymous file in memory (memfd).
fn memory_file() -> std::io::Result<File> {
    // SAFETY: a NUL-terminated name and valid flags; the descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"grub-mkimage".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A tar holding one `grub.cfg`, with fixed metadata so the GRUB image is reproducible.
fn memdisk_tar(grub_cfg: &str) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(grub_cfg.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "grub.cfg", grub_cfg.as_bytes())?;
    Ok(b.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_dir(target: GrubTarget) -> Option<PathBuf> {
        let d = Path::new("/usr/lib/grub").join(target.name());
        d.join("moddep.lst").is_file().then_some(d)
    }

    #[test]
    fn images_are_reproducible_and_embed_the_config() {
        // grub-common and the module packages are installed by ci/install-deps.
        for target in [GrubTarget::Pc, GrubTarget::Efi] {
            let dir = host_dir(target)
                .unwrap_or_else(|| panic!("no host GRUB modules for {}", target.name()));
            let cfg = "set timeout=1\n# marker-7f3a\n";
            let a = make(target, &dir, cfg).unwrap();
            let b = make(target, &dir, cfg).unwrap();
            assert!(a == b, "{} image differs between two runs", target.name());
            let c = make(target, &dir, "set timeout=2\n").unwrap();
            assert!(
                a != c,
                "{}: the config does not change the image",
                target.name()
            );
            if target == GrubTarget::Efi {
                assert_eq!(&a[..2], b"MZ", "EFI image is not a PE file");
            } else {
                assert!(
                    a.len() > 512,
                    "core.img is {} bytes: no room for more than diskboot",
                    a.len()
                );
            }
        }
    }

    #[test]
    fn module_dirs_prefer_the_tree_and_need_kernel_and_moddep() {
        let t = tempfile::tempdir().unwrap();
        let (tree, host) = (t.path().join("tree"), t.path().join("host"));
        let d = ModuleDirs::find_in(&tree, &host);
        assert!(d.pc.is_none() && d.efi.is_none(), "{d:?}");
        for (root, target) in [
            (&tree, "i386-pc"),
            (&host, "i386-pc"),
            (&host, "x86_64-efi"),
        ] {
            std::fs::create_dir_all(root.join(target)).unwrap();
            std::fs::write(root.join(target).join("moddep.lst"), "").unwrap();
            std::fs::write(root.join(target).join("kernel.img"), "").unwrap();
        }
        std::fs::create_dir_all(tree.join("x86_64-efi")).unwrap(); // empty: not a module folder
        let d = ModuleDirs::find_in(&tree, &host);
        assert_eq!(d.pc, Some(tree.join("i386-pc")));
        assert_eq!(d.efi, Some(host.join("x86_64-efi")));
    }

    #[test]
    fn missing_module_dir_is_a_named_error() {
        let e = make(GrubTarget::Pc, Path::new("/nonexistent/grub"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/grub"), "{e}");
    }
}

//! `coreos-install iso customize|show`: a live ISO from `coreos-build vm --format iso` turned
//! into an unattended installer by rewriting its embed areas (`liveboot::embed`) in a copy:
//! the installer's settings become `coreos.inst.*` kernel arguments at the end of the live GRUB
//! entry, and the cloud-config and key go into the configuration image the entry loads as its
//! last initrd. The live system runs `coreos-install` with them on boot, then powers off (or,
//! when the install fails, prints why and stays up).
//!
//! Everything is checked before a byte is written; the copy is written under a temporary name
//! beside OUTPUT, synced, and renamed only when complete.

use crate::cli::{CustomizeArgs, IsoCommand};
use anyhow::{bail, Context, Result};
use liveboot::embed::{self, Customization};
use std::fs::{File, OpenOptions};
use std::path::Path;

pub fn run(c: &IsoCommand) -> Result<()> {
    match c {
        IsoCommand::Customize(a) => customize(a),
        IsoCommand::Show { iso } => show(iso),
    }
}

/// The customization `a` asks for, checked.
fn customization(a: &CustomizeArgs) -> Result<Customization> {
    let mut c = Customization::default();
    if !a.dest_device.starts_with("/dev/") {
        bail!("--dest-device {:?} is not a /dev/ path", a.dest_device);
    }
    c.kargs
        .push(format!("coreos.inst.install_dev={}", a.dest_device));
    if let Some(u) = &a.base_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            bail!("--base-url {u:?} is not an http:// or https:// URL");
        }
        c.kargs
            .push(format!("coreos.inst.base_url={}", u.trim_end_matches('/')));
    }
    if let Some(v) = &a.version {
        c.kargs.push(format!("coreos.inst.version={v}"));
    }
    if let Some(ch) = &a.channel {
        c.kargs.push(format!("coreos.inst.channel={ch}"));
    }
    if let Some(p) = &a.dest_config {
        let data = std::fs::read(p).with_context(|| format!("cloud-config {}", p.display()))?;
        crate::configure::check_cloud_config(&data)
            .with_context(|| format!("cloud-config {} is not valid", p.display()))?;
        c.files.push(("cloud-config.yml".into(), data));
    }
    if let Some(p) = &a.key {
        let data = std::fs::read(p).with_context(|| format!("key file {}", p.display()))?;
        keys::KeyRing::from_armored(&data)
            .with_context(|| format!("key file {} does not parse", p.display()))?;
        c.files.push(("key.asc".into(), data));
    }
    // Renders (and so checks) the areas before any file is made.
    embed::kargs_area(&c.kargs, embed::KARGS_AREA_LEN)?;
    embed::config_area(&c.files, embed::CONFIG_AREA_LEN)?;
    Ok(c)
}

fn customize(a: &CustomizeArgs) -> Result<()> {
    let c = customization(a)?;
    let src = File::open(&a.iso).with_context(|| format!("opening {}", a.iso.display()))?;
    embed::inspect(&src)
        .with_context(|| format!("{} is not a customizable live ISO", a.iso.display()))?;
    if a.output.exists() && !a.force {
        bail!("{} exists (--force replaces it)", a.output.display());
    }
    if same_file(&a.iso, &a.output) {
        bail!("--output must be a new file, not the ISO itself");
    }
    let name = a
        .output
        .file_name()
        .with_context(|| format!("{} has no file name", a.output.display()))?;
    let tmp = a
        .output
        .with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let result = (|| -> Result<()> {
        std::fs::copy(&a.iso, &tmp)
            .with_context(|| format!("copying {} to {}", a.iso.display(), tmp.display()))?;
        let out = OpenOptions::new().read(true).write(true).open(&tmp)?;
        embed::customize(&out, &c)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &a.output)
            .with_context(|| format!("renaming {} to {}", tmp.display(), a.output.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    println!(
        "{}: installs to {} on boot ({} kernel arguments, {} configuration files)",
        a.output.display(),
        a.dest_device,
        c.kargs.len(),
        c.files.len()
    );
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn show(iso: &Path) -> Result<()> {
    let f = File::open(iso).with_context(|| format!("opening {}", iso.display()))?;
    let c = embed::inspect(&f).with_context(|| format!("{}", iso.display()))?;
    if c.kargs.is_empty() && c.files.is_empty() {
        println!("{}: not customized (a plain live ISO)", iso.display());
    }
    for k in &c.kargs {
        println!("karg {k}");
    }
    for (name, data) in &c.files {
        println!("file {}/{name} ({} bytes)", embed::CONFIG_DIR, data.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> std::result::Result<crate::cli::Args, clap::Error> {
        crate::cli::Args::try_parse_from(args)
    }

    #[test]
    fn the_subcommand_parses_and_the_install_flags_still_do() {
        let a = parse(&[
            "coreos-install",
            "iso",
            "customize",
            "in.iso",
            "-o",
            "out.iso",
            "--dest-device",
            "/dev/vda",
            "-V",
            "1.2.3",
        ])
        .unwrap();
        let Some(crate::cli::Command::Iso(IsoCommand::Customize(c))) = a.command else {
            panic!("no customize")
        };
        assert_eq!(
            (c.dest_device.as_str(), c.version.as_deref()),
            ("/dev/vda", Some("1.2.3"))
        );
        let b = parse(&["coreos-install", "-d", "/dev/sda", "-V", "current"]).unwrap();
        assert!(b.command.is_none());
        assert_eq!(b.version, "current");
        assert!(parse(&["coreos-install", "-d", "/dev/sda", "iso", "show", "x.iso"]).is_err());
    }

    #[test]
    fn bad_settings_are_refused_before_anything_is_written() {
        let base = |dev: &str, url: Option<&str>| CustomizeArgs {
            iso: "in.iso".into(),
            output: "out.iso".into(),
            dest_device: dev.into(),
            dest_config: None,
            base_url: url.map(String::from),
            version: None,
            channel: None,
            key: None,
            force: false,
        };
        assert!(customization(&base("sda", None))
            .unwrap_err()
            .to_string()
            .contains("/dev/"));
        assert!(customization(&base("/dev/sda", Some("ftp://x"))).is_err());
        let bad_version = CustomizeArgs {
            version: Some("1 2".into()),
            ..base("/dev/sda", None)
        };
        assert!(
            customization(&bad_version).is_err(),
            "a space would split the argument"
        );
        let c = customization(&base("/dev/sda", Some("http://10.0.2.100/amd64-usr/"))).unwrap();
        assert_eq!(
            c.kargs,
            [
                "coreos.inst.install_dev=/dev/sda",
                "coreos.inst.base_url=http://10.0.2.100/amd64-usr"
            ]
        );
    }
}

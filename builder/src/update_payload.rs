//! `coreos-build payload`: the signed CrAU update payload of an already built image — its USR-A
//! partition (filesystem and dm-verity tree, the exact bytes the image boots) and the kernel
//! that boots it (`coreos/vmlinuz-a` on the ESP). The release writes the same payload; this
//! command makes one without a whole release (a v2 payload for a test, an operator's re-sign).

use crate::atomic_output::Pending;
use crate::progress::Ui;
use anyhow::{bail, Context, Result};
use payload::{PayloadSigningKey, PayloadSource, Release, WriteOptions, Written};
use std::fs::File;
use std::io::BufWriter;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The production image (coreos_production_image.bin).
    #[arg(long)]
    image: PathBuf,
    /// PEM RSA-2048 private key (PKCS#1 or PKCS#8), e.g. update-payload-key.pem from `keygen`.
    #[arg(long)]
    update_key: PathBuf,
    /// The payload file to write (e.g. coreos_production_update.gz).
    #[arg(long)]
    output: PathBuf,
    /// X.Y.Z [default: COREOS_RELEASE_VERSION of USR-A's /share/coreos/release].
    #[arg(long)]
    version: Option<String>,
    /// [default: COREOS_RELEASE_BOARD of USR-A's /share/coreos/release].
    #[arg(long)]
    board: Option<String>,
    /// The channel [default: GROUP of USR-A's /share/coreos/update.conf].
    #[arg(long)]
    channel: Option<String>,
}

/// The label of the partition the payload carries, and of the ESP that holds its kernel.
const USR_A: &str = "USR-A";
const ESP: &str = "EFI-SYSTEM";
const KERNEL_A: &str = "coreos/vmlinuz-a";

/// What a payload is made of, found in an image.
pub struct UpdateSource {
    pub image: File,
    /// USR-A's bytes in the image.
    pub usr_a: Range<u64>,
    /// The kernel that boots USR-A (`coreos/vmlinuz-a` on the ESP).
    pub kernel: Vec<u8>,
}

impl UpdateSource {
    /// USR-A of `image` (opened read-only) and, when `with_kernel`, the ESP's
    /// `coreos/vmlinuz-a` (else the kernel is left empty).
    pub fn find(image: &Path, with_kernel: bool) -> Result<UpdateSource> {
        let file = File::open(image).with_context(|| format!("opening {}", image.display()))?;
        let table = disk::gpt::read_table(&file)
            .with_context(|| format!("reading the partition table of {}", image.display()))?;
        let part = |label: &str| {
            table
                .by_label(label)
                .with_context(|| format!("{} has no partition labelled {label}", image.display()))
        };
        let usr = part(USR_A)?;
        let kernel = if with_kernel {
            let esp = part(ESP)?;
            disk::fat::read_file(&file, esp.offset(), esp.bytes(), KERNEL_A)
                .with_context(|| {
                    format!(
                        "reading the ESP (partition {}) of {}",
                        esp.number,
                        image.display()
                    )
                })?
                .with_context(|| {
                    format!(
                        "the ESP (partition {}) of {} has no {KERNEL_A}",
                        esp.number,
                        image.display()
                    )
                })?
        } else {
            Vec::new()
        };
        Ok(UpdateSource {
            usr_a: usr.offset()..usr.offset() + usr.bytes(),
            image: file,
            kernel,
        })
    }

    /// `KEY=value` of the text file `path` in USR-A's filesystem.
    fn usr_value(&self, path: &str, key: &str) -> Result<Option<String>> {
        let len = self.usr_a.end - self.usr_a.start;
        let text = ext4::edit::read_file(&self.image, self.usr_a.start, len, path)
            .with_context(|| format!("reading {path} in USR-A"))?;
        Ok(text.and_then(|t| {
            String::from_utf8_lossy(&t).lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| v.trim_matches('"').to_string())
            })
        }))
    }

    /// The release stamped into USR-A (`/share/coreos/release`, `/share/coreos/update.conf`).
    pub fn stamped_release(&self) -> Result<(Option<String>, Option<String>, Option<String>)> {
        Ok((
            self.usr_value("/share/coreos/release", "COREOS_RELEASE_VERSION")?,
            self.usr_value("/share/coreos/release", "COREOS_RELEASE_BOARD")?,
            self.usr_value("/share/coreos/update.conf", "GROUP")?,
        ))
    }

    /// Write the payload to `out` (and the partition's `.bz2` to `bz2` when given), with a
    /// progress bar; the temporary blob file goes to `spool_dir`.
    pub fn write(
        &self,
        release: &Release,
        key: &PayloadSigningKey,
        out: &mut dyn std::io::Write,
        bz2: Option<&mut dyn std::io::Write>,
        spool_dir: &Path,
        ui: &Ui,
    ) -> Result<Written> {
        let src = PayloadSource {
            image: &self.image,
            partition: self.usr_a.clone(),
            kernel: &self.kernel,
        };
        let opts = WriteOptions {
            threads: 0,
            spool_dir: Some(spool_dir.to_path_buf()),
        };
        let pb = ui.bytes("payload", self.usr_a.end - self.usr_a.start);
        let mut progress = |n| pb.set_position(n);
        let w = match bz2 {
            Some(bz2) => payload::write_payload_and_partition_bz2(
                &src,
                release,
                key,
                out,
                bz2,
                &opts,
                &mut progress,
            ),
            None => payload::write_payload(&src, release, key, out, &opts, &mut progress),
        }?;
        pb.finish_and_clear();
        Ok(w)
    }
}

/// Load a payload signing key, naming the flag and the file on error.
pub fn load_key(path: &Path) -> Result<PayloadSigningKey> {
    PayloadSigningKey::from_file(path).with_context(|| format!("--update-key {}", path.display()))
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    // Everything that can fail on bad input is checked before the output is created.
    let key = load_key(&args.update_key)?;
    let source = UpdateSource::find(&args.image, true)?;
    let (version, board, channel) = match (&args.version, &args.board, &args.channel) {
        (Some(v), Some(b), Some(c)) => (Some(v.clone()), Some(b.clone()), Some(c.clone())),
        _ => {
            let (v, b, c) = source.stamped_release()?;
            (
                args.version.clone().or(v),
                args.board.clone().or(b),
                args.channel.clone().or(c),
            )
        }
    };
    let (Some(version), Some(board)) = (version, board) else {
        bail!(
            "USR-A of {} names no version or board (/share/coreos/release); pass --version and --board",
            args.image.display()
        );
    };
    let release = Release {
        board,
        version,
        channel: channel.unwrap_or_default(),
    };
    let out = Pending::create(&args.output)?;
    let spool_dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut w = BufWriter::with_capacity(1 << 20, &out.file);
    let written = source.write(&release, &key, &mut w, None, &spool_dir, ui)?;
    drop(w);
    let path = out.commit()?;
    tracing::info!(
        "{}: {} bytes, {} partition and {} kernel operations, board {} version {}",
        path.display(),
        written.len,
        written.partition_ops,
        written.kernel_ops,
        release.board,
        release.version
    );
    Ok(())
}

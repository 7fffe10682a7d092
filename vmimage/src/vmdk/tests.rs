//! The writer judged by qemu-img: it must call the file streamOptimized, check it clean, and
//! convert it back to exactly the source bytes.

use super::*;
use std::io::BufWriter;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

/// A sparse raw file: random (incompressible) data, text-like (compressible) data, an all-zero
/// written region (must be omitted), a grain that straddles two data writes, and a tail.
pub(crate) fn synthetic_raw(path: &Path, size: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    f.write_all_at(&random(3 << 20), 1 << 20).unwrap();
    let text: Vec<u8> = b"streamOptimized grains "
        .iter()
        .cycle()
        .take(5 << 20)
        .copied()
        .collect();
    f.write_all_at(&text, 40 << 20).unwrap();
    f.write_all_at(&vec![0u8; 2 << 20], 50 << 20).unwrap();
    f.write_all_at(&random(1000), (70 << 20) + 65000).unwrap();
    f.write_all_at(&random(4096), size - 4096).unwrap();
}

fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "{tool} is not installed (ci/install-deps installs it)");
}

fn qemu_img(args: &[&str]) -> String {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qemu-img {args:?}: {text}");
    text
}

fn write(src: &Path, dst: &Path, workers: usize) -> StreamReport {
    let opts = StreamOptions {
        adapter: AdapterType::Ide,
        content_id: ContentId::from_seed(b"test"),
        extent_file: "t.vmdk".into(),
        level: 6,
        workers,
    };
    let out = BufWriter::new(File::create(dst).unwrap());
    write_stream_optimized(&File::open(src).unwrap(), out, &opts, &|_| ()).unwrap()
}

#[test]
fn qemu_reads_back_the_source() {
    require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let (raw, vmdk, back) = (
        dir.path().join("a.raw"),
        dir.path().join("a.vmdk"),
        dir.path().join("b.raw"),
    );
    synthetic_raw(&raw, 96 << 20);
    let report = write(&raw, &vmdk, 2);
    assert_eq!(report.capacity_bytes, 96 << 20);
    // 48 random + 80 text + 1-2 straddling + 1 tail grains; the written zeros are left out.
    assert!((130..=132).contains(&report.grains), "{report:?}");

    let info = qemu_img(&["info", vmdk.to_str().unwrap()]);
    assert!(info.contains("create type: streamOptimized"), "{info}");
    assert!(info.contains("virtual size: 96 MiB"), "{info}");
    qemu_img(&["check", vmdk.to_str().unwrap()]);
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        vmdk.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&raw).unwrap() == std::fs::read(&back).unwrap(),
        "round trip differs"
    );

    // Last two sectors: footer (a header with the real gdOffset) and end-of-stream.
    let bytes = std::fs::read(&vmdk).unwrap();
    let n = bytes.len();
    assert_eq!(n % 512, 0);
    assert!(bytes[n - 512..].iter().all(|&b| b == 0), "EOS marker");
    assert_eq!(&bytes[n - 1024..n - 1020], b"KDMV");
    assert_eq!(
        u32::from_le_bytes(bytes[n - 1536 + 12..n - 1536 + 16].try_into().unwrap()),
        MARKER_FOOTER
    );
}

#[test]
fn same_bytes_for_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("a.raw");
    synthetic_raw(&raw, 80 << 20);
    let (a, b) = (dir.path().join("1.vmdk"), dir.path().join("3.vmdk"));
    write(&raw, &a, 1);
    write(&raw, &b, 3);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

#[test]
fn empty_disk_is_a_valid_stream() {
    require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let (raw, vmdk) = (dir.path().join("z.raw"), dir.path().join("z.vmdk"));
    File::create(&raw).unwrap().set_len(1 << 30).unwrap();
    let r = write(&raw, &vmdk, 2);
    assert_eq!(r.grains, 0);
    qemu_img(&["check", vmdk.to_str().unwrap()]);
    let map = qemu_img(&["map", "--output=json", vmdk.to_str().unwrap()]);
    assert!(!map.contains("\"data\": true"), "{map}");
}

fn write_hosted(src: &Path, dst: &Path, workers: usize) -> HostedReport {
    let opts = HostedOptions {
        adapter: AdapterType::LsiLogic,
        content_id: ContentId::from_seed(b"test"),
        extent_file: "h.vmdk".into(),
        workers,
    };
    let out = File::create(dst).unwrap();
    write_monolithic_sparse(&File::open(src).unwrap(), &out, &opts, &|_| ()).unwrap()
}

/// monolithicSparse: qemu-img names the type, checks it clean and converts it back to the
/// source bytes; only data grains are stored; any worker count gives the same file.
#[test]
fn hosted_sparse_is_read_back_by_qemu_img() {
    require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let (raw, vmdk, back) = (
        dir.path().join("a.raw"),
        dir.path().join("h.vmdk"),
        dir.path().join("b.raw"),
    );
    // 96 MiB + 1 sector: the last grain is partial (read as zeros past the end).
    synthetic_raw(&raw, (96 << 20) + 512);
    let report = write_hosted(&raw, &vmdk, 2);
    assert_eq!(report.capacity_bytes, (96 << 20) + (64 << 10));
    assert!((130..=132).contains(&report.grains), "{report:?}");
    assert_eq!(
        std::fs::metadata(&vmdk).unwrap().len(),
        report.file_size,
        "{report:?}"
    );
    let p = vmdk.to_str().unwrap();
    let info = qemu_img(&["info", p]);
    assert!(info.contains("create type: monolithicSparse"), "{info}");
    let check = qemu_img(&["check", p]);
    assert!(check.contains("No errors were found"), "{check}");
    qemu_img(&["convert", "-O", "raw", p, back.to_str().unwrap()]);
    let (a, b) = (std::fs::read(&raw).unwrap(), std::fs::read(&back).unwrap());
    assert!(b.len() as u64 == report.capacity_bytes && a[..] == b[..a.len()]);
    assert!(b[a.len()..].iter().all(|&x| x == 0));

    let header = std::fs::read(&vmdk).unwrap();
    assert_eq!(&header[0..4], b"KDMV");
    assert_eq!(u32::from_le_bytes(header[4..8].try_into().unwrap()), 1);
    let text = String::from_utf8_lossy(&header[512..512 * 21]);
    assert!(text.contains("ddb.adapterType = \"lsilogic\""), "{text}");

    let other = dir.path().join("h1.vmdk");
    write_hosted(&raw, &other, 1);
    assert!(std::fs::read(&other).unwrap() == header);
}

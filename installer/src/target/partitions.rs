//! After writing: make the kernel see the new partition table (BLKRRPART with retries, BLKPG
//! for partitions it did not create, as `partx -a`), then let udev settle when it runs. The
//! install is complete before any of this: a failure here is a warning ("reboot to see the
//! partitions"), never a reason to undo it.

use super::TargetDisk;
use disk::layout::Partition;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// linux/fs.h: `#define BLKRRPART _IO(0x12,95)`.
const BLKRRPART: libc::c_ulong = 0x125f;
/// linux/fs.h: `#define BLKPG _IO(0x12,105)`.
const BLKPG: libc::c_ulong = 0x1269;
/// linux/blkpg.h
const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;

#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// BLKRRPART, retried while the device is busy (udev may be probing it).
fn reread(dev: &File, name: &str) -> Result<(), std::io::Error> {
    let mut last = None;
    for attempt in 0..20 {
        // SAFETY: BLKRRPART takes no argument; fd is valid.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), BLKRRPART as _, 0) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
        tracing::debug!("BLKRRPART on /dev/{name}: busy (try {attempt})");
        last = Some(e);
        std::thread::sleep(Duration::from_millis(100 + 50 * attempt));
    }
    Err(last.expect("set in loop"))
}

/// One BLKPG operation on partition `number` (`start` and `length` in bytes; the kernel ignores
/// them when deleting).
fn blkpg(dev: &File, op: libc::c_int, number: u32, start: u64, length: u64) -> std::io::Result<()> {
    let mut part = BlkpgPartition {
        start: start as i64,
        length: length as i64,
        pno: number as i32,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as i32,
        data: &mut part as *mut _ as *mut libc::c_void,
    };
    // SAFETY: arg and part live across the call; the layout matches linux/blkpg.h.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), BLKPG as _, &mut arg) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Tell the kernel about the new table; returns what did not work, one line each, for
/// warnings.
pub fn tell_kernel(dev: &File, disk: &TargetDisk, parts: &[Partition]) -> Vec<String> {
    let name = &disk.name;
    if disk.is_device_mapper() {
        tracing::info!(
            "/dev/{name} is a device-mapper device: the kernel makes no partition devices for it (kpartx -a {} makes them)",
            disk.path.display()
        );
        return Vec::new();
    }
    let mut problems = Vec::new();
    match reread(dev, name) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!("/dev/{name}: the kernel cannot reread its partitions ({e}); adding them with BLKPG")
        }
        Err(e) => problems.push(format!(
            "the kernel could not reread the partition table of /dev/{name} ({e}); reboot to see the new partitions"
        )),
    }
    remove_stale(dev, name, parts);
    let (added, failed) = add_missing(dev, name, parts);
    if added > 0 {
        tracing::info!("added {added} partition node(s) with BLKPG");
    }
    if !failed.is_empty() {
        problems.push(format!(
            "the kernel has no nodes for partition(s) {} of /dev/{name} ({}); reboot to see them",
            failed
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            failed[0].1
        ));
    }
    problems
}

/// Add partition nodes the kernel is missing (after a reread that did not make them): how
/// many were added, and the numbers that failed with why.
fn add_missing(dev: &File, disk_name: &str, parts: &[Partition]) -> (usize, Vec<(u32, String)>) {
    let mut added = 0;
    let mut failed = Vec::new();
    for p in parts {
        if partition_known(disk_name, p.number) {
            continue;
        }
        match blkpg(dev, BLKPG_ADD_PARTITION, p.number, p.offset(), p.bytes()) {
            Ok(()) => added += 1,
            Err(e) => failed.push((p.number, e.to_string())),
        }
    }
    (added, failed)
}

/// Remove stale kernel partitions (numbers the new table does not have).
fn remove_stale(dev: &File, disk_name: &str, parts: &[Partition]) {
    for n in 1..=128u32 {
        if partition_known(disk_name, n) && !parts.iter().any(|p| p.number == n) {
            let _ = blkpg(dev, BLKPG_DEL_PARTITION, n, 0, 0);
        }
    }
}

fn partition_known(disk: &str, n: u32) -> bool {
    let sep = if disk.chars().last().is_some_and(|c| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    Path::new(&format!("/sys/class/block/{disk}/{disk}{sep}{n}")).exists()
}

/// `udevadm settle` when udev runs (its control socket exists); silent otherwise.
pub fn udev_settle() {
    if !Path::new("/run/udev/control").exists() {
        return;
    }
    match std::process::Command::new("udevadm")
        .args(["settle", "--timeout=30"])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!("udevadm settle: {s}"),
        Err(e) => tracing::debug!("udevadm: {e}"),
    }
}

//! The cloud-config check the installer runs before touching the disk.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coreos_install::configure::check_cloud_config(data);
});

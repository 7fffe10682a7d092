//! The VHD footer codec (`vmimage::vhd`, which reads back the fixed VHDs it writes): any 512
//! bytes give a footer or an error, never a panic, and a footer that parses writes back to
//! bytes that parse to the same footer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmimage::vhd::{HardDiskFooter, FOOTER_SIZE};

fuzz_target!(|data: &[u8]| {
    let Ok(b) = <&[u8; FOOTER_SIZE]>::try_from(data) else {
        return;
    };
    if let Ok(footer) = HardDiskFooter::parse(b) {
        let again = HardDiskFooter::parse(&footer.to_bytes()).expect("a written footer parses");
        assert_eq!(again, footer);
    }
});

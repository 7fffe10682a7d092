//! A slot's boot configuration on the ESP (`disk::slots::esp_files::SlotConfig`), the GRUB
//! script that carries the verity root hash: generated configs render only when every field
//! is valid and parse back to themselves; any text parses to a config that renders and reads
//! back the same, or to an error, never a panic.
#![no_main]
use disk::slots::esp_files::SlotConfig;
use disk::slots::Slot;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    b: bool,
    partuuid: [u8; 16],
    /// Mostly hex digits, so the fields get past the first check.
    hash: Vec<u8>,
    data_blocks: u64,
    salt: Vec<u8>,
    version: String,
    text: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fuzz_target!(|input: Input| {
    let slot = if input.b { Slot::B } else { Slot::A };
    let c = SlotConfig {
        slot,
        partuuid: uuid::Uuid::from_bytes(input.partuuid),
        root_hash: hex(&input.hash),
        data_blocks: input.data_blocks,
        salt: hex(&input.salt),
        version: input.version.clone(),
    };
    if let Ok(text) = c.render() {
        assert_eq!(
            SlotConfig::parse(slot, &text).expect("a rendered config parses"),
            c
        );
    }
    if let Ok(parsed) = SlotConfig::parse(slot, &input.text) {
        let text = parsed.render().expect("a parsed config is valid");
        assert_eq!(SlotConfig::parse(slot, &text).unwrap(), parsed);
    }
});

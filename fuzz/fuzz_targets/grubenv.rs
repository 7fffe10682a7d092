//! GRUB's environment block (`disk::grubenv`) and GRUB's view of the slots in it
//! (`disk::slots::grub_view`), from generated variables rather than mutated bytes: blocks the
//! updater writes parse back to what it set, GRUB's view of any attributes in range reads
//! back as rendered, and any bytes after the signature give variables or an error, never a
//! panic.
#![no_main]
use disk::grubenv::{EnvBlock, ENVBLK_SIGNATURE};
use disk::slots::{grub_view, Slot, SlotAttrs};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Attrs {
    priority: u8,
    tries: u8,
    successful: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    vars: Vec<(String, String)>,
    size: u16,
    a: Attrs,
    b: Attrs,
    /// One of the view's six variables given this text instead (a hand-edited grubenv).
    replace: Option<(u8, String)>,
    raw: Vec<u8>,
}

fn attrs(a: &Attrs) -> SlotAttrs {
    SlotAttrs {
        priority: a.priority % 16,
        tries: a.tries % 16,
        successful: a.successful,
    }
}

fuzz_target!(|input: Input| {
    // The block as the updater writes it: what was set reads back.
    let mut env = EnvBlock::default();
    for (name, value) in &input.vars {
        let _ = env.set(name, value);
    }
    if let Ok(block) = env.render(usize::from(input.size)) {
        assert_eq!(block.len(), usize::from(input.size));
        assert_eq!(
            EnvBlock::parse(&block).expect("a rendered block parses"),
            env
        );
    }

    // GRUB's view of two slots, then one variable replaced by any text.
    let slots = [(Slot::A, attrs(&input.a)), (Slot::B, attrs(&input.b))];
    let view = grub_view::render(&slots, 0).expect("two slots fit a 1024-byte block");
    let read = grub_view::parse(&view).expect("a rendered view parses");
    assert_eq!(read[&Slot::A], slots[0].1);
    assert_eq!(read[&Slot::B], slots[1].1);
    if let Some((which, text)) = &input.replace {
        let slot = Slot::ALL[usize::from(which % 2)];
        let name = grub_view::var_names(slot)[usize::from(which / 2 % 3)].clone();
        let mut env = EnvBlock::parse(&view).unwrap();
        if env.set(&name, text).is_ok() {
            if let Ok(block) = env.render(view.len()) {
                if let Ok(read) = grub_view::parse(&block) {
                    // Only a canonical decimal in range is taken, and it is taken as written.
                    let a = read[&slot];
                    let got = [a.priority, a.tries, u8::from(a.successful)];
                    assert_eq!(got[usize::from(which / 2 % 3)].to_string(), *text);
                }
            }
        }
    }

    // Any bytes after the signature.
    let mut block = ENVBLK_SIGNATURE.to_vec();
    block.extend_from_slice(&input.raw);
    if let Ok(env) = EnvBlock::parse(&block) {
        let _ = env.vars().len();
    }
    let _ = grub_view::parse(&block);
});

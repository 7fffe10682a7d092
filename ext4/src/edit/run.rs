//! A mapped piece of a file, what both mappings (extent trees, block maps) produce and the
//! filesystem's callers consume: it sits below `fs` and `extents` so neither imports the other.

/// A mapped piece of a file: `len` blocks from logical block `logical` at physical `phys`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub logical: u64,
    pub phys: u64,
    pub len: u64,
    /// Uninitialized (preallocated) extent: reads as zeros.
    pub uninit: bool,
}

//! Deterministic block allocation: one cursor walking the data areas of the groups in
//! order, so the layout is a pure function of the tree. Running past the end is counted
//! (not failed) so the "does not fit" error can say by how much.

use super::geometry::Geometry;
use std::ops::Range;

/// `len` logical blocks starting at `logical` live at `physical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
}

pub struct Allocator {
    free: Vec<Range<u64>>,
    idx: usize,
    cursor: u64,
    end: u64,
    /// Blocks asked for beyond the end of the filesystem.
    pub shortfall: u64,
    pub allocated: u64,
}

impl Allocator {
    pub fn new(geo: &Geometry) -> Allocator {
        let free: Vec<Range<u64>> = (0..geo.groups)
            .map(|g| geo.data_start(g)..geo.group_start(g) + geo.group_len(g))
            .collect();
        let cursor = free[0].start;
        Allocator {
            free,
            idx: 0,
            cursor,
            end: geo.blocks_count,
            shortfall: 0,
            allocated: 0,
        }
    }

    /// `n` blocks, as few runs as the group layout allows.
    pub fn alloc(&mut self, mut n: u64) -> Vec<Range<u64>> {
        let mut runs: Vec<Range<u64>> = Vec::new();
        self.allocated += n;
        while n > 0 {
            if self.idx >= self.free.len() {
                // Past the end: hand out blocks that do not exist, and count them.
                let s = self.end + self.shortfall;
                self.shortfall += n;
                runs.push(s..s + n);
                break;
            }
            let area = &self.free[self.idx];
            let take = n.min(area.end - self.cursor);
            if take > 0 {
                match runs.last_mut() {
                    Some(r) if r.end == self.cursor => r.end += take,
                    _ => runs.push(self.cursor..self.cursor + take),
                }
                self.cursor += take;
                n -= take;
            }
            if self.cursor == area.end {
                self.idx += 1;
                if let Some(next) = self.free.get(self.idx) {
                    self.cursor = next.start;
                }
            }
        }
        runs
    }

    /// One block.
    pub fn one(&mut self) -> u64 {
        self.alloc(1)[0].start
    }

    /// `n` blocks as a list of block numbers.
    pub fn list(&mut self, n: u64) -> Vec<u64> {
        self.alloc(n).into_iter().flatten().collect()
    }
}

/// Pair logical ranges with the physical runs allocated for them (same total length).
pub fn zip(logical: &[Range<u64>], physical: &[Range<u64>]) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut p = physical.iter().cloned();
    let mut cur = p.next();
    for l in logical {
        let mut lpos = l.start;
        while lpos < l.end {
            let r = cur
                .as_mut()
                .expect("physical runs cover the logical ranges");
            let len = (l.end - lpos).min(r.end - r.start);
            out.push(Mapping {
                logical: lpos,
                physical: r.start,
                len,
            });
            lpos += len;
            r.start += len;
            if r.start == r.end {
                cur = p.next();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_skip_group_metadata_and_count_shortfall() {
        let geo = Geometry::new(40000 * 4096, 256, 16384, 64, true).unwrap();
        let mut a = Allocator::new(&geo);
        let first = a.alloc(32768 - geo.data_start(0));
        assert_eq!(first, vec![geo.data_start(0)..32768]);
        let second = a.alloc(10);
        assert_eq!(second[0].start, geo.data_start(1));
        let big = a.alloc(100_000);
        assert!(a.shortfall > 0);
        assert_eq!(big.iter().map(|r| r.end - r.start).sum::<u64>(), 100_000);
    }

    #[test]
    fn zip_splits_at_both_boundaries() {
        let m = zip(&[0..3, 10..12], &[100..102, 200..203]);
        assert_eq!(
            m,
            vec![
                Mapping {
                    logical: 0,
                    physical: 100,
                    len: 2
                },
                Mapping {
                    logical: 2,
                    physical: 200,
                    len: 1
                },
                Mapping {
                    logical: 10,
                    physical: 201,
                    len: 2
                },
            ]
        );
    }
}

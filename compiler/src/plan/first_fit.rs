//! First fit over lifetimes, the placement rule of [`super::memplan`]: buffers largest first
//! (ties in the order given), each at the lowest offset clear of every buffer placed before
//! it whose lifetime (an inclusive range of schedule steps) overlaps its own.
//!
//! Asking every placed buffer whether it overlaps is quadratic: a chain of 100,000 layers,
//! whose activations all live across the turn from forward to backward, took minutes. Here
//! the steps are the leaves of a segment tree. A buffer is recorded at the canonical nodes
//! of its lifetime (`cover`) and, merged into blocks of bytes, at those nodes and all their
//! ancestors (`below`). A lifetime overlaps another exactly when a canonical node of one is
//! an ancestor of, or equal to, a canonical node of the other, so the bytes taken over a
//! lifetime are `below` of its canonical nodes and `cover` of their ancestors: O(log steps)
//! sets of merged blocks, in which the lowest gap is found by jumping over blocks. The
//! result is the same as the quadratic rule's, which the tests keep beside it.

use std::collections::BTreeMap;

/// Byte ranges `[lo, hi)`, disjoint and never touching (touching ranges are one block: no
/// buffer fits between them). Most nodes of the tree hold one block, which takes no
/// allocation of its own.
#[derive(Clone, Debug, Default)]
enum Blocks {
    #[default]
    None,
    One(u64, u64),
    /// Keyed by `lo`.
    Many(BTreeMap<u64, u64>),
}

impl Blocks {
    /// Adds `[lo, hi)` (not empty), merged with the blocks it overlaps or touches.
    fn insert(&mut self, lo: u64, hi: u64) {
        match self {
            Blocks::None => *self = Blocks::One(lo, hi),
            Blocks::One(l, h) if lo <= *h && *l <= hi => {
                *self = Blocks::One(lo.min(*l), hi.max(*h))
            }
            Blocks::One(l, h) => *self = Blocks::Many(BTreeMap::from([(*l, *h), (lo, hi)])),
            Blocks::Many(map) => merge(map, lo, hi),
        }
    }

    /// The end of the block overlapping `[y, y + len)`, if one does.
    fn clash(&self, y: u64, len: u64) -> Option<u64> {
        if len == 0 {
            return None;
        }
        let end = y.saturating_add(len);
        let hi = match self {
            Blocks::None => return None,
            Blocks::One(l, h) => (*l < end).then_some(*h)?,
            // Blocks are disjoint and sorted: the last one starting before `end` is the one
            // that reaches furthest.
            Blocks::Many(map) => *map.range(..end).next_back()?.1,
        };
        (hi > y).then_some(hi)
    }
}

/// Adds `[lo, hi)` to the blocks of `map`, merged with those it overlaps or touches.
fn merge(map: &mut BTreeMap<u64, u64>, mut lo: u64, mut hi: u64) {
    if let Some((&l, &h)) = map.range(..=lo).next_back() {
        if h >= lo {
            lo = l;
            hi = hi.max(h);
        }
    }
    let joined: Vec<(u64, u64)> = map.range(lo..=hi).map(|(&l, &h)| (l, h)).collect();
    for (l, h) in joined {
        map.remove(&l);
        hi = hi.max(h);
    }
    map.insert(lo, hi);
}

/// The segment tree over schedule steps, heap-numbered (node 1 is the root, leaf `t` is
/// node `leaves + t`).
struct Tree {
    leaves: usize,
    /// Bytes of the buffers whose lifetime's canonical nodes include this node.
    cover: Vec<Blocks>,
    /// Bytes of the buffers with a canonical node at or under this node.
    below: Vec<Blocks>,
    /// `mark[x] == stamp`: node `x` is already among the ancestors being gathered.
    mark: Vec<u32>,
    stamp: u32,
}

impl Tree {
    fn new(steps: usize) -> Tree {
        let leaves = steps.max(1).next_power_of_two();
        Tree {
            leaves,
            cover: vec![Blocks::default(); 2 * leaves],
            below: vec![Blocks::default(); 2 * leaves],
            mark: vec![0; 2 * leaves],
            stamp: 0,
        }
    }

    /// The canonical nodes of steps `first..=last` (disjoint subtrees whose leaves are
    /// exactly those steps), and their strict ancestors, each once.
    fn nodes(&mut self, first: usize, last: usize) -> (Vec<usize>, Vec<usize>) {
        let mut canonical = Vec::new();
        let (mut lo, mut hi) = (first + self.leaves, last + 1 + self.leaves);
        while lo < hi {
            if lo & 1 == 1 {
                canonical.push(lo);
                lo += 1;
            }
            if hi & 1 == 1 {
                hi -= 1;
                canonical.push(hi);
            }
            lo >>= 1;
            hi >>= 1;
        }
        self.stamp += 1;
        let mut ancestors = Vec::new();
        for &c in &canonical {
            let mut x = c >> 1;
            while x >= 1 && self.mark[x] != self.stamp {
                self.mark[x] = self.stamp;
                ancestors.push(x);
                x >>= 1;
            }
        }
        (canonical, ancestors)
    }
}

/// Offsets for buffers given as `(first, last, bytes)` (live over steps `first..=last`), by
/// first fit, largest first; and the peak, the end of the highest buffer.
pub fn place(live: &[(usize, usize, u64)]) -> (Vec<u64>, u64) {
    let steps = live.iter().map(|&(_, last, _)| last + 1).max().unwrap_or(0);
    let mut tree = Tree::new(steps);
    let mut order: Vec<usize> = (0..live.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(live[i].2), i));
    let mut offsets = vec![0; live.len()];
    let mut peak = 0;
    for i in order {
        let (first, last, bytes) = live[i];
        // An empty buffer clashes with nothing and goes at 0, as under the quadratic rule
        // (where it comes last, below every other buffer's first gap).
        if bytes == 0 {
            continue;
        }
        let (canonical, ancestors) = tree.nodes(first, last);
        let sets: Vec<&Blocks> = canonical
            .iter()
            .map(|&c| &tree.below[c])
            .chain(ancestors.iter().map(|&a| &tree.cover[a]))
            .collect();
        // Each jump goes past a block that overlaps: nothing below the new offset fits.
        let mut y = 0u64;
        loop {
            let mut moved = false;
            for set in &sets {
                if let Some(hi) = set.clash(y, bytes) {
                    y = hi;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        offsets[i] = y;
        peak = peak.max(y + bytes);
        for &c in &canonical {
            tree.cover[c].insert(y, y + bytes);
        }
        for &x in canonical.iter().chain(&ancestors) {
            tree.below[x].insert(y, y + bytes);
        }
    }
    (offsets, peak)
}

/// The rule as first written: every placed buffer is asked whether it overlaps.
/// Quadratic, and the reference the tree must agree with.
#[cfg(test)]
pub(super) fn naive(live: &[(usize, usize, u64)]) -> (Vec<u64>, u64) {
    let mut order: Vec<usize> = (0..live.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(live[i].2), i));
    let mut offsets = vec![0; live.len()];
    let mut done: Vec<usize> = Vec::new();
    let mut peak = 0;
    for i in order {
        let (first, last, bytes) = live[i];
        let mut taken: Vec<(u64, u64)> = done
            .iter()
            .filter(|&&j| live[j].0 <= last && first <= live[j].1)
            .map(|&j| (offsets[j], offsets[j] + live[j].2))
            .collect();
        taken.sort_unstable();
        let mut offset = 0;
        for (lo, hi) in taken {
            if offset + bytes <= lo {
                break;
            }
            offset = offset.max(hi);
        }
        offsets[i] = offset;
        peak = peak.max(offset + bytes);
        done.push(i);
    }
    (offsets, peak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blocks_merge_and_clash() {
        let mut b = Blocks::default();
        b.insert(10, 20);
        b.insert(20, 25);
        assert!(matches!(b, Blocks::One(10, 25)));
        b.insert(30, 40);
        let Blocks::Many(map) = &b else {
            panic!("two blocks: {b:?}")
        };
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&10, &25), (&30, &40)]);
        assert_eq!(b.clash(25, 5), None);
        assert_eq!(b.clash(25, 6), Some(40));
        b.insert(5, 35);
        let Blocks::Many(map) = &b else {
            panic!("one block in a map: {b:?}")
        };
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&5, &40)]);
        assert_eq!(b.clash(0, 5), None);
        assert_eq!(b.clash(0, 6), Some(40));
        assert_eq!(b.clash(39, 1), Some(40));
        assert_eq!(b.clash(40, 100), None);
        assert_eq!(b.clash(7, 0), None);
    }

    #[test]
    fn a_nested_chain_stacks() {
        // Activations of a chain: each lives from its forward to its backward.
        let n = 1000;
        let live: Vec<_> = (0..n).map(|k| (k, 2 * n - 1 - k, 16)).collect();
        let (offsets, peak) = place(&live);
        assert_eq!(offsets, (0..n as u64).map(|k| 16 * k).collect::<Vec<_>>());
        assert_eq!(peak, 16 * n as u64);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// The tree places every buffer where the quadratic rule does.
        #[test]
        fn same_as_naive(
            raw in prop::collection::vec((0usize..40, 0usize..12, 0u64..6), 0..60)
        ) {
            let live: Vec<_> = raw
                .iter()
                .map(|&(first, len, size)| (first, first + len, size * size * 4))
                .collect();
            prop_assert_eq!(place(&live), naive(&live));
        }
    }
}

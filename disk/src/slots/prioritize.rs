//! `cgpt prioritize [-i N] [-P MAX] [-f]` (seismograph `cgpt_prioritize.c`): the coreos-usr
//! partitions are grouped by priority; the chosen one (or, with `-f`, its whole group) is put
//! in a group above every other; groups are sorted and renumbered from MAX (default: the
//! number of groups, at most 15) downwards, never below 1; a group at priority 0 stays 0
//! unless it holds the chosen partition.

use super::attrs::MAX_PRIORITY;

/// Above every real priority (cgpt's 99).
const CHOSEN: i32 = 99;

/// What to prioritize.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prioritize {
    /// The partition number put above all others (`-i N`); None only renumbers.
    pub chosen: Option<u32>,
    /// Highest priority of the new order (`-P`, 1–15); None: the number of groups.
    pub max_priority: Option<u8>,
    /// Move the chosen partition's whole group (`-f`, "friends").
    pub friends: bool,
}

/// New priorities of `parts` — (partition number, priority) in table order — in the same order.
pub fn prioritize(parts: &[(u32, u8)], how: Prioritize) -> Vec<(u32, u8)> {
    // (group priority, members), in order of first appearance, as cgpt's AddToGroup.
    let mut groups: Vec<(i32, Vec<u32>)> = Vec::new();
    let mut add = |priority: i32, number: u32| match groups.iter_mut().find(|g| g.0 == priority) {
        Some(g) => g.1.push(number),
        None => groups.push((priority, vec![number])),
    };
    let mut chosen_priority = None;
    for &(number, priority) in parts {
        if how.chosen == Some(number) {
            chosen_priority = Some(priority as i32);
            add(if how.friends { priority as i32 } else { CHOSEN }, number);
        } else {
            add(priority as i32, number);
        }
    }
    if let (true, Some(p)) = (how.friends, chosen_priority) {
        if let Some(g) = groups.iter_mut().find(|g| g.0 == p) {
            g.0 = CHOSEN;
        }
    }
    // A stable sort, highest first (cgpt's straight insertion sort is stable too).
    groups.sort_by_key(|g| std::cmp::Reverse(g.0));
    if groups.last().is_some_and(|g| g.0 == 0) {
        groups.pop();
    }
    let mut next = match how.max_priority {
        Some(p) => p.clamp(1, MAX_PRIORITY) as i32,
        None => (groups.len() as i32).min(MAX_PRIORITY as i32),
    };
    for g in &mut groups {
        g.0 = next;
        if next > 1 {
            next -= 1;
        }
    }
    parts
        .iter()
        .map(|&(number, priority)| {
            let new = groups
                .iter()
                .find(|g| g.1.contains(&number))
                .map_or(priority, |g| g.0 as u8);
            (number, new)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(n: u32) -> Prioritize {
        Prioritize {
            chosen: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn postinst_on_a_fresh_image_puts_usr_b_at_2() {
        // coreos-postinst: cgpt prioritize /dev/sda4 with USR-A 1, USR-B 0.
        assert_eq!(prioritize(&[(3, 1), (4, 0)], chosen(4)), [(3, 1), (4, 2)]);
    }

    #[test]
    fn setgoodroot_keeps_the_order_and_alternating_stays_bounded() {
        assert_eq!(prioritize(&[(3, 1), (4, 2)], chosen(4)), [(3, 1), (4, 2)]);
        // The next update writes USR-A: it goes above USR-B, priorities stay 1 and 2.
        assert_eq!(prioritize(&[(3, 0), (4, 2)], chosen(3)), [(3, 2), (4, 1)]);
        assert_eq!(prioritize(&[(3, 2), (4, 1)], chosen(4)), [(3, 1), (4, 2)]);
    }

    #[test]
    fn priority_zero_stays_zero_unless_chosen() {
        assert_eq!(
            prioritize(&[(3, 0), (4, 5), (5, 0)], chosen(4)),
            [(3, 0), (4, 1), (5, 0)]
        );
        assert_eq!(prioritize(&[(3, 0), (4, 0)], chosen(3)), [(3, 1), (4, 0)]);
        // Without a chosen partition, only renumbering.
        assert_eq!(
            prioritize(&[(3, 7), (4, 3), (5, 0)], Prioritize::default()),
            [(3, 2), (4, 1), (5, 0)]
        );
    }

    #[test]
    fn groups_share_a_priority_and_never_go_below_1() {
        let parts = [(1, 9), (2, 9), (3, 4), (4, 1), (5, 1)];
        assert_eq!(
            prioritize(&parts, chosen(4)),
            [(1, 3), (2, 3), (3, 2), (4, 4), (5, 1)]
        );
        let max2 = Prioritize {
            chosen: Some(4),
            max_priority: Some(2),
            friends: false,
        };
        assert_eq!(
            prioritize(&parts, max2),
            [(1, 1), (2, 1), (3, 1), (4, 2), (5, 1)]
        );
    }

    #[test]
    fn friends_move_the_whole_group() {
        let f = Prioritize {
            chosen: Some(4),
            max_priority: None,
            friends: true,
        };
        assert_eq!(
            prioritize(&[(1, 9), (3, 4), (4, 1), (5, 1)], f),
            [(1, 2), (3, 1), (4, 3), (5, 3)]
        );
        // A chosen group at 0 moves up with all its members.
        assert_eq!(
            prioritize(&[(3, 2), (4, 0), (5, 0)], f),
            [(3, 1), (4, 2), (5, 2)]
        );
    }

    #[test]
    fn more_than_15_groups_cap_at_15() {
        let parts: Vec<(u32, u8)> = (1..=16).map(|n| (n, n as u8 - 1)).collect();
        let out = prioritize(&parts, chosen(1));
        assert_eq!(out[0], (1, 15));
        assert_eq!(out[15], (16, 14));
        assert_eq!(out[1], (2, 1), "the lowest groups share 1");
        assert_eq!(out[2], (3, 1));
    }
}

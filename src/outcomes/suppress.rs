//! Small-cell suppression for reports, knowing nothing of what the cells
//! mean: each cell has the number of members it rests on, and *relations*
//! name groups of cells tied by one sum (a moment's band percentages add up
//! to 100 %; its improved, unchanged and deteriorated counts add up to its
//! n, which is a cell of the same relation; circles add up to the
//! organisation).
//!
//! - Primary: a cell resting on 1 to k − 1 members is hidden. A cell of no
//!   members describes nobody and stays (a mean of nobody has no value to
//!   show anyway).
//! - Secondary: a relation with exactly one hidden cell would give it away
//!   by subtraction, so its smallest visible cell is hidden too (ties: the
//!   first), preferring cells of some members: a zero is often known
//!   anyway (a rule that makes it always zero), so hiding it protects
//!   little; repeated over all relations until nothing changes.

/// Whether a cell is shown, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Shown,
    /// Rests on fewer than k members.
    Primary,
    /// Hidden so that another hidden cell cannot be recovered.
    Secondary,
}

impl Visibility {
    pub fn is_hidden(self) -> bool {
        self != Self::Shown
    }
}

/// Decides, for `counts[i]` members under cell `i`, which cells to hide.
/// `relations` hold cell indexes; an index past the end is ignored. With
/// k ≤ 1 nothing is hidden.
pub fn suppress(counts: &[u64], relations: &[Vec<usize>], k: u64) -> Vec<Visibility> {
    let mut visibility: Vec<Visibility> = counts
        .iter()
        .map(|&n| {
            if n > 0 && n < k {
                Visibility::Primary
            } else {
                Visibility::Shown
            }
        })
        .collect();
    // Every pass hides at least one more cell or stops, so this ends within
    // counts.len() passes.
    loop {
        let mut changed = false;
        for relation in relations {
            let cells: Vec<usize> = relation
                .iter()
                .copied()
                .filter(|&i| i < counts.len())
                .collect();
            let hidden = cells.iter().filter(|&&i| visibility[i].is_hidden()).count();
            if hidden != 1 {
                continue;
            }
            let smallest = cells
                .iter()
                .copied()
                .filter(|&i| !visibility[i].is_hidden())
                .min_by_key(|&i| (counts[i] == 0, counts[i], i));
            if let Some(i) = smallest {
                visibility[i] = Visibility::Secondary;
                changed = true;
            }
        }
        if !changed {
            return visibility;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Visibility::{Primary as P, Secondary as S, Shown as O};
    use super::*;

    #[test]
    fn k_minus_one_is_hidden_and_k_is_shown() {
        assert_eq!(suppress(&[9, 10, 11], &[], 10), [P, O, O]);
        assert_eq!(
            suppress(&[1, 0], &[], 10),
            [P, O],
            "no members: nothing to hide"
        );
    }

    #[test]
    fn one_hidden_cell_in_a_relation_takes_the_next_smallest_with_it() {
        // improved 3, unchanged 14, deteriorated 12, n 29: 3 is hidden, and
        // 29 − 14 − 12 would give it back, so the smallest other cell (12) goes too.
        let v = suppress(&[3, 14, 12, 29], &[vec![0, 1, 2, 3]], 10);
        assert_eq!(v, [P, O, S, O]);
        // Ties go to the first cell.
        let v = suppress(&[3, 12, 12, 27], &[vec![0, 1, 2, 3]], 10);
        assert_eq!(v, [P, S, O, O]);
    }

    #[test]
    fn a_zero_is_hidden_only_when_nothing_else_is_left() {
        // answered 10 (hidden elsewhere) = scored 10 + unscored 0: hiding
        // the 0 would leave scored = answered for anyone who knows that
        // every answer is scored, so the 10 goes.
        let v = suppress(&[4, 10, 0], &[vec![0, 1, 2]], 10);
        assert_eq!(v, [P, S, O]);
        let v = suppress(&[4, 0], &[vec![0, 1]], 10);
        assert_eq!(v, [P, S]);
    }

    #[test]
    fn two_hidden_cells_need_nothing_more() {
        let v = suppress(&[3, 4, 22, 29], &[vec![0, 1, 2, 3]], 10);
        assert_eq!(v, [P, P, O, O]);
    }

    #[test]
    fn secondary_suppression_chains_across_relations() {
        // Two circles (cells 0, 1) and their organisation total (2) at
        // intake; the same three at 6 weeks (3, 4, 5); each circle's own two
        // moments are related through a third cell (6, 7: counts that were
        // answered at both moments, say). Circle A at intake has 4 members.
        let counts = [4, 20, 24, 12, 18, 30, 16, 38];
        let relations = vec![
            vec![0, 1, 2], // intake: A + B = total
            vec![3, 4, 5], // 6 weeks: A + B = total
            vec![0, 3, 6], // circle A across moments
            vec![1, 4, 7], // circle B across moments
        ];
        let v = suppress(&counts, &relations, 10);
        // Cell 0 (4) is primary. Intake: hide 1 (20 < 24). Circle A: hide 3
        // (12 < 16). Circle B, now with cell 1 hidden: hide 4 (18 < 38). The
        // 6-week relation ends with 3 and 4 hidden: every relation has two.
        assert_eq!(v, [P, S, O, S, S, O, O, O]);
        for relation in &relations {
            let hidden = relation.iter().filter(|&&i| v[i].is_hidden()).count();
            assert_ne!(hidden, 1, "relation {relation:?} gives a cell away");
        }
    }

    #[test]
    fn a_relation_can_end_entirely_hidden() {
        // Band cells 2, 3, 4 of a moment of 9: all primary; their total
        // (the moment's n, 9) is primary too.
        let v = suppress(&[2, 3, 4, 9], &[vec![0, 1, 2, 3]], 10);
        assert_eq!(v, [P, P, P, P]);
        // Two band percentages that sum to a constant 100 %: one hidden
        // band gives the other away, so both go.
        let v = suppress(&[5, 40], &[vec![0, 1]], 10);
        assert_eq!(v, [P, S]);
    }

    #[test]
    fn k_of_one_hides_nothing() {
        let counts = [0, 1, 2, 3, 6];
        let v = suppress(&counts, &[vec![0, 1, 2, 3], vec![3, 4]], 1);
        assert!(v.iter().all(|c| *c == O), "{v:?}");
        assert_eq!(suppress(&counts, &[vec![0, 1, 2, 3]], 0), [O; 5]);
    }

    #[test]
    fn out_of_range_indexes_are_ignored() {
        assert_eq!(suppress(&[3, 20], &[vec![0, 1, 7]], 10), [P, S]);
    }
}

//! Cohort figures for outcome reports, as pure functions on scores.
//!
//! Scores here are the scaled totals of one instrument (WHO-5 percentages,
//! DJG raw 0–6). A *pair* is one member's score at intake and at a later
//! moment; change is later − intake. Every function returns `None` when a
//! figure cannot be computed (too few members, a zero SD), never NaN.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The effect size the report gives, named as the API returns it.
pub const EFFECT_SIZE_FORMULA: &str =
    "d = mean change from intake / SD at intake (within-group effect size, paired members)";

/// Reliable change as the report computes it.
pub const RELIABLE_CHANGE_FORMULA: &str = "RCI = change / (√2 · SD at intake · √(1 − r)); |RCI| > 1.96 is reliable change (Jacobson & Truax, 1991)";

/// The label of every comparison with a face-to-face cohort.
pub const COMPARISON_LABEL: &str = "Non-randomised comparison: the online and face-to-face cohorts were not assigned at random, so a difference may come from who joined each rather than from the format.";

/// How the between-group difference is computed.
pub const COMPARISON_FORMULA: &str = "difference = mean change online − mean change face-to-face; 95 % CI = difference ± t(df, 0.975) · √(SD²_online change / n_online + SE²_comparison change), df by Welch–Satterthwaite. SE of the comparison change: SD of change / √n when recorded; otherwise √(SD²_intake / n_intake + SD²_later / n_later), treating the two moments as independent samples (conservative: the real, paired change varies less).";

/// n, mean and sample SD (n − 1) of some scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Absent for a single score.
    pub sd: Option<f64>,
}

/// `None` for no scores.
pub fn summary(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let nf = count(n);
    let mean = values.iter().sum::<f64>() / nf;
    let sd = (n > 1).then(|| {
        let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        (ss / (nf - 1.0)).sqrt()
    });
    Some(Summary { n, mean, sd })
}

#[allow(clippy::cast_precision_loss)] // member counts are far below 2^52
fn count(n: usize) -> f64 {
    n as f64
}

/// The 0.975 quantile of the standard normal distribution.
const Z_975: f64 = 1.959_963_984_540_054;

/// Above this many degrees of freedom statrs' inverse (through the
/// regularised incomplete beta) loses precision (7·10⁻⁶ off at 10⁵, 1.827
/// instead of 1.960 at 10⁷), and the Cornish–Fisher expansion in 1/df is
/// exact to far below that; at 10⁴ the two agree to 10⁻⁸.
const EXPANSION_ABOVE_DF: f64 = 1e4;

/// The 0.975 quantile of Student's t with `df` degrees of freedom (the
/// multiplier of a two-sided 95 % interval); `None` unless df > 0.
pub fn t_975(df: f64) -> Option<f64> {
    if !(df.is_finite() && df > 0.0) {
        return None;
    }
    if df > EXPANSION_ABOVE_DF {
        // t = z + (z³ + z) / 4ν + (5z⁵ + 16z³ + 3z) / 96ν² + …
        let z = Z_975;
        let (z3, z5) = (z.powi(3), z.powi(5));
        return Some(
            z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df),
        );
    }
    let t = StudentsT::new(0.0, 1.0, df).ok()?.inverse_cdf(0.975);
    t.is_finite().then_some(t)
}

/// A mean with its two-sided 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Paired mean change from intake: the change scores' summary and the
/// mean's 95 % CI, mean ± t(n − 1, 0.975) · SD / √n. One pair has a mean
/// but no SD or CI (those are NaN, which reports show as null); none has
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanChange {
    pub n: usize,
    pub mean: Estimate,
    pub sd: f64,
}

pub fn mean_change(pairs: &[(f64, f64)]) -> Option<MeanChange> {
    let changes: Vec<f64> = pairs.iter().map(|(intake, later)| later - intake).collect();
    let s = summary(&changes)?;
    let sd = s.sd.unwrap_or(f64::NAN);
    let half = t_975(count(s.n) - 1.0).map_or(f64::NAN, |t| t * sd / count(s.n).sqrt());
    Some(MeanChange {
        n: s.n,
        mean: Estimate {
            value: s.mean,
            ci_low: s.mean - half,
            ci_high: s.mean + half,
        },
        sd,
    })
}

/// Within-group effect size ([`EFFECT_SIZE_FORMULA`]); `None` when the SD
/// at intake is zero.
pub fn effect_size(mean_change: f64, sd_intake: f64) -> Option<f64> {
    (sd_intake > 0.0 && sd_intake.is_finite() && mean_change.is_finite())
        .then(|| mean_change / sd_intake)
}

/// One member's reliable change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliable {
    Improved,
    Unchanged,
    Deteriorated,
}

/// The reliable change index ([`RELIABLE_CHANGE_FORMULA`]).
pub fn rci(change: f64, sd_intake: f64, r: f64) -> Option<f64> {
    let se_diff = std::f64::consts::SQRT_2 * sd_intake * (1.0 - r).sqrt();
    (se_diff > 0.0 && se_diff.is_finite() && change.is_finite()).then(|| change / se_diff)
}

/// Improved or deteriorated when |RCI| > 1.96, the direction depending on
/// whether a higher score is better.
pub fn classify(change: f64, sd_intake: f64, r: f64, higher_is_better: bool) -> Option<Reliable> {
    let rci = rci(change, sd_intake, r)?;
    Some(if rci.abs() <= 1.96 {
        Reliable::Unchanged
    } else if (rci > 0.0) == higher_is_better {
        Reliable::Improved
    } else {
        Reliable::Deteriorated
    })
}

/// Counts of reliable change, with percentages of `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliableCounts {
    pub n: usize,
    pub improved: usize,
    pub unchanged: usize,
    pub deteriorated: usize,
}

impl ReliableCounts {
    pub fn percent_improved(&self) -> f64 {
        percent(self.improved, self.n)
    }
    pub fn percent_unchanged(&self) -> f64 {
        percent(self.unchanged, self.n)
    }
    pub fn percent_deteriorated(&self) -> f64 {
        percent(self.deteriorated, self.n)
    }
}

fn percent(part: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * count(part) / count(n)
    }
}

/// Reliable change of every pair, against the SD at intake of the pairs.
/// `None` when that SD cannot be had (fewer than two pairs, or all equal).
pub fn reliable_change(
    pairs: &[(f64, f64)],
    r: f64,
    higher_is_better: bool,
) -> Option<ReliableCounts> {
    let intake: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let sd_intake = summary(&intake)?.sd?;
    let mut counts = ReliableCounts {
        n: pairs.len(),
        improved: 0,
        unchanged: 0,
        deteriorated: 0,
    };
    for (before, after) in pairs {
        match classify(after - before, sd_intake, r, higher_is_better)? {
            Reliable::Improved => counts.improved += 1,
            Reliable::Unchanged => counts.unchanged += 1,
            Reliable::Deteriorated => counts.deteriorated += 1,
        }
    }
    Some(counts)
}

/// Members whose band at the later moment is better than at intake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandMoves {
    pub n: usize,
    pub to_better: usize,
}

impl BandMoves {
    pub fn percent_to_better(&self) -> f64 {
        percent(self.to_better, self.n)
    }
}

/// From pairs of band ranks (0 = worst, as [`super::scoring::BandRef::rank`]).
pub fn band_moves(pairs: &[(usize, usize)]) -> BandMoves {
    BandMoves {
        n: pairs.len(),
        to_better: pairs
            .iter()
            .filter(|(before, after)| after > before)
            .count(),
    }
}

/// A comparison cohort's aggregate at one moment, as a coordinator records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
}

/// A comparison cohort's figures for one later moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub intake: Aggregate,
    pub later: Aggregate,
    /// The cohort's own paired change (n, mean, SD of change), when known.
    pub change: Option<Aggregate>,
}

/// The between-group difference of mean change ([`COMPARISON_FORMULA`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupDifference {
    /// Online minus face-to-face.
    pub difference: Estimate,
    /// The comparison cohort's mean change used.
    pub comparison_change: f64,
    /// Whether that change was derived from the moment means (independent
    /// moments) rather than recorded as a paired change.
    pub derived_from_moments: bool,
    pub df: f64,
}

pub fn group_difference(online: &MeanChange, comparison: &Comparison) -> Option<GroupDifference> {
    // Each part of the variance of the difference, with its degrees of freedom.
    let part = |a: &Aggregate| -> Option<(f64, f64)> {
        (a.n >= 2 && a.sd.is_finite() && a.sd >= 0.0)
            .then(|| (a.sd * a.sd / count(a.n), count(a.n) - 1.0))
    };
    let online_part = part(&Aggregate {
        n: online.n,
        mean: online.mean.value,
        sd: online.sd,
    })?;
    let (comparison_change, comparison_parts, derived) = match &comparison.change {
        Some(change) => (change.mean, vec![part(change)?], false),
        None => (
            comparison.later.mean - comparison.intake.mean,
            vec![part(&comparison.intake)?, part(&comparison.later)?],
            true,
        ),
    };
    let parts: Vec<(f64, f64)> = std::iter::once(online_part)
        .chain(comparison_parts)
        .collect();
    let variance: f64 = parts.iter().map(|(v, _)| v).sum();
    // Welch–Satterthwaite: (Σ vᵢ)² / Σ (vᵢ² / dfᵢ).
    let denominator: f64 = parts.iter().map(|(v, df)| v * v / df).sum();
    if !(variance > 0.0 && denominator > 0.0) {
        return None;
    }
    let df = variance * variance / denominator;
    let half = t_975(df)? * variance.sqrt();
    let difference = online.mean.value - comparison_change;
    Some(GroupDifference {
        difference: Estimate {
            value: difference,
            ci_low: difference - half,
            ci_high: difference + half,
        },
        comparison_change,
        derived_from_moments: derived,
        df,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    macro_rules! assert_close {
        ($a:expr, $b:expr, $tol:expr) => {
            let (a, b) = ($a, $b);
            assert!(
                close(a, b, $tol),
                "{} = {a}, expected {b} ± {}",
                stringify!($a),
                $tol
            );
        };
    }

    #[test]
    fn summary_is_n_mean_and_sample_sd() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 40 / 8 = 5; squared deviations
        // 9 + 1 + 1 + 1 + 0 + 0 + 4 + 16 = 32; sample variance 32 / 7.
        let s = summary(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert_close!(s.mean, 5.0, 1e-12);
        assert_close!(s.sd.unwrap(), (32.0f64 / 7.0).sqrt(), 1e-12);
        assert_eq!(summary(&[3.0]).unwrap().sd, None);
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95 % critical values from any t table.
        for (df, t) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (4.0, 2.776),
            (9.0, 2.262),
            (19.0, 2.093),
            (29.0, 2.045),
            (120.0, 1.980),
            (1000.0, 1.962),
        ] {
            assert_close!(t_975(df).unwrap(), t, 0.0005);
        }
        // Fractional degrees of freedom (Welch) fall between their neighbours.
        let t = t_975(6.5).unwrap();
        assert!(t < 2.447 && t > 2.365, "{t}");
        // Both sides of the switch to the expansion agree: at 10⁴ the first
        // term is (1.959964³ + 1.959964) / 40000 = 9.48893 / 40000 = 0.000237.
        assert_close!(t_975(1e4).unwrap(), 1.960201, 0.000001);
        assert_close!(t_975(1e4 + 1.0).unwrap(), 1.960201, 0.000001);
        // 10⁷: the normal quantile plus 9.48893 / (4 · 10⁷).
        assert_close!(t_975(1e7).unwrap(), 1.959964, 0.000001);
        assert_eq!(t_975(0.0), None);
        assert_eq!(t_975(f64::NAN), None);
    }

    #[test]
    fn mean_change_with_its_confidence_interval() {
        // Changes: 60−40 = 20, 52−48 = 4, 40−44 = −4, 72−56 = 16, 68−52 = 16.
        let pairs = [
            (40.0, 60.0),
            (48.0, 52.0),
            (44.0, 40.0),
            (56.0, 72.0),
            (52.0, 68.0),
        ];
        let change = mean_change(&pairs).unwrap();
        // Mean 52 / 5 = 10.4. Deviations 9.6, −6.4, −14.4, 5.6, 5.6; squares
        // 92.16 + 40.96 + 207.36 + 31.36 + 31.36 = 403.2; variance 403.2 / 4 = 100.8.
        assert_eq!(change.n, 5);
        assert_close!(change.mean.value, 10.4, 1e-12);
        assert_close!(change.sd, 100.8f64.sqrt(), 1e-12);
        // Half width t(4) · SD / √5 = 2.776445 · 10.03992 / 2.236068 = 12.4662.
        assert_close!(change.mean.ci_low, 10.4 - 12.4662, 0.001);
        assert_close!(change.mean.ci_high, 10.4 + 12.4662, 0.001);
        let one = mean_change(&pairs[..1]).unwrap();
        assert_eq!((one.n, one.mean.value), (1, pairs[0].1 - pairs[0].0));
        assert!(one.sd.is_nan() && one.mean.ci_low.is_nan() && one.mean.ci_high.is_nan());
        assert_eq!(mean_change(&[]), None);
    }

    #[test]
    fn effect_size_divides_by_the_sd_at_intake() {
        // Intake of the pairs above: 40, 48, 44, 56, 52: mean 48, squares of
        // deviations 64 + 0 + 16 + 64 + 16 = 160, SD √(160 / 4) = √40.
        let sd_intake = summary(&[40.0, 48.0, 44.0, 56.0, 52.0])
            .unwrap()
            .sd
            .unwrap();
        assert_close!(
            effect_size(10.4, sd_intake).unwrap(),
            10.4 / 40f64.sqrt(),
            1e-12
        );
        assert_close!(effect_size(10.4, sd_intake).unwrap(), 1.6444, 0.0001);
        assert_eq!(effect_size(10.4, 0.0), None);
        assert!(EFFECT_SIZE_FORMULA.contains("SD at intake"));
    }

    #[test]
    fn reliable_change_follows_jacobson_truax_and_the_direction() {
        // SD at intake 10, r 0.8: SE of a difference = √2 · 10 · √0.2 = 6.3246;
        // 1.96 · 6.3246 = 12.396 points is the threshold.
        assert_close!(
            rci(12.0, 10.0, 0.8).unwrap(),
            12.0 / (2f64.sqrt() * 10.0 * 0.2f64.sqrt()),
            1e-12
        );
        assert_eq!(classify(12.3, 10.0, 0.8, true), Some(Reliable::Unchanged));
        assert_eq!(classify(12.5, 10.0, 0.8, true), Some(Reliable::Improved));
        assert_eq!(
            classify(-12.5, 10.0, 0.8, true),
            Some(Reliable::Deteriorated)
        );
        // Where higher is worse (loneliness), a rise is a deterioration.
        assert_eq!(
            classify(12.5, 10.0, 0.8, false),
            Some(Reliable::Deteriorated)
        );
        assert_eq!(classify(-12.5, 10.0, 0.8, false), Some(Reliable::Improved));
        assert_eq!(classify(1.0, 0.0, 0.8, true), None);
    }

    #[test]
    fn reliable_change_counts_and_percentages() {
        // Intake 40, 60, 40, 60: mean 50, SD √(4 · 100 / 3) = 11.547.
        // Threshold 1.96 · √2 · 11.547 · √(1 − 0.85) = 1.96 · 6.3246 = 12.396.
        // Changes +20 (improved), +8 (unchanged), −16 (deteriorated), +13 (improved).
        let pairs = [(40.0, 60.0), (60.0, 68.0), (40.0, 24.0), (60.0, 73.0)];
        let counts = reliable_change(&pairs, 0.85, true).unwrap();
        assert_eq!(
            (
                counts.n,
                counts.improved,
                counts.unchanged,
                counts.deteriorated
            ),
            (4, 2, 1, 1)
        );
        assert_close!(counts.percent_improved(), 50.0, 1e-12);
        assert_close!(counts.percent_unchanged(), 25.0, 1e-12);
        assert_close!(counts.percent_deteriorated(), 25.0, 1e-12);
        // The same pairs on a scale where higher is worse swap the two.
        let counts = reliable_change(&pairs, 0.85, false).unwrap();
        assert_eq!((counts.improved, counts.deteriorated), (1, 2));
    }

    #[test]
    fn band_moves_count_only_moves_to_a_better_band() {
        // Ranks 0 = worst: 0→1 and 1→2 better, 2→2 same, 2→1 worse, 0→2 better.
        let moves = band_moves(&[(0, 1), (1, 2), (2, 2), (2, 1), (0, 2)]);
        assert_eq!((moves.n, moves.to_better), (5, 3));
        assert_close!(moves.percent_to_better(), 60.0, 1e-12);
        assert_eq!(band_moves(&[]).percent_to_better(), 0.0);
    }

    /// The Welch–Satterthwaite interval written out once more, for checking.
    fn welch(diff: f64, parts: &[(f64, f64)]) -> (f64, f64, f64) {
        let v: f64 = parts.iter().map(|(var, n)| var / n).sum();
        let denominator: f64 = parts
            .iter()
            .map(|(var, n)| (var / n).powi(2) / (n - 1.0))
            .sum();
        let df = v * v / denominator;
        let half = t_975(df).unwrap() * v.sqrt();
        (diff - half, diff + half, df)
    }

    #[test]
    fn group_difference_from_a_recorded_paired_change() {
        let online = mean_change(&[
            (40.0, 60.0),
            (48.0, 52.0),
            (44.0, 40.0),
            (56.0, 72.0),
            (52.0, 68.0),
        ])
        .unwrap();
        let comparison = Comparison {
            intake: Aggregate {
                n: 30,
                mean: 45.0,
                sd: 15.0,
            },
            later: Aggregate {
                n: 25,
                mean: 50.0,
                sd: 16.0,
            },
            change: Some(Aggregate {
                n: 25,
                mean: 4.0,
                sd: 12.0,
            }),
        };
        let d = group_difference(&online, &comparison).unwrap();
        // 10.4 − 4 = 6.4; variance 100.8 / 5 + 144 / 25 = 20.16 + 5.76 = 25.92;
        // df = 25.92² / (20.16² / 4 + 5.76² / 24) = 671.8464 / (101.6064 + 1.3824) = 6.5235.
        assert_close!(d.difference.value, 6.4, 1e-12);
        assert_close!(d.df, 6.5235, 0.0001);
        let (low, high, _) = welch(6.4, &[(100.8, 5.0), (144.0, 25.0)]);
        assert_close!(d.difference.ci_low, low, 1e-9);
        assert_close!(d.difference.ci_high, high, 1e-9);
        // t(6.52) lies between t(6) = 2.447 and t(7) = 2.365; √25.92 = 5.0912.
        assert!(
            d.difference.ci_high - 6.4 > 2.365 * 5.0912
                && d.difference.ci_high - 6.4 < 2.447 * 5.0912
        );
        assert!(!d.derived_from_moments);
        assert!(COMPARISON_LABEL.starts_with("Non-randomised"));
    }

    #[test]
    fn group_difference_from_moment_means_treats_them_as_independent() {
        let online = mean_change(&[
            (40.0, 60.0),
            (48.0, 52.0),
            (44.0, 40.0),
            (56.0, 72.0),
            (52.0, 68.0),
        ])
        .unwrap();
        let comparison = Comparison {
            intake: Aggregate {
                n: 30,
                mean: 45.0,
                sd: 15.0,
            },
            later: Aggregate {
                n: 25,
                mean: 50.0,
                sd: 16.0,
            },
            change: None,
        };
        let d = group_difference(&online, &comparison).unwrap();
        // Comparison change 50 − 45 = 5; difference 10.4 − 5 = 5.4.
        // Variance 20.16 + 225 / 30 + 256 / 25 = 20.16 + 7.5 + 10.24 = 37.9.
        assert_close!(d.comparison_change, 5.0, 1e-12);
        assert_close!(d.difference.value, 5.4, 1e-12);
        assert!(d.derived_from_moments);
        let (low, high, df) = welch(5.4, &[(100.8, 5.0), (225.0, 30.0), (256.0, 25.0)]);
        assert_close!(d.df, df, 1e-9);
        assert_close!(d.difference.ci_low, low, 1e-9);
        assert_close!(d.difference.ci_high, high, 1e-9);
        // Wider than with the recorded paired change above (√37.9 > √25.92).
        assert!(d.difference.ci_high - d.difference.value > 37.9f64.sqrt() * 1.96);
        // A cohort of one at a moment has no SD: no interval.
        let tiny = Comparison {
            later: Aggregate {
                n: 1,
                mean: 50.0,
                sd: 0.0,
            },
            ..comparison
        };
        assert_eq!(group_difference(&online, &tiny), None);
    }
}

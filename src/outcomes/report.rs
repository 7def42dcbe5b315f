//! An outcome report's figures per moment, computed from plain rows (one
//! per questionnaire) with [`super::stats`] and hidden where they rest on
//! too few members with [`super::suppress`]. Pure: the rows come from
//! [`super::report_api`], which also answers HTTP.
//!
//! Cells and the sums that tie them (the relations given to
//! [`suppress`]), per moment:
//!
//! - invited = answered + not answered;
//! - answered = scored + answered without a score (missing-data rule);
//! - scored = paired (also scored at intake) + scored without intake;
//! - scored at intake = paired at this moment + intake members without a
//!   score at this moment;
//! - paired = improved + unchanged + deteriorated (reliable change);
//! - paired = paired with both bands + paired without;
//!   paired with bands = to a better band + not.
//!
//! A figure is hidden with the count it rests on: a mean and SD with the
//! members scored, the change, its CI, d and the between-group difference
//! with the members paired, a percentage with the members it counts, the
//! response rate with both invited and answered.

use std::collections::{BTreeMap, HashMap};

use super::instrument::Instrument;
use super::report_view::{
    BandMoves, Change, CohortChange, CohortFigures, Count, Difference, Figure, MomentFigures,
    ReliableChange, ScoreFigures, Share, Suppressed,
};
use super::stats::{self, Aggregate, Comparison, MeanChange};
use super::suppress::{Visibility, suppress};

/// The name of the first moment, at joining.
pub const INTAKE: &str = "intake";

/// One questionnaire, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub membership_id: String,
    pub moment: String,
    /// Invited: prompted (any status but `scheduled`).
    pub invited: bool,
    pub answered: bool,
    /// The scaled total, when answered and scored.
    pub scaled: Option<f64>,
    /// The band of the total, when it has one.
    pub band: Option<String>,
}

/// A moment of the plan: its name, anchor (`join` or `circle_end`) and
/// offset in days; both absent for a moment no plan in the selection names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MomentDef {
    pub name: String,
    pub anchor: Option<String>,
    pub offset_days: Option<i64>,
}

/// Orders moments as a plan runs: `intake` first, then those counted from
/// joining before those counted from the circle's end, each by offset,
/// then moments no plan names, by name.
pub fn order_moments(moments: &mut [MomentDef]) {
    moments.sort_by(|a, b| {
        let key = |m: &MomentDef| {
            (
                m.name != INTAKE,
                m.anchor.is_none(),
                m.anchor.as_deref() != Some("join"),
                m.offset_days.unwrap_or(0),
                m.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// A comparison cohort's figures at one moment, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortMoment {
    pub moment: String,
    pub n: u64,
    pub mean: f64,
    pub sd: f64,
    pub change: Option<(u64, f64, f64)>,
    pub band_counts: Option<BTreeMap<String, u64>>,
}

/// What a report is computed from.
pub struct Input<'a> {
    pub instrument: &'a Instrument,
    pub moments: Vec<MomentDef>,
    pub rows: &'a [Row],
    pub cohort: &'a [CohortMoment],
    /// Cells on fewer members are hidden; 1 hides nothing.
    pub min_cell: u64,
}

/// The unsuppressed figures of one moment and the cells they rest on.
struct Computed {
    def: MomentDef,
    invited: u64,
    answered: u64,
    scores: Option<stats::Summary>,
    scored: u64,
    change: Option<ComputedChange>,
    comparison: Option<CohortMoment>,
}

struct ComputedChange {
    pairs: usize,
    intake_scored: u64,
    mean: Option<MeanChange>,
    effect_size: Option<f64>,
    reliable: Option<stats::ReliableCounts>,
    /// Pairs with both bands, and those moving to a better one.
    bands: Option<stats::BandMoves>,
    difference: Option<stats::GroupDifference>,
}

/// The report's moments, in order, with every figure and its visibility.
pub fn compute(input: &Input) -> Vec<MomentFigures> {
    let mut defs = input.moments.clone();
    for row in input.rows {
        if !defs.iter().any(|d| d.name == row.moment) {
            defs.push(MomentDef {
                name: row.moment.clone(),
                anchor: None,
                offset_days: None,
            });
        }
    }
    order_moments(&mut defs);
    let intake_scores = scores_by_member(input.rows, INTAKE);
    let intake_bands = bands_by_member(input.rows, INTAKE);
    let cohort_intake = input.cohort.iter().find(|c| c.moment == INTAKE);
    let computed: Vec<Computed> = defs
        .into_iter()
        .map(|def| {
            let comparison = input.cohort.iter().find(|c| c.moment == def.name).cloned();
            let rows: Vec<&Row> = input.rows.iter().filter(|r| r.moment == def.name).collect();
            let scores: Vec<f64> = rows.iter().filter_map(|r| r.scaled).collect();
            let change = (def.name != INTAKE).then(|| {
                change_of(
                    input.instrument,
                    &rows,
                    &intake_scores,
                    &intake_bands,
                    cohort_intake.zip(comparison.as_ref()),
                )
            });
            Computed {
                invited: count(rows.iter().filter(|r| r.invited)),
                answered: count(rows.iter().filter(|r| r.answered)),
                scored: count(scores.iter()),
                scores: stats::summary(&scores),
                change,
                comparison,
                def,
            }
        })
        .collect();
    present(computed, input.min_cell)
}

fn count<T>(items: impl Iterator<Item = T>) -> u64 {
    u64::try_from(items.count()).unwrap_or(u64::MAX)
}

fn scores_by_member(rows: &[Row], moment: &str) -> HashMap<String, f64> {
    rows.iter()
        .filter(|r| r.moment == moment)
        .filter_map(|r| Some((r.membership_id.clone(), r.scaled?)))
        .collect()
}

fn bands_by_member(rows: &[Row], moment: &str) -> HashMap<String, String> {
    rows.iter()
        .filter(|r| r.moment == moment)
        .filter_map(|r| Some((r.membership_id.clone(), r.band.clone()?)))
        .collect()
}

fn rank(instrument: &Instrument, band: &str) -> Option<usize> {
    instrument.bands.iter().position(|b| b.key == band)
}

fn change_of(
    instrument: &Instrument,
    rows: &[&Row],
    intake_scores: &HashMap<String, f64>,
    intake_bands: &HashMap<String, String>,
    cohort: Option<(&CohortMoment, &CohortMoment)>,
) -> ComputedChange {
    let pairs: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((*intake_scores.get(&r.membership_id)?, r.scaled?)))
        .collect();
    let band_pairs: Vec<(usize, usize)> = rows
        .iter()
        .filter(|r| r.scaled.is_some() && intake_scores.contains_key(&r.membership_id))
        .filter_map(|r| {
            let before = rank(instrument, intake_bands.get(&r.membership_id)?)?;
            Some((before, rank(instrument, r.band.as_deref()?)?))
        })
        .collect();
    let intake: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let sd_intake = stats::summary(&intake).and_then(|s| s.sd);
    let mean = stats::mean_change(&pairs);
    let difference = mean
        .as_ref()
        .zip(cohort)
        .and_then(|(online, (i, later))| stats::group_difference(online, &comparison_of(i, later)));
    ComputedChange {
        pairs: pairs.len(),
        intake_scored: u64::try_from(intake_scores.len()).unwrap_or(u64::MAX),
        effect_size: mean
            .as_ref()
            .zip(sd_intake)
            .and_then(|(m, sd)| stats::effect_size(m.mean.value, sd)),
        reliable: stats::reliable_change(
            &pairs,
            instrument.reliability.r,
            instrument.higher_is_better,
        ),
        bands: (!instrument.bands.is_empty()).then(|| stats::band_moves(&band_pairs)),
        mean,
        difference,
    }
}

fn aggregate(n: u64, mean: f64, sd: f64) -> Aggregate {
    Aggregate {
        n: usize::try_from(n).unwrap_or(usize::MAX),
        mean,
        sd,
    }
}

fn comparison_of(intake: &CohortMoment, later: &CohortMoment) -> Comparison {
    Comparison {
        intake: aggregate(intake.n, intake.mean, intake.sd),
        later: aggregate(later.n, later.mean, later.sd),
        change: later.change.map(|(n, mean, sd)| aggregate(n, mean, sd)),
    }
}

/// The cells of every moment, for [`suppress`].
#[derive(Default)]
struct Cells {
    counts: Vec<u64>,
    relations: Vec<Vec<usize>>,
}

impl Cells {
    fn add(&mut self, n: u64) -> usize {
        self.counts.push(n);
        self.counts.len() - 1
    }

    fn relate(&mut self, cells: &[usize]) {
        self.relations.push(cells.to_vec());
    }
}

/// The indexes of one moment's cells.
struct MomentCells {
    invited: usize,
    answered: usize,
    not_answered: usize,
    scored: usize,
    unscored: usize,
    change: Option<ChangeCells>,
}

struct ChangeCells {
    paired: usize,
    unpaired: usize,
    lost: Option<usize>,
    reliable: Option<[usize; 3]>,
    /// n, without a band, to a better one, other.
    bands: Option<[usize; 4]>,
}

fn u(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn cells_of(cells: &mut Cells, m: &Computed, intake_scored: Option<usize>) -> MomentCells {
    let invited = cells.add(m.invited);
    let answered = cells.add(m.answered);
    let not_answered = cells.add(m.invited.saturating_sub(m.answered));
    cells.relate(&[invited, answered, not_answered]);
    let scored = cells.add(m.scored);
    let unscored = cells.add(m.answered.saturating_sub(m.scored));
    cells.relate(&[answered, scored, unscored]);
    let change = m.change.as_ref().map(|c| {
        let paired = cells.add(u(c.pairs));
        let unpaired = cells.add(m.scored.saturating_sub(u(c.pairs)));
        cells.relate(&[scored, paired, unpaired]);
        let lost = intake_scored.map(|intake| {
            let lost = cells.add(c.intake_scored.saturating_sub(u(c.pairs)));
            cells.relate(&[intake, paired, lost]);
            lost
        });
        let reliable = c.reliable.map(|r| {
            let parts = [
                cells.add(u(r.improved)),
                cells.add(u(r.unchanged)),
                cells.add(u(r.deteriorated)),
            ];
            cells.relate(&[paired, parts[0], parts[1], parts[2]]);
            parts
        });
        let bands = c.bands.map(|b| {
            let n = cells.add(u(b.n));
            let without = cells.add(u(c.pairs.saturating_sub(b.n)));
            cells.relate(&[paired, n, without]);
            let better = cells.add(u(b.to_better));
            let other = cells.add(u(b.n.saturating_sub(b.to_better)));
            cells.relate(&[n, better, other]);
            [n, without, better, other]
        });
        ChangeCells {
            paired,
            unpaired,
            lost,
            reliable,
            bands,
        }
    });
    MomentCells {
        invited,
        answered,
        not_answered,
        scored,
        unscored,
        change,
    }
}

/// Suppresses and rounds: the figures as the API shows them. Moments come
/// intake first, so the intake's cells exist when later moments refer to
/// them.
fn present(computed: Vec<Computed>, k: u64) -> Vec<MomentFigures> {
    let mut cells = Cells::default();
    let mut indexes: Vec<MomentCells> = Vec::with_capacity(computed.len());
    let mut intake_scored = None;
    for m in &computed {
        let i = cells_of(&mut cells, m, intake_scored);
        if m.def.name == INTAKE {
            intake_scored = Some(i.scored);
        }
        indexes.push(i);
    }
    let visibility = suppress(&cells.counts, &cells.relations, k);
    computed
        .into_iter()
        .zip(indexes)
        .map(|(m, i)| moment_figures(m, &i, &visibility))
        .collect()
}

fn hidden(v: Visibility) -> Option<Suppressed> {
    match v {
        Visibility::Shown => None,
        Visibility::Primary => Some(Suppressed::FewerThanK),
        Visibility::Secondary => Some(Suppressed::ProtectsAnotherCell),
    }
}

fn count_cell(n: u64, v: Visibility) -> Count {
    let suppressed = hidden(v);
    Count {
        value: suppressed.is_none().then_some(n),
        suppressed,
    }
}

/// Rounded to two decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn figure(value: Option<f64>, v: Visibility) -> Figure {
    let suppressed = hidden(v);
    Figure {
        value: if suppressed.is_some() {
            None
        } else {
            value.filter(|x| x.is_finite()).map(round2)
        },
        suppressed,
    }
}

/// The stricter of two visibilities.
fn both(a: Visibility, b: Visibility) -> Visibility {
    match (a, b) {
        (Visibility::Primary, _) | (_, Visibility::Primary) => Visibility::Primary,
        (Visibility::Secondary, _) | (_, Visibility::Secondary) => Visibility::Secondary,
        _ => Visibility::Shown,
    }
}

fn share(part: u64, whole: u64, v: Visibility) -> Share {
    #[allow(clippy::cast_precision_loss)] // member counts are far below 2^52
    let percent = (whole > 0).then(|| 100.0 * part as f64 / whole as f64);
    Share {
        count: count_cell(part, v),
        percent: figure(percent, v),
    }
}

fn moment_figures(m: Computed, i: &MomentCells, v: &[Visibility]) -> MomentFigures {
    let scored = v[i.scored];
    MomentFigures {
        invited: count_cell(m.invited, v[i.invited]),
        answered: count_cell(m.answered, v[i.answered]),
        not_answered: count_cell(m.invited.saturating_sub(m.answered), v[i.not_answered]),
        response_rate: share(m.answered, m.invited, both(v[i.invited], v[i.answered])).percent,
        score: ScoreFigures {
            n: count_cell(m.scored, scored),
            without_score: count_cell(m.answered.saturating_sub(m.scored), v[i.unscored]),
            mean: figure(m.scores.map(|s| s.mean), scored),
            sd: figure(m.scores.and_then(|s| s.sd), scored),
        },
        change: m
            .change
            .as_ref()
            .zip(i.change.as_ref())
            .map(|(c, ci)| change_figures(c, ci, m.scored, v)),
        comparison: m.comparison.map(cohort_figures),
        moment: m.def.name,
        anchor: m.def.anchor,
        offset_days: m.def.offset_days,
    }
}

fn change_figures(c: &ComputedChange, i: &ChangeCells, scored: u64, v: &[Visibility]) -> Change {
    let paired = v[i.paired];
    let n = u(c.pairs);
    let lost = c.intake_scored.saturating_sub(n);
    let reliable = |part: fn(&stats::ReliableCounts) -> usize, slot: usize| match (
        c.reliable.as_ref(),
        i.reliable,
    ) {
        (Some(r), Some(cells)) => share(u(part(r)), n, both(v[cells[slot]], paired)),
        _ => Share {
            count: count_cell(0, paired),
            percent: figure(None, paired),
        },
    };
    Change {
        n: count_cell(n, paired),
        without_intake: count_cell(scored.saturating_sub(n), v[i.unpaired]),
        intake_only: count_cell(lost, i.lost.map_or(Visibility::Shown, |x| v[x])),
        mean: figure(c.mean.map(|m| m.mean.value), paired),
        ci_low: figure(c.mean.map(|m| m.mean.ci_low), paired),
        ci_high: figure(c.mean.map(|m| m.mean.ci_high), paired),
        sd: figure(c.mean.map(|m| m.sd), paired),
        effect_size: figure(c.effect_size, paired),
        reliable_change: ReliableChange {
            improved: reliable(|r| r.improved, 0),
            unchanged: reliable(|r| r.unchanged, 1),
            deteriorated: reliable(|r| r.deteriorated, 2),
        },
        band_moves: c
            .bands
            .zip(i.bands)
            .map(|(b, [n_i, without_i, better_i, other_i])| BandMoves {
                n: count_cell(u(b.n), v[n_i]),
                without_band: count_cell(n.saturating_sub(u(b.n)), v[without_i]),
                to_better: share(u(b.to_better), u(b.n), both(v[n_i], v[better_i])),
                other: count_cell(u(b.n.saturating_sub(b.to_better)), v[other_i]),
            }),
        difference: c.difference.map(|d| Difference {
            value: figure(Some(d.difference.value), paired),
            ci_low: figure(Some(d.difference.ci_low), paired),
            ci_high: figure(Some(d.difference.ci_high), paired),
            df: figure(Some(d.df), paired),
            comparison_change: Some(round2(d.comparison_change)),
            derived_from_moments: d.derived_from_moments,
        }),
    }
}

fn cohort_figures(c: CohortMoment) -> CohortFigures {
    CohortFigures {
        n: c.n,
        mean: c.mean,
        sd: c.sd,
        change: c.change.map(|(n, mean, sd)| CohortChange { n, mean, sd }),
        band_counts: c.band_counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, anchor: Option<&str>, offset: Option<i64>) -> MomentDef {
        MomentDef {
            name: name.into(),
            anchor: anchor.map(str::to_owned),
            offset_days: offset,
        }
    }

    #[test]
    fn moments_run_as_a_plan_does() {
        let mut m = vec![
            def("follow_up", Some("circle_end"), Some(90)),
            def("month_3", Some("join"), Some(91)),
            def("old", None, None),
            def("week_6", Some("join"), Some(42)),
            def("intake", Some("join"), Some(0)),
            def("end", Some("circle_end"), Some(0)),
        ];
        order_moments(&mut m);
        let names: Vec<&str> = m.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["intake", "week_6", "month_3", "end", "follow_up", "old"]
        );
    }

    fn row(member: usize, moment: &str, status: &str, scaled: Option<f64>) -> Row {
        Row {
            membership_id: format!("m{member}"),
            moment: moment.into(),
            invited: status != "scheduled",
            answered: status == "answered",
            scaled,
            band: None,
        }
    }

    #[test]
    fn hidden_cells_cannot_be_recovered_by_subtraction() {
        let instruments = crate::outcomes::shipped().unwrap();
        // Twelve at intake; at week 6 ten answer and two let it expire.
        let mut rows = Vec::new();
        for i in 0..12 {
            rows.push(row(i, INTAKE, "answered", Some(40.0 + (i % 3) as f64)));
            let (status, score) = if i < 10 {
                ("answered", Some(60.0))
            } else {
                ("expired", None)
            };
            rows.push(row(i, "week_6", status, score));
        }
        let input = |k| Input {
            instrument: &instruments[0],
            moments: vec![def("week_6", Some("join"), Some(42))],
            rows: &rows,
            cohort: &[],
            min_cell: k,
        };
        let report = compute(&input(10));
        // intake comes first although no plan named it here.
        assert_eq!(report[0].moment, INTAKE);
        let w = &report[1];
        assert_eq!(w.invited.value, Some(12));
        assert_eq!(w.not_answered.suppressed, Some(Suppressed::FewerThanK));
        assert_eq!(w.answered.suppressed, Some(Suppressed::ProtectsAnotherCell));
        assert_eq!(w.score.n.suppressed, Some(Suppressed::ProtectsAnotherCell));
        assert_eq!(w.score.without_score.value, Some(0));
        let change = w.change.as_ref().unwrap();
        assert_eq!(change.intake_only.suppressed, Some(Suppressed::FewerThanK));
        assert!(change.n.value.is_none() && change.mean.value.is_none());
        // k = 1 shows all: 10 paired, each +20 (or +19, +18).
        let report = compute(&input(1));
        let change = report[1].change.as_ref().unwrap();
        assert_eq!(change.n.value, Some(10));
        assert_eq!(report[1].not_answered.value, Some(2));
        assert_eq!(change.intake_only.value, Some(2));
    }
}

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

use serde::Serialize;
use utoipa::ToSchema;

use super::instrument::Instrument;
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

/// Why a cell is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// It rests on fewer than `min_cell` members.
    FewerThanK,
    /// It would let another hidden cell be recovered by subtraction.
    ProtectsAnotherCell,
}

/// A count of members: `value` is null when it is hidden (`suppressed`
/// says why).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"value": 24}))]
pub struct Count {
    /// The count; null when suppressed.
    pub value: Option<u64>,
    /// Why the value is hidden; absent when it is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// A figure (a mean, SD, percentage, effect size), rounded to two
/// decimals: `value` is null when it is hidden (`suppressed` says why) or
/// cannot be computed (too few members, no spread; `suppressed` absent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"value": 52.33}))]
pub struct Figure {
    /// The figure; null when suppressed or not computable.
    pub value: Option<f64>,
    /// Why the value is hidden; absent when it is shown or not computable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// A part of the members: how many, and their percentage of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"count": {"value": 12}, "percent": {"value": 50.0}}))]
pub struct Share {
    /// How many members.
    pub count: Count,
    /// Their percentage of the whole.
    pub percent: Figure,
}

/// The scaled scores of the members who answered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": {"value": 24}, "without_score": {"value": 0}, "mean": {"value": 44.5}, "sd": {"value": 14.2}}))]
pub struct ScoreFigures {
    /// Members with a score (answered, and scored under the missing-data rule).
    pub n: Count,
    /// Members who answered but left too many items out to be scored.
    pub without_score: Count,
    /// Mean scaled score.
    pub mean: Figure,
    /// Sample SD (n − 1) of the scaled score.
    pub sd: Figure,
}

/// Reliable change (Jacobson–Truax) of the paired members.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "improved": {"count": {"value": 10}, "percent": {"value": 50.0}},
    "unchanged": {"count": {"value": 10}, "percent": {"value": 50.0}},
    "deteriorated": {"count": {"value": 0}, "percent": {"value": 0.0}}
}))]
pub struct ReliableChange {
    /// Reliably better (|RCI| > 1.96 in the better direction).
    pub improved: Share,
    /// No reliable change.
    pub unchanged: Share,
    /// Reliably worse.
    pub deteriorated: Share,
}

/// Moves between bands of the paired members.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": {"value": 20}, "without_band": {"value": 0}, "to_better": {"count": {"value": 8}, "percent": {"value": 40.0}}, "other": {"value": 12}}))]
pub struct BandMoves {
    /// Paired members with a band at both moments.
    pub n: Count,
    /// Paired members without a band at one of the moments.
    pub without_band: Count,
    /// Those whose band is better than at intake.
    pub to_better: Share,
    /// Those in the same or a worse band (n − to_better).
    pub other: Count,
}

/// The difference in mean change with the comparison cohort.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "value": {"value": 6.4}, "ci_low": {"value": -5.6}, "ci_high": {"value": 18.4},
    "df": {"value": 6.52}, "comparison_change": 4.0, "derived_from_moments": false
}))]
pub struct Difference {
    /// Mean change online − mean change face-to-face.
    pub value: Figure,
    /// Lower end of its 95 % CI.
    pub ci_low: Figure,
    /// Upper end of its 95 % CI.
    pub ci_high: Figure,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: Figure,
    /// The comparison cohort's mean change used.
    pub comparison_change: Option<f64>,
    /// True when the cohort's change is the difference of its moment means
    /// (no paired change recorded), with the moments treated as independent.
    pub derived_from_moments: bool,
}

/// Change from intake, of members scored at intake and at this moment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "n": {"value": 20}, "mean": {"value": 10.4}, "ci_low": {"value": 5.1}, "ci_high": {"value": 15.7},
    "sd": {"value": 11.3}, "effect_size": {"value": 0.72},
    "reliable_change": {
        "improved": {"count": {"value": 10}, "percent": {"value": 50.0}},
        "unchanged": {"count": {"value": 10}, "percent": {"value": 50.0}},
        "deteriorated": {"count": {"value": 0}, "percent": {"value": 0.0}}
    },
    "without_intake": {"value": 0}, "intake_only": {"value": 10},
    "band_moves": {"n": {"value": 20}, "without_band": {"value": 0}, "to_better": {"count": {"value": 8}, "percent": {"value": 40.0}}, "other": {"value": 12}}
}))]
pub struct Change {
    /// Paired members: scored at intake and at this moment.
    pub n: Count,
    /// Members scored at this moment but not at intake.
    pub without_intake: Count,
    /// Members scored at intake but not at this moment (not yet invited,
    /// not answered, or not scored).
    pub intake_only: Count,
    /// Mean change (this moment − intake).
    pub mean: Figure,
    /// Lower end of the mean change's 95 % CI (t, n − 1).
    pub ci_low: Figure,
    /// Upper end of the mean change's 95 % CI.
    pub ci_high: Figure,
    /// SD of the change.
    pub sd: Figure,
    /// Within-group effect size d (see `formulas.effect_size`).
    pub effect_size: Figure,
    /// Reliable change (see `formulas.reliable_change`).
    pub reliable_change: ReliableChange,
    /// For instruments with bands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_moves: Option<BandMoves>,
    /// With a comparison cohort that recorded this moment and intake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<Difference>,
}

/// The comparison cohort's recorded change from intake.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": 25, "mean": 4.0, "sd": 12.0}))]
pub struct CohortChange {
    /// Members with both moments.
    pub n: u64,
    /// Mean change.
    pub mean: f64,
    /// SD of the change.
    pub sd: f64,
}

/// The comparison cohort at this moment, as its coordinator recorded it
/// (aggregates of people outside Kring: never suppressed).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": 25, "mean": 50.0, "sd": 16.0, "change": {"n": 25, "mean": 4.0, "sd": 12.0}}))]
pub struct CohortFigures {
    /// Members measured.
    pub n: u64,
    /// Mean scaled score.
    pub mean: f64,
    /// SD of the scaled score.
    pub sd: f64,
    /// The paired change from intake, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<CohortChange>,
    /// Members per band, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_counts: Option<BTreeMap<String, u64>>,
}

/// Every figure of one moment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "moment": "week_6", "anchor": "join", "offset_days": 42,
    "invited": {"value": 30}, "answered": {"value": 24}, "not_answered": {"value": null, "suppressed": "fewer_than_k"},
    "response_rate": {"value": 80.0},
    "score": {"n": {"value": 24}, "without_score": {"value": 0}, "mean": {"value": 52.5}, "sd": {"value": 16.1}}
}))]
pub struct MomentFigures {
    /// The moment's name (`intake`, `week_6`, …).
    pub moment: String,
    /// `join` or `circle_end`; absent for a moment no plan names any more.
    pub anchor: Option<String>,
    /// Days after the anchor.
    pub offset_days: Option<i64>,
    /// Members prompted to answer.
    pub invited: Count,
    /// Members who answered.
    pub answered: Count,
    /// Invited members who did not (yet) answer.
    pub not_answered: Count,
    /// Answered / invited, in percent.
    pub response_rate: Figure,
    /// The scaled scores.
    pub score: ScoreFigures,
    /// Change from intake; absent at intake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// The comparison cohort at this moment, when it recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<CohortFigures>,
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

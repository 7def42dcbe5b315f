//! An outcome report as one flat CSV table (RFC 4180, written by hand: six
//! columns need no crate), one row per moment and figure:
//!
//! `moment,anchor,offset_days,figure,value,suppressed`
//!
//! The first rows, with an empty `moment`, describe the report (instrument,
//! licence, `min_cell`, formulas, comparison label). A suppressed figure has
//! an empty `value` and its reason (`fewer_than_k`, `protects_another_cell`)
//! in `suppressed`; a figure that cannot be computed has both empty.
//! Numbers are as in the JSON (two decimals at most, a dot as separator).

use super::report_view::{
    Change, CohortFigures, Count, Figure, MomentFigures, OutcomeReport, Share, Suppressed,
};

/// The header row.
pub const HEADER: &str = "moment,anchor,offset_days,figure,value,suppressed";

/// One field, quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn reason(s: Option<Suppressed>) -> &'static str {
    match s {
        None => "",
        Some(Suppressed::FewerThanK) => "fewer_than_k",
        Some(Suppressed::ProtectsAnotherCell) => "protects_another_cell",
    }
}

/// The rows of one moment, as (figure, value, suppressed).
#[derive(Default)]
struct Lines(Vec<(String, String, &'static str)>);

impl Lines {
    fn text(&mut self, name: &str, value: impl ToString) {
        self.0.push((name.to_owned(), value.to_string(), ""));
    }
    fn count(&mut self, name: &str, c: Count) {
        let value = c.value.map(|v| v.to_string()).unwrap_or_default();
        self.0.push((name.to_owned(), value, reason(c.suppressed)));
    }
    fn figure(&mut self, name: &str, f: Figure) {
        let value = f.value.map(|v| v.to_string()).unwrap_or_default();
        self.0.push((name.to_owned(), value, reason(f.suppressed)));
    }
    fn share(&mut self, name: &str, s: Share) {
        self.count(&format!("{name}_count"), s.count);
        self.figure(&format!("{name}_percent"), s.percent);
    }
}

fn change_lines(l: &mut Lines, c: &Change) {
    l.count("change_n", c.n);
    l.figure("change_mean", c.mean);
    l.figure("change_ci_low", c.ci_low);
    l.figure("change_ci_high", c.ci_high);
    l.figure("change_sd", c.sd);
    l.figure("effect_size_d", c.effect_size);
    l.share("reliable_improved", c.reliable_change.improved);
    l.share("reliable_unchanged", c.reliable_change.unchanged);
    l.share("reliable_deteriorated", c.reliable_change.deteriorated);
    if let Some(b) = &c.band_moves {
        l.count("band_n", b.n);
        l.share("band_to_better", b.to_better);
    }
    if let Some(d) = &c.difference {
        l.figure("difference_mean_change", d.value);
        l.figure("difference_ci_low", d.ci_low);
        l.figure("difference_ci_high", d.ci_high);
        l.figure("difference_df", d.df);
        if let Some(cc) = d.comparison_change {
            l.text("difference_comparison_change", cc);
        }
        l.text("difference_derived_from_moments", d.derived_from_moments);
    }
}

fn comparison_lines(l: &mut Lines, c: &CohortFigures) {
    l.text("comparison_n", c.n);
    l.text("comparison_mean", c.mean);
    l.text("comparison_sd", c.sd);
    if let Some(ch) = &c.change {
        l.text("comparison_change_n", ch.n);
        l.text("comparison_change_mean", ch.mean);
        l.text("comparison_change_sd", ch.sd);
    }
    for (band, n) in c.band_counts.iter().flatten() {
        l.text(&format!("comparison_band_{band}"), n);
    }
}

fn moment_lines(m: &MomentFigures) -> Lines {
    let mut l = Lines::default();
    l.count("invited", m.invited);
    l.count("answered", m.answered);
    l.count("not_answered", m.not_answered);
    l.figure("response_rate_percent", m.response_rate);
    l.count("score_n", m.score.n);
    l.figure("score_mean", m.score.mean);
    l.figure("score_sd", m.score.sd);
    if let Some(c) = &m.change {
        change_lines(&mut l, c);
    }
    if let Some(c) = &m.comparison {
        comparison_lines(&mut l, c);
    }
    l
}

fn report_lines(r: &OutcomeReport) -> Lines {
    let mut l = Lines::default();
    l.text("instrument", &r.instrument.key);
    l.text("instrument_version", r.instrument.version);
    l.text("min_cell", r.min_cell);
    l.text("licence_note", &r.instrument.licence.note);
    l.text("licence_citation", &r.instrument.licence.citation);
    l.text(
        "licence_permission_required",
        r.instrument.licence.permission_required,
    );
    if let Some(p) = &r.instrument.licence.permission {
        l.text("licence_permission_statement", &p.statement);
        l.text("licence_permission_recorded_at", p.recorded_at);
    }
    l.text("formula_effect_size", &r.formulas.effect_size);
    l.text("formula_reliable_change", &r.formulas.reliable_change);
    l.text("formula_mean_change", &r.formulas.mean_change);
    if let (Some(f), Some(c)) = (&r.formulas.comparison, &r.comparison) {
        l.text("formula_comparison", f);
        l.text("comparison_description", &c.description);
        l.text("comparison_label", &c.label);
    }
    l
}

/// The report as CSV text with CRLF line ends.
pub fn write(r: &OutcomeReport) -> String {
    let mut out = format!("{HEADER}\r\n");
    let mut push = |moment: &str, anchor: &str, offset: &str, lines: Lines| {
        for (figure, value, suppressed) in lines.0 {
            let row = [moment, anchor, offset, &figure, &value, suppressed]
                .map(field)
                .join(",");
            out.push_str(&row);
            out.push_str("\r\n");
        }
    };
    push("", "", "", report_lines(r));
    for m in &r.moments {
        let offset = m.offset_days.map(|o| o.to_string()).unwrap_or_default();
        push(
            &m.moment,
            m.anchor.as_deref().unwrap_or_default(),
            &offset,
            moment_lines(m),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("week_6"), "week_6");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}

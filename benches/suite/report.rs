//! The suite's table: each line a figure, its baseline, the ratio, and the
//! target it is held to.

/// One line of the table.
pub struct Line {
    pub area: &'static str,
    pub what: String,
    pub value: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    lines: Vec<Line>,
}

impl Report {
    pub fn add(&mut self, line: Line) {
        eprintln!(
            "  {} · {}: {} (baseline {})",
            line.area, line.what, line.value, line.baseline
        );
        self.lines.push(line);
    }

    pub fn print(&self) {
        println!();
        println!("| area | measure | value | baseline | ratio | target | met |");
        println!("|---|---|---|---|---|---|---|");
        for l in &self.lines {
            let ratio = l.ratio.map(|r| format!("{r:.2}")).unwrap_or_default();
            let met = match l.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                l.area, l.what, l.value, l.baseline, ratio, l.target, met
            );
        }
    }
}

/// The median of some measurements.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What the numbers were measured on.
pub fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {} GiB", kb / 1024 / 1024));
    println!("Machine: {cores} cores ({cpu}){memory}");
}

/// A process's resident memory, in MiB.
pub struct Rss {
    pub now: f64,
    pub peak: f64,
    /// Private memory (heap, stacks).
    pub anon: f64,
    /// Mapped files: the binary, and SQLite's memory-mapped database.
    pub file: f64,
}

pub fn rss_mib(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    Rss {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

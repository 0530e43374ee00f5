//! HdrHistogram percentile-distribution text (`.hgrm`): writing it and reading it back.
//!
//! The format is the one HdrHistogram's Java `outputPercentileDistribution` prints and its plotters
//! read: a header line, one row per percentile step (value, percentile as a fraction, total count up
//! to here, 1/(1-percentile)), and `#[Mean ...]`, `#[Max ...]`, `#[Buckets ...]` footers. We record
//! nanoseconds and write microseconds (a scaling ratio of 1000), the unit of every report here.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Percentile steps per halving of the distance to 100% (HdrHistogram's default).
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Recorded unit (ns) per written unit (µs).
const SCALE: f64 = 1000.0;

/// Renders `h` (nanoseconds) as percentile-distribution text in microseconds.
pub fn render(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / SCALE;
            if q < 1.0 {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(s, "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]", h.mean() / SCALE, h.stdev() / SCALE);
    let _ = writeln!(s, "#[Max     = {:12.3}, Total count    = {:12}]", h.max() as f64 / SCALE, h.len());
    // 3 significant digits: 2·10³ distinct values per bucket, rounded up to a power of two.
    let _ = writeln!(s, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), 2048);
    s
}

/// A percentile distribution read back from `.hgrm` text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    /// `(percentile as a fraction, value in µs)` rows, ascending.
    pub rows: Vec<(f64, f64)>,
    /// Max from the footer, µs.
    pub max: f64,
    /// Total count from the footer.
    pub count: u64,
}

impl Distribution {
    /// The value at percentile `q` (a fraction): the first row at or above it, like HdrHistogram's
    /// `getValueAtPercentile`; the max beyond the last row.
    pub fn value_at(&self, q: f64) -> f64 {
        self.rows.iter().find(|(p, _)| *p >= q).map_or(self.max, |(_, v)| *v)
    }
}

/// Parses percentile-distribution text.
///
/// # Errors
///
/// Names the first line that is neither a data row, a comment, nor the header, or says that the
/// text has no rows.
pub fn parse(text: &str) -> Result<Distribution, String> {
    let mut d = Distribution::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Value") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#[Max") {
            // `#[Max     =      123.456, Total count    =          789]`
            let nums: Vec<&str> = rest.split(['=', ',', ']']).map(str::trim).filter(|t| !t.is_empty()).collect();
            if let Some(m) = nums.first().and_then(|t| t.parse().ok()) {
                d.max = m;
            }
            if let Some(c) = nums.get(2).and_then(|t| t.parse().ok()) {
                d.count = c;
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let mut cols = line.split_whitespace();
        let value = cols.next().and_then(|t| t.parse::<f64>().ok());
        let pct = cols.next().and_then(|t| t.parse::<f64>().ok());
        match (value, pct) {
            (Some(v), Some(p)) => d.rows.push((p, v)),
            _ => return Err(format!("line {}: not a percentile row: `{line}`", n + 1)),
        }
    }
    if d.rows.is_empty() {
        return Err("no percentile rows (was anything recorded?)".into());
    }
    if d.max == 0.0 {
        d.max = d.rows.last().map_or(0.0, |r| r.1);
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap fails the test, as it should
mod tests {
    use super::*;

    #[test]
    fn rendered_text_parses_back_with_matching_percentiles() {
        let mut h = crate::stats::new_histogram();
        for i in 1..=10_000u64 {
            h.record(i * 1000).unwrap(); // 1 µs .. 10 ms
        }
        let d = parse(&render(&h)).unwrap();
        assert_eq!(d.count, 10_000);
        for q in [0.5, 0.9, 0.99, 0.999] {
            let want = h.value_at_quantile(q) as f64 / 1000.0;
            let got = d.value_at(q);
            assert!((got - want).abs() / want < 0.002, "q={q}: {got} vs {want}");
        }
        assert!((d.max - h.max() as f64 / 1000.0).abs() < 0.01);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse("hello world\n").is_err());
        assert!(parse("").is_err());
    }
}

//! `compare`: several `.hgrm` percentile distributions side by side, as a table and as an SVG plot of
//! latency by percentile on HdrHistogram's log-scaled "1/(1-percentile)" axis.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::hgrm::{self, Distribution};

/// Percentiles shown in the table.
const TABLE: [(f64, &str); 7] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (0.9999, "p99.99"), (0.99999, "p99.999"), (1.0, "max")];

/// Colours of the curves, in file order.
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// Loads the files, prints the table, and writes the SVG if asked.
///
/// # Errors
///
/// A file cannot be read or parsed, or the SVG cannot be written.
pub fn run(files: &[PathBuf], svg: Option<&Path>) -> Result<String, String> {
    let mut dists = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let d = hgrm::parse(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        dists.push((label(f), d));
    }
    if let Some(path) = svg {
        std::fs::write(path, plot(&dists)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(table(&dists))
}

fn label(p: &Path) -> String {
    p.file_stem().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// The side-by-side table: one column per file (µs), then each later file's ratio to the first.
pub fn table(dists: &[(String, Distribution)]) -> String {
    let width = dists.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(12);
    let mut s = String::new();
    let _ = write!(s, "{:<10}", "percentile");
    for (l, _) in dists {
        let _ = write!(s, " {l:>width$}");
    }
    for (l, _) in dists.iter().skip(1) {
        let r = format!("{l}/{}", dists[0].0);
        let _ = write!(s, " {r:>w$}", w = r.len().max(8));
    }
    s.push('\n');
    for (q, name) in TABLE {
        let vals: Vec<f64> = dists.iter().map(|(_, d)| if q >= 1.0 { d.max } else { d.value_at(q) }).collect();
        let _ = write!(s, "{name:<10}");
        for v in &vals {
            let _ = write!(s, " {:>width$}", format!("{v:.1}us"));
        }
        for (i, (l, _)) in dists.iter().enumerate().skip(1) {
            let w = format!("{l}/{}", dists[0].0).len().max(8);
            let ratio = if vals[0] > 0.0 { format!("{:.2}x", vals[i] / vals[0]) } else { "-".into() };
            let _ = write!(s, " {ratio:>w$}");
        }
        s.push('\n');
    }
    let _ = write!(s, "{:<10}", "count");
    for (_, d) in dists {
        let _ = write!(s, " {:>width$}", d.count);
    }
    s.push('\n');
    s
}

/// Position on the percentile axis: log10 of 1/(1-q), capped at 10^6 (99.9999%).
fn x_of(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(0.999_999))).log10()
}

/// Latency-by-percentile curves: x is log-scaled like HdrHistogram's plotter, y is linear in µs.
pub fn plot(dists: &[(String, Distribution)]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 520.0, 80.0, 30.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let x_max = dists
        .iter()
        .filter_map(|(_, d)| d.rows.iter().map(|r| x_of(r.0)).reduce(f64::max))
        .fold(2.0, f64::max)
        .ceil();
    let y_max = nice_ceiling(dists.iter().map(|(_, d)| d.max).fold(1.0, f64::max));
    let px = |x: f64| left + x / x_max * pw;
    let py = |y: f64| top + ph - y / y_max * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="24" text-anchor="middle" font-size="15">Latency by percentile</text>"#, w / 2.0);
    // Grid: one vertical line per decade of 1/(1-q), labelled as a percentile.
    for i in 0..=(x_max as i32) {
        let x = px(f64::from(i));
        let pct = 100.0 * (1.0 - 10f64.powi(-i));
        let label = if i == 0 { "0%".to_string() } else { format!("{}%", trim_float(pct)) };
        let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##, top + ph);
        let _ = writeln!(s, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#, top + ph + 18.0);
    }
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let y = py(v);
        let _ = writeln!(s, r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, left + pw);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, left - 6.0, y + 4.0, trim_float(v));
    }
    let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#, left + pw / 2.0, h - 15.0);
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (µs)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##);
    for (i, (label, d)) in dists.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> =
            d.rows.iter().map(|(q, v)| format!("{:.1},{:.1}", px(x_of(*q)), py(*v))).collect();
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, points.join(" "));
        let ly = top + 16.0 + 18.0 * i as f64;
        let _ = writeln!(s, r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/>"#, left + 12.0, left + 36.0);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, left + 42.0, ly + 4.0, escape(label));
    }
    s.push_str("</svg>\n");
    s
}

fn nice_ceiling(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap fails the test, as it should
mod tests {
    use super::*;

    fn dist(scale: f64) -> Distribution {
        Distribution {
            rows: vec![(0.0, 1.0 * scale), (0.5, 2.0 * scale), (0.99, 5.0 * scale), (1.0, 9.0 * scale)],
            max: 9.0 * scale,
            count: 100,
        }
    }

    #[test]
    fn table_shows_values_and_ratios() {
        let t = table(&[("a".into(), dist(1.0)), ("b".into(), dist(2.0))]);
        assert!(t.contains("b/a"));
        let p99 = t.lines().find(|l| l.starts_with("p99 ")).unwrap();
        assert!(p99.contains("5.0us") && p99.contains("10.0us") && p99.contains("2.00x"), "{p99}");
    }

    #[test]
    fn plot_is_an_svg_with_one_curve_per_file() {
        let svg = plot(&[("a".into(), dist(1.0)), ("b<".into(), dist(2.0))]);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("b&lt;"));
    }
}

//! What the user sees: emqtt-bench style rate lines once a second, and the final summary (text or
//! JSON) with counts and latency percentiles in microseconds.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Prints one `<t>s <name> total=<n> rate=<r>/sec` line per counter that changed since last time.
pub struct RateLines {
    last: Vec<u64>,
    last_ns: u64,
}

impl RateLines {
    /// Starts counting from zero at `now_ns`.
    pub fn new(counters: usize, now_ns: u64) -> RateLines {
        RateLines { last: vec![0; counters], last_ns: now_ns }
    }

    /// Lines for the counters that moved, and a latency line when `interval` has samples.
    pub fn lines(&mut self, elapsed_s: u64, now_ns: u64, counters: &[(&str, u64)], interval: &Histogram<u64>) -> String {
        let dt = (now_ns.saturating_sub(self.last_ns) as f64 / 1e9).max(1e-9);
        let mut s = String::new();
        for (i, (name, total)) in counters.iter().enumerate() {
            let prev = self.last.get(i).copied().unwrap_or(0);
            if *total != prev {
                let rate = (total - prev) as f64 / dt;
                let _ = writeln!(s, "{elapsed_s}s {name} total={total} rate={rate:.2}/sec");
            }
        }
        if !interval.is_empty() {
            let us = |q: f64| interval.value_at_quantile(q) as f64 / 1000.0;
            let _ = writeln!(
                s,
                "{elapsed_s}s latency count={} p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us",
                interval.len(),
                us(0.5),
                us(0.99),
                us(0.999),
                interval.max() as f64 / 1000.0
            );
        }
        self.last = counters.iter().map(|c| c.1).collect();
        self.last_ns = now_ns;
        s
    }
}

/// Latency percentiles of a whole run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of `h` (nanoseconds); `None` when nothing was recorded.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Some(Latency {
            count: h.len(),
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            p9999: us(0.9999),
            max: h.max() as f64 / 1000.0,
            mean: h.mean() / 1000.0,
        })
    }
}

/// The final numbers of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Subcommand.
    pub kind: &'static str,
    /// Seconds of publishing (or of the whole run without publishers).
    pub elapsed_s: f64,
    /// Successful connects.
    pub connect_succ: u64,
    /// Failed connects.
    pub connect_fail: u64,
    /// Connections lost before the end.
    pub conn_lost: u64,
    /// Lost connections re-established (`--reconnect`).
    pub reconnect: u64,
    /// Successful subscriptions.
    pub sub: u64,
    /// Failed subscriptions.
    pub sub_fail: u64,
    /// Messages sent.
    pub sent: u64,
    /// QoS 1/2 messages acknowledged.
    pub acked: u64,
    /// QoS 1/2 messages refused by the broker.
    pub pub_fail: u64,
    /// Messages received.
    pub received: u64,
    /// Messages the subscribers should have received, when known exactly.
    pub expected: Option<u64>,
    /// Messages lost.
    pub lost: u64,
    /// Duplicate receptions.
    pub duplicated: u64,
    /// Out-of-order receptions.
    pub out_of_order: u64,
    /// Delivery QoS whose guarantees loss is judged against (the lower of publish and subscribe).
    pub qos: u8,
    /// Latency, when messages carried timestamps.
    pub latency: Option<Latency>,
}

impl Summary {
    /// Whether the run failed: a connection failed, or was lost and not re-established by
    /// `--reconnect`, a subscription was refused, or messages were lost at QoS ≥ 1.
    pub fn failed(&self) -> bool {
        self.connect_fail > 0
            || self.conn_lost > self.reconnect
            || self.sub_fail > 0
            || (self.qos >= 1 && self.lost > 0)
    }

    fn rate(&self, n: u64) -> f64 {
        if self.elapsed_s > 0.0 {
            n as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Human-readable summary; every figure is a `key=value` token so scripts can pick them out.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "summary: {} elapsed={:.3}s", self.kind, self.elapsed_s);
        let _ = writeln!(
            s,
            "connections: connect_succ={} connect_fail={} conn_lost={} reconnect={} sub={} sub_fail={}",
            self.connect_succ, self.connect_fail, self.conn_lost, self.reconnect, self.sub, self.sub_fail
        );
        if self.kind != "conn" {
            let expected = self.expected.map_or_else(|| "unknown".to_string(), |e| e.to_string());
            let _ = writeln!(
                s,
                "messages: sent={} acked={} pub_fail={} received={} expected={} lost={} duplicated={} out_of_order={}",
                self.sent, self.acked, self.pub_fail, self.received, expected, self.lost, self.duplicated, self.out_of_order
            );
            let _ = writeln!(
                s,
                "rates: pub_rate={:.1} recv_rate={:.1} (msg/s)",
                self.rate(self.sent),
                self.rate(self.received)
            );
        }
        match &self.latency {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "latency_us: count={} p50={:.1} p90={:.1} p99={:.1} p99.9={:.1} p99.99={:.1} max={:.1} mean={:.1}",
                    l.count, l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
                );
            }
            None if self.kind == "pubsub" || self.kind == "sub" => {
                let _ = writeln!(s, "latency_us: none recorded (publishers need --payload-hdrs ts)");
            }
            None => {}
        }
        let _ = writeln!(s, "result: {}", if self.failed() { "FAIL" } else { "OK" });
        s
    }

    /// The summary as one JSON object (no dependency needed for a flat object of numbers).
    pub fn json(&self) -> String {
        let mut s = String::from("{");
        let _ = write!(s, "\"kind\":\"{}\",\"elapsed_s\":{:.6}", self.kind, self.elapsed_s);
        for (k, v) in [
            ("connect_succ", self.connect_succ),
            ("connect_fail", self.connect_fail),
            ("conn_lost", self.conn_lost),
            ("reconnect", self.reconnect),
            ("sub", self.sub),
            ("sub_fail", self.sub_fail),
            ("sent", self.sent),
            ("acked", self.acked),
            ("pub_fail", self.pub_fail),
            ("received", self.received),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("out_of_order", self.out_of_order),
        ] {
            let _ = write!(s, ",\"{k}\":{v}");
        }
        match self.expected {
            Some(e) => {
                let _ = write!(s, ",\"expected\":{e}");
            }
            None => s.push_str(",\"expected\":null"),
        }
        let _ = write!(s, ",\"pub_rate\":{:.3},\"recv_rate\":{:.3}", self.rate(self.sent), self.rate(self.received));
        match &self.latency {
            Some(l) => {
                let _ = write!(
                    s,
                    ",\"latency_us\":{{\"count\":{},\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p99_9\":{:.3},\"p99_99\":{:.3},\"max\":{:.3},\"mean\":{:.3}}}",
                    l.count, l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
                );
            }
            None => s.push_str(",\"latency_us\":null"),
        }
        let _ = write!(s, ",\"ok\":{}}}", !self.failed());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_fails_only_at_qos1_and_above() {
        let mut s = Summary { kind: "pubsub", lost: 3, qos: 0, ..Summary::default() };
        assert!(!s.failed());
        s.qos = 1;
        assert!(s.failed());
        assert!(s.text().contains("result: FAIL"));
        assert!(s.json().contains("\"ok\":false"));
    }

    #[test]
    fn only_lost_connections_not_reconnected_fail() {
        let mut s = Summary { kind: "sub", conn_lost: 2, reconnect: 2, ..Summary::default() };
        assert!(!s.failed());
        assert!(s.text().contains("conn_lost=2 reconnect=2 "));
        assert!(s.json().contains("\"reconnect\":2"));
        s.conn_lost = 3;
        assert!(s.failed());
    }

    #[test]
    fn rate_lines_show_only_changed_counters() {
        let mut r = RateLines::new(2, 0);
        let h = crate::stats::new_histogram();
        let out = r.lines(1, 1_000_000_000, &[("pub", 10), ("recv", 0)], &h);
        assert_eq!(out, "1s pub total=10 rate=10.00/sec\n");
    }
}

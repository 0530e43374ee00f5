//! Topic templates: emqtt-bench's `%i`, `%c`, `%u` and `%rand_N` placeholders.
//!
//! A template is expanded once per client when the run is planned, so every client has a fixed topic
//! and `pubsub` can work out which subscribers should receive which publisher's messages.

use crate::rng::Rng;

/// What a template's placeholders stand for, for one client.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// `%i`: the client's sequence number.
    pub seq: u64,
    /// `%c`: the client id.
    pub client_id: &'a str,
    /// `%u`: the user name (empty when none).
    pub username: &'a str,
}

/// Expands `template` for one client; `%rand_N` draws a number in `1..=N` from `rng`. Unknown `%`
/// sequences are kept as written.
pub fn expand(template: &str, vars: Vars<'_>, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("rand_") {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            if let Ok(n) = tail[..digits].parse::<u64>() {
                out.push_str(&rng.range(1, n.max(1)).to_string());
                rest = &tail[digits..];
                continue;
            }
        }
        match after.as_bytes().first() {
            Some(b'i') => out.push_str(&vars.seq.to_string()),
            Some(b'c') => out.push_str(vars.client_id),
            Some(b'u') => out.push_str(vars.username),
            _ => {
                out.push('%');
                rest = after;
                continue;
            }
        }
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap fails the test, as it should
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars { seq: 7, client_id: "c7", username: "bob" }
    }

    #[test]
    fn placeholders_expand() {
        let mut rng = Rng::new(1);
        assert_eq!(expand("bench/%i", vars(), &mut rng), "bench/7");
        assert_eq!(expand("%c/%u/x", vars(), &mut rng), "c7/bob/x");
        assert_eq!(expand("plain", vars(), &mut rng), "plain");
        assert_eq!(expand("100%", vars(), &mut rng), "100%");
        assert_eq!(expand("a/%z", vars(), &mut rng), "a/%z");
    }

    #[test]
    fn rand_n_is_within_one_to_n() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let t = expand("t/%rand_5/x", vars(), &mut rng);
            let n: u64 = t.trim_start_matches("t/").trim_end_matches("/x").parse().unwrap();
            assert!((1..=5).contains(&n));
        }
    }
}

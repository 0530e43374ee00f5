//! Payload headers: what a publisher writes at the front of each message so a subscriber can time
//! it and account for it.
//!
//! Headers are laid out in the order given to `--payload-hdrs`, big-endian, and the rest of the payload
//! is filler up to `--size`:
//!
//! - `ts`: 8 bytes, the intended send time in nanoseconds on the host's monotonic clock;
//! - `cnt64`: 12 bytes, a 4-byte publisher id then the publisher's 8-byte message sequence number
//!   (0, 1, 2, ...). The id is ours, not emqtt-bench's: it lets one subscriber tell many publishers'
//!   sequences apart, which exact loss and duplicate accounting needs.
//!
//! Publisher and subscriber must be given the same header list (`pubsub` does that itself).

use bytes::Bytes;

/// One header kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Send timestamp, 8 bytes.
    Ts,
    /// Publisher id and sequence number, 12 bytes.
    Cnt64,
}

impl Header {
    fn len(self) -> usize {
        match self {
            Header::Ts => 8,
            Header::Cnt64 => 12,
        }
    }
}

/// The header list and where each field sits in the payload.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    headers: Vec<Header>,
    ts_at: Option<usize>,
    cnt_at: Option<usize>,
    len: usize,
}

/// What a subscriber found in a payload's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Send time in monotonic nanoseconds, when `ts` is in the layout.
    pub ts: Option<u64>,
    /// Publisher id and sequence number, when `cnt64` is in the layout.
    pub seq: Option<(u32, u64)>,
}

impl Layout {
    /// Parses a `--payload-hdrs` value such as `cnt64,ts` (empty: no headers).
    ///
    /// # Errors
    ///
    /// Names an unknown or repeated header.
    pub fn parse(spec: &str) -> Result<Layout, String> {
        let mut layout = Layout::default();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let h = match name {
                "ts" => Header::Ts,
                "cnt64" => Header::Cnt64,
                other => return Err(format!("unknown payload header `{other}`; use ts and/or cnt64")),
            };
            if layout.headers.contains(&h) {
                return Err(format!("payload header `{name}` given twice"));
            }
            match h {
                Header::Ts => layout.ts_at = Some(layout.len),
                Header::Cnt64 => layout.cnt_at = Some(layout.len),
            }
            layout.len += h.len();
            layout.headers.push(h);
        }
        Ok(layout)
    }

    /// Whether the layout carries publisher id and sequence number.
    pub fn has_seq(&self) -> bool {
        self.cnt_at.is_some()
    }

    /// The payload a publisher sends before its headers are filled in: room for the headers, then
    /// `fixed` if given, else filler up to `size` bytes.
    pub fn template(&self, size: usize, fixed: Option<&str>) -> Bytes {
        let mut v = vec![0u8; self.len];
        match fixed {
            Some(m) => v.extend_from_slice(m.as_bytes()),
            None => v.resize(size.max(self.len), b'x'),
        }
        Bytes::from(v)
    }

    /// Writes the headers into the front of `payload` (at least `len()` bytes long).
    pub fn stamp(&self, payload: &mut [u8], ts: u64, publisher: u32, seq: u64) {
        if let Some(at) = self.ts_at {
            payload[at..at + 8].copy_from_slice(&ts.to_be_bytes());
        }
        if let Some(at) = self.cnt_at {
            payload[at..at + 4].copy_from_slice(&publisher.to_be_bytes());
            payload[at + 4..at + 12].copy_from_slice(&seq.to_be_bytes());
        }
    }

    /// Reads the headers from a received payload; fields are `None` when the payload is too short.
    pub fn read(&self, payload: &[u8]) -> Stamp {
        let mut stamp = Stamp::default();
        if payload.len() < self.len {
            return stamp;
        }
        if let Some(at) = self.ts_at {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[at..at + 8]);
            stamp.ts = Some(u64::from_be_bytes(b));
        }
        if let Some(at) = self.cnt_at {
            let mut id = [0u8; 4];
            id.copy_from_slice(&payload[at..at + 4]);
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&payload[at + 4..at + 12]);
            stamp.seq = Some((u32::from_be_bytes(id), u64::from_be_bytes(seq)));
        }
        stamp
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap fails the test, as it should
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_in_the_given_order() {
        let layout = Layout::parse("cnt64,ts").unwrap();
        let mut p = layout.template(16, None).to_vec();
        assert_eq!(p.len(), 20, "headers never truncated by a small --size");
        layout.stamp(&mut p, 123_456, 9, 42);
        assert_eq!(&p[0..4], &9u32.to_be_bytes());
        let s = layout.read(&p);
        assert_eq!(s, Stamp { ts: Some(123_456), seq: Some((9, 42)) });
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(Layout::parse("ts,ts").is_err());
        assert!(Layout::parse("foo").is_err());
        assert_eq!(Layout::parse("").unwrap().template(0, None).len(), 0);
    }

    #[test]
    fn fixed_payload_follows_the_headers() {
        let layout = Layout::parse("ts").unwrap();
        let p = layout.template(256, Some("hello"));
        assert_eq!(&p[8..], b"hello");
        assert_eq!(layout.read(b"short"), Stamp::default());
    }
}

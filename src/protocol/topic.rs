//! Topic names, topic filters and matching (MQTT 5.0 section 4.7, 3.1.1 section 4.7).
//!
//! Pure string helpers shared by the codec (which rejects invalid names and filters on decode) and the
//! subscription router. None of them allocate.

/// Prefix of a shared subscription filter, `$share/{group}/{filter}` (MQTT 5.0 section 4.8.2).
const SHARE_PREFIX: &str = "$share/";

/// Longest string MQTT can carry: the 16-bit length prefix.
const MAX_LEN: usize = u16::MAX as usize;

/// A topic name a PUBLISH may carry: non-empty, at most 65,535 bytes, no wildcards, no U+0000.
pub fn is_valid_topic_name(s: &str) -> bool {
    // [MQTT-4.7.3-1] at least one character; [MQTT-3.3.2-2] no wildcards; [MQTT-4.7.3-2] no U+0000.
    !s.is_empty() && s.len() <= MAX_LEN && !s.bytes().any(|b| b == b'+' || b == b'#' || b == 0)
}

/// A topic filter a SUBSCRIBE/UNSUBSCRIBE may carry, including the `$share/{group}/{filter}` form.
pub fn is_valid_topic_filter(s: &str) -> bool {
    if s.len() > MAX_LEN {
        return false;
    }
    if s.starts_with(SHARE_PREFIX) {
        return match split_shared(s) {
            // [MQTT-4.8.2-1] the share name is at least one character and holds no `/`, `+` or `#`
            // (the `/` is excluded by the split); [MQTT-4.8.2-2] a topic filter follows it.
            Some((group, filter)) => {
                !group.is_empty()
                    && !group.bytes().any(|b| b == b'+' || b == b'#')
                    && is_valid_plain_filter(filter)
            }
            None => false,
        };
    }
    is_valid_plain_filter(s)
}

/// Validates a filter without the shared-subscription prefix.
fn is_valid_plain_filter(s: &str) -> bool {
    // [MQTT-4.7.3-1] at least one character; [MQTT-4.7.3-2] no U+0000.
    if s.is_empty() || s.as_bytes().contains(&0) {
        return false;
    }
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') {
            // [MQTT-4.7.1-2] `#` occupies a whole level and is the last character of the filter.
            if level != "#" || levels.peek().is_some() {
                return false;
            }
        } else if level.contains('+') && level != "+" {
            // [MQTT-4.7.1-3] `+` occupies an entire level.
            return false;
        }
    }
    true
}

/// Splits `$share/{group}/{filter}` into `(group, filter)`; `None` when `filter` is not of that form.
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix(SHARE_PREFIX)?.split_once('/')
}

/// Number of levels of a topic name or filter (`a/b` has two, `a` and `/` one and two).
pub fn levels(s: &str) -> usize {
    s.bytes().filter(|b| *b == b'/').count() + 1
}

/// Whether a filter contains a `+` or `#` wildcard (and so can match more than one topic).
pub fn has_wildcards(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}

/// Whether a (non-shared) topic filter matches a topic name, per MQTT section 4.7.
pub fn matches(filter: &str, topic: &str) -> bool {
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with `$`,
    // so `#` does not deliver `$SYS/...` to everyone.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            // `#` matches the parent level too: `sport/#` matches `sport` (section 4.7.1.2).
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) => {
                if fl != tl {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

//! Topic name and filter validity, shared subscription names and matching.

use crate::protocol::topic::{
    has_wildcards, is_valid_topic_filter, is_valid_topic_name, matches, split_shared,
};

#[test]
fn topic_name_validity() {
    assert!(is_valid_topic_name("a/b"));
    assert!(is_valid_topic_name("/"));
    assert!(is_valid_topic_name("$SYS/x"));
    assert!(!is_valid_topic_name(""));
    assert!(!is_valid_topic_name("a/+"));
    assert!(!is_valid_topic_name("#"));
    assert!(!is_valid_topic_name("a\0"));
}

#[test]
fn topic_filter_validity() {
    for ok in [
        "#",
        "+",
        "a/#",
        "+/+",
        "/+",
        "a//b",
        "sport/tennis/#",
        "$share/g/#",
        "$SYS/#",
        "$share",
    ] {
        assert!(is_valid_topic_filter(ok), "{ok}");
    }
    for bad in [
        "",
        "a/#/b",
        "a#",
        "a+",
        "+a/b",
        "$share/",
        "$share//x",
        "$share/g",
        "$share/g/",
        "$share/+/x",
    ] {
        assert!(!is_valid_topic_filter(bad), "{bad}");
    }
}

#[test]
fn split_shared_returns_group_and_filter() {
    assert_eq!(split_shared("$share/g/a/b"), Some(("g", "a/b")));
    assert_eq!(split_shared("$share/g/#"), Some(("g", "#")));
    assert_eq!(split_shared("$share/g"), None);
    assert_eq!(split_shared("a/b"), None);
}

#[test]
fn has_wildcards_detects_plus_and_hash() {
    assert!(has_wildcards("a/+"));
    assert!(has_wildcards("#"));
    assert!(!has_wildcards("a/b"));
}

#[test]
fn topic_matching_follows_section_4_7() {
    let cases = [
        ("sport/#", "sport", true),
        ("sport/#", "sport/tennis/player1", true),
        ("sport/tennis/#", "sport/tennis", true),
        ("#", "a/b/c", true),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/+/player1", "sport/tennis/x/player1", false),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("a/b", "a/b", true),
        ("a/b", "a/b/c", false),
        ("a/b/c", "a/b", false),
        ("A", "a", false),
    ];
    for (f, t, want) in cases {
        assert_eq!(matches(f, t), want, "{f} vs {t}");
    }
}

#[test]
fn wildcard_first_filters_do_not_match_dollar_topics_mqtt_4_7_2_1() {
    assert!(!matches("#", "$SYS/uptime"));
    assert!(!matches("+/uptime", "$SYS/uptime"));
    assert!(matches("$SYS/#", "$SYS/uptime"));
    assert!(matches("$SYS/+", "$SYS/uptime"));
}

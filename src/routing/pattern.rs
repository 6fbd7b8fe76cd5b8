//! Topic patterns: validates operators' patterns, derives broker subscription filters and matches
//! one topic against one pattern.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// MQTT strings carry a 16-bit length prefix, so no filter or topic name can be longer.
const MAX_LEN: usize = 65_535;

/// Why a pattern was rejected. Each message names what the operator has to change, because it is
/// returned verbatim by the API as a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern is empty")]
    Empty,
    #[error("pattern is longer than 65535 bytes ({0} bytes); MQTT cannot carry it")]
    TooLong(usize),
    #[error("pattern contains a NUL character, which MQTT forbids; remove it")]
    Nul,
    #[error("$share needs a group and a filter: $share/<group>/<filter>")]
    ShareIncomplete,
    #[error("$share group '{0}' must not contain '+', '#', '{{' or '}}'")]
    ShareGroupInvalid(String),
    #[error("'#' must be the last level (found at level {level} of {total})")]
    MultiNotLast { level: usize, total: usize },
    #[error("'#' must occupy a whole level (found '{0}'); write 'a/#', not 'a#'")]
    MultiInLevel(String),
    #[error("'+' must occupy a whole level (found '{0}'); write 'a/+/b', not 'a+/b'")]
    SingleInLevel(String),
    #[error(
        "a capture must occupy a whole level, written '{{name}}' (found '{0}'); \
         braces are not allowed in literal levels"
    )]
    CaptureInLevel(String),
    #[error("invalid capture '{{{0}}}': capture name must be [A-Za-z_][A-Za-z0-9_]*")]
    InvalidCaptureName(String),
    #[error("duplicate capture name '{0}': each capture in a pattern needs its own name")]
    DuplicateCapture(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Level {
    Literal(String),
    Single,
    Capture(String),
    Multi,
}

impl Level {
    pub(super) fn is_wildcard(&self) -> bool {
        !matches!(self, Level::Literal(_))
    }
}

/// A validated pattern. Levels are split on '/'. Supports '+', '#', '{name}' (a named single-level
/// capture, matches like '+'), and literal levels (empty levels are legal literals in MQTT). A
/// leading `$share/<group>/` prefix is allowed: it is kept for the subscription filter but stripped
/// for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
    /// Byte offset where the filter begins; non-zero only behind a `$share/<group>/` prefix.
    filter_start: usize,
    pub(super) levels: Vec<Level>,
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> Result<TopicPattern, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_LEN {
            return Err(PatternError::TooLong(pattern.len()));
        }
        if pattern.contains('\0') {
            return Err(PatternError::Nul);
        }
        let filter_start = share_filter_start(pattern)?;
        let raw_levels: Vec<&str> = pattern[filter_start..].split('/').collect();
        let total = raw_levels.len();
        let mut levels = Vec::with_capacity(total);
        // A set, not a scan of earlier levels: a hostile pattern may hold thousands of captures.
        let mut seen = HashSet::new();
        for (i, raw) in raw_levels.iter().enumerate() {
            let level = parse_level(raw)?;
            match &level {
                Level::Multi if i + 1 != total => {
                    return Err(PatternError::MultiNotLast {
                        level: i + 1,
                        total,
                    });
                }
                Level::Capture(name) if !seen.insert(name.clone()) => {
                    return Err(PatternError::DuplicateCapture(name.clone()));
                }
                _ => {}
            }
            levels.push(level);
        }
        Ok(TopicPattern {
            text: pattern.to_owned(),
            filter_start,
            levels,
        })
    }

    /// The original text, as the operator wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The group of a `$share/<group>/<filter>` pattern.
    pub fn share_group(&self) -> Option<&str> {
        if self.filter_start == 0 {
            return None;
        }
        // The prefix is "$share/<group>/", validated by parse.
        self.text
            .get("$share/".len()..self.filter_start - 1)
            .filter(|group| !group.is_empty())
    }

    /// What to subscribe to at the broker: brokers know nothing of captures, so each `{name}`
    /// becomes '+'; a `$share` prefix stays so the broker load-balances as the operator asked.
    pub fn subscription_filter(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        out.push_str(&self.text[..self.filter_start]);
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match level {
                Level::Literal(lit) => out.push_str(lit),
                Level::Single | Level::Capture(_) => out.push('+'),
                Level::Multi => out.push('#'),
            }
        }
        out
    }

    /// Capture names in the order they appear in the pattern.
    pub fn capture_names(&self) -> Vec<&str> {
        self.levels
            .iter()
            .filter_map(|level| match level {
                Level::Capture(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Captures count as wildcards: for specificity they are no narrower than '+'.
    pub fn wildcard_count(&self) -> usize {
        self.levels
            .iter()
            .filter(|level| level.is_wildcard())
            .count()
    }

    /// Matches one topic name against this pattern alone, returning its captures (empty when the
    /// pattern has none). Topic names holding '+' or '#' never match: they are not valid topics.
    pub fn matches(&self, topic: &str) -> Option<BTreeMap<String, String>> {
        if !is_valid_topic(topic) {
            return None;
        }
        let dollar = topic.starts_with('$');
        let mut captures = BTreeMap::new();
        let mut topic_levels = topic.split('/');
        for (i, level) in self.levels.iter().enumerate() {
            // MQTT 3.1.1 §4.7.2: '$' topics are reserved for the broker and must be named
            // explicitly, so no wildcard may stand in for their first level.
            if i == 0 && dollar && level.is_wildcard() {
                return None;
            }
            match level {
                Level::Multi => return Some(captures),
                Level::Literal(lit) => {
                    if topic_levels.next()? != lit.as_str() {
                        return None;
                    }
                }
                Level::Single => {
                    topic_levels.next()?;
                }
                Level::Capture(name) => {
                    let value = topic_levels.next()?;
                    captures.insert(name.clone(), value.to_owned());
                }
            }
        }
        match topic_levels.next() {
            Some(_) => None,
            None => Some(captures),
        }
    }

    /// Reads captures out of a topic already known to match, so the router does not match twice.
    pub(super) fn captures_from(&self, topic_levels: &[&str]) -> BTreeMap<String, String> {
        self.levels
            .iter()
            .zip(topic_levels)
            .filter_map(|(level, value)| match level {
                Level::Capture(name) => Some((name.clone(), (*value).to_owned())),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for TopicPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicPattern::parse(s)
    }
}

/// Returns where the matching filter starts: past `$share/<group>/`, or 0 for a plain pattern.
fn share_filter_start(pattern: &str) -> Result<usize, PatternError> {
    let Some(rest) = pattern.strip_prefix("$share") else {
        return Ok(0);
    };
    // Only a first level of exactly "$share" is the MQTT 5 prefix; "$shared/x" is a literal.
    if !rest.is_empty() && !rest.starts_with('/') {
        return Ok(0);
    }
    let (group, filter) = rest
        .strip_prefix('/')
        .and_then(|r| r.split_once('/'))
        .ok_or(PatternError::ShareIncomplete)?;
    if group.is_empty() || filter.is_empty() {
        return Err(PatternError::ShareIncomplete);
    }
    // MQTT 5 §4.8.2 forbids wildcards in a share name; braces would read as a capture that
    // cannot work there.
    if group.contains(['+', '#', '{', '}']) {
        return Err(PatternError::ShareGroupInvalid(group.to_owned()));
    }
    Ok(pattern.len() - filter.len())
}

fn parse_level(raw: &str) -> Result<Level, PatternError> {
    match raw {
        "#" => return Ok(Level::Multi),
        "+" => return Ok(Level::Single),
        _ => {}
    }
    // Braces first, so "{a+}" is reported as a bad capture name rather than a misplaced '+'.
    if let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        return if is_capture_name(name) {
            Ok(Level::Capture(name.to_owned()))
        } else {
            Err(PatternError::InvalidCaptureName(name.to_owned()))
        };
    }
    if raw.contains('#') {
        return Err(PatternError::MultiInLevel(raw.to_owned()));
    }
    if raw.contains('+') {
        return Err(PatternError::SingleInLevel(raw.to_owned()));
    }
    // MQTT allows braces in topic names, but "dev-{id}" is almost surely a partial capture the
    // operator expects to work; refusing it beats a pattern that silently never matches.
    if raw.contains(['{', '}']) {
        return Err(PatternError::CaptureInLevel(raw.to_owned()));
    }
    Ok(Level::Literal(raw.to_owned()))
}

fn is_capture_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A topic name as MQTT allows it on a PUBLISH: wildcard characters would make it a filter.
pub(super) fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_LEN && !topic.contains(['+', '#', '\0'])
}

/// What is wrong with `topic` as a topic this service publishes to, if anything: a name, not a
/// filter, and not one of the broker's own `$` topics.
pub fn publish_topic_problem(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        Some("must not be empty")
    } else if topic.len() > MAX_LEN {
        Some("must be at most 65535 bytes")
    } else if topic.contains(['+', '#']) {
        Some("must be a topic name without the wildcards '+' and '#'")
    } else if topic.contains('\0') {
        Some("must not contain NUL")
    } else if topic.starts_with('$') {
        Some("must not start with '$' (topics of the broker itself)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pattern: &str) -> TopicPattern {
        TopicPattern::parse(pattern).expect("test pattern must parse")
    }

    fn err(pattern: &str) -> PatternError {
        TopicPattern::parse(pattern).expect_err("test pattern must be rejected")
    }

    fn caps(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_plain_topic_names_may_be_published_to() {
        assert_eq!(publish_topic_problem("plant/relay/1/set"), None);
        for bad in ["", "a/+", "a/#", "$SYS/x", "a\0b"] {
            assert!(publish_topic_problem(bad).is_some(), "{bad:?}");
        }
    }

    // ---- parsing ----

    #[test]
    fn parses_valid_patterns() {
        for ok in [
            "a",
            "a/b/c",
            "#",
            "+",
            "a/#",
            "+/+/#",
            "/",
            "a//b",
            "/a",
            "a/",
            "$SYS/#",
            "{x}",
            "bfg/gateway/{gateway}/datalogger/{datalogger}",
            "a/{_x1}/+/#",
            "$shared/x",
            "$share/g/a/+",
            "héllo/wörld",
        ] {
            assert!(TopicPattern::parse(ok).is_ok(), "{ok} should parse");
        }
    }

    #[test]
    fn rejects_empty_long_and_nul() {
        assert_eq!(err(""), PatternError::Empty);
        assert_eq!(err(&"a".repeat(65_536)), PatternError::TooLong(65_536));
        assert!(TopicPattern::parse(&"a".repeat(65_535)).is_ok());
        assert_eq!(err("a/\0/b"), PatternError::Nul);
    }

    #[test]
    fn rejects_misplaced_multi_level_wildcard() {
        assert_eq!(
            err("a/#/b"),
            PatternError::MultiNotLast { level: 2, total: 3 }
        );
        assert_eq!(
            err("#/#"),
            PatternError::MultiNotLast { level: 1, total: 2 }
        );
        assert_eq!(err("a#"), PatternError::MultiInLevel("a#".into()));
        assert_eq!(err("a/#b"), PatternError::MultiInLevel("#b".into()));
    }

    #[test]
    fn rejects_partial_single_level_wildcard() {
        assert_eq!(err("a+/b"), PatternError::SingleInLevel("a+".into()));
        assert_eq!(err("a/++"), PatternError::SingleInLevel("++".into()));
    }

    #[test]
    fn rejects_bad_captures() {
        assert_eq!(err("a/{}"), PatternError::InvalidCaptureName("".into()));
        assert_eq!(err("{1x}"), PatternError::InvalidCaptureName("1x".into()));
        assert_eq!(err("{a-b}"), PatternError::InvalidCaptureName("a-b".into()));
        assert_eq!(err("{a+}"), PatternError::InvalidCaptureName("a+".into()));
        assert_eq!(err("{é}"), PatternError::InvalidCaptureName("é".into()));
        assert_eq!(
            err("dev-{id}"),
            PatternError::CaptureInLevel("dev-{id}".into())
        );
        assert_eq!(err("{id"), PatternError::CaptureInLevel("{id".into()));
        assert_eq!(err("a/}"), PatternError::CaptureInLevel("}".into()));
        assert_eq!(err("{x}/y/{x}"), PatternError::DuplicateCapture("x".into()));
    }

    #[test]
    fn rejects_bad_share() {
        for bad in ["$share", "$share/", "$share/g", "$share/g/", "$share//a"] {
            assert_eq!(err(bad), PatternError::ShareIncomplete, "{bad}");
        }
        assert_eq!(
            err("$share/g+/a"),
            PatternError::ShareGroupInvalid("g+".into())
        );
        assert_eq!(
            err("$share/{g}/a"),
            PatternError::ShareGroupInvalid("{g}".into())
        );
        // The filter behind the prefix is validated like any other.
        assert_eq!(
            err("$share/g/a/#/b"),
            PatternError::MultiNotLast { level: 2, total: 3 }
        );
    }

    #[test]
    fn error_messages_tell_what_to_fix() {
        assert_eq!(
            err("a/#/b").to_string(),
            "'#' must be the last level (found at level 2 of 3)"
        );
        assert!(err("a+")
            .to_string()
            .starts_with("'+' must occupy a whole level"));
        assert!(err("{1}")
            .to_string()
            .contains("capture name must be [A-Za-z_][A-Za-z0-9_]*"));
        assert_eq!(
            err("{x}/{x}").to_string(),
            "duplicate capture name 'x': each capture in a pattern needs its own name"
        );
        assert_eq!(err("").to_string(), "pattern is empty");
        assert!(err(&"a".repeat(70_000))
            .to_string()
            .starts_with("pattern is longer than 65535 bytes"));
        assert_eq!(
            err("$share/g").to_string(),
            "$share needs a group and a filter: $share/<group>/<filter>"
        );
        assert!(err("\0").to_string().contains("NUL character"));
        assert_eq!(
            err("{bad-name}").to_string(),
            "invalid capture '{bad-name}': capture name must be [A-Za-z_][A-Za-z0-9_]*"
        );
    }

    // ---- accessors ----

    #[test]
    fn subscription_filter_replaces_captures() {
        let pat = p("bfg/gateway/{gateway}/datalogger/{datalogger}");
        assert_eq!(pat.subscription_filter(), "bfg/gateway/+/datalogger/+");
        assert_eq!(
            pat.as_str(),
            "bfg/gateway/{gateway}/datalogger/{datalogger}"
        );
        assert_eq!(pat.to_string(), pat.as_str());
        assert_eq!(pat.capture_names(), vec!["gateway", "datalogger"]);
        assert_eq!(pat.wildcard_count(), 2);
        assert_eq!(p("a//b/").subscription_filter(), "a//b/");
        assert_eq!(p("{x}/+/#").subscription_filter(), "+/+/#");
        assert_eq!(p("{x}/+/#").wildcard_count(), 3);
        assert_eq!(p("a/b").wildcard_count(), 0);
        assert!(p("a/+").capture_names().is_empty());
    }

    #[test]
    fn share_prefix_is_kept_for_subscribing_and_stripped_for_matching() {
        let pat = p("$share/workers/site/{gateway}/#");
        assert_eq!(pat.as_str(), "$share/workers/site/{gateway}/#");
        assert_eq!(pat.subscription_filter(), "$share/workers/site/+/#");
        assert_eq!(pat.share_group(), Some("workers"));
        assert_eq!(pat.capture_names(), vec!["gateway"]);
        assert_eq!(pat.wildcard_count(), 2);
        assert_eq!(pat.matches("site/g1/x"), Some(caps(&[("gateway", "g1")])));
        assert_eq!(pat.matches("$share/workers/site/g1/x"), None);
        assert_eq!(p("a/b").share_group(), None);
        // "$shared" is only a literal level.
        let lit = p("$shared/x");
        assert_eq!(lit.share_group(), None);
        assert!(lit.matches("$shared/x").is_some());
        // A shared '#' still honours the '$' rule on the topic itself.
        assert_eq!(p("$share/g/#").matches("$SYS/x"), None);
        assert!(p("$share/g/#").matches("a/b").is_some());
    }

    #[test]
    fn from_str_parses() {
        let pat: TopicPattern = "a/{b}".parse().expect("parses");
        assert_eq!(pat, p("a/{b}"));
        assert!("a/#/b".parse::<TopicPattern>().is_err());
    }
}

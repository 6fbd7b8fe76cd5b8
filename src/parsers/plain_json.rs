//! A reader for the plainest JSON, for the parsers' fast paths: objects, arrays, strings without
//! escapes or control characters, numbers and `null`. Anything else makes it answer `None`, and
//! the payload goes the full path (serde_json, the schema), which judges it properly.
//!
//! A device's payload is mostly short keys and names, which serde_json reads through its general
//! machinery (a visitor per key, a borrowed-or-copied choice per string); reading them here
//! saves about 3 % of the service's instructions per message (docs/performance.md). Numbers
//! are still read by serde_json, so both paths turn the same text into the same `f64`.

pub struct PlainJson<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> PlainJson<'a> {
    pub fn new(text: &'a str) -> Self {
        PlainJson { text, at: 0 }
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// After any whitespace, consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        if self.text.as_bytes().get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Whether nothing but whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.at == self.text.len()
    }

    /// The next value, if it is a string without escapes or control characters.
    pub fn string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        let length = self.text.as_bytes()[start..]
            .iter()
            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        let end = start + length;
        if self.text.as_bytes()[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so this slices on character boundaries.
        self.text.get(start..end)
    }

    /// The next value, if it is a number that fits an `f64`, read as serde_json reads it.
    pub fn number(&mut self) -> Option<f64> {
        self.skip_whitespace();
        let start = self.at;
        let length = self.text.as_bytes()[start..]
            .iter()
            .position(|byte| !matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(self.text.len() - start);
        if length == 0 {
            return None;
        }
        self.at = start + length;
        serde_json::from_str(&self.text[start..self.at]).ok()
    }

    /// Consumes a `null` if it comes next.
    pub fn null(&mut self) -> bool {
        self.skip_whitespace();
        if self.text[self.at..].starts_with("null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// Reads an object: `member` gets each key with the reader placed at its value, and must
    /// read that value whole.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            member(self, key)?;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }

    /// Reads an array: `element` reads each element whole.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b']').then_some(());
        }
    }
}

/// Fills `slot` with `value` unless a repeated key filled it before (serde_json would keep the
/// last value; the fast path leaves such payloads to the full one).
pub fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[string, number or null, …]` as the reader sees it.
    fn read(text: &str) -> Option<Vec<String>> {
        let mut json = PlainJson::new(text);
        let mut seen = Vec::new();
        json.array(|json| {
            if json.null() {
                seen.push("null".to_owned());
            } else if let Some(text) = json.string() {
                seen.push(format!("s:{text}"));
            } else {
                seen.push(format!("n:{}", json.number()?));
            }
            Some(())
        })?;
        json.at_end().then_some(seen)
    }

    #[test]
    fn plain_values_are_read() {
        assert_eq!(
            read(" [ \"a b\" ,\t-1.5e2,\r\nnull, \"é\", 0 ] \n"),
            Some(vec![
                "s:a b".to_owned(),
                "n:-150".to_owned(),
                "null".to_owned(),
                "s:é".to_owned(),
                "n:0".to_owned()
            ])
        );
        assert_eq!(read("[]"), Some(vec![]));
    }

    #[test]
    fn anything_less_plain_is_left_to_the_full_parser() {
        for text in [
            r#"["a\"b"]"#,
            r#"["a\u0062"]"#,
            "[\"a\u{1}b\"]",
            "[\"a\tb\"]",
            r#"["open]"#,
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e400]",
            "[-]",
            "[true]",
            "[nul]",
            "[[1]]",
            "[1] x",
            "\u{feff}[1]",
            "",
            "[",
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }

    #[test]
    fn numbers_are_what_serde_json_makes_of_them() {
        for text in [
            "0",
            "-0",
            "21.5",
            "1e-7",
            "123456789012345678901234567890",
            "0.1",
        ] {
            let mut json = PlainJson::new(text);
            let expected: f64 = serde_json::from_str(text).expect("a JSON number");
            assert_eq!(json.number().map(f64::to_bits), Some(expected.to_bits()));
        }
    }

    #[test]
    fn objects_give_each_key_once_in_order() {
        let mut json = PlainJson::new(r#"{"a": 1, "b": {"c": "d"}}"#);
        let mut keys = Vec::new();
        let read = json.object(|json, key| {
            keys.push(key);
            if key == "b" {
                json.object(|json, key| {
                    keys.push(key);
                    json.string().map(|_| ())
                })
            } else {
                json.number().map(|_| ())
            }
        });
        assert_eq!(read, Some(()));
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(PlainJson::new("{}").object(|_, _| None), Some(()));
        assert_eq!(PlainJson::new(r#"{"a" 1}"#).object(|_, _| Some(())), None);
    }

    #[test]
    fn a_repeated_key_is_refused() {
        let mut slot = None;
        assert_eq!(set_once(&mut slot, 1), Some(()));
        assert_eq!(set_once(&mut slot, 2), None);
        assert_eq!(slot, Some(1));
    }
}

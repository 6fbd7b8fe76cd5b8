//! JSON pointers (RFC 6901), the way parsers and their error messages name a field of a payload.

/// One reference token of a JSON pointer (RFC 6901): `~` and `/` must be escaped.
pub(crate) fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// An empty JSON pointer means the whole document, which reads badly as an empty string.
pub(crate) fn pointer_label(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(root)"
    } else {
        pointer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(escape_pointer_token("a/b~c"), "a~1b~0c");
    }
}

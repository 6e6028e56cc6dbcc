//! The lexical grammar of CEL (CEL.g4, as the `cel` crate's parser lexes it), enough to walk an
//! expression's tokens without parsing it: where literals end, and which text the engine's
//! lexer would refuse. [`super::nesting`] relies on reading the text exactly as the engine
//! does: a literal that ended in the wrong place would hide operators from it.

/// Text the engine's lexer refuses (it would report a syntax error, then go on lexing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed {
    /// Byte offset of the literal.
    pub offset: usize,
    pub what: &'static str,
}

/// If `word` (an identifier directly followed by a quote) prefixes a string literal, whether
/// the literal is raw: `r`/`R` (raw), `b`/`B` (bytes), `br`/`bR`/`Br`/`BR` (raw bytes).
/// Anything else (`rb`, `x`) is an identifier followed by a separate string.
pub(super) fn string_prefix(word: &[u8]) -> Option<bool> {
    match word {
        [b'r' | b'R'] => Some(true),
        [b'b' | b'B'] => Some(false),
        [b'b' | b'B', b'r' | b'R'] => Some(true),
        _ => None,
    }
}

/// The index just past the string literal whose quote is at `start`: `"…"`, `'…'`, or
/// tripled; `raw` when prefixed by `r`. Single-line strings may not hold a line break, and
/// escapes must be CEL's (`\n`, `\x41`, `\u0041`, `\101`, ...).
pub(super) fn string_end(bytes: &[u8], start: usize, raw: bool) -> Result<usize, Malformed> {
    let malformed = |what| Malformed {
        offset: start,
        what,
    };
    let quote = bytes[start];
    let triple = bytes.get(start..start + 3) == Some(&[quote, quote, quote][..]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if !raw => {
                i += escape_len(&bytes[i..])
                    .ok_or(malformed("invalid escape sequence in a string"))?
            }
            b'\n' | b'\r' if !triple => {
                return Err(malformed("line break in a single-line string"));
            }
            b if b == quote => {
                if !triple {
                    return Ok(i + 1);
                }
                if bytes.get(i..i + 3) == Some(&[quote, quote, quote][..]) {
                    return Ok(i + 3);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Err(malformed("unterminated string"))
}

/// The length of the escape sequence at the start of `text` (which begins with `\`).
fn escape_len(text: &[u8]) -> Option<usize> {
    let hex = |n: usize| {
        text.get(2..2 + n)
            .filter(|digits| digits.len() == n && digits.iter().all(u8::is_ascii_hexdigit))
            .map(|_| 2 + n)
    };
    match text.get(1)? {
        b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'"' | b'\'' | b'\\' | b'?' | b'`' => {
            Some(2)
        }
        b'x' | b'X' => hex(2),
        b'u' => hex(4),
        b'U' => hex(8),
        b'0'..=b'3' => text
            .get(2..4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .map(|_| 4),
        _ => None,
    }
}

/// The index just past the number starting at the digit at `start`: `0x` and hex digits, or
/// digits with an optional fraction and exponent; then an optional `u`. The exponent's sign
/// belongs to the number only in `1e+5`, never in `0xe+1` (hex `0xe`, then `+`).
pub(super) fn number_end(bytes: &[u8], start: usize) -> usize {
    let digits = |mut i: usize, hex: bool| {
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()))
        {
            i += 1;
        }
        i
    };
    let unsigned = |i: usize| i + usize::from(matches!(bytes.get(i), Some(b'u' | b'U')));
    if bytes.get(start..start + 2) == Some(b"0x")
        && bytes.get(start + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        return unsigned(digits(start + 2, true));
    }
    let mut i = digits(start, false);
    let mut float = false;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1, false);
        float = true;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
        if bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
            return digits(i + 1 + sign, false);
        }
    }
    if float { i } else { unsigned(i) }
}

/// The index just past the backquoted identifier at `start` (`` `a.b-c` ``: letters, digits,
/// `_`, `.`, `-`, `/` and spaces).
pub(super) fn escaped_identifier_end(bytes: &[u8], start: usize) -> Result<usize, Malformed> {
    let body = bytes[start + 1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b' '))
        .count();
    match bytes.get(start + 1 + body) {
        Some(b'`') if body > 0 => Ok(start + body + 2),
        _ => Err(Malformed {
            offset: start,
            what: "invalid backquoted identifier",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_end_where_the_engine_ends_them() {
        let end = |text: &str, raw| string_end(text.as_bytes(), 0, raw);
        assert_eq!(end(r#""a\"b" + c"#, false), Ok(6));
        assert_eq!(end(r#""a\"b" + c"#, true), Ok(4));
        assert_eq!(end(r#"'''a'b''' + c"#, false), Ok(9));
        assert_eq!(end(r#""\x41\u0041\U00000041\101\n\`" x"#, false), Ok(30));
        for bad in [
            r#""\q""#,
            r#""\x4""#,
            r#""\400""#,
            "\"a\nb\"",
            "\"open",
            "'''open''",
        ] {
            assert!(end(bad, false).is_err(), "{bad}");
        }
        assert!(end("\"a\nb\"", true).is_err());
        assert_eq!(end("\"\"\"a\nb\"\"\"", false), Ok(9));
    }

    #[test]
    fn numbers_end_where_the_engine_ends_them() {
        for (text, len) in [
            ("0xe+0xe", 3),
            ("0xEu+1", 4),
            ("0XE", 1),
            ("1e+5+1", 4),
            ("1.5e-3 ", 6),
            ("1.5e", 3),
            ("1.e5", 1),
            ("12u+", 3),
            ("1.5u", 3),
            ("7", 1),
        ] {
            assert_eq!(number_end(text.as_bytes(), 0), len, "{text}");
        }
    }

    #[test]
    fn prefixes_and_backquotes() {
        assert_eq!(string_prefix(b"r"), Some(true));
        assert_eq!(string_prefix(b"B"), Some(false));
        assert_eq!(string_prefix(b"bR"), Some(true));
        assert_eq!(string_prefix(b"rb"), None);
        assert_eq!(escaped_identifier_end(b"`a.b-c/d e` x", 0), Ok(11));
        assert!(escaped_identifier_end(b"`a+b`", 0).is_err());
        assert!(escaped_identifier_end(b"``", 0).is_err());
    }
}

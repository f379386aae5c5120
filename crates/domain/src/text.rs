//! Checks shared by every text value that may end up in a mail header or a log line.

use crate::InvalidInput;

/// Refuses CR, LF, NUL and every other control character: in a header field they
/// would let the sender inject headers (RFC 5322 §2.2 allows none of them).
pub fn refuse_control_chars(field: &'static str, value: &str) -> Result<(), InvalidInput> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(InvalidInput::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

/// A trimmed, non-empty single-line text of at most `max` characters.
pub fn single_line(field: &'static str, value: &str, max: usize) -> Result<String, InvalidInput> {
    refuse_control_chars(field, value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_anywhere() {
        for bad in ["a\rb", "a\nb", "a\0b", "\tab", "ab\u{7f}"] {
            assert!(single_line("name", bad, 10).is_err(), "{bad:?} accepted");
        }
        assert_eq!(single_line("name", "  Ada  ", 10).unwrap(), "Ada");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(single_line("name", "ééééé", 5).is_ok());
        assert!(single_line("name", "éééééé", 5).is_err());
    }
}

//! Long lines cut into screen lines, the same way in both apps: after a space where there is
//! one, else in the middle of a word (replies are mostly plain text and JSON). Panes that
//! scroll by line (the client's console, the server's event log) count these screen lines, so
//! scrolling to the end shows the newest line whole.
//!
//! Owns: where a line is cut. What goes around the pieces (a time column, a suffix's text and
//! style) is the app's. Widths are counted in characters.

/// `line` cut into pieces of at most `width` characters, after a space where there is one
/// (one empty piece for an empty line).
pub fn wrap(line: &str, width: usize) -> Vec<&str> {
    let width = width.max(1);
    let mut pieces = Vec::new();
    let mut rest = line;
    while rest.chars().count() > width {
        let hard = rest
            .char_indices()
            .nth(width)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let cut = match rest[..hard].rfind(' ') {
            Some(space) if space > 0 => space + 1,
            _ => hard,
        };
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

/// One screen line of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// What it shows (empty on a line of its own for the suffix).
    pub text: &'a str,
    /// Whether it is the text's first screen line (where a time column shows the time).
    pub first: bool,
    /// Whether it is the last (where the suffix goes).
    pub last: bool,
}

/// The screen lines of `text` at `width`: each of its lines wrapped, one for an empty text.
/// A suffix of `suffix` characters closes the last line; when it does not fit there, it gets
/// a screen line of its own, so nothing is cut at the pane's edge.
pub fn pieces(text: &str, width: usize, suffix: usize) -> Vec<Piece<'_>> {
    let mut out: Vec<Piece> = if text.is_empty() {
        vec![Piece {
            text: "",
            first: true,
            last: false,
        }]
    } else {
        text.lines()
            .flat_map(|l| wrap(l, width))
            .map(|text| Piece {
                text,
                first: false,
                last: false,
            })
            .collect()
    };
    if let Some(first) = out.first_mut() {
        first.first = true;
    }
    let room = out
        .last()
        .map(|p| width.max(1).saturating_sub(p.text.chars().count()))
        .unwrap_or(0);
    if suffix > 0 && suffix > room {
        out.push(Piece {
            text: "",
            first: false,
            last: false,
        });
    }
    if let Some(last) = out.last_mut() {
        last.last = true;
    }
    out
}

/// How many screen lines [`pieces`] makes of `text`.
pub fn line_count(text: &str, width: usize, suffix: usize) -> usize {
    pieces(text, width, suffix).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_by_characters() {
        assert_eq!(wrap("", 4), vec![""]);
        assert_eq!(wrap("abcd", 4), vec!["abcd"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("ab cd efg", 6), vec!["ab cd ", "efg"]);
        assert_eq!(wrap("ab cdefgh", 4), vec!["ab ", "cdef", "gh"]);
        assert_eq!(wrap("ééééé", 2), vec!["éé", "éé", "é"]);
        assert_eq!(wrap("abc", 0), vec!["a", "b", "c"], "never an endless loop");
    }

    #[test]
    fn a_suffix_that_does_not_fit_gets_its_own_line() {
        fn texts(p: Vec<Piece<'_>>) -> Vec<&str> {
            p.iter().map(|p| p.text).collect()
        }
        assert_eq!(texts(pieces("pong", 10, 6)), vec!["pong"]);
        assert_eq!(texts(pieces("pong pong", 10, 6)), vec!["pong pong", ""]);
        let p = pieces("a\nbb", 10, 0);
        assert_eq!(
            p,
            vec![
                Piece {
                    text: "a",
                    first: true,
                    last: false
                },
                Piece {
                    text: "bb",
                    first: false,
                    last: true
                }
            ]
        );
        assert_eq!(pieces("", 10, 0).len(), 1);
        assert!(pieces("", 10, 0)[0].first && pieces("", 10, 0)[0].last);
        assert_eq!(line_count("abcdefghij", 4, 0), 3);
        assert_eq!(line_count("abcdefghij", 4, 2), 3, "room after ij");
        assert_eq!(line_count("abcdefghij", 4, 3), 4);
    }
}

//! A small CSV line splitter: comma-separated, RFC 4180 double quotes, no line breaks inside fields.

use std::borrow::Cow;

use crate::error::RowError;

/// Split one line into fields. A field may be quoted with `"`; `""` inside quotes is a quote.
pub(crate) fn split_line(line: &str) -> Result<Vec<Cow<'_, str>>, RowError> {
    let mut out = Vec::with_capacity(12);
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        let field_no = out.len() + 1;
        if i < b.len() && b[i] == b'"' {
            let mut s = String::new();
            let mut j = i + 1;
            let mut start = j;
            loop {
                match b[j..].iter().position(|&c| c == b'"') {
                    None => return Err(RowError::Quoting { field: field_no }),
                    Some(p) => {
                        let q = j + p;
                        s.push_str(&line[start..q]);
                        if q + 1 < b.len() && b[q + 1] == b'"' {
                            s.push('"');
                            j = q + 2;
                            start = j;
                        } else {
                            i = q + 1;
                            break;
                        }
                    }
                }
            }
            out.push(Cow::Owned(s));
            if i == b.len() {
                return Ok(out);
            }
            if b[i] != b',' {
                return Err(RowError::Quoting { field: field_no });
            }
            i += 1;
        } else {
            match b[i..].iter().position(|&c| c == b',') {
                Some(p) => {
                    out.push(Cow::Borrowed(&line[i..i + p]));
                    i += p + 1;
                }
                None => {
                    out.push(Cow::Borrowed(&line[i..]));
                    return Ok(out);
                }
            }
        }
    }
}

/// Quote a field for writing if it needs it.
pub(crate) fn quote(field: &str) -> Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

/// Lines of a file with their one-based numbers; CRLF tolerated; a trailing empty line ignored.
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = (u64, usize, &[u8])> {
    let mut pos = 0usize;
    let mut n = 0u64;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let rest = &data[pos..];
        let (line, adv) = match memchr(rest) {
            Some(p) => (&rest[..p], p + 1),
            None => (rest, rest.len()),
        };
        pos += adv;
        n += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((n, pos, line))
    })
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(split_line("a,b,,c").unwrap(), vec!["a", "b", "", "c"]);
        assert_eq!(split_line("").unwrap(), vec![""]);
        assert_eq!(
            split_line("\"a,b\",\"x\"\"y\",z").unwrap(),
            vec!["a,b", "x\"y", "z"]
        );
        assert_eq!(split_line("a,\"\"").unwrap(), vec!["a", ""]);
        assert_eq!(
            split_line("a,\"b").unwrap_err(),
            RowError::Quoting { field: 2 }
        );
        assert_eq!(
            split_line("\"b\"c").unwrap_err(),
            RowError::Quoting { field: 1 }
        );
        assert_eq!(quote("a,b"), "\"a,b\"");
    }

    #[test]
    fn numbers_lines() {
        let v: Vec<_> = lines(b"h\r\na\n\nb")
            .map(|(n, _, l)| (n, l.to_vec()))
            .collect();
        assert_eq!(
            v,
            vec![
                (1, b"h".to_vec()),
                (2, b"a".to_vec()),
                (3, b"".to_vec()),
                (4, b"b".to_vec())
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn quote_round_trips(fields in proptest::collection::vec("[^\r\n]{0,8}", 1..5)) {
            let line: Vec<String> = fields.iter().map(|f| quote(f).into_owned()).collect();
            let line = line.join(",");
            let back = split_line(&line).unwrap();
            proptest::prop_assert_eq!(back.iter().map(|c| c.to_string()).collect::<Vec<_>>(), fields);
        }
    }
}

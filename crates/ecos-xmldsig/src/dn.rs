//! Comparing RFC 2253 / RFC 4514 distinguished-name strings as names, not as
//! strings (`duis-6.23.md` §6.1 item 6): `CN=U1, OU=07` names the same
//! issuer as `cn=U1,OU=07` and as `OU=07+...` in another order of a
//! multi-valued RDN. Attribute types compare case-insensitively (short names
//! and dotted OIDs are unified for the common ones); values compare after
//! unescaping, trimming and collapsing inner whitespace, case-insensitively
//! (caseIgnoreMatch, as for CN, OU and O). RDN order is significant.

/// One attribute type and value, normalised.
type Ava = (String, String);

/// `a` and `b` name the same distinguished name. A string that does not
/// parse as a DN matches nothing.
pub fn dn_eq(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn canonical_type(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    let t = t.strip_prefix("oid.").unwrap_or(&t).to_string();
    match t.as_str() {
        "2.5.4.3" => "cn".into(),
        "2.5.4.11" => "ou".into(),
        "2.5.4.10" => "o".into(),
        "2.5.4.6" => "c".into(),
        "2.5.4.7" => "l".into(),
        "2.5.4.8" => "st".into(),
        "2.5.4.45" => "x500uniqueidentifier".into(),
        "0.9.2342.19200300.100.1.25" => "dc".into(),
        "0.9.2342.19200300.100.1.1" => "uid".into(),
        _ => t,
    }
}

/// Parse into RDNs (each a sorted list of AVAs).
fn normalize(s: &str) -> Option<Vec<Vec<Ava>>> {
    let mut rdns: Vec<Vec<Ava>> = Vec::new();
    let mut rdn: Vec<Ava> = Vec::new();
    let mut chars = s.chars().peekable();
    if s.trim().is_empty() {
        return Some(rdns);
    }
    loop {
        // type
        let mut ty = String::new();
        let mut has_eq = false;
        for c in chars.by_ref() {
            if c == '=' {
                has_eq = true;
                break;
            }
            if c == ',' || c == '+' || c == ';' {
                return None;
            }
            ty.push(c);
        }
        let ty = canonical_type(&ty);
        if ty.is_empty() || !has_eq {
            return None;
        }
        // value
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut val = String::new();
        // (char, escaped) so that escaped spaces survive trimming
        let mut raw: Vec<(char, bool)> = Vec::new();
        let mut end = None;
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => raw.push((chars.next()?, true)),
                    c => raw.push((c, true)),
                }
            }
        }
        while let Some(c) = chars.next() {
            match c {
                ',' | ';' | '+' => {
                    end = Some(c);
                    break;
                }
                '\\' => {
                    let n = chars.next()?;
                    if n.is_ascii_hexdigit() {
                        let m = chars.next()?;
                        let byte = u8::from_str_radix(&format!("{n}{m}"), 16).ok()?;
                        // multi-byte UTF-8 escapes are kept as bytes below
                        raw.push((char::from(byte), true));
                    } else {
                        raw.push((n, true));
                    }
                }
                c => raw.push((c, false)),
            }
        }
        // trim unescaped spaces
        while raw.last().is_some_and(|(c, e)| *c == ' ' && !e) {
            raw.pop();
        }
        let mut last_space = false;
        for (c, _) in raw {
            if c.is_whitespace() {
                if !last_space && !val.is_empty() {
                    val.push(' ');
                }
                last_space = true;
            } else {
                val.extend(c.to_lowercase());
                last_space = false;
            }
        }
        if val.ends_with(' ') {
            val.pop();
        }
        rdn.push((ty, val));
        match end {
            Some('+') => continue,
            Some(_) => {
                rdn.sort();
                rdns.push(std::mem::take(&mut rdn));
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            None => {
                rdn.sort();
                rdns.push(rdn);
                return Some(rdns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dn_eq;

    #[test]
    fn names_compare_as_names() {
        assert!(dn_eq("CN=Z1,OU=07", "CN=Z1,OU=07"));
        assert!(dn_eq("CN=U1, OU=07", "CN=U1,OU=07"));
        assert!(dn_eq("cn=z1,ou=07", "CN=Z1,OU=07"));
        assert!(dn_eq("2.5.4.3=Z1,OID.2.5.4.11=07", "CN=Z1,OU=07"));
        assert!(dn_eq("CN=A  B,OU=07", "CN=A B,OU=07"));
        assert!(dn_eq("CN=\"Z1\",OU=07", "CN=Z1,OU=07"));
        assert!(dn_eq("CN=a\\,b,OU=07", "CN=a\\2cb,OU=07"));
        assert!(dn_eq("CN=Z1+OU=07", "OU=07+CN=Z1"));
        assert!(!dn_eq("CN=Z1,OU=07", "OU=07,CN=Z1"));
        assert!(!dn_eq("CN=Z1,OU=07", "CN=Z1,OU=08"));
        assert!(!dn_eq("CN=Z1,OU=07", "CN=Z1"));
        assert!(!dn_eq("CN=a\\,b,OU=07", "CN=a,b,OU=07"));
        assert!(!dn_eq("garbage", "garbage"));
        assert!(!dn_eq("CN=Z1,=07", "CN=Z1,=07"));
    }
}

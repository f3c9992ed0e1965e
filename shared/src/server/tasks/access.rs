//! Who may run a configured task: its `clients` list of names and ids.
//!
//! Owns matching one client against one list, and finding the entries that match more than
//! one paired client. Pure: the caller passes the client's id, the name the registry holds for
//! it, and (for the ambiguity checks) the registry's clients; nothing here reads the registry.

use crate::identity::PeerId;

/// One entry of a task's `clients` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEntry {
    /// A full id (64 hex digits): exactly one key.
    Id(PeerId),
    /// A short id as shown everywhere (`3F2A-91C0`, the first 4 bytes). Only 32 bits: when
    /// it matches more than one paired client it matches none of them.
    Short(String),
    /// A client name as the registry holds it (the client chose it when it paired).
    Name(String),
}

impl ClientEntry {
    /// Read an entry: 64 hex digits are a full id, `XXXX-XXXX` in hex a short id, anything
    /// else a name. A name that looks like an id is therefore never matched by name, so a
    /// client cannot take an id's place by choosing it as its name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("an empty entry matches no client".into());
        }
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return t
                .parse::<PeerId>()
                .map(ClientEntry::Id)
                .map_err(|e| format!("{t:?} is not a valid id: {e}"));
        }
        let b = t.as_bytes();
        if b.len() == 9 && b[4] == b'-' && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_hexdigit) {
            return Ok(ClientEntry::Short(t.to_ascii_uppercase()));
        }
        Ok(ClientEntry::Name(t.to_string()))
    }

    fn hits(&self, id: &PeerId, name: &str) -> bool {
        match self {
            ClientEntry::Id(full) => full == id,
            ClientEntry::Short(short) => id.short() == *short,
            ClientEntry::Name(n) => n == name,
        }
    }
}

impl std::fmt::Display for ClientEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientEntry::Id(id) => write!(f, "{}", id.to_hex()),
            ClientEntry::Short(s) | ClientEntry::Name(s) => f.write_str(s),
        }
    }
}

/// The answer for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// It may run the task.
    Allowed {
        /// A name entry that let it in although it matches more than one paired client:
        /// the operator is warned.
        ambiguous: Option<(String, usize)>,
    },
    /// It may not.
    Forbidden {
        /// A short-id entry that would have let it in but matches several paired clients
        /// (a collision of 32-bit ids is almost certainly made on purpose).
        collision: Option<String>,
    },
}

/// Whether the client `id`, registered as `name`, may run a task with `entries` (`None`:
/// every paired client). `paired` lists every paired client (id, name), for the ambiguity
/// checks.
pub fn check(
    entries: Option<&[ClientEntry]>,
    id: &PeerId,
    name: &str,
    paired: impl Fn() -> Vec<(PeerId, String)>,
) -> Access {
    let Some(entries) = entries else {
        return Access::Allowed { ambiguous: None };
    };
    let hits: Vec<&ClientEntry> = entries.iter().filter(|e| e.hits(id, name)).collect();
    if hits.is_empty() {
        return Access::Forbidden { collision: None };
    }
    let everyone = paired();
    let count = |e: &ClientEntry| everyone.iter().filter(|(i, n)| e.hits(i, n)).count();
    // Exact ids first: they cannot be ambiguous.
    if hits.iter().any(|e| matches!(e, ClientEntry::Id(_))) {
        return Access::Allowed { ambiguous: None };
    }
    let mut collision = None;
    for e in hits.iter().filter(|e| matches!(e, ClientEntry::Short(_))) {
        if count(e) <= 1 {
            return Access::Allowed { ambiguous: None };
        }
        collision = Some(e.to_string());
    }
    match hits.iter().find(|e| matches!(e, ClientEntry::Name(_))) {
        Some(e) => {
            let n = count(e);
            Access::Allowed {
                ambiguous: (n > 1).then(|| (e.to_string(), n)),
            }
        }
        None => Access::Forbidden { collision },
    }
}

/// Entries of `entries` that match more than one of the `paired` clients, with how many.
pub fn ambiguous(entries: &[ClientEntry], paired: &[(PeerId, String)]) -> Vec<(String, usize)> {
    entries
        .iter()
        .filter(|e| !matches!(e, ClientEntry::Id(_)))
        .filter_map(|e| {
            let n = paired.iter().filter(|(i, n)| e.hits(i, n)).count();
            (n > 1).then(|| (e.to_string(), n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: [u8; 4], rest: u8) -> PeerId {
        let mut b = [rest; 32];
        b[..4].copy_from_slice(&first);
        PeerId(b)
    }

    #[test]
    fn entries_are_ids_short_ids_or_names() {
        let full = id([0x3F, 0x2A, 0x91, 0xC0], 7);
        assert_eq!(
            ClientEntry::parse(&full.to_hex()).unwrap(),
            ClientEntry::Id(full)
        );
        assert_eq!(
            ClientEntry::parse("3f2a-91c0").unwrap(),
            ClientEntry::Short("3F2A-91C0".into())
        );
        assert_eq!(
            ClientEntry::parse("kiosk-1").unwrap(),
            ClientEntry::Name("kiosk-1".into())
        );
        assert!(ClientEntry::parse("  ").is_err());
    }

    #[test]
    fn absent_list_allows_everyone_and_a_list_only_its_members() {
        let a = id([1, 2, 3, 4], 1);
        let b = id([5, 6, 7, 8], 2);
        let paired = || vec![(a, "kiosk-1".to_string()), (b, "till".to_string())];
        assert_eq!(
            check(None, &b, "till", paired),
            Access::Allowed { ambiguous: None }
        );
        let list = [ClientEntry::parse("kiosk-1").unwrap()];
        assert_eq!(
            check(Some(&list), &a, "kiosk-1", paired),
            Access::Allowed { ambiguous: None }
        );
        assert_eq!(
            check(Some(&list), &b, "till", paired),
            Access::Forbidden { collision: None }
        );
        let by_id = [ClientEntry::parse(&b.short()).unwrap()];
        assert_eq!(
            check(Some(&by_id), &b, "till", paired),
            Access::Allowed { ambiguous: None }
        );
        assert_eq!(
            check(Some(&by_id), &a, "kiosk-1", paired),
            Access::Forbidden { collision: None }
        );
    }

    #[test]
    fn a_name_that_looks_like_an_id_is_no_way_in() {
        let a = id([1, 2, 3, 4], 1);
        let list = [ClientEntry::parse("AAAA-BBBB").unwrap()];
        let paired = || vec![(a, "AAAA-BBBB".to_string())];
        assert_eq!(
            check(Some(&list), &a, "AAAA-BBBB", paired),
            Access::Forbidden { collision: None }
        );
    }

    #[test]
    fn shared_names_warn_and_colliding_short_ids_let_nobody_in() {
        let a = id([1, 2, 3, 4], 1);
        let b = id([1, 2, 3, 4], 2);
        let paired = || vec![(a, "kiosk".to_string()), (b, "kiosk".to_string())];
        let names = [ClientEntry::parse("kiosk").unwrap()];
        assert_eq!(
            check(Some(&names), &b, "kiosk", paired),
            Access::Allowed {
                ambiguous: Some(("kiosk".into(), 2))
            }
        );
        let short = [ClientEntry::parse(&a.short()).unwrap()];
        assert_eq!(
            check(Some(&short), &a, "kiosk", paired),
            Access::Forbidden {
                collision: Some(a.short())
            }
        );
        // The full id still lets its owner in.
        let full = [ClientEntry::Id(a), short[0].clone()];
        assert_eq!(
            check(Some(&full), &a, "kiosk", paired),
            Access::Allowed { ambiguous: None }
        );
        assert_eq!(
            ambiguous(&[names[0].clone(), short[0].clone()], &paired()),
            vec![("kiosk".into(), 2), (a.short(), 2)]
        );
    }
}

//! The check requests a load run cycles through: a requests file, or a mix
//! over the quickstart policy.

/// Why a requests file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemsError {
    #[error("line {0}: expected `TENANT SUBJECT PERMISSION`")]
    Line(usize),
    #[error("no requests in the file")]
    Empty,
}

/// One request to cycle through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub tenant: String,
    pub subject: String,
    pub permission: String,
}

pub fn quickstart_items() -> Vec<Item> {
    [
        ("alice", "documents:view"),
        ("alice", "documents:edit:locked"),
        ("alice", "documents:edit:readme"),
        ("bob", "documents:view"),
        ("carol", "documents:view"),
        ("nobody", "documents:view"),
    ]
    .into_iter()
    .map(|(s, p)| Item {
        tenant: "acme".into(),
        subject: s.into(),
        permission: p.into(),
    })
    .collect()
}

/// Parses a requests file: `TENANT SUBJECT PERMISSION` per line; `#` comments.
pub fn parse_items(text: &str) -> Result<Vec<Item>, ItemsError> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [tenant, subject, permission] = parts.as_slice() else {
            return Err(ItemsError::Line(n + 1));
        };
        items.push(Item {
            tenant: (*tenant).into(),
            subject: (*subject).into(),
            permission: (*permission).into(),
        });
    }
    if items.is_empty() {
        return Err(ItemsError::Empty);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_files() {
        let items = parse_items("# comment\nacme alice documents:view\n\n t  u  p \n").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].permission, "p");
        assert!(
            parse_items("acme alice")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        assert!(parse_items("# nothing").is_err());
    }
}

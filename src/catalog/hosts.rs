//! Who the hosts are: `workflows/hosts.json` gives each Cal.com user a
//! service books a name, so answers say "Chloe Stylist" beside user id 3 and
//! a front end may ask for "chloe" instead of knowing the id. The file is
//! optional (a catalogue without it answers with ids alone); once it exists
//! it must name every host a service uses, so no answer is half named.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::CatalogError;

/// The file in the catalogue folder that names the hosts (not a service).
pub const FILE: &str = "hosts.json";
const NAME_CHARS_MAX: usize = 100;

/// Host names by Cal.com user id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    names: BTreeMap<u64, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("{given:?} is not a host; give a host id or name: {known}")]
    Unknown { given: String, known: String },
    #[error(
        "{given:?} is the first name of more than one host; give the full name or the id: {known}"
    )]
    Ambiguous { given: String, known: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    hosts: Vec<HostEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    id: u64,
    name: String,
}

impl Hosts {
    pub fn name(&self, id: u64) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The host a request means: a Cal.com user id, a full name or, when
    /// only one host has it, a first name (case and spaces around ignored).
    pub fn resolve(&self, given: &str) -> Result<u64, HostError> {
        let wanted = given.trim();
        if let Ok(id) = wanted.parse::<u64>() {
            return Ok(id);
        }
        let wanted_lower = wanted.to_lowercase();
        let same = |a: &str| a.to_lowercase() == wanted_lower;
        if let Some((id, _)) = self.names.iter().find(|(_, n)| same(n)) {
            return Ok(*id);
        }
        let by_first: Vec<u64> = self
            .names
            .iter()
            .filter(|(_, n)| n.split_whitespace().next().is_some_and(same))
            .map(|(id, _)| *id)
            .collect();
        match by_first[..] {
            [id] => Ok(id),
            [] => Err(HostError::Unknown {
                given: given.to_string(),
                known: self.known(),
            }),
            _ => Err(HostError::Ambiguous {
                given: given.to_string(),
                known: self.known(),
            }),
        }
    }

    /// A host as people read it: "3 (Chloe Stylist)", or "3" unnamed.
    pub fn label(&self, id: u64) -> String {
        match self.name(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        }
    }

    /// Every host as "3 (Chloe Stylist)", for error messages.
    pub fn known(&self) -> String {
        if self.names.is_empty() {
            return format!(
                "this catalogue names no hosts, so give a Cal.com user id (or name them in workflows/{FILE})"
            );
        }
        self.names
            .keys()
            .map(|id| self.label(*id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn load(file: &Path) -> Result<Hosts, CatalogError> {
        let text = std::fs::read_to_string(file).map_err(|e| CatalogError::Io {
            path: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        Hosts::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Hosts, CatalogError> {
        let raw: HostsFile = serde_json::from_str(text).map_err(|e| CatalogError::Parse {
            file: file.to_path_buf(),
            problem: format!(
                "{e}; fix the JSON: {{\"hosts\": [{{\"id\": 3, \"name\": \"Chloe Stylist\"}}]}}"
            ),
        })?;
        let mut hosts = Hosts::default();
        for (i, entry) in raw.hosts.into_iter().enumerate() {
            hosts.add(entry).map_err(|problem| CatalogError::Invalid {
                file: file.to_path_buf(),
                field: format!("hosts[{i}]"),
                problem,
            })?;
        }
        Ok(hosts)
    }

    fn add(&mut self, entry: HostEntry) -> Result<(), String> {
        let name = entry.name.trim().to_string();
        if entry.id == 0 {
            return Err("id must be the host's Cal.com user id (> 0)".into());
        }
        if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
            return Err(format!("name must be 1-{NAME_CHARS_MAX} characters"));
        }
        if name.parse::<u64>().is_ok() {
            return Err(format!(
                "name {name:?} is a number, which requests read as a host id; give the person's name"
            ));
        }
        if self.names.contains_key(&entry.id) {
            return Err(format!("host {} is named twice", entry.id));
        }
        if let Some((other, _)) = self
            .names
            .iter()
            .find(|(_, n)| n.to_lowercase() == name.to_lowercase())
        {
            return Err(format!(
                "name {name:?} is also host {other}'s; names must differ, since requests may give one"
            ));
        }
        self.names.insert(entry.id, name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salon() -> Hosts {
        Hosts::parse(
            Path::new("hosts.json"),
            r#"{"hosts": [{"id": 1, "name": "Anna Colourist"}, {"id": 2, "name": "Ben Stylist"},
                          {"id": 3, "name": "Chloe Stylist"}, {"id": 5, "name": "Ben Barber"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_host_is_found_by_id_full_name_or_unique_first_name() {
        let hosts = salon();
        assert_eq!(hosts.resolve("3"), Ok(3));
        assert_eq!(hosts.resolve(" chloe stylist "), Ok(3));
        assert_eq!(hosts.resolve("Chloe"), Ok(3));
        assert_eq!(hosts.resolve("ben barber"), Ok(5));
        assert_eq!(hosts.name(1), Some("Anna Colourist"));
    }

    #[test]
    fn an_unknown_or_shared_first_name_is_refused_with_every_host_listed() {
        let hosts = salon();
        let unknown = hosts.resolve("zoe").unwrap_err().to_string();
        assert!(
            unknown.contains("\"zoe\" is not a host") && unknown.contains("3 (Chloe Stylist)"),
            "{unknown}"
        );
        let shared = hosts.resolve("ben").unwrap_err().to_string();
        assert!(
            shared.contains("more than one host") && shared.contains("5 (Ben Barber)"),
            "{shared}"
        );
        let none = Hosts::default().resolve("chloe").unwrap_err().to_string();
        assert!(none.contains("names no hosts"), "{none}");
    }

    #[test]
    fn a_bad_hosts_file_names_the_entry_and_the_fix() {
        let cases = [
            (
                r#"{"hosts": [{"id": 0, "name": "A"}]}"#,
                "hosts[0]: id must be",
            ),
            (
                r#"{"hosts": [{"id": 1, "name": " "}]}"#,
                "name must be 1-100",
            ),
            (r#"{"hosts": [{"id": 1, "name": "42"}]}"#, "is a number"),
            (
                r#"{"hosts": [{"id": 1, "name": "A"}, {"id": 1, "name": "B"}]}"#,
                "hosts[1]: host 1 is named twice",
            ),
            (
                r#"{"hosts": [{"id": 1, "name": "Ann"}, {"id": 2, "name": "ann"}]}"#,
                "also host 1's",
            ),
            (
                r#"{"hosts": [{"id": 1, "nme": "A"}]}"#,
                "unknown field `nme`",
            ),
        ];
        for (text, expected) in cases {
            let e = Hosts::parse(Path::new("hosts.json"), text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("hosts.json") && e.contains(expected),
                "expected {expected:?} in {e}"
            );
        }
    }
}

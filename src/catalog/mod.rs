//! The service catalogue: what a business sells, as data in `workflows/*.json`.
//! A service is an ordered list of segments; each segment names who may do it
//! and, for each of those people, the Cal.com event type to book (an event
//! type belongs to one user in Cal.com, so "cut by Ben or Chloe" is two event
//! types). Loading validates everything up front and names the file and field
//! of the first problem, so a bad catalogue never reaches a running engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod hosts;
pub use hosts::{HostError, Hosts};

/// A whole service may not take longer than a day: nothing a salon sells does,
/// and it bounds every availability search.
pub const SERVICE_MINUTES_MAX: u32 = 24 * 60;
pub const SEGMENTS_MAX: usize = 16;

/// Who can do a segment, and which of their Cal.com event types to book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StaffOption {
    /// Cal.com user id of the host.
    pub host: u64,
    pub event_type_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub duration_min: u32,
    /// Allowed staff in order of preference.
    pub staff: Vec<StaffOption>,
    /// Gap before the next segment starts (processing time, drying...).
    pub pause_after_min: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub segments: Vec<Segment>,
}

impl Service {
    /// Minutes from the start of segment `index` relative to the service start.
    pub fn offset_min(&self, index: usize) -> u32 {
        self.segments[..index]
            .iter()
            .map(|s| s.duration_min + s.pause_after_min)
            .sum()
    }

    /// Minutes from the service start to the end of its last segment.
    pub fn total_min(&self) -> u32 {
        let last = self.segments.len() - 1;
        self.offset_min(last) + self.segments[last].duration_min
    }

    pub fn is_composite(&self) -> bool {
        self.segments.len() > 1
    }
}

/// All services, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
    hosts: Hosts,
}

impl Catalog {
    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// Who the hosts are (empty when the catalogue names none).
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    pub fn ids(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }

    /// Every event type id any service books: what must exist in Cal.com.
    pub fn event_type_ids(&self) -> BTreeSet<u64> {
        self.services()
            .flat_map(|s| &s.segments)
            .flat_map(|seg| seg.staff.iter().map(|o| o.event_type_id))
            .collect()
    }

    /// Builds a catalogue from services already in memory (tests, simulation),
    /// applying the same checks as loading from files.
    pub fn from_services(services: Vec<Service>) -> Result<Self, CatalogError> {
        let mut catalog = Catalog::default();
        for service in services {
            let file = PathBuf::from(format!("<{}>", service.id));
            validate(&file, &service)?;
            catalog.insert(file, service)?;
        }
        Ok(catalog)
    }

    /// Loads and validates every `*.json` file in `dir` (one service each,
    /// and `hosts.json` naming the hosts).
    pub fn load_dir(dir: &Path) -> Result<Self, CatalogError> {
        let entries = std::fs::read_dir(dir).map_err(|e| CatalogError::Io {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| !p.ends_with(hosts::FILE))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CatalogError::Empty {
                dir: dir.to_path_buf(),
            });
        }
        let mut catalog = Catalog::default();
        for file in files {
            let service = load_file(&file)?;
            catalog.insert(file, service)?;
        }
        let hosts_file = dir.join(hosts::FILE);
        if hosts_file.exists() {
            catalog.hosts = Hosts::load(&hosts_file)?;
            catalog.check_named(&hosts_file)?;
        }
        Ok(catalog)
    }

    /// Once hosts are named, every host a service books must be.
    fn check_named(&self, hosts_file: &Path) -> Result<(), CatalogError> {
        let unnamed = self.services().find_map(|s| {
            s.segments
                .iter()
                .flat_map(|seg| &seg.staff)
                .find(|o| self.hosts.name(o.host).is_none())
                .map(|o| (s, o.host))
        });
        match unnamed {
            None => Ok(()),
            Some((service, host)) => Err(CatalogError::Invalid {
                file: hosts_file.to_path_buf(),
                field: "hosts".into(),
                problem: format!(
                    "host {host} (booked by service {:?}) has no name; add {{\"id\": {host}, \"name\": \"...\"}}",
                    service.id
                ),
            }),
        }
    }

    fn insert(&mut self, file: PathBuf, service: Service) -> Result<(), CatalogError> {
        if self.services.contains_key(&service.id) {
            return Err(CatalogError::Invalid {
                file,
                field: "id".into(),
                problem: format!(
                    "service id {:?} is already used by another file; ids must be unique",
                    service.id
                ),
            });
        }
        self.services.insert(service.id.clone(), service);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "catalog: cannot read {path}: {reason}; pass the folder of service files with --workflows"
    )]
    Io { path: PathBuf, reason: String },
    #[error("catalog: {dir} holds no *.json service files; add one (see workflows/haircut.json)")]
    Empty { dir: PathBuf },
    #[error("catalog: {file}: {problem}")]
    Parse { file: PathBuf, problem: String },
    #[error("catalog: {file}: {field}: {problem}")]
    Invalid {
        file: PathBuf,
        field: String,
        problem: String,
    },
}

/// The file format: like `Segment`, but hosts may be given in the short form
/// `"event_type_id": 104, "hosts": [1]` when one host does the segment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    id: String,
    name: String,
    segments: Vec<SegmentFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentFile {
    name: String,
    duration_min: i64,
    #[serde(default)]
    pause_after_min: i64,
    #[serde(default)]
    event_type_id: Option<u64>,
    /// `staff` is the older name of the same list, still read.
    #[serde(alias = "staff")]
    hosts: Vec<StaffFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StaffFile {
    Host(u64),
    Option(StaffOptionFile),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffOptionFile {
    host: u64,
    event_type_id: u64,
}

fn load_file(file: &Path) -> Result<Service, CatalogError> {
    let text = std::fs::read_to_string(file).map_err(|e| CatalogError::Io {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_service(file, &text)
}

/// Parses and validates one service file's text; `file` names it in errors.
pub fn parse_service(file: &Path, text: &str) -> Result<Service, CatalogError> {
    let raw: ServiceFile = serde_json::from_str(text).map_err(|e| CatalogError::Parse {
        file: file.to_path_buf(),
        problem: format!("{e}; fix the JSON (one service object per file)"),
    })?;
    let service = normalise(file, raw)?;
    validate(file, &service)?;
    Ok(service)
}

fn normalise(file: &Path, raw: ServiceFile) -> Result<Service, CatalogError> {
    let segments = raw
        .segments
        .into_iter()
        .enumerate()
        .map(|(i, seg)| normalise_segment(file, i, seg))
        .collect::<Result<_, _>>()?;
    Ok(Service {
        id: raw.id,
        name: raw.name,
        segments,
    })
}

fn normalise_segment(file: &Path, i: usize, seg: SegmentFile) -> Result<Segment, CatalogError> {
    let invalid = |field: &str, problem: String| CatalogError::Invalid {
        file: file.to_path_buf(),
        field: format!("segments[{i}] ({:?}).{field}", seg.name),
        problem,
    };
    let duration_min = u32::try_from(seg.duration_min)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| {
            invalid(
                "duration_min",
                format!("{} is not a positive number of minutes", seg.duration_min),
            )
        })?;
    let pause_after_min = u32::try_from(seg.pause_after_min).map_err(|_| {
        invalid(
            "pause_after_min",
            format!("{} is negative; use 0 for no pause", seg.pause_after_min),
        )
    })?;
    let mut staff = Vec::with_capacity(seg.hosts.len());
    for entry in &seg.hosts {
        staff.push(match (entry, seg.event_type_id) {
            (StaffFile::Option(o), None) => StaffOption {
                host: o.host,
                event_type_id: o.event_type_id,
            },
            (StaffFile::Host(host), Some(event_type_id)) if seg.hosts.len() == 1 => StaffOption {
                host: *host,
                event_type_id,
            },
            (StaffFile::Host(_), Some(_)) => {
                return Err(invalid(
                    "hosts",
                    "a segment-level event_type_id books one user's event type, so it allows \
                     exactly one host; list {\"host\", \"event_type_id\"} pairs instead"
                        .into(),
                ));
            }
            (StaffFile::Host(_), None) => {
                return Err(invalid(
                    "hosts",
                    "a bare host id needs the segment's event_type_id; or list \
                     {\"host\", \"event_type_id\"} pairs"
                        .into(),
                ));
            }
            (StaffFile::Option(_), Some(_)) => {
                return Err(invalid(
                    "event_type_id",
                    "give the event type either per staff entry or once for the segment, not both"
                        .into(),
                ));
            }
        });
    }
    Ok(Segment {
        name: seg.name,
        duration_min,
        staff,
        pause_after_min,
    })
}

fn validate(file: &Path, s: &Service) -> Result<(), CatalogError> {
    let invalid = |field: String, problem: String| CatalogError::Invalid {
        file: file.to_path_buf(),
        field,
        problem,
    };
    let id_ok = !s.id.is_empty()
        && s.id.len() <= 64
        && s.id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return Err(invalid(
            "id".into(),
            format!("{:?} must be 1-64 characters of a-z, 0-9 and '-'", s.id),
        ));
    }
    if s.name.trim().is_empty() {
        return Err(invalid(
            "name".into(),
            "is empty; give the service a name customers see".into(),
        ));
    }
    if s.segments.is_empty() || s.segments.len() > SEGMENTS_MAX {
        return Err(invalid(
            "segments".into(),
            format!(
                "has {} entries; a service needs 1 to {SEGMENTS_MAX}",
                s.segments.len()
            ),
        ));
    }
    for (i, seg) in s.segments.iter().enumerate() {
        validate_segment(file, i, seg)?;
    }
    let last = s.segments.len() - 1;
    if s.segments[last].pause_after_min != 0 {
        return Err(invalid(
            format!(
                "segments[{last}] ({:?}).pause_after_min",
                s.segments[last].name
            ),
            "the last segment cannot have a pause after it; set it to 0".into(),
        ));
    }
    let total: u64 = s
        .segments
        .iter()
        .map(|g| u64::from(g.duration_min) + u64::from(g.pause_after_min))
        .sum();
    if total > u64::from(SERVICE_MINUTES_MAX) {
        return Err(invalid(
            "segments".into(),
            format!(
                "add up to {total} minutes; a service may take at most 24 h ({SERVICE_MINUTES_MAX} min)"
            ),
        ));
    }
    Ok(())
}

fn validate_segment(file: &Path, i: usize, seg: &Segment) -> Result<(), CatalogError> {
    let invalid = |field: &str, problem: String| CatalogError::Invalid {
        file: file.to_path_buf(),
        field: format!("segments[{i}] ({:?}).{field}", seg.name),
        problem,
    };
    if seg.name.trim().is_empty() {
        return Err(invalid("name", "is empty".into()));
    }
    if seg.duration_min == 0 {
        return Err(invalid(
            "duration_min",
            "0 is not a positive number of minutes".into(),
        ));
    }
    if seg.staff.is_empty() {
        return Err(invalid(
            "hosts",
            "is empty; list at least one {\"host\", \"event_type_id\"} who can do this segment"
                .into(),
        ));
    }
    let mut hosts = BTreeSet::new();
    for option in &seg.staff {
        if option.host == 0 || option.event_type_id == 0 {
            return Err(invalid(
                "hosts",
                format!(
                    "{option:?}: host and event_type_id must be Cal.com ids (> 0); take them from \
                     Cal.com's event type settings"
                ),
            ));
        }
        if !hosts.insert(option.host) {
            return Err(invalid(
                "hosts",
                format!("host {} is listed twice", option.host),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<Service, CatalogError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.json");
        std::fs::write(&file, json).unwrap();
        load_file(&file)
    }

    fn error_of(json: &str) -> String {
        check(json).unwrap_err().to_string()
    }

    const GOOD: &str = r#"{"id":"colour-and-cut","name":"Colour and cut","segments":[
        {"name":"colour","duration_min":30,"pause_after_min":40,"staff":[{"host":1,"event_type_id":101}]},
        {"name":"cut","duration_min":45,"staff":[{"host":2,"event_type_id":201},{"host":3,"event_type_id":301}]}]}"#;

    #[test]
    fn a_composite_service_loads_with_offsets_and_total() {
        let s = check(GOOD).unwrap();
        assert_eq!(s.offset_min(1), 70);
        assert_eq!(s.total_min(), 115);
        assert!(s.is_composite());
    }

    #[test]
    fn the_short_hosts_form_needs_exactly_one_host() {
        let s = check(r#"{"id":"c","name":"C","segments":[{"name":"c","duration_min":15,"event_type_id":104,"hosts":[1]}]}"#).unwrap();
        assert_eq!(
            s.segments[0].staff,
            vec![StaffOption {
                host: 1,
                event_type_id: 104
            }]
        );
        let e = error_of(
            r#"{"id":"c","name":"C","segments":[{"name":"c","duration_min":15,"event_type_id":104,"hosts":[1,2]}]}"#,
        );
        assert!(
            e.contains("segments[0] (\"c\").hosts") && e.contains("exactly one host"),
            "{e}"
        );
    }

    #[test]
    fn every_bad_field_is_named_with_its_file() {
        let cases = [
            (
                GOOD.replace("\"duration_min\":30", "\"duration_min\":0"),
                "segments[0] (\"colour\").duration_min",
            ),
            (
                GOOD.replace("\"pause_after_min\":40", "\"pause_after_min\":-5"),
                "pause_after_min: -5 is negative",
            ),
            (
                GOOD.replace("[{\"host\":1,\"event_type_id\":101}]", "[]"),
                "hosts: is empty",
            ),
            (
                GOOD.replace("\"name\":\"cut\"", "\"name\":\"cut\",\"colour\":1"),
                "unknown field `colour`",
            ),
            (
                GOOD.replace("\"pause_after_min\":40", "\"pause_after_min\":1400"),
                "at most 24 h",
            ),
            (
                GOOD.replace("colour-and-cut", "Colour Cut"),
                "id: \"Colour Cut\"",
            ),
            (
                GOOD.replace(
                    "{\"host\":3,\"event_type_id\":301}",
                    "{\"host\":2,\"event_type_id\":301}",
                ),
                "host 2 is listed twice",
            ),
            ("{not json".to_string(), "fix the JSON"),
        ];
        for (json, expected) in cases {
            let e = error_of(&json);
            assert!(
                e.contains("svc.json") && e.contains(expected),
                "expected {expected:?} in {e}"
            );
        }
    }

    #[test]
    fn a_hosts_file_must_name_every_host_a_service_books() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), GOOD).unwrap();
        let hosts = dir.path().join("hosts.json");
        std::fs::write(
            &hosts,
            r#"{"hosts":[{"id":1,"name":"Anna"},{"id":2,"name":"Ben"}]}"#,
        )
        .unwrap();
        let e = Catalog::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(
                "hosts.json: hosts: host 3 (booked by service \"colour-and-cut\") has no name"
            ),
            "{e}"
        );
        std::fs::write(
            &hosts,
            r#"{"hosts":[{"id":1,"name":"Anna"},{"id":2,"name":"Ben"},{"id":3,"name":"Chloe"}]}"#,
        )
        .unwrap();
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        assert_eq!(catalog.ids(), ["colour-and-cut"]);
        assert_eq!(catalog.hosts().name(3), Some("Chloe"));
    }

    #[test]
    fn duplicate_ids_across_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.json"), GOOD).unwrap();
        let e = Catalog::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("b.json") && e.contains("already used"), "{e}");
    }

    #[test]
    fn the_shipped_catalogue_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let catalog = Catalog::load_dir(&dir).unwrap();
        let ids = catalog.ids();
        for id in [
            "haircut",
            "colour-and-cut",
            "highlights-toner-blowdry",
            "consultation",
        ] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        assert_eq!(
            catalog
                .get("highlights-toner-blowdry")
                .unwrap()
                .segments
                .len(),
            3
        );
        assert_eq!(catalog.hosts().label(3), "3 (Chloe Stylist)");
    }
}

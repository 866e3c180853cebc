//! Named address lists the operator keeps as files (`[ip_lists]`): hosting
//! and cloud ranges, VPN exits, Tor exits — whatever the organisation wants
//! a rule to name. seeds/003's abnormal-IP monitoring flags a key calling
//! sensitive APIs from a hosting / VPN / Tor range; the rule field
//! `source_ip.list` holds the names of the lists an event's address is in.
//!
//! A list is read from one or more files, each in any of these shapes:
//! - text: one address or CIDR per line (the first token that is one; `#`
//!   comments and blank lines skipped), which also reads Tor's bulk exit list
//!   and the `ExitAddress` lines of its exit-addresses document;
//! - JSON: AWS `ip-ranges.json` (`ip_prefix`, `ipv6_prefix`), Google Cloud
//!   `cloud.json` (`ipv4Prefix`, `ipv6Prefix`), Azure service tags
//!   (`addressPrefixes`) — every such field anywhere in the document.
//!
//! One set of lists per process ([`install`], [`current`]), read at start and
//! again at every rule reload (SIGHUP, the rules directory changing, the
//! API), so refreshed files take effect without a restart. A file that cannot
//! be read, or lines that are not addresses, are reported and skipped.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use serde::Serialize;

/// `[ip_lists]`: list name → files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpListSettings {
    pub lists: Vec<(String, Vec<PathBuf>)>,
}

/// Ranges as closed intervals of addresses (IPv4 mapped into IPv6), sorted and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn from_networks(mut ranges: Vec<(u128, u128)>) -> Ranges {
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Ranges(merged)
    }

    fn contains(&self, address: u128) -> bool {
        let after = self.0.partition_point(|(start, _)| *start <= address);
        after > 0 && self.0[after - 1].1 >= address
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn range_of(network: ipnet::IpNet) -> (u128, u128) {
    (to_u128(network.network()), to_u128(network.broadcast()))
}

/// One list as loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListSummary {
    pub name: String,
    pub files: Vec<String>,
    /// Networks read (before merging).
    pub networks: usize,
    /// Lines or files that could not be read, with where.
    pub problems: Vec<String>,
}

/// The loaded lists.
#[derive(Clone, Debug, Default)]
pub struct IpLists {
    lists: Vec<(String, Ranges)>,
    pub summaries: Vec<ListSummary>,
}

/// Problems reported per file at most (the rest are counted).
const MAX_PROBLEMS: usize = 10;

impl IpLists {
    /// Read every configured list (problems are kept in the summaries).
    pub fn load(settings: &IpListSettings) -> IpLists {
        let mut loaded = IpLists::default();
        for (name, files) in &settings.lists {
            let mut networks = Vec::new();
            let mut problems = Vec::new();
            for file in files {
                read_file(file, &mut networks, &mut problems);
            }
            loaded.summaries.push(ListSummary {
                name: name.clone(),
                files: files.iter().map(|file| file.display().to_string()).collect(),
                networks: networks.len(),
                problems,
            });
            loaded.lists.push((name.clone(), Ranges::from_networks(networks)));
        }
        loaded
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Lists given inline (a rule test's `ip_lists`): name → addresses and CIDRs.
    pub fn from_texts(lists: &[(String, Vec<String>)]) -> Result<IpLists, String> {
        let mut loaded = IpLists::default();
        for (name, texts) in lists {
            let mut networks = Vec::new();
            for text in texts {
                let network = parse_network(text)
                    .ok_or_else(|| format!("`{text}` in list `{name}` is not an address or CIDR"))?;
                networks.push(range_of(network));
            }
            loaded.lists.push((name.clone(), Ranges::from_networks(networks)));
        }
        Ok(loaded)
    }

    /// The names of the lists holding `ip`, in configuration order.
    pub fn lists_of(&self, ip: IpAddr) -> impl Iterator<Item = &str> {
        let address = to_u128(ip);
        self.lists
            .iter()
            .filter(move |(_, ranges)| ranges.contains(address))
            .map(|(name, _)| name.as_str())
    }
}

fn read_file(path: &Path, networks: &mut Vec<(u128, u128)>, problems: &mut Vec<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.push(format!("{}: {error}", path.display()));
            return;
        }
    };
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(document) => {
                let before = networks.len();
                collect_json(&document, networks);
                if networks.len() == before {
                    problems.push(format!(
                        "{}: a JSON document with no ip_prefix, ipv6_prefix, ipv4Prefix, ipv6Prefix or addressPrefixes",
                        path.display()
                    ));
                }
            }
            Err(error) => problems.push(format!("{}: not JSON: {error}", path.display())),
        }
        return;
    }
    let mut bad = 0usize;
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let found = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .find_map(parse_network);
        match found {
            Some(network) => networks.push(range_of(network)),
            // The other lines of Tor's exit-addresses document.
            None if ["ExitNode", "Published", "LastStatus"]
                .iter()
                .any(|keyword| line.starts_with(keyword)) => {}
            None => {
                bad += 1;
                if bad <= MAX_PROBLEMS {
                    problems.push(format!(
                        "{}:{}: no address or CIDR in {line:?}",
                        path.display(),
                        index + 1
                    ));
                }
            }
        }
    }
    if bad > MAX_PROBLEMS {
        problems.push(format!(
            "{}: {} more lines without an address",
            path.display(),
            bad - MAX_PROBLEMS
        ));
    }
}

fn parse_network(token: &str) -> Option<ipnet::IpNet> {
    let token = token.trim();
    if token.contains('/') {
        token.parse::<ipnet::IpNet>().ok().map(|network| network.trunc())
    } else {
        token.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
    }
}

fn collect_json(value: &serde_json::Value, networks: &mut Vec<(u128, u128)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("ip_prefix" | "ipv6_prefix" | "ipv4Prefix" | "ipv6Prefix", serde_json::Value::String(text)) => {
                        if let Some(network) = parse_network(text) {
                            networks.push(range_of(network));
                        }
                    }
                    ("addressPrefixes", serde_json::Value::Array(items)) => {
                        for network in items.iter().filter_map(|item| parse_network(item.as_str()?)) {
                            networks.push(range_of(network));
                        }
                    }
                    _ => collect_json(value, networks),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_json(item, networks);
            }
        }
        _ => {}
    }
}

static CURRENT: LazyLock<ArcSwap<IpLists>> = LazyLock::new(|| ArcSwap::from_pointee(IpLists::default()));

/// Read the configured lists for this process, logging what was read and
/// what was not.
pub fn install(settings: &IpListSettings) {
    if settings.lists.is_empty() && CURRENT.load().is_empty() {
        return;
    }
    let lists = IpLists::load(settings);
    for summary in &lists.summaries {
        tracing::info!(list = %summary.name, networks = summary.networks, "address list read");
        for problem in &summary.problems {
            tracing::warn!(list = %summary.name, %problem, "address list: skipped");
        }
    }
    CURRENT.store(Arc::new(lists));
}

thread_local! {
    /// Lists a rule test brings (`scoped`), in place of the configured ones.
    static SCOPED: std::cell::RefCell<Option<Arc<IpLists>>> = const { std::cell::RefCell::new(None) };
}

/// The lists in use (on this thread, a rule test's own while it runs).
pub fn current() -> Arc<IpLists> {
    if let Some(scoped) = SCOPED.with(|scoped| scoped.borrow().clone()) {
        return scoped;
    }
    CURRENT.load_full()
}

/// Use `lists` on this thread until the guard is dropped (a rule test's `ip_lists`).
pub fn scoped(lists: Arc<IpLists>) -> ScopedLists {
    ScopedLists(SCOPED.with(|scoped| scoped.replace(Some(lists))))
}

/// Restores the lists in use before `scoped` when dropped.
pub struct ScopedLists(Option<Arc<IpLists>>);

impl Drop for ScopedLists {
    fn drop(&mut self) {
        let previous = self.0.take();
        SCOPED.with(|scoped| *scoped.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_shape_reads_and_lookups_find_their_lists() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let aws = write(
            "ip-ranges.json",
            r#"{"syncToken":"1","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON"},
               {"ip_prefix":"52.94.76.0/22","service":"EC2"}],
               "ipv6_prefixes":[{"ipv6_prefix":"2600:1f18::/36","service":"EC2"}]}"#,
        );
        let gcp = write(
            "cloud.json",
            r#"{"prefixes":[{"ipv4Prefix":"34.80.0.0/15","scope":"asia-east1"}]}"#,
        );
        let tor = write(
            "exit-addresses",
            "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-12-05 10:00:00\n\
             LastStatus 2026-12-05 11:00:00\nExitAddress 185.220.101.7 2026-12-05 11:02:11\n",
        );
        let vpn = write(
            "vpn.txt",
            "# exits\n198.51.100.0/24 some-vpn\n203.0.113.9\nnot an address\n\n2001:db8:1::/48,another\n",
        );
        let settings = IpListSettings {
            lists: vec![
                ("hosting".into(), vec![aws, gcp, dir.path().join("missing.txt")]),
                ("tor".into(), vec![tor]),
                ("vpn".into(), vec![vpn]),
            ],
        };
        let lists = IpLists::load(&settings);
        let of = |text: &str| lists.lists_of(text.parse().unwrap()).collect::<Vec<_>>();
        assert_eq!(of("3.5.141.200"), ["hosting"]);
        assert_eq!(of("52.94.79.255"), ["hosting"]);
        assert_eq!(of("52.94.80.0"), Vec::<&str>::new());
        assert_eq!(of("2600:1f18::1"), ["hosting"]);
        assert_eq!(of("34.81.255.255"), ["hosting"]);
        assert_eq!(of("185.220.101.7"), ["tor"]);
        assert_eq!(of("198.51.100.200"), ["vpn"]);
        assert_eq!(of("203.0.113.9"), ["vpn"]);
        assert_eq!(of("203.0.113.10"), Vec::<&str>::new());
        assert_eq!(of("2001:db8:1:ffff::1"), ["vpn"]);
        let hosting = &lists.summaries[0];
        assert_eq!(hosting.networks, 4);
        assert!(hosting.problems[0].contains("missing.txt"), "{:?}", hosting.problems);
        assert_eq!(lists.summaries[1].networks, 1);
        assert!(
            lists.summaries[1].problems.is_empty(),
            "{:?}",
            lists.summaries[1].problems
        );
        let vpn = &lists.summaries[2];
        assert_eq!(vpn.networks, 3);
        assert_eq!(vpn.problems.len(), 1);
        assert!(vpn.problems[0].contains("vpn.txt:4:"), "{:?}", vpn.problems);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let ranges = Ranges::from_networks(vec![(10, 20), (21, 30), (15, 25), (40, 50)]);
        assert_eq!(ranges.0, [(10, 30), (40, 50)]);
        assert!(ranges.contains(10) && ranges.contains(30) && ranges.contains(45));
        assert!(!ranges.contains(9) && !ranges.contains(31) && !ranges.contains(51));
    }
}

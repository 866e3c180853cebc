//! A small MaxMind DB (MMDB v2) writer for tests: an IPv4 search tree with
//! 24-bit records and a data section of maps, strings and integers — enough
//! to stand in for GeoLite2 City and ASN databases.

/// A value of the data section.
pub enum Mmdb<'a> {
    Str(&'a str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, Mmdb<'a>)>),
    Array(Vec<Mmdb<'a>>),
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// Networks and their data, written out by `finish`.
#[derive(Default)]
pub struct MmdbWriter {
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 285, "test values stay small");
    let (size_bits, extra) = if size < 29 {
        (size as u8, None)
    } else {
        (29, Some((size - 29) as u8))
    };
    if kind <= 7 {
        out.push((kind << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|byte| **byte == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(out: &mut Vec<u8>, value: &Mmdb<'_>) {
    match value {
        Mmdb::Str(text) => {
            control(out, 2, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Mmdb::U16(number) => unsigned(out, 5, u64::from(*number)),
        Mmdb::U32(number) => unsigned(out, 6, u64::from(*number)),
        Mmdb::U64(number) => unsigned(out, 9, *number),
        Mmdb::Map(entries) => {
            control(out, 7, entries.len());
            for (key, value) in entries {
                encode(out, &Mmdb::Str(key));
                encode(out, value);
            }
        }
        Mmdb::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

impl MmdbWriter {
    pub fn new() -> MmdbWriter {
        MmdbWriter {
            nodes: vec![[Record::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// `network` is an IPv4 CIDR (`203.0.113.0/24`).
    pub fn insert(&mut self, network: &str, value: Mmdb<'_>) {
        let (address, prefix) = network.split_once('/').expect("a CIDR");
        let address: u32 = address.parse::<std::net::Ipv4Addr>().expect("an IPv4 network").into();
        let prefix: usize = prefix.parse().expect("a prefix length");
        let offset = self.data.len();
        encode(&mut self.data, &value);
        let mut node = 0;
        for depth in 0..prefix {
            let bit = ((address >> (31 - depth)) & 1) as usize;
            if depth + 1 == prefix {
                self.nodes[node][bit] = Record::Data(offset);
                break;
            }
            node = match self.nodes[node][bit] {
                Record::Node(next) => next,
                _ => {
                    self.nodes.push([Record::Empty; 2]);
                    let next = self.nodes.len() - 1;
                    self.nodes[node][bit] = Record::Node(next);
                    next
                }
            };
        }
    }

    /// The database file's bytes.
    pub fn finish(self, database_type: &str) -> Vec<u8> {
        let count = self.nodes.len();
        let value = |record: Record| -> u32 {
            match record {
                Record::Empty => count as u32,
                Record::Node(index) => index as u32,
                Record::Data(offset) => (count + 16 + offset) as u32,
            }
        };
        let mut out = Vec::new();
        for [left, right] in &self.nodes {
            out.extend_from_slice(&value(*left).to_be_bytes()[1..]);
            out.extend_from_slice(&value(*right).to_be_bytes()[1..]);
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        encode(
            &mut out,
            &Mmdb::Map(vec![
                ("binary_format_major_version", Mmdb::U16(2)),
                ("binary_format_minor_version", Mmdb::U16(0)),
                ("build_epoch", Mmdb::U64(1_764_000_000)),
                ("database_type", Mmdb::Str(database_type)),
                (
                    "description",
                    Mmdb::Map(vec![("en", Mmdb::Str("trailwarden test database"))]),
                ),
                ("ip_version", Mmdb::U16(4)),
                ("languages", Mmdb::Array(vec![Mmdb::Str("en"), Mmdb::Str("zh-CN")])),
                ("node_count", Mmdb::U32(count as u32)),
                ("record_size", Mmdb::U16(24)),
            ]),
        );
        out
    }
}

/// A City database and an ASN database for tests: Beijing (China Unicom),
/// Ashburn (Amazon), a Tor exit in Germany; written into `dir`, paths returned.
pub fn write_test_databases(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let place = |code: &'static str,
                 country: &'static str,
                 country_zh: &'static str,
                 subdivision: &'static str,
                 city: &'static str| {
        Mmdb::Map(vec![
            (
                "city",
                Mmdb::Map(vec![("names", Mmdb::Map(vec![("en", Mmdb::Str(city))]))]),
            ),
            (
                "country",
                Mmdb::Map(vec![
                    ("iso_code", Mmdb::Str(code)),
                    (
                        "names",
                        Mmdb::Map(vec![("en", Mmdb::Str(country)), ("zh-CN", Mmdb::Str(country_zh))]),
                    ),
                ]),
            ),
            (
                "subdivisions",
                Mmdb::Array(vec![Mmdb::Map(vec![(
                    "names",
                    Mmdb::Map(vec![("en", Mmdb::Str(subdivision))]),
                )])]),
            ),
        ])
    };
    let mut city = MmdbWriter::new();
    city.insert("123.112.0.0/16", place("CN", "China", "中国", "Beijing", "Beijing"));
    city.insert(
        "54.173.0.0/16",
        place("US", "United States", "美国", "Virginia", "Ashburn"),
    );
    city.insert(
        "185.220.101.0/24",
        place("DE", "Germany", "德国", "Brandenburg", "Brandenburg"),
    );
    let asn = |number: u32, org: &'static str| {
        Mmdb::Map(vec![
            ("autonomous_system_number", Mmdb::U32(number)),
            ("autonomous_system_organization", Mmdb::Str(org)),
        ])
    };
    let mut asns = MmdbWriter::new();
    asns.insert("123.112.0.0/16", asn(4808, "China Unicom Beijing Province Network"));
    asns.insert("54.173.0.0/16", asn(14618, "AMAZON-AES"));
    asns.insert("185.220.101.0/24", asn(60729, "Stiftung Erneuerbare Freiheit"));
    let city_path = dir.join("test-city.mmdb");
    let asn_path = dir.join("test-asn.mmdb");
    std::fs::write(&city_path, city.finish("GeoLite2-City")).expect("writing the test City database");
    std::fs::write(&asn_path, asns.finish("GeoLite2-ASN")).expect("writing the test ASN database");
    (city_path, asn_path)
}

//! IP region: country, region and city, and the autonomous system of a
//! source address, from MaxMind-format databases the operator points at
//! (`[geoip] city_db`, `asn_db`: GeoLite2 / GeoIP2 City, DB-IP Lite City,
//! GeoLite2 / DB-IP ASN). seeds/003 shows each call's "Source IP / Region /
//! Remark" ("China-Beijing"); without a database, or for an address it does
//! not know, the region is "region unknown" and nothing fails.
//!
//! One set of readers per process ([`install`], [`current`]): the query
//! service labels call records with it, and the rule fields
//! `source_ip.country` and `source_ip.asn` read it when a rule asks.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use maxminddb::{PathElement, Reader};
use serde::Serialize;

/// What the region of "no database" or "not in it" reads as.
pub const UNKNOWN: &str = "region unknown";

/// `[geoip]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoIpSettings {
    /// A City (or Country) database.
    pub city_db: Option<PathBuf>,
    /// An ASN database.
    pub asn_db: Option<PathBuf>,
    /// The language of place names (`en`, `zh-CN`, …); English when a name
    /// lacks it.
    pub language: String,
}

/// The region of one address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Region {
    /// ISO 3166-1 alpha-2 (`CN`).
    pub country_code: Option<String>,
    pub country: Option<String>,
    /// The first subdivision (province, state).
    pub subdivision: Option<String>,
    pub city: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    /// `China-Beijing`, `United States-Virginia-Ashburn`, or "region unknown".
    pub label: String,
}

/// The opened databases (either may be missing).
#[derive(Default)]
pub struct GeoIp {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    language: String,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl GeoIp {
    /// Open what the settings name. A database that cannot be read is left
    /// out, with the problem returned (`path: reason`) for the caller to log:
    /// region lookups then say "region unknown", they never fail.
    pub fn open(settings: &GeoIpSettings) -> (GeoIp, Vec<String>) {
        let mut problems = Vec::new();
        let mut open = |path: &Option<PathBuf>| {
            let path = path.as_ref()?;
            match Reader::open_readfile(path) {
                Ok(reader) => Some(reader),
                Err(error) => {
                    problems.push(format!("{}: {error}", path.display()));
                    None
                }
            }
        };
        let geo = GeoIp {
            city: open(&settings.city_db),
            asn: open(&settings.asn_db),
            language: if settings.language.is_empty() {
                "en".into()
            } else {
                settings.language.clone()
            },
        };
        (geo, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.asn.is_none()
    }

    /// Everything known of `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Region {
        let mut region = Region::default();
        if let Some(reader) = &self.city
            && let Ok(found) = reader.lookup(ip)
            && found.has_data()
        {
            let text = |path: &[PathElement<'_>]| -> Option<String> {
                found.decode_path::<&str>(path).ok().flatten().map(str::to_string)
            };
            let name = |place: &str, index: Option<usize>| -> Option<String> {
                let mut path = vec![PathElement::Key(place)];
                if let Some(index) = index {
                    path.push(PathElement::Index(index));
                }
                path.push(PathElement::Key("names"));
                let mut localized = path.clone();
                localized.push(PathElement::Key(&self.language));
                path.push(PathElement::Key("en"));
                text(&localized).or_else(|| text(&path))
            };
            region.country_code = text(&[PathElement::Key("country"), PathElement::Key("iso_code")]);
            region.country = name("country", None);
            region.subdivision = name("subdivisions", Some(0));
            region.city = name("city", None);
        }
        if let Some(reader) = &self.asn
            && let Ok(found) = reader.lookup(ip)
            && found.has_data()
        {
            region.asn = found
                .decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
                .ok()
                .flatten();
            region.as_org = found
                .decode_path::<&str>(&[PathElement::Key("autonomous_system_organization")])
                .ok()
                .flatten()
                .map(str::to_string);
        }
        region.label = label(&region);
        region
    }

    /// The country code alone (`source_ip.country`), without building a `Region`.
    pub fn country_code(&self, ip: IpAddr) -> Option<&str> {
        let found = self.city.as_ref()?.lookup(ip).ok()?;
        found
            .decode_path::<&str>(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .ok()
            .flatten()
    }

    /// The autonomous system number alone (`source_ip.asn`).
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let found = self.asn.as_ref()?.lookup(ip).ok()?;
        found
            .decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
    }
}

/// `Country-Subdivision[-City]` as seeds/003 writes it, the city left out
/// when it repeats the subdivision (Beijing is both).
fn label(region: &Region) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in [&region.country, &region.subdivision, &region.city]
        .into_iter()
        .flatten()
    {
        if !parts.contains(&part.as_str()) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        region.country_code.clone().unwrap_or_else(|| UNKNOWN.to_string())
    } else {
        parts.join("-")
    }
}

static CURRENT: LazyLock<ArcSwap<GeoIp>> = LazyLock::new(|| ArcSwap::from_pointee(GeoIp::default()));

/// Open the configured databases for this process, logging a database that
/// cannot be read (and carrying on without it).
pub fn install(settings: &GeoIpSettings) {
    if settings.city_db.is_none() && settings.asn_db.is_none() {
        return;
    }
    let (geo, problems) = GeoIp::open(settings);
    for problem in problems {
        tracing::warn!(%problem, "GeoIP database not read; regions are unknown");
    }
    CURRENT.store(Arc::new(geo));
}

/// The databases this process uses.
pub fn current() -> Arc<GeoIp> {
    CURRENT.load_full()
}

/// The region of an address as recorded (a call record's `source_ip`).
pub fn region_of(text: &str) -> Region {
    match crate::event::lenient::parse_ip(text.trim()) {
        Some(ip) => current().lookup(ip),
        None => Region {
            label: UNKNOWN.to_string(),
            ..Region::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_database_every_region_is_unknown() {
        let geo = GeoIp::default();
        let region = geo.lookup("8.8.8.8".parse().unwrap());
        assert_eq!(region.label, UNKNOWN);
        assert_eq!(geo.country_code("8.8.8.8".parse().unwrap()), None);
        let (geo, problems) = GeoIp::open(&GeoIpSettings {
            city_db: Some("/nonexistent/GeoLite2-City.mmdb".into()),
            ..GeoIpSettings::default()
        });
        assert!(geo.is_empty());
        assert!(
            problems[0].starts_with("/nonexistent/GeoLite2-City.mmdb: "),
            "{problems:?}"
        );
    }

    #[test]
    fn labels_follow_the_seed() {
        let region = |country: &str, subdivision: &str, city: &str| Region {
            country: Some(country.into()),
            subdivision: (!subdivision.is_empty()).then(|| subdivision.into()),
            city: (!city.is_empty()).then(|| city.into()),
            ..Region::default()
        };
        assert_eq!(label(&region("China", "Beijing", "Beijing")), "China-Beijing");
        assert_eq!(
            label(&region("United States", "Virginia", "Ashburn")),
            "United States-Virginia-Ashburn"
        );
        assert_eq!(label(&region("Singapore", "", "")), "Singapore");
    }
}

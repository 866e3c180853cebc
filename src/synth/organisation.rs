//! The invented organisation: per cloud two or three accounts, each with
//! sub-users (bots and people), roles or agencies, instances, buckets and
//! databases; the access keys they sign with, the session names and keys of
//! roles, and the source addresses (ordinary pools, attackers, GitHub hooks).
//! Everything here is a pure function of the seed and an index, so a key or
//! an address can be recomputed wherever it is needed instead of stored.

use crate::event::model::Provider;

use super::random::{B32, B36, B62, LOWER_ALNUM, Rng, digits, encode, hash_text, mix, shuffle};
use super::timeline::HOUR_MS;

const ACCOUNT_NAMES: &[&str] = &[
    "fin-core-prod",
    "fin-core-dev",
    "data-platform",
    "web-shop-prod",
    "mobile-backend",
    "bi-analytics",
    "infra-shared",
    "payments-prod",
];

const HUMAN_NAMES: &[&str] = &[
    "li.wei",
    "zhang.min",
    "wang.fang",
    "chen.jie",
    "liu.yang",
    "zhao.lei",
    "sun.li",
    "zhou.xin",
    "wu.hao",
    "xu.jing",
    "ma.chao",
    "hu.bin",
    "guo.qiang",
    "lin.na",
    "he.ping",
    "huang.tao",
    "yang.fan",
    "zhu.hong",
    "gao.yu",
    "luo.ming",
];

const BOT_NAMES: &[&str] = &[
    "ops-deploy",
    "ci-runner",
    "backup-sync",
    "monitor-bot",
    "data-etl",
    "terraform",
    "log-shipper",
    "billing-report",
    "k8s-autoscaler",
    "net-admin",
    "cmdb-sync",
    "grafana-reader",
    "jenkins",
    "argo-cd",
    "dns-updater",
    "cert-renewer",
];

/// The AWS role EC2 instances run under (its sessions are named after the instance).
pub(super) const INSTANCE_ROLE: &str = "ec2-app-role";

const AWS_ROLES: &[&str] = &[
    "ci-deployer",
    "ops-automation",
    INSTANCE_ROLE,
    "lambda-exec-orders",
    "AWSReservedSSO_ReadOnlyAccess_4f2a9c1e7b3d5a60",
];

const HUAWEI_AGENCIES: &[&str] = &["ops_admin_agency", "ecs_obs_agency", "cce_admin_trust"];

const INSTANCE_NAMES: &[&str] = &[
    "web-prod-01",
    "web-prod-02",
    "app-prod-07",
    "batch-worker-11",
    "bastion-01",
    "redis-proxy-02",
    "etl-runner-03",
    "gitlab-runner-05",
];

const BUCKET_STEMS: &[&str] = &["audit-archive", "reports", "static-assets", "backups", "logs"];

/// A person, bot, role or agency.
#[derive(Clone, Debug)]
pub(super) struct Person {
    pub(super) name: String,
    pub(super) id: String,
    /// Which SDK / CLI this identity calls with (index into the cloud's agents).
    pub(super) tool: usize,
}

/// A virtual machine that calls act on.
#[derive(Clone, Debug)]
pub(super) struct Instance {
    pub(super) id: String,
    pub(super) name: String,
}

/// One cloud account (an AWS account, a Tencent main account, a Huawei
/// domain) and what lives in it.
#[derive(Debug)]
pub(super) struct Account {
    /// AWS account id, Tencent root uin, Huawei domain id.
    pub(super) id: String,
    pub(super) name: String,
    /// Tencent root uin as a number.
    pub(super) uin: u64,
    pub(super) app_id: u64,
    /// AWS: the eight characters an account's key ids share.
    pub(super) key_tag: String,
    /// Huawei: the root user's id.
    pub(super) root_id: String,
    /// Huawei: one project id per region.
    projects: Vec<String>,
    pub(super) regions: Vec<&'static str>,
    pub(super) users: Vec<Person>,
    /// Users with long-term access keys.
    pub(super) programmatic: Vec<usize>,
    /// Users who sign in to the console.
    pub(super) humans: Vec<usize>,
    pub(super) roles: Vec<Person>,
    pub(super) instances: Vec<Instance>,
    pub(super) buckets: Vec<String>,
    pub(super) databases: Vec<String>,
}

/// Every cloud's accounts.
#[derive(Debug)]
pub(super) struct Org {
    /// Indexed by `cloud_index`.
    clouds: [Vec<Account>; 3],
}

fn cloud_index(provider: Provider) -> usize {
    match provider {
        Provider::Huawei => 0,
        Provider::Tencent => 1,
        Provider::Aws => 2,
    }
}

impl Org {
    pub(super) fn new(seed: u64) -> Org {
        let mut rng = Rng::new(seed ^ 0x0126_0000_0000_0000);
        let mut names: Vec<&str> = ACCOUNT_NAMES.to_vec();
        shuffle(&mut rng, &mut names);
        let mut next_name = names.into_iter().cycle();
        let clouds = Provider::ALL.map(|provider| {
            let count = 2 + rng.index(2);
            (0..count)
                .map(|_| {
                    let name = next_name.next().unwrap_or("fin-core-prod");
                    Account::new(&mut rng, provider, name)
                })
                .collect::<Vec<_>>()
        });
        Org { clouds }
    }

    pub(super) fn accounts(&self, provider: Provider) -> &[Account] {
        &self.clouds[cloud_index(provider)]
    }
}

impl Account {
    fn new(rng: &mut Rng, provider: Provider, name: &str) -> Account {
        let uin = 100_000_000_000 + rng.below(9_000_000);
        let id = match provider {
            Provider::Aws => digits(rng, 12),
            Provider::Tencent => uin.to_string(),
            Provider::Huawei => rng.hex(32),
        };
        let regions: Vec<&'static str> = match provider {
            Provider::Aws => {
                if rng.chance(0.5) {
                    vec!["us-east-1", "ap-southeast-1"]
                } else {
                    vec!["us-east-1", "ap-northeast-1"]
                }
            }
            Provider::Tencent => {
                if rng.chance(0.5) {
                    vec!["ap-guangzhou", "ap-shanghai"]
                } else {
                    vec!["ap-guangzhou", "ap-beijing"]
                }
            }
            Provider::Huawei => {
                if rng.chance(0.5) {
                    vec!["cn-north-4", "cn-east-3"]
                } else {
                    vec!["cn-north-4", "ap-southeast-1"]
                }
            }
        };
        let key_tag = rng.chars(B32, 8);
        let mut bots: Vec<&str> = BOT_NAMES.to_vec();
        let mut humans: Vec<&str> = HUMAN_NAMES.to_vec();
        shuffle(rng, &mut bots);
        shuffle(rng, &mut humans);
        let bot_count = 6 + rng.index(4);
        let human_count = 5 + rng.index(7);
        let mut users = Vec::new();
        let mut programmatic = Vec::new();
        let mut human_indexes = Vec::new();
        for bot in &bots[..bot_count] {
            programmatic.push(users.len());
            users.push(person(rng, provider, &key_tag, bot, "AIDA"));
        }
        for human in &humans[..human_count] {
            if rng.chance(0.3) {
                programmatic.push(users.len());
            }
            human_indexes.push(users.len());
            users.push(person(rng, provider, &key_tag, human, "AIDA"));
        }
        let roles = match provider {
            Provider::Aws => AWS_ROLES
                .iter()
                .map(|role| person(rng, provider, &key_tag, role, "AROA"))
                .collect(),
            Provider::Huawei => HUAWEI_AGENCIES
                .iter()
                .map(|agency| person(rng, provider, &key_tag, agency, ""))
                .collect(),
            Provider::Tencent => Vec::new(),
        };
        let mut instance_names: Vec<&str> = INSTANCE_NAMES.to_vec();
        shuffle(rng, &mut instance_names);
        let instances = instance_names[..5]
            .iter()
            .map(|name| Instance {
                id: match provider {
                    Provider::Aws => format!("i-0{}", rng.hex(16)),
                    Provider::Tencent => format!("ins-{}", rng.chars(LOWER_ALNUM, 8)),
                    Provider::Huawei => rng.uuid(),
                },
                name: (*name).to_string(),
            })
            .collect();
        let buckets = BUCKET_STEMS
            .iter()
            .take(3 + rng.index(3))
            .map(|stem| match provider {
                Provider::Tencent => format!("{name}-{stem}-13{}", digits(rng, 8)),
                Provider::Aws => format!("{name}-{stem}-{id}"),
                Provider::Huawei => format!("{name}-{stem}"),
            })
            .collect();
        let databases = (0..2)
            .map(|index| match provider {
                Provider::Aws => format!("{name}-db-{}", index + 1),
                Provider::Tencent => format!("cdb-{}", rng.chars(LOWER_ALNUM, 8)),
                Provider::Huawei => format!("{}in01", rng.hex(32)),
            })
            .collect();
        let projects = regions.iter().map(|_| rng.hex(32)).collect();
        Account {
            id,
            name: name.to_string(),
            uin,
            app_id: 1_300_000_000 + rng.below(99_999_999),
            key_tag,
            root_id: rng.hex(32),
            projects,
            regions,
            users,
            programmatic,
            humans: human_indexes,
            roles,
            instances,
            buckets,
            databases,
        }
    }

    pub(super) fn project(&self, region: &str) -> &str {
        self.regions
            .iter()
            .position(|candidate| *candidate == region)
            .and_then(|index| self.projects.get(index))
            .map_or("", String::as_str)
    }
}

fn person(rng: &mut Rng, provider: Provider, key_tag: &str, name: &str, aws_prefix: &str) -> Person {
    let id = match provider {
        Provider::Aws => format!("{aws_prefix}{key_tag}{}", rng.chars(B32, 9)),
        Provider::Tencent => format!("100{}", digits(rng, 9)),
        Provider::Huawei => rng.hex(32),
    };
    Person {
        name: name.to_string(),
        id,
        tool: rng.index(4),
    }
}

// ------------------------------------------------------------------ keys

/// A long-term key id: unique for each `index` (the index is encoded
/// bijectively), shaped like the cloud's keys.
pub(super) fn long_term_key(provider: Provider, account: &Account, index: u64, salt: u64) -> String {
    let mut filler = Rng::new(mix(index ^ salt) ^ 0xF111);
    match provider {
        Provider::Aws => {
            // Since 2019 AWS key ids carry the account: 8 shared characters.
            let bijective = (index.wrapping_mul(0x9E_3779_B97F) ^ salt) & ((1 << 40) - 1);
            format!("AKIA{}{}", account.key_tag, encode(bijective, B32, 8))
        }
        Provider::Tencent => format!("AKID{}{}", encode(mix(index ^ salt), B62, 11), filler.chars(B62, 21)),
        Provider::Huawei => format!("HPUA{}{}", encode(mix(index ^ salt), B36, 13), filler.chars(B36, 3)),
    }
}

/// A temporary (session) key id, stable for one `session` text.
pub(super) fn session_key(provider: Provider, account: &Account, session: &str) -> String {
    let mut rng = Rng::new(hash_text(session));
    match provider {
        Provider::Aws => format!("ASIA{}{}", account.key_tag, rng.chars(B32, 8)),
        Provider::Huawei => format!("HSTA{}", rng.chars(B36, 16)),
        // Tencent console sessions also sign with an AKID secret id.
        Provider::Tencent => format!("AKID{}", rng.chars(B62, 32)),
    }
}

/// The session name a role or agency is used under at a time.
pub(super) fn role_session(provider: Provider, holder: &Account, role: &Person, time_ms: i64) -> String {
    let hour = (time_ms / HOUR_MS) as usize;
    match (provider, role.name.as_str()) {
        (Provider::Aws, "ci-deployer") => format!("ci-runner-{}", 88_000 + hour % 4000),
        (Provider::Aws, INSTANCE_ROLE) => holder.instances[hour % holder.instances.len()].id.clone(),
        (Provider::Aws, "lambda-exec-orders") => "orders-sync".to_string(),
        (Provider::Aws, name) if name.starts_with("AWSReserved") => {
            let human = &holder.users[holder.humans[hour % holder.humans.len()]];
            format!("{}@{}.com", human.name, holder.name)
        }
        _ => holder.users[holder.humans[(hour / 3) % holder.humans.len()]]
            .name
            .clone(),
    }
}

/// The temporary key of a role session (one per six hours).
pub(super) fn role_session_key(
    provider: Provider,
    holder: &Account,
    role: &Person,
    session: &str,
    time_ms: i64,
) -> String {
    session_key(
        provider,
        holder,
        &format!("{}/{}/{}/{}", holder.id, role.name, session, time_ms / (6 * HOUR_MS)),
    )
}

// ------------------------------------------------------------------ addresses

/// Realistic addresses: offices first, then home and mobile lines, cloud
/// egress, VPC-internal addresses and other ISPs. None is in GitHub's
/// webhook ranges.
pub(super) const FIXED_IPS: &[&str] = &[
    "116.228.71.34",
    "58.246.13.90",
    "203.0.113.24",
    "116.228.71.35",
    "58.246.13.91",
    "203.0.113.77",
    "10.20.1.15",
    "10.20.3.41",
    "3.91.44.120",
    "34.229.17.208",
    "159.75.10.22",
    "124.71.93.243",
    "117.136.12.79",
    "223.104.3.155",
    "101.36.103.77",
    "123.112.45.201",
    "221.218.140.57",
    "49.7.22.188",
    "18.206.107.29",
    "52.82.17.203",
    "129.204.87.16",
    "121.36.58.102",
    "43.135.22.61",
    "119.29.44.180",
    "10.32.8.7",
    "10.40.12.88",
    "114.80.34.17",
    "180.160.9.201",
    "183.60.15.88",
    "61.135.169.121",
    "111.206.223.43",
    "42.120.74.5",
    "36.110.236.68",
    "218.17.44.90",
    "125.88.19.222",
    "120.92.77.14",
    "106.52.30.97",
    "175.24.11.203",
    "10.20.7.203",
    "112.64.3.19",
];

/// How many of `FIXED_IPS` are office addresses (console traffic).
pub(super) const OFFICE_IPS: usize = 6;

/// /16 blocks of Chinese ISPs and clouds for address pools beyond the fixed list.
const IP_BLOCKS: &[(u8, u8)] = &[
    (116, 228),
    (58, 246),
    (101, 36),
    (121, 40),
    (180, 160),
    (183, 60),
    (114, 80),
    (119, 29),
    (124, 71),
    (139, 198),
    (42, 120),
    (36, 110),
    (223, 104),
    (218, 17),
    (61, 135),
    (111, 206),
    (47, 92),
    (49, 7),
    (106, 52),
    (117, 50),
    (120, 92),
    (123, 125),
    (125, 88),
    (175, 24),
];

/// Address number `index` of the pool.
pub(super) fn pool_ip(index: usize) -> String {
    if let Some(ip) = FIXED_IPS.get(index) {
        return (*ip).to_string();
    }
    let index = index - FIXED_IPS.len();
    let per_block = 254 * 256;
    let (a, b) = IP_BLOCKS[(index / per_block) % IP_BLOCKS.len()];
    let within = index % per_block;
    format!("{a}.{b}.{}.{}", within / 254, within % 254 + 1)
}

/// The public address an EC2 instance's calls leave from (its Elastic IP or
/// NAT gateway): one per instance, stable, in EC2's 54.144.0.0/12, so an
/// instance role's session calls from one public address all its life.
pub(super) fn instance_egress_ip(instance_id: &str) -> String {
    let hash = hash_text(instance_id);
    format!(
        "54.{}.{}.{}",
        144 + (hash % 16),
        (hash >> 8) % 256,
        (hash >> 16) % 254 + 1
    )
}

/// Attackers' addresses: VPS and Tor exits, none in GitHub's ranges.
pub(super) const ATTACKER_IPS: &[&str] = &[
    "45.76.218.92",
    "185.220.101.34",
    "91.219.236.174",
    "23.94.187.12",
    "107.189.10.143",
    "198.98.51.189",
    "139.180.144.77",
];

/// GitHub webhook egress addresses (in `github_hook_ranges`).
pub(super) const GITHUB_HOOK_IPS: &[&str] = &["192.30.252.87", "140.82.115.3", "192.30.253.19", "140.82.114.24"];

/// Draws pool members so that small pools are used unevenly (a few keys and
/// addresses are busy, as in life) while large pools are walked through so
/// that every member appears.
#[derive(Debug)]
pub(super) struct PoolPicker {
    count: u64,
    /// Probability of taking the next member of the walk.
    pub(super) walk_share: f64,
    step: u64,
    offset: u64,
    cursor: u64,
}

impl PoolPicker {
    pub(super) fn new(count: usize, expected_draws: f64, salt: u64) -> PoolPicker {
        let count = count.max(1) as u64;
        let mut step = (mix(salt) % count).max(1);
        while gcd(step, count) != 1 {
            step += 1;
        }
        PoolPicker {
            count,
            walk_share: (2.0 * count as f64 / expected_draws.max(1.0)).min(1.0),
            step,
            offset: mix(salt ^ 1) % count,
            cursor: 0,
        }
    }

    pub(super) fn pick(&mut self, rng: &mut Rng) -> usize {
        if rng.chance(self.walk_share) {
            let index =
                (u128::from(self.cursor) * u128::from(self.step) + u128::from(self.offset)) % u128::from(self.count);
            self.cursor += 1;
            index as usize
        } else {
            let u = rng.unit();
            ((self.count as f64 * u * u) as u64).min(self.count - 1) as usize
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shaped_and_distinct() {
        let org = Org::new(7);
        for provider in Provider::ALL {
            let account = &org.accounts(provider)[0];
            let mut seen = std::collections::HashSet::new();
            for index in 0..2000 {
                let key = long_term_key(provider, account, index, 99);
                let (prefix, len) = match provider {
                    Provider::Aws => ("AKIA", 20),
                    Provider::Tencent => ("AKID", 36),
                    Provider::Huawei => ("HPUA", 20),
                };
                assert!(key.starts_with(prefix), "{key}");
                assert_eq!(key.len(), len, "{key}");
                assert!(seen.insert(key));
            }
        }
    }

    #[test]
    fn pool_picker_walks_large_pools() {
        let mut rng = Rng::new(1);
        let mut picker = PoolPicker::new(1000, 1000.0, 5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(picker.pick(&mut rng));
        }
        assert_eq!(seen.len(), 1000);
    }
}

//! The web console end to end, in headless Chromium: the real `trailwarden
//! run` binary on the bundled example traces (temporary store, free port, an
//! operator token configured by its hash), driven through chromedriver.
//!
//! It signs in with the token, filters the alarm list by level and by rule and
//! compares the rows with the API, opens an alarm and checks the rule's advice
//! and the call records per source IP, marks it processed with a reason, and
//! checks through the API that the alarm is processed with the token's name as
//! the actor. Screenshots of every step go to
//! `target/test-artifacts/console/*.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them); `CHROMIUM` and `CHROMEDRIVER` override the binaries. Without them
//! the test fails and says so: a skipped browser test would look like a pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::{Config, Http, Log, Reply, Sandbox, examples_dir, free_port, repo, rules_dir};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "e2e-console-token-3f9a1c7d5b2e8046";
const TOKEN_NAME: &str = "e2e-operator";
const REASON: &str = "e2e: key owner confirmed the calls, key rotated";
/// Longest wait for anything the browser or the daemon does.
const PATIENCE: Duration = Duration::from_secs(30);

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        repo().join(target)
    };
    target.join("test-artifacts").join("console")
}

/// The browser and its driver, or a failure saying how to get them.
fn browser_binaries() -> (PathBuf, PathBuf) {
    let find = |variable: &str, candidates: &[&str]| -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(variable) {
            return Some(PathBuf::from(path));
        }
        candidates.iter().map(PathBuf::from).find(|path| path.is_file())
    };
    let chromium = find("CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => (chromium, chromedriver),
        (chromium, chromedriver) => panic!(
            "the console end-to-end test needs headless Chromium and chromedriver, and {} missing.\n\
             Install Debian's packages (scripts/test does): apt-get install chromium chromium-driver\n\
             or point CHROMIUM / CHROMEDRIVER at the binaries.",
            match (chromium.is_none(), chromedriver.is_none()) {
                (true, true) => "both are",
                (true, false) => "chromium (/usr/bin/chromium) is",
                _ => "chromedriver (/usr/bin/chromedriver) is",
            }
        ),
    }
}

/// A child process (chromedriver) killed when the test ends, however it ends.
struct Running {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Running {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn ensure_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); its log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Running {
    let file = std::fs::File::create(&log).expect("a log file in the temporary directory");
    let error_file = file.try_clone().expect("a second handle on the log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(error_file)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
    Running { name, child, log }
}

// ---------- the API checks ----------

/// A request to `127.0.0.1:port`, with a JSON body if there is one.
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Result<Reply> {
    let client = Http::new(format!("127.0.0.1:{port}"), PATIENCE);
    match body {
        Some(body) => client.send_json(method, path, token, body),
        None => client.request(method, path, token, None),
    }
}

fn api_get(port: u16, path: &str) -> Result<Value> {
    let response = http(port, "GET", path, Some(TOKEN), None)?;
    if response.status != 200 {
        bail!("GET {path}: {} {}", response.status, response.body);
    }
    serde_json::from_str(&response.body).with_context(|| format!("GET {path}: not JSON: {}", response.body))
}

// ---------- browser helpers ----------

/// Runs `script` (a function body) in the page until it returns something
/// truthy, and returns that.
async fn wait_js(client: &Client, what: &str, script: &str) -> Result<Value> {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < PATIENCE {
        match client.execute(script, vec![]).await {
            Ok(value) => {
                let truthy = match &value {
                    Value::Null => false,
                    Value::Bool(flag) => *flag,
                    Value::Number(number) => number.as_f64() != Some(0.0),
                    Value::String(text) => !text.is_empty(),
                    _ => true,
                };
                if truthy {
                    return Ok(value);
                }
                last = value;
            }
            Err(error) => last = Value::String(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out after {PATIENCE:?} waiting for {what} (last answer: {last})")
}

async fn screenshot(client: &Client, name: &str) -> Result<()> {
    let png = client
        .screenshot()
        .await
        .with_context(|| format!("screenshot {name}"))?;
    let path = artifacts().join(format!("{name}.png"));
    std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

async fn css(client: &Client, selector: &str) -> Result<fantoccini::elements::Element> {
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(selector))
        .await
        .with_context(|| format!("no element {selector}"))
}

/// Click an element, finding it again when the page redrew it between
/// finding and clicking (a stale element).
async fn click(client: &Client, selector: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        match css(client, selector).await?.click().await {
            Err(error) if attempt < 3 && error.to_string().contains("stale element") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other.with_context(|| format!("clicking {selector}")),
        }
    }
}

/// The ids of the alarm rows on screen, in order.
async fn row_ids(client: &Client) -> Result<Vec<i64>> {
    let value = client
        .execute(
            "return [...document.querySelectorAll('#alarm-table tbody tr[data-id]')].map(row => Number(row.dataset.id));",
            vec![],
        )
        .await?;
    serde_json::from_value(value).context("row ids")
}

fn ids_of(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|item| item["id"].as_i64()).collect())
        .unwrap_or_default()
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------- the test ----------

/// The daemon under test (declared first: stopped before its directory goes).
struct Daemon {
    process: common::Daemon,
    port: u16,
    _sandbox: Sandbox,
}

fn start_daemon() -> Daemon {
    let sandbox = Sandbox::named("trailwarden.db", "trailwarden.toml");
    let port = free_port();
    let hash = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    sandbox.write_config(
        &Config::new()
            .set("source", "kind", "files")
            .files(&[&examples_dir()])
            .set("source.files", "watch", true)
            .set("source.files", "poll_interval", "1s")
            .set("store", "path", &sandbox.store)
            .set("store", "synchronous", "normal")
            .set("rules", "dir", rules_dir())
            .set("rules", "watch", false)
            .set("log", "level", "info")
            .set("api", "bind", format!("127.0.0.1:{port}"))
            .append(&format!(
                "\n[[api.tokens]]\nname = \"{TOKEN_NAME}\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n"
            )),
    );
    // A narrow policy that silences some high-level matches (offensive
    // tooling calling sts.GetCallerIdentity): the console must show them.
    let seeded = sandbox
        .command(&[
            "allowlist",
            "add",
            "--rule",
            "hacker-tool-user-agent",
            "--api",
            "sts.GetCallerIdentity",
            "--actor",
            "e2e-seed",
            "--reason",
            "seeded by the console test",
        ])
        .output()
        .expect("running allowlist add");
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
    let process = sandbox
        .bin
        .clone()
        .env("NO_COLOR", "1")
        .start(&["run"], Log::File(sandbox.path("daemon.log")));
    Daemon {
        process,
        port,
        _sandbox: sandbox,
    }
}

impl Daemon {
    fn log_tail(&self) -> String {
        self.process.tail(40)
    }

    fn ensure_alive(&mut self) -> Result<()> {
        if let Some(status) = self.process.exited() {
            bail!("trailwarden run exited ({status}); its log:\n{}", self.log_tail());
        }
        Ok(())
    }
}

/// Waits until the API answers and the alarm count has stopped growing (the
/// example traces are all read).
fn wait_for_alarms(daemon: &mut Daemon) -> Result<u64> {
    let start = Instant::now();
    let mut last = None;
    let mut stable_since = Instant::now();
    while start.elapsed() < PATIENCE * 4 {
        daemon.ensure_alive()?;
        if let Ok(page) = api_get(daemon.port, "/api/v1/alarms?limit=1") {
            let total = page["total"].as_u64().unwrap_or(0);
            if last != Some(total) {
                last = Some(total);
                stable_since = Instant::now();
            } else if total > 0 && stable_since.elapsed() > Duration::from_millis(2500) {
                return Ok(total);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!(
        "the daemon did not settle on a number of alarms (last: {last:?}); its log:\n{}",
        daemon.log_tail()
    )
}

async fn start_browser(chromium: &Path, chromedriver: &Path, dir: &Path) -> Result<(Running, Client)> {
    let port = free_port();
    let mut driver = spawn(
        "chromedriver",
        Command::new(chromedriver).arg(format!("--port={port}")),
        dir.join("chromedriver.log"),
    );
    let start = Instant::now();
    loop {
        driver.ensure_alive()?;
        if http(port, "GET", "/status", None, None).is_ok_and(|response| response.status == 200) {
            break;
        }
        if start.elapsed() > PATIENCE {
            bail!(
                "chromedriver did not answer on port {port}; its log:\n{}",
                driver.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,900", "--lang=en-US"],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal")
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .with_context(|| {
            format!(
                "starting a Chromium session; chromedriver's log:\n{}",
                driver.log_tail()
            )
        })?;
    Ok((driver, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_signs_in_filters_opens_and_processes_an_alarm() {
    let (chromium, chromedriver) = browser_binaries();
    std::fs::create_dir_all(artifacts()).expect("creating target/test-artifacts/console");
    let mut daemon = start_daemon();
    let total = wait_for_alarms(&mut daemon).unwrap_or_else(|error| panic!("{error:#}"));
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let (_driver, client) = start_browser(&chromium, &chromedriver, scratch.path())
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let outcome = scenario(&client, daemon.port, total).await;
    if outcome.is_err() {
        let _ = screenshot(&client, "failure").await;
    }
    let _ = client.close().await;
    if let Err(error) = outcome {
        panic!(
            "{error:#}\n(screenshots in {}; the daemon's log ends:\n{})",
            artifacts().display(),
            daemon.log_tail()
        );
    }
}

async fn scenario(client: &Client, port: u16, total: u64) -> Result<()> {
    let base = format!("http://127.0.0.1:{port}/");

    // The page and its assets come with a strict policy.
    let page = http(port, "GET", "/", None, None)?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/console/app.js"), "{}", page.body);

    // Sign-in.
    client.goto(&base).await?;
    css(client, "#signin-token").await?;
    let where_is_it = css(client, "#signin-where").await?.text().await?;
    assert!(
        where_is_it.contains("console-token") && where_is_it.contains("api new-token"),
        "the sign-in page says where the token is: {where_is_it:?}"
    );
    screenshot(client, "01-sign-in").await?;
    // A wrong token is refused with the API's message.
    css(client, "#signin-token").await?.send_keys("not-a-token").await?;
    css(client, "#signin-submit").await?.click().await?;
    let refusal = wait_js(
        client,
        "the refusal of a wrong token",
        "const box = document.querySelector('#signin-error'); \
         return box && !box.classList.contains('hidden') ? box.textContent : '';",
    )
    .await?;
    assert!(!refusal.as_str().unwrap_or("").is_empty());
    let field = css(client, "#signin-token").await?;
    field.clear().await?;
    field.send_keys(TOKEN).await?;
    css(client, "#signin-submit").await?.click().await?;
    wait_js(
        client,
        "the alarm list",
        "return document.querySelectorAll('#alarm-table tbody tr[data-id]').length;",
    )
    .await?;
    let me = css(client, "#me-name").await?.text().await?;
    assert_eq!(me, TOKEN_NAME);
    let shown_total = css(client, "#alarm-total").await?.text().await?;
    assert_eq!(shown_total, format!("{total} alarms"));
    let first_page = api_get(port, "/api/v1/alarms?limit=50&offset=0")?;
    assert_eq!(
        row_ids(client).await?,
        ids_of(&first_page),
        "the first page is the API's first page"
    );
    screenshot(client, "02-alarm-list").await?;

    // Filter by level: the rows are the API's high alarms, and the URL says so.
    css(client, "#f-level").await?.select_by_value("high").await?;
    let high = api_get(port, "/api/v1/alarms?level=high&limit=50")?;
    let high_total = high["total"].as_u64().context("total")?;
    assert!(high_total > 0, "the examples have high alarms");
    wait_js(
        client,
        "the list filtered to high alarms",
        &format!(
            "return location.hash.includes('level=high') && \
             document.querySelector('#alarm-total').textContent === '{high_total} alarm{}';",
            if high_total == 1 { "" } else { "s" }
        ),
    )
    .await?;
    assert_eq!(row_ids(client).await?, ids_of(&high));
    let levels = client
        .execute(
            "return [...document.querySelectorAll('#alarm-table tbody tr[data-id]')].map(row => row.dataset.level);",
            vec![],
        )
        .await?;
    assert!(
        levels
            .as_array()
            .is_some_and(|levels| levels.iter().all(|level| level == "high")),
        "{levels}"
    );

    // Then by rule, from the rule select: pick the rule with most high alarms on the page.
    let mut rules: Vec<String> = high["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|item| item["rule"].as_str().map(str::to_string))
        .collect();
    rules.sort();
    let rule = rules
        .iter()
        .max_by_key(|rule| rules.iter().filter(|other| other == rule).count())
        .cloned()
        .context("a rule")?;
    wait_js(
        client,
        "the rule options",
        &format!("return [...document.querySelectorAll('#f-rule option')].some(o => o.value === '{rule}');"),
    )
    .await?;
    css(client, "#f-rule").await?.select_by_value(&rule).await?;
    let by_rule = api_get(port, &format!("/api/v1/alarms?level=high&rule={rule}&limit=50"))?;
    let expected = ids_of(&by_rule);
    wait_js(
        client,
        "the list filtered by rule",
        &format!(
            "const rows = [...document.querySelectorAll('#alarm-table tbody tr[data-id]')]; \
             return location.hash.includes('rule={rule}') && rows.length === {} && rows.every(r => r.dataset.rule === '{rule}');",
            expected.len()
        ),
    )
    .await?;
    assert_eq!(row_ids(client).await?, expected);
    screenshot(client, "03-alarm-list-filtered").await?;

    // Open the first alarm of the filtered list: the drawer shows the rule's advice and the calls per IP.
    let id = expected[0];
    css(client, &format!("#alarm-table tr[data-id='{id}'] a.title"))
        .await?
        .click()
        .await?;
    let detail = api_get(port, &format!("/api/v1/alarms/{id}"))?;
    wait_js(
        client,
        "the alarm detail drawer",
        &format!(
            "return location.hash.startsWith('#/alarms/{id}') && \
             !!document.querySelector('#drawer[data-id=\"{id}\"] #detail-calls .ip-group');"
        ),
    )
    .await?;
    let advice = detail["rule"]["advice"]
        .as_str()
        .context("the rule's advice in the API")?;
    let shown_advice = css(client, "#detail-advice").await?.text().await?;
    // Names in backticks are shown as code, without the backticks.
    assert!(
        squash(&shown_advice).contains(&squash(&advice.replace('`', ""))),
        "advice shown: {shown_advice:?}, rule's: {advice:?}"
    );
    if let Some(quoted) = advice.split('`').nth(1) {
        let code = css(client, "#detail-advice code").await?.text().await?;
        assert_eq!(code, quoted, "the first name in backticks is code");
    }
    let title = css(client, "#detail-title").await?.text().await?;
    assert_eq!(title, detail["title"].as_str().unwrap_or_default());
    let ips: Vec<String> = serde_json::from_value(
        client
            .execute(
                "return [...document.querySelectorAll('#detail-calls .ip-group')].map(g => g.dataset.ip);",
                vec![],
            )
            .await?,
    )?;
    let api_ips: Vec<String> = detail["ip_groups"]
        .as_array()
        .context("ip_groups")?
        .iter()
        .map(|group| group["source_ip"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        ips, api_ips,
        "one block of call records per source IP, as the API groups them"
    );
    let calls_text = css(client, "#detail-calls").await?.text().await?;
    let first_group = &detail["ip_groups"][0];
    for needle in [
        first_group["ip_label"].as_str().unwrap_or_default().to_string(),
        format!("Successful {}", first_group["success_count"]),
    ] {
        assert!(
            calls_text.contains(&needle),
            "{needle:?} not in the call records:\n{calls_text}"
        );
    }
    // Times are shown in the operator's zone (`api.timezone`, here the rules'
    // Asia/Shanghai), with UTC on hover.
    // Read in one script: the page re-renders as alarms arrive, and an
    // element found first may be gone when its text is asked for.
    let zone = client
        .execute(
            "return (document.querySelector('#time-zone') || {}).textContent || '';",
            vec![],
        )
        .await?;
    assert_eq!(zone.as_str(), Some("times in Asia/Shanghai"));
    let last_seen = chrono::DateTime::parse_from_rfc3339(detail["last_seen"].as_str().unwrap_or_default())?;
    let shanghai = last_seen
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let utc = last_seen
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let shown: Vec<(String, String)> = client
        .execute(
            "return [...document.querySelectorAll('#drawer .nowrap[title$=\" UTC\"]')].map(e => [e.textContent, e.title]);",
            vec![],
        )
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_string(),
                pair[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        shown.iter().any(|(text, title)| text == &shanghai && title == &utc),
        "last seen {shanghai} (hover {utc}) not among {shown:?}"
    );
    // Key association and permissions, as the API computed them.
    let investigation = client
        .execute(
            "return (document.querySelector('#detail-investigation') || {}).textContent || '';",
            vec![],
        )
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let used = detail["permissions"]["used"].as_array().map_or(0, Vec::len);
    assert!(
        investigation.contains(&format!("{used} action")),
        "the principal's used actions ({used}) not in:\n{investigation}"
    );
    screenshot(client, "04-alarm-detail").await?;

    // Mark it processed, with a reason, through the confirm dialog.
    css(client, "#act-processed").await?.click().await?;
    css(client, "dialog#confirm[open] #confirm-reason")
        .await?
        .send_keys(REASON)
        .await?;
    screenshot(client, "05-confirm-processed").await?;
    css(client, "#confirm-ok").await?.click().await?;
    wait_js(
        client,
        "the drawer to show the alarm processed",
        "return !!document.querySelector('#drawer .drawer-head .pill[data-status=\"processed\"]') && \
         document.querySelectorAll('#detail-history .timeline li').length > 0 && !document.querySelector('dialog[open]');",
    )
    .await?;
    wait_js(
        client,
        "the list row to show the alarm processed",
        &format!("const row = document.querySelector('#alarm-table tr[data-id=\"{id}\"]'); return !!row && row.dataset.status === 'processed';"),
    )
    .await?;
    let history_text = css(client, "#detail-history").await?.text().await?;
    assert!(
        history_text.contains(REASON) && history_text.contains(TOKEN_NAME),
        "{history_text}"
    );
    screenshot(client, "06-after-processing").await?;

    // The change, through the API: processed, by the token's name, with the reason.
    let after = api_get(port, &format!("/api/v1/alarms/{id}"))?;
    assert_eq!(after["status"], "processed", "{after}");
    let last = after["history"]
        .as_array()
        .and_then(|history| history.last())
        .context("a history entry")?;
    assert_eq!(last["to_status"], "processed", "{last}");
    assert_eq!(last["actor"], TOKEN_NAME, "{last}");
    assert_eq!(last["reason"], REASON, "{last}");

    // A remark on one of its source IPs, set inline from the drawer. The
    // drawer may still be redrawing after the status change (on a loaded
    // machine the refresh lands late): a button or field replaced under the
    // test is found again, the dialog closed and opened anew.
    let mut attempt = 0;
    loop {
        let set = async {
            css(client, "#detail-calls .edit-ip-remark").await?.click().await?;
            let remark_field = css(client, "dialog[open] #edit-remark-text").await?;
            remark_field.clear().await?;
            remark_field.send_keys("e2e vpn").await?;
            css(client, "#edit-remark-ok").await?.click().await?;
            Ok::<(), anyhow::Error>(())
        }
        .await;
        match set {
            Err(error) if attempt < 3 && format!("{error:#}").contains("stale element") => {
                attempt += 1;
                client
                    .execute(
                        "document.querySelectorAll('dialog[open]').forEach(d => d.close()); return true;",
                        vec![],
                    )
                    .await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => break other?,
        }
    }
    wait_js(
        client,
        "the IP remark in the drawer",
        "return !document.querySelector('dialog[open]') && (document.querySelector('#detail-calls') || {}).textContent.includes('e2e vpn');",
    )
    .await?;
    let remarks = api_get(port, "/api/v1/remarks")?;
    let remarked_ip = remarks
        .as_array()
        .and_then(|remarks| remarks.iter().find(|remark| remark["remark"] == "e2e vpn"))
        .and_then(|remark| remark["value"].as_str())
        .context("the remark through the API")?
        .to_string();

    // The alarm's events, from the drawer's link: the rows the API gives,
    // each opening its record; then a failures-only search from the form.
    let alarm_events = api_get(port, &format!("/api/v1/events?alarm={id}&limit=50"))?;
    let expected_rows = alarm_events["events"].as_array().map_or(0, Vec::len);
    assert!(expected_rows > 0, "the alarm has events: {alarm_events}");
    click(client, "#alarm-events").await?;
    wait_js(
        client,
        "the alarm's events",
        &format!("return document.querySelectorAll('#events-table tbody tr.event-row').length === {expected_rows};"),
    )
    .await?;
    let first_position = client
        .execute(
            "return document.querySelector('#events-table tbody tr.event-row').dataset.position;",
            vec![],
        )
        .await?;
    assert_eq!(first_position, alarm_events["events"][0]["position"]);
    css(client, "#events-table tbody tr.event-row").await?.click().await?;
    let record = wait_js(
        client,
        "the event's record",
        "const raw = document.querySelector('#events-table tbody tr.event-raw:not(.hidden) pre'); return raw ? raw.textContent : '';",
    )
    .await?;
    let event_id = alarm_events["events"][0]["event_id"].as_str().unwrap_or_default();
    assert!(record.as_str().unwrap_or_default().contains(event_id), "{record}");
    screenshot(client, "06b-alarm-events").await?;
    css(client, "#ev-outcome").await?.select_by_value("failure").await?;
    css(client, "#ev-search").await?.click().await?;
    let failures = api_get(port, &format!("/api/v1/events?alarm={id}&outcome=failure&limit=50"))?;
    let failure_rows = failures["events"].as_array().map_or(0, Vec::len);
    wait_js(
        client,
        "the failures of the alarm's events",
        &format!(
            "return location.hash.includes('outcome=failure') && !document.querySelector('#events-status')?.textContent.startsWith('Searching') && \
             document.querySelectorAll('#events-table tbody tr.event-row').length === {failure_rows};"
        ),
    )
    .await?;

    // The key-operation traces, the Events page's other tab.
    let traces = api_get(port, "/api/v1/traces?limit=200")?;
    let trace_rows = traces.as_array().map_or(0, Vec::len);
    assert!(trace_rows > 0, "the examples have key operations");
    css(client, "#events-tab-traces").await?.click().await?;
    wait_js(
        client,
        "the traces tab",
        &format!("return document.querySelectorAll('#traces-table tbody tr.trace-row').length === {trace_rows};"),
    )
    .await?;

    // The god view: the hourly chart and the top tables.
    css(client, "#nav-activity").await?.click().await?;
    wait_js(
        client,
        "the god view",
        "return document.querySelectorAll('#activity-chart svg rect').length > 0 && \
         document.querySelectorAll('#top-principals tbody tr').length > 0 && \
         document.querySelectorAll('#top-ips tbody tr').length > 0 && \
         document.querySelectorAll('#top-apis tbody tr').length > 0 && \
         document.querySelectorAll('#top-failures tbody tr').length > 0;",
    )
    .await?;
    screenshot(client, "07-god-view").await?;

    // The rules page: every rule of the API, with its test results.
    let rules = api_get(port, "/api/v1/rules")?;
    let rule_count = rules["rules"].as_array().map_or(0, Vec::len);
    assert!(rule_count > 0);
    css(client, "#nav-rules").await?.click().await?;
    wait_js(
        client,
        "the rules table",
        &format!("return document.querySelectorAll('#rules-table tbody tr[data-id]').length === {rule_count};"),
    )
    .await?;
    screenshot(client, "08-rules").await?;

    // The allowlist: the seeded policy's suppressed high-level matches are
    // flagged on every page and listed; removing it is recorded with the token.
    let policies = api_get(port, "/api/v1/allowlist")?;
    let high = policies[0]["high_hits"].as_u64().context("high_hits")?;
    assert!(high > 0, "the seeded policy suppressed high-level matches: {policies}");
    let badge = wait_js(
        client,
        "the allowlist badge",
        "const badge = document.querySelector('#nav-allowlist-high'); return badge ? badge.textContent : '';",
    )
    .await?;
    assert_eq!(badge.as_str(), Some(high.to_string().as_str()));
    css(client, "#nav-allowlist").await?.click().await?;
    wait_js(
        client,
        "the allowlist table",
        "return document.querySelectorAll('#allowlist-table tbody tr[data-id]').length === 1 && \
         document.querySelectorAll('#changes-table tbody tr').length > 0;",
    )
    .await?;
    let warning = css(client, "#allowlist-high").await?.text().await?;
    assert!(
        warning.contains(&format!("#{} ({high})", policies[0]["id"])),
        "{warning}"
    );
    let row = css(client, "#allowlist-table tbody tr[data-id]").await?.text().await?;
    assert!(
        row.contains("e2e-seed") && row.contains("sts.GetCallerIdentity"),
        "{row}"
    );
    screenshot(client, "09-allowlist").await?;
    // Its expiry, changed from the page and recorded.
    css(client, "#allowlist-table tbody tr[data-id] .policy-expiry")
        .await?
        .click()
        .await?;
    let expiry = css(client, "dialog[open] #expiry-input").await?;
    expiry.clear().await?;
    expiry.send_keys("2099-01-01").await?;
    css(client, "#expiry-ok").await?.click().await?;
    wait_js(
        client,
        "the allowlist after the expiry change",
        "return !document.querySelector('dialog[open]') && document.querySelectorAll('#allowlist-table tbody tr[data-id]').length === 1;",
    )
    .await?;
    let policies = api_get(port, "/api/v1/allowlist")?;
    assert_eq!(policies[0]["expires_at"], "2099-01-01T00:00:00.000Z", "{policies}");
    css(client, "#allowlist-table tbody tr[data-id] .policy-remove")
        .await?
        .click()
        .await?;
    css(client, "#confirm-remove-ok").await?.click().await?;
    wait_js(
        client,
        "the policy removed",
        "return document.querySelectorAll('#allowlist-table tbody tr[data-id]').length === 0 && \
         !!document.querySelector('#changes-table tbody tr');",
    )
    .await?;
    assert_eq!(api_get(port, "/api/v1/allowlist")?, json!([]));
    let changes = api_get(port, "/api/v1/changes?subject=policy")?;
    assert_eq!(changes[0]["action"], "removed", "{changes}");
    assert_eq!(changes[0]["actor"], TOKEN_NAME, "{changes}");
    assert_eq!(
        (&changes[1]["action"], &changes[1]["actor"]),
        (&json!("changed"), &json!(TOKEN_NAME)),
        "{changes}"
    );
    assert_eq!(changes[2]["actor"], "e2e-seed", "{changes}");

    // Assets and remarks: add an asset, edit the remark set from the drawer, remove it.
    css(client, "#nav-directory").await?.click().await?;
    css(client, "#asset-cidr").await?.send_keys("198.51.100.0/24").await?;
    css(client, "#asset-name").await?.send_keys("e2e office").await?;
    css(client, "#asset-add").await?.click().await?;
    wait_js(
        client,
        "the new asset",
        "return !!document.querySelector('#assets-table tr[data-cidr=\"198.51.100.0/24\"]');",
    )
    .await?;
    let row = format!("#remarks-table tr[data-value='{remarked_ip}']");
    css(client, &format!("{row} .remark-edit-button"))
        .await?
        .click()
        .await?;
    let field = css(client, &format!("{row} input.remark-edit")).await?;
    field.clear().await?;
    field.send_keys("e2e edited\u{E007}").await?;
    wait_js(
        client,
        "the edited remark",
        &format!("const cell = document.querySelector(\"{row} .remark-text\"); return !!cell && cell.textContent === 'e2e edited';"),
    )
    .await?;
    screenshot(client, "10-assets-and-remarks").await?;
    css(client, &format!("{row} .remark-remove")).await?.click().await?;
    wait_js(
        client,
        "the removed remark",
        &format!("return !!document.querySelector('#remarks-table') && !document.querySelector(\"{row}\");"),
    )
    .await?;
    let assets = api_get(port, "/api/v1/assets")?;
    assert!(
        assets
            .as_array()
            .is_some_and(|assets| assets.iter().any(|asset| asset["name"] == "e2e office")),
        "{assets}"
    );
    let changes = api_get(port, "/api/v1/changes?subject=remark")?;
    assert_eq!(
        (&changes[0]["action"], &changes[1]["action"], &changes[2]["action"]),
        (&json!("removed"), &json!("set"), &json!("set")),
        "{changes}"
    );

    // Nothing the pages did was blocked by the Content-Security-Policy.
    let violations = client
        .execute("return window.trailwardenCspViolations;", vec![])
        .await?;
    assert_eq!(violations, json!([]), "the console broke its own CSP");

    // Signing out forgets the token.
    css(client, "#signout").await?.click().await?;
    css(client, "#signin-token").await?;
    let kept = client
        .execute("return sessionStorage.getItem('trailwarden.token');", vec![])
        .await?;
    assert_eq!(kept, Value::Null);
    Ok(())
}

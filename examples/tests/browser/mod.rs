//! The browser-test harness: an example binary on a free port, Debian's `chromedriver` on
//! another, one headless Chromium session over WebDriver (fantoccini), and a PNG screenshot of
//! every page the test looks at, under `target/browser-screenshots/<test>/<nn>-<page>.png`.
//!
//! ```text
//! let app = Example::start("quickstart", &[]);
//! let Some(mut chrome) = Chrome::start("my_test").await else { return };
//! chrome.visit(&app.url("/hello"), "hello").await;
//! chrome.finish().await;
//! ```
//!
//! Without chromedriver a test skips with a message on a developer's machine, and fails under
//! CI (`CI` set) or wherever `/usr/bin/chromedriver` is installed: a browser test that can be
//! skipped silently there would never run.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crudauth_tests::app::unique_prefix;
use crudauth_tests::server::{free_ports, watch};

#[path = "../support/example.rs"]
mod example;
pub use example::example_binary;

/// The workspace's target directory: `CARGO_TARGET_DIR` when set (relative to the workspace),
/// else the one this test binary was built into (`<target>/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return workspace.join(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|dir| dir.join("CACHEDIR.TAG").exists() || dir.ends_with("target"))
        .unwrap_or_else(|| workspace.join("target"))
}

/// A scratch directory of the test's own, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(unique_prefix(&format!("browser-{tag}")).replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until something listens on 127.0.0.1:`port`, failing with `what` and `log` when
/// `child` exits first or a minute goes by.
fn wait_listening(child: &mut Child, port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}):\n{text}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One running example binary on 127.0.0.1 (plain http, cookies not Secure), its users in an
/// SQLite file of its own; killed when dropped.
pub struct Example {
    child: Child,
    port: u16,
    log: PathBuf,
    scratch: Scratch,
}

impl Example {
    /// Builds and starts example `name` with `env` on top of the defaults, and waits until it
    /// listens. Its public URL is `http://localhost:<port>`, the origin the browser uses.
    pub fn start(name: &str, env: &[(&str, String)]) -> Self {
        let binary = example_binary(name);
        let scratch = Scratch::new(name);
        let port = free_ports(1)[0];
        let log = scratch.0.join(format!("{name}.log"));
        let database = format!("sqlite://{}?mode=rwc", scratch.0.join("users.db").display());
        let mut child = Command::new(binary)
            .current_dir(&scratch.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CRUDAUTH_BIND", format!("127.0.0.1:{port}"))
            .env("CRUDAUTH_COOKIE_SECURE", "false")
            .env("CRUDAUTH_PUBLIC_URL", format!("http://localhost:{port}"))
            .env("SECRET_KEY", "b".repeat(64))
            .env("DATABASE_URL", database)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        watch(child.id(), &scratch.0);
        wait_listening(&mut child, port, name, &log);
        Self {
            child,
            port,
            log,
            scratch,
        }
    }

    /// `path` on the origin the browser uses, `http://localhost:<port>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    /// `path` on `http://127.0.0.1:<port>`, for clients outside the browser.
    pub fn direct_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.scratch.0
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the example died or panicked.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the example died:\n{}",
            self.log_text()
        );
        let log = self.log_text();
        assert!(!log.contains("panicked"), "the example panicked:\n{log}");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a missing chromedriver fails the test instead of skipping it: under CI, and on a
/// machine with Debian's package (where a missing binary on `PATH` is a broken setup).
fn browser_required() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    ci || Path::new("/usr/bin/chromedriver").exists()
}

/// `CHROMEDRIVER`, else `chromedriver` on `PATH`.
fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

/// `CHROME_BIN`, else Debian's `/usr/bin/chromium` when present (else chromedriver looks).
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROME_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    debian.exists().then_some(debian)
}

/// Kills the whole process group `pgid` (chromedriver and the browsers it started) once this
/// test binary has exited, even when it is aborted and drops nothing.
fn watch_group(pgid: u32) {
    let parent = std::process::id();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null && kill -0 {pgid} 2>/dev/null; do sleep 0.2; done; \
         kill -9 -- -{pgid} 2>/dev/null"
    );
    let mut watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::spawn(move || watchdog.wait());
}

/// A JavaScript `fetch()` from the current page: `arguments` are method, path, headers
/// (object), a JSON body or null, form fields (object) or null. Answers `{status, json, text,
/// csrf_error}` or `{error}`.
const FETCH_JS: &str = r#"
const [method, path, headers, json, form] = arguments;
const done = arguments[arguments.length - 1];
const init = { method, credentials: 'include', headers: Object.assign({}, headers || {}) };
if (form !== null) {
  init.body = new URLSearchParams(form);
} else if (json !== null) {
  init.body = JSON.stringify(json);
  init.headers['content-type'] = 'application/json';
}
fetch(path, init).then(async (r) => {
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) {}
  done({ status: r.status, json: body, text, csrf_error: r.headers.get('x-csrf-error') });
}, (e) => done({ error: String(e) }));
"#;

/// A cookie the page's scripts can read (`document.cookie`), or null.
const COOKIE_JS: &str = r#"
const name = arguments[0] + '=';
const hit = document.cookie.split('; ').find((c) => c.startsWith(name));
return hit === undefined ? null : decodeURIComponent(hit.slice(name.length));
"#;

/// chromedriver on a free port, one headless Chromium session in a profile of its own, and the
/// screenshots of the current test. `finish` closes the browser and stops the driver; `Drop`
/// kills both when a test fails first.
pub struct Chrome {
    client: Option<Client>,
    driver: Child,
    profile: Scratch,
    shots: PathBuf,
    taken: usize,
}

impl Chrome {
    /// Starts chromedriver and a browser for `test` (the screenshot folder). `None` only when
    /// chromedriver is missing on a machine that does not require it (the test then skips).
    pub async fn start(test: &str) -> Option<Self> {
        let Some(chromedriver) = find_chromedriver() else {
            assert!(
                !browser_required(),
                "chromedriver not found (install Debian's chromium and chromium-driver, or set \
                 CHROMEDRIVER): browser tests cannot be skipped under CI"
            );
            eprintln!(
                "skipped: no chromedriver on PATH (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let profile = Scratch::new("chrome-profile");
        let port = free_ports(1)[0];
        let log = profile.0.join("chromedriver.log");
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit());
        // A group of its own, so that the browsers it starts die with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        watch_group(driver.id());
        wait_listening(&mut driver, port, "chromedriver", &log);

        let user_data = profile.0.join("user-data");
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--window-size=1024,768",
                format!("--user-data-dir={}", user_data.display()),
            ],
        });
        if let Some(binary) = find_chromium() {
            options["binary"] = json!(binary.display().to_string());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("no WebDriver session: {e}\n{text}")
            });
        let mut chrome = Self {
            client: Some(client),
            driver,
            profile,
            shots: PathBuf::new(),
            taken: 0,
        };
        chrome.set_test(test);
        Some(chrome)
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Starts a new screenshot folder, `target/browser-screenshots/<test>/`, emptied first.
    pub fn set_test(&mut self, test: &str) {
        self.shots = target_dir().join("browser-screenshots").join(test);
        let _ = std::fs::remove_dir_all(&self.shots);
        std::fs::create_dir_all(&self.shots).unwrap();
        self.taken = 0;
    }

    /// Saves a screenshot of the page as `<nn>-<page>.png`; answers its path.
    pub async fn shot(&mut self, page: &str) -> PathBuf {
        let png = self.client().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot that is no PNG");
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{page}.png", self.taken));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Opens `url`, waits for it to load, and takes its screenshot as `page`.
    pub async fn visit(&mut self, url: &str, page: &str) {
        self.client().goto(url).await.unwrap();
        self.wait_loaded().await;
        self.shot(page).await;
    }

    /// The path of the current URL.
    pub async fn path(&self) -> String {
        self.client().current_url().await.unwrap().path().to_owned()
    }

    /// The current URL.
    pub async fn url(&self) -> url::Url {
        self.client().current_url().await.unwrap()
    }

    /// Runs `script` with `args` (returning a value, or a promise the driver awaits).
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// `fetch(path)` from the current page with the page's cookies (`credentials: 'include'`),
    /// as a single-page app calls its API: `{status, json, text, csrf_error}`.
    pub async fn fetch(
        &self,
        method: &str,
        path: &str,
        headers: Value,
        json: Option<Value>,
        form: Option<Value>,
    ) -> Value {
        let args = vec![
            json!(method),
            json!(path),
            headers,
            json.unwrap_or(Value::Null),
            form.unwrap_or(Value::Null),
        ];
        let answer = self
            .client()
            .execute_async(FETCH_JS, args)
            .await
            .unwrap_or_else(|e| panic!("fetch {method} {path} failed: {e}"));
        assert!(
            answer.get("error").is_none(),
            "fetch {method} {path}: {answer}"
        );
        answer
    }

    /// A cookie as the page's scripts see it (`document.cookie`), if they see it.
    pub async fn script_cookie(&self, name: &str) -> Option<String> {
        let value = self.run(COOKIE_JS, vec![json!(name)]).await;
        value.as_str().map(str::to_owned)
    }

    /// A cookie of the current page as WebDriver sees it (HttpOnly ones too).
    pub async fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        let all = self.client().get_all_cookies().await.unwrap();
        all.into_iter().find(|c| c.name() == name)
    }

    /// Waits until the document has loaded.
    pub async fn wait_loaded(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.run("return document.readyState", vec![]).await;
            if state == "complete" {
                return;
            }
            assert!(Instant::now() < deadline, "the page did not load");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Marks the current document, so that [`Self::wait_new_page`] sees when another replaced
    /// it (a form post answered on the same URL included).
    async fn mark_page(&self) {
        self.run("window.__crudauthOldPage = true", vec![]).await;
    }

    /// Waits until a document other than the marked one has loaded.
    async fn wait_new_page(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // While the navigation is under way a script may fail: try again.
            let state = self
                .client()
                .execute(
                    "return window.__crudauthOldPage === true ? 'old' : document.readyState",
                    vec![],
                )
                .await
                .ok();
            if state.as_ref().is_some_and(|s| s == "complete") {
                return;
            }
            assert!(Instant::now() < deadline, "no new page after the submit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The element at `css`, failing the test with the page's text when there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.client().find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                let path = self.path().await;
                let text = self.text("body").await;
                panic!("no `{css}` on {path} ({e}):\n{text}")
            }
        }
    }

    /// Every element at `css`.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client().find_all(Locator::Css(css)).await.unwrap()
    }

    /// Whether the page has an element at `css`.
    pub async fn has(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// The visible text of the first element at `css` (empty when there is none).
    pub async fn text(&self, css: &str) -> String {
        match self.client().find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Types `value` into the field `name` of the form at `form`, as a person would.
    pub async fn type_into(&self, form: &str, name: &str, value: &str) {
        let field = self.find(&format!("{form} [name=\"{name}\"]")).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks `button` (a form's submit button, or any element that navigates) and waits for
    /// the page that answers; then takes its screenshot as `page`.
    pub async fn click_and_wait(&mut self, button: &Element, page: &str) {
        self.mark_page().await;
        button.click().await.unwrap();
        self.wait_new_page().await;
        self.shot(page).await;
    }

    /// Fills the form at `form` with `fields` (typed in), submits it with its submit button,
    /// waits for the answer and takes its screenshot as `page`.
    pub async fn submit(&mut self, form: &str, fields: &[(&str, &str)], page: &str) {
        for (name, value) in fields {
            self.type_into(form, name, value).await;
        }
        let button = self
            .find(&format!(
                "{form} button[type=submit], {form} input[type=submit], {form} button:not([type])"
            ))
            .await;
        self.click_and_wait(&button, page).await;
    }

    /// Waits until the browser is at `path` (after redirects and scripted navigations).
    pub async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.path().await != path {
            assert!(
                Instant::now() < deadline,
                "still at {} instead of {path}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.wait_loaded().await;
    }

    /// Closes the browser and stops chromedriver.
    pub async fn finish(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.unwrap();
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // The group: chromedriver and every browser it started.
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = &self.profile;
    }
}

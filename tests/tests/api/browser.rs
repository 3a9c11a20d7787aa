//! The console in a real browser (issue 13, contract §11): Debian's headless Chromium driven over WebDriver by
//! chromedriver, against the API in this process and a real `crm-worker` process. An admin signs in, previews
//! and uploads a leads file with bad rows, watches the bar reach 100% without a reload, corrects both rows in the
//! error table, retries, and finds the leads listed; runs an export and downloads it through the page. A sales
//! rep sees neither the admin pages nor other people's leads. Every page is photographed at desktop and phone
//! widths into `target/console-screenshots/`, the folder the README names.

use crm_tests::{PASSWORD, Session, TestApp, valid_leads_csv};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("port").port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/lib.sh installs chromium-driver)");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url, profile: tempfile::tempdir().expect("a profile folder") };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("{}/status", driver.url)).await.ok();
        if let Some(response) = ready
            && response.json::<Value>().await.is_ok_and(|status| status["value"]["ready"] == true)
        {
            return driver;
        }
        assert!(tokio::time::Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh headless Chromium with a profile of its own (no cookies shared between the two users).
async fn browser(driver: &Driver, profile: &str) -> Client {
    let folder = driver.profile.path().join(profile);
    let arguments = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|argument| argument.to_string())
    .chain([format!("--user-data-dir={}", folder.display())])
    .collect::<Vec<_>>();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": arguments }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Runs `script` (a function body returning a boolean) until it answers true, or fails with `what`.
async fn until(client: &Client, script: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if client.execute(script, vec![]).await.expect("script ran") == json!(true) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the page never showed {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css} on the page")).text().await.expect("text")
}

async fn sign_in(client: &Client, app: &TestApp, email: &str) {
    client.goto(&format!("{}/console", app.address)).await.expect("console");
    let field = client.wait().at_most(WAIT).for_element(Locator::Css("#email")).await.expect("sign-in form");
    field.send_keys(email).await.expect("email");
    client.find(Locator::Css("#password")).await.expect("password").send_keys(PASSWORD).await.expect("password");
    client.find(Locator::Css("#sign-in")).await.expect("button").click().await.expect("sign in");
    until(client, "return !!document.querySelector('#nav a') && !document.querySelector('#nav').hidden", "the menu")
        .await;
}

async fn open(client: &Client, hash: &str) {
    client.execute(&format!("location.hash = '{hash}'"), vec![]).await.expect("navigate");
    until(
        client,
        &format!("return location.hash === '{hash}' && !document.querySelector('main .state.loading') && !!document.querySelector('main h1')"),
        hash,
    )
    .await;
}

async fn nav_titles(client: &Client) -> Vec<String> {
    let value = client
        .execute("return [...document.querySelectorAll('#nav a')].map((a) => a.textContent)", vec![])
        .await
        .expect("nav");
    serde_json::from_value(value).expect("titles")
}

fn screenshot_folder() -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&folder).expect("screenshot folder");
    folder
}

async fn photograph(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 2_000, "{name}: an empty screenshot");
    std::fs::write(screenshot_folder().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Every page the role sees, at desktop and phone widths; on the phone the menu opens from its button.
async fn photograph_every_page(client: &Client, who: &str, hashes: &[(&str, &str)]) {
    for (width, height, size) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        client.set_window_size(width, height).await.expect("resize");
        for (hash, name) in hashes {
            open(client, hash).await;
            photograph(client, &format!("{who}-{name}-{size}")).await;
        }
        if size == "phone" {
            let nav = client.find(Locator::Css("#nav")).await.expect("nav");
            assert!(!nav.is_displayed().await.expect("shown?"), "the phone menu starts closed");
            client.find(Locator::Css("#menu-toggle")).await.expect("toggle").click().await.expect("open the menu");
            assert!(nav.is_displayed().await.expect("shown?"), "the menu button opens the menu");
            photograph(client, &format!("{who}-menu-{size}")).await;
            client.find(Locator::Css("#menu-toggle")).await.expect("toggle").click().await.expect("close the menu");
        }
    }
    client.set_window_size(1280, 900).await.expect("resize");
}

fn leads_file(tag: &str) -> Vec<u8> {
    let mut text = String::from_utf8(valid_leads_csv(1_500, tag)).expect("utf-8");
    text.push_str(&format!("Bea,Broken,not-an-email,Acme\n,Nameless,nameless.{tag}@example.com,Acme\n"));
    text.into_bytes()
}

async fn lead_count(app: &TestApp, session: &Session, email: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM leads WHERE tenant_id = $1 AND lower(email) = lower($2)")
        .bind(session.tenant_id)
        .bind(email)
        .fetch_one(&app.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn the_console_imports_corrects_retries_exports_and_shows_each_role_only_its_own() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports,exports"]).await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    for (who, name) in [(&rep, "Rita"), (&admin, "Adam")] {
        let body =
            json!({ "first_name": name, "last_name": "Owner", "email": format!("{}@owner.test", name.to_lowercase()) });
        assert_eq!(app.post("/api/v1/leads", who, body).await.status, reqwest::StatusCode::CREATED);
    }
    let driver = start_driver().await;
    let client = browser(&driver, "admin").await;

    // A wrong password answers in the form, and nothing else is shown.
    client.goto(&format!("{}/console", app.address)).await.expect("console");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#email"))
        .await
        .expect("form")
        .send_keys(&admin.email)
        .await
        .expect("type");
    client.find(Locator::Css("#password")).await.expect("password").send_keys("wrong").await.expect("type");
    client.find(Locator::Css("#sign-in")).await.expect("button").click().await.expect("click");
    until(&client, "return document.querySelector('#sign-in-error').textContent.length > 0", "a sign-in error").await;
    photograph(&client, "sign-in-desktop").await;
    sign_in(&client, &app, &admin.email).await;
    assert_eq!(
        nav_titles(&client).await,
        ["Dashboard", "Reports", "Leads", "Imports", "Exports", "Schedules", "Jobs", "Queues and workers"]
    );

    // Preview: the columns and the fields they fill, then the import.
    open(&client, "#/imports").await;
    let file = tempfile::Builder::new().suffix(".csv").tempfile().expect("temp file");
    std::fs::write(file.path(), leads_file("browser")).expect("write the file");
    let chooser = client.find(Locator::Css("#import-file")).await.expect("file input");
    chooser.send_keys(&file.path().display().to_string()).await.expect("choose the file");
    let start = client.wait().at_most(WAIT).for_element(Locator::Css("#import-start")).await.expect("the preview");
    let mapped: Vec<String> = serde_json::from_value(
        client
            .execute(
                "return [...document.querySelectorAll('#import-preview thead select')].map((s) => s.value)",
                vec![],
            )
            .await
            .expect("selects"),
    )
    .expect("fields");
    assert_eq!(mapped, ["first_name", "last_name", "email", "company"]);
    assert_eq!(app.count_rows("imports", Some(admin.tenant_id)).await, 0, "a preview starts nothing");
    assert!(!text_of(&client, "#import-preview").await.contains("null"), "no placeholder text in the preview");
    photograph(&client, "admin-import-preview-desktop").await;
    client.execute("window.notReloaded = true", vec![]).await.expect("mark the page");
    start.click().await.expect("start the import");

    // The bar reaches 100% from the event stream, on the same page (the marker survives: no reload).
    until(&client, "return /^#\\/imports\\/[0-9a-f-]{36}$/.test(location.hash)", "the import's page").await;
    until(
        &client,
        "return document.querySelector('#import-progress [role=progressbar]')?.dataset.percent === '100' \
         && document.querySelector('#import-status').textContent === 'completed_with_errors'",
        "the bar at 100%",
    )
    .await;
    assert_eq!(client.execute("return window.notReloaded === true", vec![]).await.expect("marker"), json!(true));
    assert!(text_of(&client, "#import-counts").await.contains("1500 created · 0 updated · 2 failed"));
    until(&client, "return document.querySelectorAll('#import-errors tbody tr').length === 2", "two bad rows").await;
    photograph(&client, "admin-import-errors-desktop").await;

    // Correct both rows inline, save each, retry: both resolved, and the leads are listed once.
    let boxes = client.find_all(Locator::Css("#import-errors tbody input")).await.expect("inputs");
    assert_eq!(boxes.len(), 2);
    let fields: Vec<String> = {
        let mut names = Vec::new();
        for input in &boxes {
            names.push(input.attr("data-field").await.expect("attr").unwrap_or_default());
        }
        names
    };
    assert_eq!(fields, ["email", "first_name"], "each box corrects the column the error names");
    for (input, value) in boxes.iter().zip(["bea.fixed@example.com", "Nina"]) {
        input.clear().await.expect("clear");
        input.send_keys(value).await.expect("type the correction");
    }
    let saves = client.find_all(Locator::Css("#import-errors tbody button")).await.expect("save buttons");
    for save in &saves {
        save.click().await.expect("save");
        until(&client, "return document.querySelector('#toast').textContent.startsWith('Saved')", "saved").await;
        client.execute("document.querySelector('#toast').textContent = ''", vec![]).await.expect("clear toast");
    }
    client.find(Locator::Css("#retry")).await.expect("retry").click().await.expect("retry");
    until(
        &client,
        "return document.querySelector('#import-status').textContent === 'completed' \
         && document.querySelector('#import-errors .empty') !== null",
        "the import completed with no rows left in error",
    )
    .await;
    assert!(text_of(&client, "#import-counts").await.contains("1502 created · 0 updated · 0 failed"));
    assert_eq!(lead_count(&app, &admin, "bea.fixed@example.com").await, 1, "the corrected row, once");
    assert_eq!(lead_count(&app, &admin, "nameless.browser@example.com").await, 1, "the corrected row, once");
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 2 + 1_502, "nothing written twice");
    photograph(&client, "admin-import-resolved-desktop").await;
    open(&client, "#/leads").await;
    assert!(text_of(&client, "main").await.contains("1504 leads you can see"));
    until(&client, "return document.querySelector('main').textContent.includes('bea.fixed@example.com')", "the lead")
        .await;

    // Export the leads matching a search and download the file through the page's link.
    open(&client, "#/exports").await;
    client.find(Locator::Css("#export-q")).await.expect("search").send_keys("fixed").await.expect("type");
    client.find(Locator::Css("#export-start")).await.expect("export").click().await.expect("export");
    until(&client, "return document.querySelector('#export-history a.download') !== null", "a download link").await;
    let downloaded = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(document.querySelector('#export-history a.download').href, { credentials: 'same-origin' }) \
               .then((r) => r.text().then((body) => done([r.status, body])))",
            vec![],
        )
        .await
        .expect("download");
    assert_eq!(downloaded[0], json!(200), "{downloaded}");
    let body = downloaded[1].as_str().expect("csv");
    assert!(body.contains("bea.fixed@example.com"), "{body}");
    assert_eq!(body.lines().count(), 2, "the header and the one matching lead: {body}");
    photograph(&client, "admin-exports-desktop").await;

    photograph_every_page(
        &client,
        "admin",
        &[
            ("#/dashboard", "dashboard"),
            ("#/reports", "reports"),
            ("#/leads", "leads"),
            ("#/imports", "imports"),
            ("#/exports", "exports"),
            ("#/schedules", "schedules"),
            ("#/jobs", "jobs"),
            ("#/queues", "queues"),
        ],
    )
    .await;
    client.close().await.expect("close the admin's browser");

    // A sales rep: no Schedules or Queues, only their own lead, and the admin pages refused by address too.
    let client = browser(&driver, "rep").await;
    sign_in(&client, &app, &rep.email).await;
    assert_eq!(nav_titles(&client).await, ["Dashboard", "Reports", "Leads", "Imports", "Exports", "Jobs"]);
    open(&client, "#/leads").await;
    let leads = text_of(&client, "main").await;
    assert!(leads.contains("1 leads you can see") && leads.contains("rita@owner.test"), "{leads}");
    assert!(!leads.contains("adam@owner.test") && !leads.contains("example.com"), "{leads}");
    for hash in ["#/queues", "#/schedules"] {
        open(&client, hash).await;
        assert_eq!(text_of(&client, "main h1").await, "Not available");
    }
    photograph_every_page(
        &client,
        "sales",
        &[
            ("#/dashboard", "dashboard"),
            ("#/leads", "leads"),
            ("#/imports", "imports"),
            ("#/jobs", "jobs"),
            ("#/queues", "refused"),
        ],
    )
    .await;
    client.close().await.expect("close the rep's browser");
}

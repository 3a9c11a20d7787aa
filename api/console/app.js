// The CRM console: one page over the public API. Signs in with the session cookie (HttpOnly, set by
// POST /api/v1/auth/session); every call is same-origin and carries X-Requested-With, which the API requires of
// cookie-authenticated writes (a cross-site form cannot set it). Live progress comes from
// GET /api/v1/events/stream (server-sent events). What a role may not do is not shown, and the API refuses it
// anyway.
"use strict";

const state = { user: null, events: null, listeners: new Set() };
const main = () => document.getElementById("main");

// ------------------------------------------------------------------ API

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { "X-Requested-With": "crm-console" } };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401 && !path.startsWith("/api/v1/auth/")) {
    state.user = null;
    render();
    throw new Error("Your session ended; sign in again.");
  }
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const fields = json && json.details && json.details.fields;
    const detail = fields ? " (" + Object.entries(fields).map(([k, v]) => k + ": " + v).join("; ") + ")" : "";
    throw new Error(((json && json.error) || response.statusText) + detail);
  }
  return json;
}

// ------------------------------------------------------------------ helpers

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    // Through the CSSOM: the page's policy refuses style attributes.
    else if (name === "style") Object.assign(node.style, value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 4000);
}

function when(at) {
  return at ? new Date(at).toLocaleString() : "";
}

function progressBar(done, total, label) {
  const percent = total ? Math.min(100, Math.round((done / total) * 100)) : 0;
  return el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(percent), "aria-label": label || "progress", "data-percent": String(percent) },
    el("span", { style: { width: percent + "%" } }));
}

function table(columns, rows, empty) {
  if (!rows.length) return el("p", { class: "state empty" }, empty || "Nothing here yet.");
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", { scope: "col" }, title)))),
    el("tbody", {}, rows.map((row) => el("tr", { "data-id": row.id || null },
      columns.map(([, cell]) => el("td", {}, cell(row)))))));
}

/// Shows a page: a heading, then what `build` returns, with loading and error states.
async function page(title, build) {
  const target = main();
  target.replaceChildren(el("h1", {}, title), el("p", { class: "state loading" }, "Loading…"));
  try {
    const content = await build();
    target.replaceChildren(el("h1", {}, title), content);
  } catch (error) {
    target.replaceChildren(el("h1", {}, title), el("p", { class: "state error", role: "alert" }, error.message));
  }
  target.focus();
}

function onEvents(listener) {
  state.listeners.add(listener);
  return () => state.listeners.delete(listener);
}

function startEvents() {
  if (state.events) return;
  state.events = new EventSource("/api/v1/events/stream");
  state.events.addEventListener("job", (message) => {
    const event = JSON.parse(message.data);
    state.listeners.forEach((listener) => listener(event));
  });
  state.events.addEventListener("resync", () => state.listeners.forEach((listener) => listener(null)));
}

// ------------------------------------------------------------------ pages

const PAGES = [
  { hash: "#/dashboard", title: "Dashboard", roles: ["admin", "manager", "sales", "support", "readonly"], show: dashboardPage },
  { hash: "#/reports", title: "Reports", roles: ["admin", "manager", "sales", "readonly"], show: reportsPage },
  { hash: "#/leads", title: "Leads", roles: ["admin", "manager", "sales", "readonly"], show: leadsPage },
  { hash: "#/imports", title: "Imports", roles: ["admin", "manager", "sales"], show: importsPage },
  { hash: "#/exports", title: "Exports", roles: ["admin", "manager", "sales", "support"], show: exportsPage },
  { hash: "#/schedules", title: "Schedules", roles: ["admin", "manager"], show: schedulesPage },
  { hash: "#/jobs", title: "Jobs", roles: ["admin", "manager", "sales", "support", "readonly"], show: jobsPage },
  { hash: "#/queues", title: "Queues and workers", roles: ["admin"], show: queuesPage },
];

async function dashboardPage() {
  await page("Dashboard", async () => {
    const { data } = await api("GET", "/api/v1/dashboard/metrics");
    const figures = [];
    const walk = (prefix, value) => {
      if (value && typeof value === "object" && !Array.isArray(value)) {
        Object.entries(value).forEach(([key, inner]) => walk(prefix ? prefix + " " + key : key, inner));
      } else if (typeof value === "number") {
        figures.push(el("div", { class: "figure" }, el("b", {}, String(value)), prefix.replace(/_/g, " ")));
      }
    };
    walk("", data);
    return el("div", { class: "grid", "data-testid": "dashboard" }, figures.length ? figures : el("p", { class: "state empty" }, "No figures yet."));
  });
}

async function reportsPage() {
  await page("Reports", async () => {
    const { data } = await api("GET", "/api/v1/reports/pipeline");
    const max = Math.max(1, ...data.leads.map((row) => row.count));
    const chart = el("div", { class: "bar-chart", "aria-label": "Leads by status" }, data.leads.map((row) =>
      el("div", {}, el("span", {}, row.status), el("i", { style: { width: (100 * row.count) / max + "%" } }), el("b", {}, String(row.count)))));
    return el("div", {},
      el("section", { class: "card" }, el("h2", {}, "Leads by status"), chart),
      el("section", { class: "card" }, el("h2", {}, "Projects by status"),
        table([["Status", (r) => r.status], ["Count", (r) => r.count], ["Value", (r) => r.total_value]], data.projects)));
  });
}

async function leadsPage() {
  await page("Leads", async () => {
    const list = await api("GET", "/api/v1/leads?limit=100&sort=-created_at&include_total=true");
    return el("section", { class: "card" }, el("p", {}, (list.total ?? list.items.length) + " leads you can see"),
      table([["Name", (r) => [r.first_name, r.last_name].filter(Boolean).join(" ")], ["Email", (r) => r.email || ""],
        ["Status", (r) => r.status], ["Created", (r) => when(r.created_at)]], list.items, "No leads yet."));
  });
}

async function importsPage() {
  await page("Imports", async () => {
    const input = el("input", { type: "file", id: "import-file", accept: ".csv,.xlsx", "aria-label": "File to import" });
    const entity = el("select", { id: "import-entity" }, ["leads", "clients", "projects"].map((name) => el("option", { value: name }, name)));
    const mode = el("select", { id: "import-mode" }, [["create", "create (a duplicate is an error)"], ["upsert", "upsert (update matches)"],
      ["skip", "skip duplicates"]].map(([value, text]) => el("option", { value }, text)));
    const drop = el("div", { class: "drop", id: "drop" }, "Drop a CSV or XLSX file here, or choose one below.");
    const preview = el("div", { id: "import-preview" });
    let chosen = null;
    // The mapping the user set in the preview, or null while they kept the one matched from the headers.
    let mapping = null;
    const formFor = (file) => {
      const form = new FormData();
      form.append("entity", entity.value);
      if (mapping) form.append("mapping", JSON.stringify(mapping));
      form.append("file", file, file.name);
      return form;
    };
    const showPreview = async () => {
      if (!chosen) return;
      preview.replaceChildren(el("p", { class: "state loading" }, "Reading " + chosen.name + "…"));
      let data;
      try {
        ({ data } = await api("POST", "/api/v1/imports/preview", formFor(chosen)));
      } catch (error) {
        preview.replaceChildren(el("p", { class: "state error", role: "alert" }, error.message));
        return;
      }
      const selects = data.columns.map((column, index) => el("select", { "aria-label": "Field for column " + column.name,
        "data-column": column.name, id: "map-" + index, onchange: () => {
          mapping = Object.fromEntries(selects.filter((s) => s.value).map((s) => [s.dataset.column, s.value]));
          showPreview();
        } }, el("option", { value: "" }, "(ignore)"), data.fields.map((field) => el("option", { value: field, selected: field === column.field }, field))));
      const start = el("button", { id: "import-start", disabled: Boolean(data.problem), onclick: async () => {
        try {
          const { data: accepted } = await api("POST", "/api/v1/imports", (() => { const form = formFor(chosen); form.append("mode", mode.value); return form; })());
          location.hash = "#/imports/" + accepted.id;
        } catch (error) { toast(error.message); }
      } }, "Import " + data.file_name);
      // replaceChildren writes a null as the text "null": the optional parts are filtered out.
      preview.replaceChildren(...[
        el("p", {}, `${data.file_name} · ${data.format}` + (data.encoding ? ` · ${data.encoding}, "${data.delimiter}"` : "") + " · required: " + data.required.join(", ")),
        el("table", { class: "mapping" },
          el("thead", {}, el("tr", {}, data.columns.map((column, index) => el("th", { scope: "col" }, el("label", { for: "map-" + index }, column.name), selects[index])))),
          el("tbody", {}, data.rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell)))))),
        data.rows.length ? null : el("p", { class: "state empty" }, "The file has a header and no rows."),
        data.problem ? el("p", { class: "error", role: "alert", id: "import-problem" }, data.problem) : null,
        el("p", {}, el("label", { for: "import-mode" }, "When a record exists"), mode, " ", start)].filter(Boolean));
    };
    const choose = (file) => { if (file) { chosen = file; mapping = null; showPreview(); } };
    entity.addEventListener("change", () => { mapping = null; showPreview(); });
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); choose(event.dataTransfer.files[0]); });
    input.addEventListener("change", () => choose(input.files[0]));
    const list = await api("GET", "/api/v1/imports?limit=50");
    return el("div", {},
      el("section", { class: "card" }, el("h2", {}, "New import"), drop,
        el("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
          el("label", { for: "import-entity" }, "Records"), entity, el("label", { for: "import-file" }, "File"), input), preview),
      el("section", { class: "card" }, el("h2", {}, "Your imports"),
        table([["File", (r) => el("a", { href: "#/imports/" + r.id }, r.file_name)], ["Status", (r) => el("span", { class: "status-" + r.status }, r.status)],
          ["Rows", (r) => r.processed_rows + (r.total_rows ? " / " + r.total_rows : "")], ["Failed", (r) => r.failed], ["Started", (r) => when(r.created_at)]],
        list.items, "No imports yet: drop a file above.")));
  });
}

async function importPage(id) {
  let stop = () => {};
  await page("Import", async () => {
    const { data: view } = await api("GET", "/api/v1/imports/" + id);
    const status = el("span", { id: "import-status", class: "status-" + view.status }, view.status);
    const bar = el("div", { id: "import-progress" }, progressBar(view.processed_rows, view.total_rows, "import progress"));
    const counts = el("p", { id: "import-counts" });
    const errors = el("div", { id: "import-errors" });
    const paint = (v) => {
      status.textContent = v.status;
      status.className = "status-" + v.status;
      const total = v.total_rows || (v.status.startsWith("completed") ? v.processed_rows : null);
      bar.replaceChildren(progressBar(v.processed_rows, total, "import progress"));
      counts.textContent = `${v.processed_rows} processed · ${v.created} created · ${v.updated} updated · ${v.failed} failed`;
    };
    const loadErrors = async () => {
      const list = await api("GET", `/api/v1/imports/${id}/errors?limit=100`);
      const rows = list.items.filter((row) => !row.resolved_at);
      errors.replaceChildren(rows.length ? table([["Row", (r) => r.row_number], ["Problem", (r) => r.message],
        ["Correct", (r) => {
          // Corrections name the file's column; the error names the field, matched as the import matches headers.
          const fold = (name) => name.toLowerCase().replace(/[\s_-]/g, "");
          const columns = Object.keys(r.row_data || {});
          const field = (r.field && columns.find((column) => fold(column) === fold(r.field))) || r.field || columns[0];
          const value = (r.corrected_data && r.corrected_data[field]) ?? (r.row_data || {})[field] ?? "";
          const box = el("input", { value, "aria-label": "Correct " + field + " of row " + r.row_number, "data-field": field });
          const save = el("button", { class: "secondary", onclick: async () => {
            try {
              await api("PATCH", "/api/v1/import-errors/" + r.id, { corrected_data: { [field]: box.value } });
              toast("Saved; retry to apply it.");
            } catch (error) { toast(error.message); }
          } }, "Save");
          return el("span", {}, field + ": ", box, " ", save);
        }]], rows) : el("p", { class: "state empty" }, "No rows with errors."));
    };
    const refresh = async () => {
      const { data } = await api("GET", "/api/v1/imports/" + id);
      paint(data);
      if (!["queued", "running"].includes(data.status)) await loadErrors();
    };
    paint(view);
    if (!["queued", "running"].includes(view.status)) await loadErrors();
    stop = onEvents((event) => {
      if (event === null) return refresh();
      if (event.resource_type === "import" && event.resource_id === id) {
        if (["queued", "running"].includes(event.status) && event.progress_total) {
          bar.replaceChildren(progressBar(event.progress_done, event.progress_total, "import progress"));
        }
        if (["succeeded", "failed", "dead", "cancelled"].includes(event.status)) refresh();
      }
    });
    const retry = el("button", { id: "retry", onclick: async () => {
      try { await api("POST", `/api/v1/imports/${id}/retry`); toast("Retrying the failed rows."); refresh(); } catch (error) { toast(error.message); }
    } }, "Retry failed rows");
    return el("div", {},
      el("section", { class: "card" }, el("p", {}, view.file_name, " · ", status), bar, counts,
        el("p", {}, el("a", { class: "button secondary", href: `/api/v1/imports/${id}/errors.csv` }, "Download errors.csv"), " ", retry)),
      el("section", { class: "card" }, el("h2", {}, "Rows with errors"), errors));
  });
  return () => stop();
}

async function exportsPage() {
  let stop = () => {};
  await page("Exports", async () => {
    const entity = el("select", { id: "export-entity" }, ["leads", "clients", "projects", "interactions", "tickets"].map((name) => el("option", { value: name }, name)));
    const format = el("select", { id: "export-format" }, ["csv", "xlsx", "pdf"].map((name) => el("option", { value: name }, name)));
    const history = el("div", { id: "export-history" });
    const load = async () => {
      const list = await api("GET", "/api/v1/exports?limit=50");
      history.replaceChildren(table([["Records", (r) => r.entity], ["Format", (r) => r.format],
        ["Status", (r) => el("span", { class: "status-" + r.status }, r.status)], ["Rows", (r) => r.row_count ?? ""],
        ["Progress", (r) => progressBar(r.progress.done, r.progress.total, "export progress")],
        ["File", (r) => r.download_url ? el("a", { class: "download", href: r.download_url }, "Download " + r.file_name) : ""]], list.items, "No exports yet."));
    };
    const columns = el("input", { id: "export-columns", placeholder: "default columns", "aria-describedby": "export-columns-help" });
    const status = el("input", { id: "export-status", placeholder: "any status" });
    const search = el("input", { id: "export-q", type: "search", placeholder: "any" });
    const form = el("form", { class: "inline", onsubmit: async (event) => {
      event.preventDefault();
      const body = { entity: entity.value, format: format.value, filters: {} };
      const names = columns.value.split(",").map((name) => name.trim()).filter(Boolean);
      if (names.length) body.columns = names;
      if (status.value.trim()) body.filters.status = status.value.trim();
      if (search.value.trim()) body.filters.q = search.value.trim();
      try { await api("POST", "/api/v1/exports", body); toast("Export queued."); load(); } catch (error) { toast(error.message); }
    } }, el("label", { for: "export-entity" }, "Records"), entity, el("label", { for: "export-format" }, "Format"), format,
      el("label", { for: "export-columns" }, "Columns"), columns, el("label", { for: "export-status" }, "Status"), status,
      el("label", { for: "export-q" }, "Search"), search, el("button", { type: "submit", id: "export-start" }, "Export"),
      el("small", { id: "export-columns-help" }, "Columns and statuses as comma-separated names; empty takes all."));
    await load();
    stop = onEvents((event) => { if (event === null || event.kind === "export") load(); });
    return el("div", {}, el("section", { class: "card" }, el("h2", {}, "New export"), form), el("section", { class: "card" }, el("h2", {}, "History"), history));
  });
  return () => stop();
}

async function schedulesPage() {
  await page("Schedules", async () => {
    const list = await api("GET", "/api/v1/schedules?limit=100");
    const name = el("input", { id: "schedule-name", required: true, value: "Weekly pipeline" });
    const cron = el("input", { id: "schedule-cron", required: true, value: "0 8 * * 1" });
    const format = el("select", { id: "schedule-format" }, ["pdf", "xlsx", "csv"].map((f) => el("option", { value: f }, f)));
    const form = el("form", { class: "inline", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api("POST", "/api/v1/schedules", { name: name.value, cron: cron.value, recipients: [state.user.id],
          action: { type: "report", report: "pipeline", format: format.value } });
        schedulesPage();
      } catch (error) { toast(error.message); }
    } }, el("label", { for: "schedule-name" }, "Name"), name, el("label", { for: "schedule-cron" }, "Cron"), cron,
      el("label", { for: "schedule-format" }, "Format"), format, el("button", { type: "submit" }, "Create"));
    const runs = el("div", { id: "schedule-runs" });
    const showRuns = async (id) => {
      const { data } = await api("GET", `/api/v1/schedules/${id}/runs`);
      runs.replaceChildren(table([["Time", (r) => when(r.scheduled_for)], ["Trigger", (r) => r.trigger], ["Status", (r) => r.status],
        ["Emails", (r) => r.emails_sent], ["Why", (r) => r.skipped_reason || ""]], data, "No runs yet."));
    };
    return el("div", {},
      el("section", { class: "card" }, el("h2", {}, "New schedule (pipeline report to you)"), form),
      el("section", { class: "card" }, table([["Name", (r) => r.name], ["Cron", (r) => r.cron + " " + r.time_zone], ["Next", (r) => when(r.next_run_at)],
        ["", (r) => el("span", {}, el("button", { class: "secondary", onclick: async () => {
          try { await api("POST", `/api/v1/schedules/${r.id}/run`); toast("Fired."); setTimeout(() => showRuns(r.id), 1500); } catch (error) { toast(error.message); }
        } }, "Run now"), " ", el("button", { class: "secondary", onclick: () => showRuns(r.id) }, "Runs"))]], list.items, "No schedules yet.")),
      el("section", { class: "card" }, el("h2", {}, "Runs"), runs));
  });
}

async function jobsPage() {
  let stop = () => {};
  await page("Jobs", async () => {
    const holder = el("div", { id: "jobs" });
    const filter = el("select", { id: "jobs-status", onchange: () => load() }, ["", "queued", "running", "succeeded", "failed", "dead", "cancelled"]
      .map((value) => el("option", { value }, value || "every status")));
    const load = async () => {
      const list = await api("GET", "/api/v1/jobs?limit=50" + (filter.value ? "&status=" + filter.value : ""));
      holder.replaceChildren(table([["Kind", (r) => r.kind], ["Status", (r) => el("span", { class: "status-" + r.status }, r.status)],
        ["Progress", (r) => r.status === "succeeded" ? progressBar(1, 1, r.kind + " progress") : progressBar(r.progress.done, r.progress.total, r.kind + " progress")], ["Attempts", (r) => r.attempts + "/" + r.max_attempts],
        ["Error", (r) => r.error || ""], ["", (r) => state.user.role === "readonly" ? "" : el("span", {},
          ["queued", "running"].includes(r.status) ? el("button", { class: "secondary", onclick: () => act(`/api/v1/jobs/${r.id}/cancel`) }, "Cancel") : null,
          ["failed", "dead", "cancelled"].includes(r.status) ? el("button", { class: "secondary", onclick: () => act(`/api/v1/jobs/${r.id}/retry`) }, "Retry") : null)]],
      list.items, "No jobs yet."));
    };
    const act = async (path) => { try { await api("POST", path); load(); } catch (error) { toast(error.message); } };
    await load();
    stop = onEvents(() => load());
    return el("section", { class: "card" }, el("p", {}, el("label", { for: "jobs-status" }, "Show"), filter), holder);
  });
  return () => stop();
}

async function queuesPage() {
  await page("Queues and workers", async () => {
    const { data } = await api("GET", "/api/v1/admin/queues");
    const workers = new Map();
    data.forEach((queue) => (queue.live_workers || []).forEach((worker) => workers.set(worker.started_at + (worker.name || ""), worker)));
    return el("div", {},
      el("section", { class: "card" }, el("h2", {}, "Queues"), table([["Queue", (r) => r.queue], ["Queued", (r) => r.queued],
        ["Running", (r) => r.running], ["Done (1 h)", (r) => r.succeeded_last_hour], ["Failed (1 h)", (r) => r.failed_last_hour],
        ["Dead", (r) => r.dead], ["Workers", (r) => (r.live_workers || []).length]], data, "No queues.")),
      el("section", { class: "card" }, el("h2", {}, "Workers"), table([["Name", (r) => r.name || "(this tenant sees no names)"],
        ["Queues", (r) => (r.queues || []).join(", ")], ["Concurrency", (r) => r.concurrency],
        ["Started", (r) => when(r.started_at)], ["Heartbeat", (r) => when(r.last_heartbeat_at)]], [...workers.values()], "No worker is running.")));
  });
}

// ------------------------------------------------------------------ sign-in and routing

function signInPage() {
  const email = el("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = el("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const problem = el("p", { class: "error", role: "alert", id: "sign-in-error" });
  const form = el("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    problem.textContent = "";
    try {
      const { data } = await api("POST", "/api/v1/auth/session", { email: email.value, password: password.value });
      state.user = data.user;
      if (!location.hash || location.hash === "#/sign-in") location.hash = "#/dashboard";
      render();
    } catch (error) { problem.textContent = error.message; }
  } }, el("label", { for: "email" }, "Email"), email, el("label", { for: "password" }, "Password"), password, problem,
    el("p", {}, el("button", { type: "submit", id: "sign-in" }, "Sign in")));
  main().replaceChildren(el("h1", {}, "Sign in"), form);
  email.focus();
}

let leavePage = () => {};

async function render() {
  leavePage();
  leavePage = () => {};
  const nav = document.getElementById("nav");
  const toggle = document.getElementById("menu-toggle");
  const signOut = document.getElementById("sign-out");
  if (!state.user) {
    nav.hidden = true; toggle.hidden = true; signOut.hidden = true;
    document.getElementById("who").textContent = "";
    return signInPage();
  }
  const allowed = PAGES.filter((p) => p.roles.includes(state.user.role));
  const hash = location.hash || "#/dashboard";
  nav.hidden = false; toggle.hidden = false; signOut.hidden = false;
  nav.replaceChildren(...allowed.map((p) => el("a", { href: p.hash, "aria-current": hash.startsWith(p.hash) ? "page" : null }, p.title)));
  document.getElementById("who").textContent = state.user.email + " · " + state.user.role;
  startEvents();
  const importMatch = hash.match(/^#\/imports\/([0-9a-f-]{36})$/);
  if (importMatch && allowed.some((p) => p.hash === "#/imports")) {
    leavePage = (await importPage(importMatch[1])) || (() => {});
    return;
  }
  const current = allowed.find((p) => p.hash === hash);
  if (!current) {
    main().replaceChildren(el("h1", {}, "Not available"), el("p", { class: "state" }, "This page does not exist or your role does not include it."));
    return;
  }
  leavePage = (await current.show()) || (() => {});
}

window.addEventListener("hashchange", render);
document.addEventListener("DOMContentLoaded", async () => {
  const nav = document.getElementById("nav");
  const toggle = document.getElementById("menu-toggle");
  toggle.addEventListener("click", () => {
    const open = nav.classList.toggle("closed") === false;
    toggle.setAttribute("aria-expanded", String(open));
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    try { await api("DELETE", "/api/v1/auth/session"); } catch (error) { /* signed out either way */ }
    state.user = null;
    if (state.events) { state.events.close(); state.events = null; }
    render();
  });
  try {
    const { data } = await api("GET", "/api/v1/auth/me");
    state.user = data;
  } catch (error) {
    state.user = null;
  }
  render();
});

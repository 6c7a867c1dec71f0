// resgan web page: plain JS modules, no external assets (works offline). The viewer (zoom, pan,
// brush, before / after split) is editor.js; this file: tabs, models, messages, the requests.
import * as editor from "./editor.js";

const $ = (id) => document.getElementById(id);
const state = { models: null, mode: "inpaint", file: null, fileURL: null, resultURL: null, gridURL: null,
                hint: false };

// ---------------------------------------------------------------- messages
// one box a panel: kind info | ok | error; a new action clears the old one
function message(box, text, kind = "info") {
  $(box).hidden = !text;
  $(box).className = `msg ${kind}`;
  $(`${box}-text`).textContent = text;
}
const say = (text, kind) => { state.hint = false; message("msg", text, kind); };
$("msg-close").addEventListener("click", () => say(""));
$("gen-msg-close").addEventListener("click", () => message("gen-msg", ""));

async function errorText(resp) {
  try { const j = await resp.json(); return j.error || JSON.stringify(j); } catch (e) { return resp.statusText; }
}

// ---------------------------------------------------------------- a running request: spinner, clock, buttons
const running = { restore: false, generate: false };

async function job(kind, label, fn) {
  const [button, busy, text] = kind === "restore" ? ["run", "busy", "busy-text"] : ["gen-run", "gen-busy", "gen-busy-text"];
  running[kind] = true;
  $(button).disabled = true;
  $(busy).hidden = false;
  document.body.dataset[kind] = "running";
  const t0 = performance.now();
  const tick = () => { $(text).textContent = `${label} ${((performance.now() - t0) / 1000).toFixed(1)} s`; };
  tick();
  const timer = setInterval(tick, 100);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    $(busy).hidden = true;
    running[kind] = false;
    delete document.body.dataset[kind];
    updateButtons();
  }
}

// a restore's name for the server (X-Resgan-Job): 32 random hex digits (crypto.randomUUID needs a secure context)
function newJobId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (x) => x.toString(16).padStart(2, "0")).join("");
}

// a restore's tiles (GET /v1/jobs/ID every 500 ms): "tile k / n" and a bar under the clock once the image
// runs in tiles (n > 1); an id the server does not know (not started, forgotten) or a failed poll shows
// nothing. Returns stop().
function pollTiles(id) {
  let stopped = false;
  let timer = null;
  const show = (p) => {
    const on = !!p && p.total > 1;
    $("busy-progress").hidden = !on;
    if (!on) return;
    const pct = Math.round((100 * p.done) / p.total);
    $("busy-tiles").textContent = `tile ${Math.min(p.done + 1, p.total)} / ${p.total}`;
    $("busy-bar").style.width = `${pct}%`;
    $("busy-bar").parentElement.setAttribute("aria-valuenow", String(pct));
  };
  const poll = async () => {
    try {
      const resp = await fetch(`/v1/jobs/${id}`);
      if (resp.ok) { const p = await resp.json(); if (!stopped) show(p); }
    } catch (e) { /* the request itself reports what went wrong */ }
    if (!stopped) timer = setTimeout(poll, 500);
  };
  show(null);
  timer = setTimeout(poll, 500);
  return () => { stopped = true; clearTimeout(timer); show(null); };
}

function updateButtons() {
  $("run").disabled = running.restore || !state.file || !task();
  $("gen-run").disabled = running.generate || !(state.models && state.models.generators.length);
}

// ---------------------------------------------------------------- tabs, models
const task = () => (state.mode === "inpaint" ? (state.models?.tasks.inpaint ? "inpaint" : "") : $("task").value);

function setMode(mode) {
  state.mode = mode;
  document.body.dataset.mode = mode;
  for (const t of document.querySelectorAll(".tab")) {
    const on = t.dataset.mode === mode;
    t.classList.toggle("active", on);
    t.setAttribute("aria-selected", String(on));
  }
  $("panel-restore").hidden = mode === "generate";
  $("panel-generate").hidden = mode !== "generate";
  if (mode !== "generate") {
    editor.setPainting(mode === "inpaint");
    if (editor.mode() === "compare") showEditor();
    onTaskChange();
  }
}
for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => setMode(t.dataset.mode));

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; select.appendChild(o);
}

async function loadModels() {
  const resp = await fetch("/v1/models");
  if (!resp.ok) throw new Error(await errorText(resp));
  state.models = await resp.json();
  const tasks = state.models.tasks;
  const sel = $("task");
  sel.innerHTML = "";
  for (const t of Object.keys(tasks)) if (t !== "inpaint") option(sel, t, t === "sr" ? "super-resolution" : t);
  if (!sel.options.length) option(sel, "", "no model loaded");
  const gen = $("gen-model");
  gen.innerHTML = "";
  for (const g of state.models.generators) option(gen, g.name, `${g.name} (${g.resolution}px)`);
  if (!gen.options.length) option(gen, "", "no generator loaded");
  $("tab-inpaint").classList.toggle("none", !tasks.inpaint);
  $("tab-enhance").classList.toggle("none", !sel.value);
  $("tab-generate").classList.toggle("none", !state.models.generators.length);
  const names = [...state.models.restore, ...state.models.generators].map((m) => m.name);
  $("health").textContent = `${names.length} model${names.length === 1 ? "" : "s"}`;
  $("health").title = names.join(", ");
  // open on Inpaint, unless this server has no inpainting model
  setMode(tasks.inpaint ? "inpaint" : sel.value ? "enhance" : state.models.generators.length ? "generate" : "inpaint");
  onGenChange();
}

function onTaskChange() {
  const t = task();
  const sel = $("restore-model");
  sel.innerHTML = "";
  const names = state.models?.tasks[t] || [];
  // several: the server picks by the photo (a grey or a colour model), unless one is chosen
  if (names.length > 1) option(sel, "", "auto (by the photo)");
  for (const name of names) option(sel, name, name);
  if (!sel.options.length) option(sel, "", "none loaded");
  $("sigma-row").hidden = t !== "denoise";
  updateButtons();
}

function onGenChange() {
  const g = state.models.generators.find((x) => x.name === $("gen-model").value);
  const cls = $("gen-class");
  cls.innerHTML = "";
  if (!g || !g.num_classes) { option(cls, "", g ? "unconditional" : "-"); cls.disabled = true; return; }
  cls.disabled = false;
  option(cls, "", "seed % classes");
  g.classes.forEach((name, i) => option(cls, String(i), `${i}: ${name}`));
}
$("task").addEventListener("change", onTaskChange);
$("gen-model").addEventListener("change", onGenChange);

// ---------------------------------------------------------------- photo in: choose, drop, paste
async function openFile(file) {
  if (!file) return;
  let bitmap;
  try { bitmap = await createImageBitmap(file); } catch (e) {
    say(`Cannot read ${file.name || "that file"} as an image (PNG, JPEG, WebP, BMP or GIF).`, "error");
    return;
  }
  state.file = file;
  if (state.fileURL) URL.revokeObjectURL(state.fileURL);
  state.fileURL = URL.createObjectURL(file);
  editor.load(bitmap);
  viewport.focus({ preventScroll: true });
  say("");
  showEditor();
  $("info").textContent = `${file.name || "pasted image"} · ${bitmap.width}×${bitmap.height}`;
  updateButtons();
}

const viewport = $("viewport");
$("file").addEventListener("change", (ev) => { openFile(ev.target.files[0]); ev.target.value = ""; });
viewport.addEventListener("dragover", (ev) => { ev.preventDefault(); viewport.classList.add("over"); });
viewport.addEventListener("dragleave", () => viewport.classList.remove("over"));
viewport.addEventListener("drop", (ev) => {
  ev.preventDefault();
  viewport.classList.remove("over");
  openFile(ev.dataTransfer.files[0]);
});
document.addEventListener("paste", (ev) => {
  if (state.mode === "generate") return;
  const file = [...(ev.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (file) { ev.preventDefault(); openFile(file); }
});

// ---------------------------------------------------------------- editing
editor.onStroke(() => { if (state.hint) say(""); });
for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => editor.setTool(b.dataset.tool));
// a clicked tool button keeps no focus, so Space pans instead of clicking it again (keyboard focus still works)
for (const b of document.querySelectorAll(".toolbar button")) b.addEventListener("mousedown", (ev) => ev.preventDefault());
$("undo").addEventListener("click", editor.undo);
$("clear").addEventListener("click", editor.clear);
$("zoom-in").addEventListener("click", () => editor.zoomBy(1.25));
$("zoom-out").addEventListener("click", () => editor.zoomBy(0.8));
$("zoom-fit").addEventListener("click", editor.fit);

function showEditor() {
  if (editor.mode() !== "empty") editor.setMode("edit");
  $("result-bar").hidden = true;
  delete document.body.dataset.result;
}
$("back").addEventListener("click", showEditor);
$("continue").addEventListener("click", async () => {
  const blob = await (await fetch(state.resultURL)).blob();
  const name = $("download").download;
  await openFile(new File([blob], name, { type: "image/png" }));
});

// ---------------------------------------------------------------- run a restoration
$("run").addEventListener("click", async () => {
  if (running.restore) return; // (the button is disabled too: no double submit)
  const t = task();
  if (!state.file || !t) return;
  const form = new FormData();
  form.append("image", state.file, state.file.name || "image.png");
  form.append("task", t);
  if ($("restore-model").value) form.append("model", $("restore-model").value);
  if (t === "inpaint") {
    if (editor.maskIsEmpty()) {
      say("Paint the hole first: brush over what should be removed.", "error");
      state.hint = true;
      showEditor();
      return;
    }
    form.append("mask", await editor.maskBlob(), "mask.png");
  }
  if (t === "denoise" && $("sigma").value !== "") form.append("sigma", $("sigma").value);
  say("");
  delete document.body.dataset.result;
  const t0 = performance.now();
  const id = newJobId();
  const stopTiles = pollTiles(id);
  await job("restore", t === "inpaint" ? "Inpainting…" : `Running ${t}…`, async () => {
    try {
      const resp = await fetch("/v1/restore", { method: "POST", body: form, headers: { "X-Resgan-Job": id } });
      stopTiles();
      if (!resp.ok) {
        say(`Error ${resp.status}: ${await errorText(resp)}`, "error");
        document.body.dataset.result = "error";
        return;
      }
      if (state.resultURL) URL.revokeObjectURL(state.resultURL);
      state.resultURL = URL.createObjectURL(await resp.blob());
      await editor.showResult(state.resultURL);
      $("download").href = state.resultURL;
      $("download").download = (state.file.name || "image").replace(/\.[^.]*$/, "") + `_${t}.png`;
      $("result-bar").hidden = false;
      document.body.dataset.result = "ready";
      const secs = ((performance.now() - t0) / 1000).toFixed(2);
      say(`Done in ${secs} s with ${resp.headers.get("X-Model")}. Drag across the image to compare.`, "ok");
    } catch (e) {
      say(`Request failed: ${e.message || e}`, "error");
      document.body.dataset.result = "error";
    } finally {
      stopTiles();
    }
  });
});

// ---------------------------------------------------------------- generate
$("gen-run").addEventListener("click", async () => {
  if (running.generate) return;
  const body = { model: $("gen-model").value || null, seeds: $("seeds").value.trim() || "0-15", format: "png" };
  if ($("gen-class").value !== "") body.class = Number($("gen-class").value);
  if ($("trunc").value !== "") body.trunc = Number($("trunc").value);
  message("gen-msg", "");
  await job("generate", "Generating…", async () => {
    try {
      const resp = await fetch("/v1/generate", { method: "POST", headers: { "Content-Type": "application/json" },
                                                 body: JSON.stringify(body) });
      if (!resp.ok) { message("gen-msg", `Error ${resp.status}: ${await errorText(resp)}`, "error"); return; }
      const grid = $("grid");
      if (state.gridURL) URL.revokeObjectURL(state.gridURL);
      state.gridURL = URL.createObjectURL(await resp.blob());
      await new Promise((resolve, reject) => { grid.onload = resolve; grid.onerror = reject; grid.src = state.gridURL; });
      grid.hidden = false;
      $("gen-empty").hidden = true;
      $("gen-download").href = state.gridURL;
      $("gen-download").hidden = false;
      $("gen-info").textContent = `Seeds: ${resp.headers.get("X-Seeds").replaceAll(",", ", ")}`;
    } catch (e) {
      message("gen-msg", `Request failed: ${e.message || e}`, "error");
    }
  });
});

loadModels().catch((e) => {
  $("health").textContent = "server unreachable";
  $("health").classList.add("bad");
  say(`Cannot reach the server: ${e.message || e}`, "error");
});

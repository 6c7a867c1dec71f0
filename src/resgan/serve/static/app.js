// resgan web page: plain JS, no external assets (works offline).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { models: null, file: null, fileURL: null, resultURL: null, undo: [], drawing: false, last: null };

// ---------------------------------------------------------------- tabs, models
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) {
      t.classList.toggle("active", t === tab);
      $(t.dataset.panel).hidden = t !== tab;
    }
  });
}

async function errorText(resp) {
  try { const j = await resp.json(); return j.error || JSON.stringify(j); } catch (e) { return resp.statusText; }
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; select.appendChild(o);
}

async function loadModels() {
  const resp = await fetch("/v1/models");
  state.models = await resp.json();
  const task = $("task");
  task.innerHTML = "";
  for (const t of Object.keys(state.models.tasks)) option(task, t, t);
  if (!task.options.length) { option(task, "", "no restoration model loaded"); }
  const gen = $("gen-model");
  gen.innerHTML = "";
  for (const g of state.models.generators) option(gen, g.name, `${g.name} (${g.resolution}px)`);
  if (!gen.options.length) { option(gen, "", "no generator loaded"); $("gen-run").disabled = true; }
  onTaskChange(); onGenChange();
  $("health").textContent = `${state.models.restore.length + state.models.generators.length} model(s) loaded`;
}

function onTaskChange() {
  const t = $("task").value;
  const sel = $("restore-model");
  sel.innerHTML = "";
  for (const name of (state.models.tasks[t] || [])) option(sel, name, name);
  $("sigma-row").hidden = t !== "denoise";
  $("brush-row").hidden = t !== "inpaint";
  $("mask").style.pointerEvents = t === "inpaint" ? "auto" : "none";
  $("mask").style.visibility = t === "inpaint" ? "visible" : "hidden";
  updateRun();
}

function onGenChange() {
  const g = (state.models.generators || []).find((x) => x.name === $("gen-model").value);
  const cls = $("gen-class");
  cls.innerHTML = "";
  if (!g || !g.num_classes) { option(cls, "", g ? "unconditional" : "-"); cls.disabled = true; return; }
  cls.disabled = false;
  option(cls, "", "seed % classes");
  g.classes.forEach((name, i) => option(cls, String(i), `${i}: ${name}`));
}
$("task").addEventListener("change", onTaskChange);
$("gen-model").addEventListener("change", onGenChange);

// ---------------------------------------------------------------- photo + mask editor
const photo = $("photo"), mask = $("mask"), mctx = mask.getContext("2d");

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

async function openFile(file) {
  if (!file) return;
  let bitmap;
  try { bitmap = await createImageBitmap(file); } catch (e) { setStatus("cannot read that file as an image", true); return; }
  state.file = file;
  if (state.fileURL) URL.revokeObjectURL(state.fileURL);
  state.fileURL = URL.createObjectURL(file);
  photo.width = mask.width = bitmap.width;
  photo.height = mask.height = bitmap.height;
  photo.getContext("2d").drawImage(bitmap, 0, 0);
  mctx.clearRect(0, 0, mask.width, mask.height);
  state.undo = [];
  // small images are shown enlarged so that painting is comfortable
  const shown = Math.max(bitmap.width, Math.min(512, bitmap.width * 4));
  $("editor").style.setProperty("--w", `${shown}px`);
  showEditor();
  setStatus(`${file.name}: ${bitmap.width}x${bitmap.height}`);
  updateRun();
}

function showEditor() {
  $("editor").hidden = false; $("compare").hidden = true; $("result-bar").hidden = true;
}

function maskIsEmpty() {
  const d = mctx.getImageData(0, 0, mask.width, mask.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) return false;
  return true;
}

function updateRun() {
  $("run").disabled = !state.file || !$("task").value;
}

function toCanvas(ev) {
  const r = mask.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * mask.width / r.width, y: (ev.clientY - r.top) * mask.height / r.height,
           k: mask.width / r.width };
}

function dab(from, to) {
  mctx.strokeStyle = mctx.fillStyle = "rgb(255, 40, 40)";
  mctx.lineCap = mctx.lineJoin = "round";
  mctx.lineWidth = Number($("brush").value) * to.k;
  mctx.beginPath();
  mctx.moveTo(from.x, from.y);
  mctx.lineTo(to.x + 0.01, to.y);
  mctx.stroke();
}

// undo snapshots: up to 50, and no more than ~200 MB of them (a big photo keeps at least 3)
function pushUndo() {
  const limit = Math.max(3, Math.min(50, Math.floor(2e8 / (mask.width * mask.height * 4))));
  state.undo.push(mctx.getImageData(0, 0, mask.width, mask.height));
  while (state.undo.length > limit) state.undo.shift();
}

mask.addEventListener("pointerdown", (ev) => {
  if (!state.file) return;
  pushUndo();
  state.drawing = true;
  mask.setPointerCapture(ev.pointerId);
  state.last = toCanvas(ev);
  dab(state.last, state.last);
});
mask.addEventListener("pointermove", (ev) => {
  if (!state.drawing) return;
  const p = toCanvas(ev);
  dab(state.last, p);
  state.last = p;
});
for (const name of ["pointerup", "pointercancel"]) mask.addEventListener(name, () => { state.drawing = false; });
$("undo").addEventListener("click", () => { const d = state.undo.pop(); if (d) mctx.putImageData(d, 0, 0); });
$("clear").addEventListener("click", () => {
  pushUndo();
  mctx.clearRect(0, 0, mask.width, mask.height);
});
$("brush").addEventListener("input", () => { $("brush-out").textContent = $("brush").value; });

// black-and-white PNG of the painted hole (white = hole), the photo's size
function maskBlob() {
  const c = document.createElement("canvas");
  c.width = mask.width; c.height = mask.height;
  const ctx = c.getContext("2d");
  const src = mctx.getImageData(0, 0, mask.width, mask.height);
  const out = ctx.createImageData(mask.width, mask.height);
  for (let i = 0; i < src.data.length; i += 4) {
    const v = src.data[i + 3] >= 128 ? 255 : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = v;
    out.data[i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

const drop = $("drop");
$("file").addEventListener("change", (ev) => openFile(ev.target.files[0]));
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); openFile(ev.dataTransfer.files[0]); });

// ---------------------------------------------------------------- run restore
$("run").addEventListener("click", async () => {
  const task = $("task").value;
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  form.append("task", task);
  if ($("restore-model").value) form.append("model", $("restore-model").value);
  if (task === "inpaint") {
    if (maskIsEmpty()) { setStatus("paint the hole first (brush over the photo)", true); return; }
    form.append("mask", await maskBlob(), "mask.png");
  }
  if (task === "denoise" && $("sigma").value !== "") form.append("sigma", $("sigma").value);
  $("run").disabled = true;
  setStatus("running…");
  const t0 = performance.now();
  try {
    const resp = await fetch("/v1/restore", { method: "POST", body: form });
    if (!resp.ok) { setStatus(`error ${resp.status}: ${await errorText(resp)}`, true); return; }
    const blob = await resp.blob();
    if (state.resultURL) URL.revokeObjectURL(state.resultURL);
    state.resultURL = URL.createObjectURL(blob);
    const after = $("after");
    await new Promise((resolve, reject) => { after.onload = resolve; after.onerror = reject; after.src = state.resultURL; });
    $("before").src = state.fileURL;
    $("compare").style.setProperty("--w", $("editor").style.getPropertyValue("--w"));
    $("download").href = state.resultURL;
    $("download").download = state.file.name.replace(/\.[^.]*$/, "") + `_${task}.png`;
    $("editor").hidden = true; $("compare").hidden = false; $("result-bar").hidden = false;
    document.body.dataset.result = "ready";
    setStatus(`done in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  } catch (e) {
    setStatus(`request failed: ${e}`, true);
  } finally {
    updateRun();
  }
});
$("split").addEventListener("input", () => { $("after").style.setProperty("--split", `${$("split").value}%`); });
$("back").addEventListener("click", showEditor);

// ---------------------------------------------------------------- generate
$("gen-run").addEventListener("click", async () => {
  const body = { model: $("gen-model").value || null, seeds: $("seeds").value.trim() || "0-15", format: "png" };
  if ($("gen-class").value !== "") body.class = Number($("gen-class").value);
  if ($("trunc").value !== "") body.trunc = Number($("trunc").value);
  const st = $("gen-status");
  st.className = "muted"; st.textContent = "generating…";
  const resp = await fetch("/v1/generate", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) });
  if (!resp.ok) { st.className = "error"; st.textContent = `error ${resp.status}: ${await errorText(resp)}`; return; }
  const grid = $("grid");
  if (grid.src) URL.revokeObjectURL(grid.src);
  const url = URL.createObjectURL(await resp.blob());
  await new Promise((resolve, reject) => { grid.onload = resolve; grid.onerror = reject; grid.src = url; });
  grid.hidden = false;
  st.textContent = `seeds ${resp.headers.get("X-Seeds")}`;
});

loadModels().catch((e) => setStatus(`cannot reach the server: ${e}`, true));

// The photo viewer of the Inpaint / Enhance panel: zoom and pan, the hole brush, the brush-cursor
// preview and the before / after split line. Screen position (CSS px inside #viewport) =
// view.x + view.s * image position; the canvases keep the photo's own pixels, so a stroke lands
// on the image pixel under the pointer at any zoom.
const $ = (id) => document.getElementById(id);
const viewport = $("viewport"), layer = $("canvas"), photo = $("photo"), mask = $("mask"), after = $("after");
const cursor = $("cursor"), split = $("split"), brush = $("brush");
const mctx = mask.getContext("2d", { willReadFrequently: true }); // (undo snapshots, the PNG)
const MASK_COLOR = "rgb(255, 45, 85)";

export const view = { s: 1, x: 0, y: 0, split: 0.5 };
const ed = {
  w: 0, h: 0, mode: "empty", // empty | edit | compare
  painting: true, // Inpaint: the brush paints; Enhance: a drag pans
  tool: "brush", // brush | eraser | pan
  fitted: true, space: false, undo: [], drag: null, pinch: null, pointers: new Map(),
  onStroke: () => {},
};

// ---------------------------------------------------------------- view
const local = (ev) => {
  const r = viewport.getBoundingClientRect();
  return { x: ev.clientX - r.left - viewport.clientLeft, y: ev.clientY - r.top - viewport.clientTop };
};
const toImage = (p) => ({ x: (p.x - view.x) / view.s, y: (p.y - view.y) / view.s });
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

function fitScale() {
  return Math.min(viewport.clientWidth / ed.w, viewport.clientHeight / ed.h, 8);
}

function scaleLimits() {
  const f = fitScale();
  return [Math.min(f, 1) / 4, Math.max(f, 1) * 16];
}

export function fit() {
  if (!ed.w || !viewport.clientWidth) return;
  view.s = fitScale();
  view.x = (viewport.clientWidth - ed.w * view.s) / 2;
  view.y = (viewport.clientHeight - ed.h * view.s) / 2;
  ed.fitted = true;
  render();
}

export function zoomAt(factor, cx, cy) {
  if (!ed.w) return;
  const [lo, hi] = scaleLimits();
  const s = clamp(view.s * factor, lo, hi);
  view.x = cx - (cx - view.x) * s / view.s;
  view.y = cy - (cy - view.y) * s / view.s;
  view.s = s;
  ed.fitted = false;
  render();
}

export const zoomBy = (factor) => zoomAt(factor, viewport.clientWidth / 2, viewport.clientHeight / 2);

function render() {
  if (!ed.w) return;
  // keep at least 48 px of the photo in view
  const vw = viewport.clientWidth, vh = viewport.clientHeight, m = 48;
  view.x = clamp(view.x, Math.min(m, vw / 2) - ed.w * view.s, vw - Math.min(m, vw / 2));
  view.y = clamp(view.y, Math.min(m, vh / 2) - ed.h * view.s, vh - Math.min(m, vh / 2));
  layer.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.s})`;
  layer.classList.toggle("pixels", view.s >= 2.5);
  viewport.dataset.zoom = view.s.toFixed(4);
  $("zoom-fit").textContent = `${Math.round(view.s * 100)}%`;
  const sx = clamp(view.x + view.split * ed.w * view.s, 0, vw);
  split.style.left = `${sx}px`;
  after.style.clipPath = `inset(0 0 0 ${view.split * 100}%)`;
  cursor.style.width = cursor.style.height = `${brushSize() * view.s}px`;
}

// (a hidden view, on the Generate tab, measures 0: the view is left as it was)
new ResizeObserver(() => { if (!ed.w || !viewport.clientWidth) return; if (ed.fitted) fit(); else render(); })
  .observe(viewport);

// ---------------------------------------------------------------- photo, modes, tools
export function load(bitmap) {
  ed.w = photo.width = mask.width = bitmap.width;
  ed.h = photo.height = mask.height = bitmap.height;
  layer.style.width = `${ed.w}px`;
  layer.style.height = `${ed.h}px`;
  viewport.style.setProperty("--aspect", String(ed.h / ed.w)); // (phones size the view to the photo)
  photo.getContext("2d").drawImage(bitmap, 0, 0);
  mctx.clearRect(0, 0, ed.w, ed.h);
  ed.undo = [];
  // brush sizes in image pixels: up to a quarter of the photo, starting at about 1/12 of its short side
  brush.max = String(Math.max(50, Math.round(Math.max(ed.w, ed.h) / 4)));
  brush.value = String(clamp(Math.round(Math.min(ed.w, ed.h) / 12), 4, 64));
  brush.dispatchEvent(new Event("input"));
  setMode("edit");
  fit();
}

export function setMode(mode) {
  ed.mode = mode;
  viewport.dataset.view = mode;
  split.hidden = mode !== "compare";
  for (const b of document.querySelectorAll(".toolbar button")) b.disabled = mode === "empty";
  endDrag();
  updateCursor();
}

export const mode = () => ed.mode;

export function setPainting(on) {
  ed.painting = on;
  if (!on && ed.tool !== "pan") setTool("pan");
  if (on && ed.tool === "pan") setTool("brush");
}

export function setTool(tool) {
  ed.tool = tool;
  for (const b of document.querySelectorAll(".tool")) b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
  updateCursor();
}

export function onStroke(fn) { ed.onStroke = fn; }

export async function showResult(url) {
  await new Promise((resolve, reject) => { after.onload = resolve; after.onerror = reject; after.src = url; });
  view.split = 0.5;
  setMode("compare");
  render();
}

function brushSize() { return Number(brush.value); }

function panning(ev) {
  return ev.button === 1 || ed.space || ed.tool === "pan" || (ed.mode === "edit" && !ed.painting);
}

function updateCursor(ev) {
  let kind = "grab";
  if (ed.drag) kind = ed.drag.kind === "pan" ? "grabbing" : ed.drag.kind;
  else if (ed.space || ed.tool === "pan") kind = "grab";
  else if (ed.mode === "compare") kind = "split";
  else if (ed.mode === "edit" && ed.painting) kind = "paint";
  viewport.dataset.cursor = kind;
  const show = kind === "paint" && ev && ev.pointerType !== "touch" || ed.drag?.kind === "paint";
  cursor.hidden = !show;
  cursor.classList.toggle("erase", ed.tool === "eraser");
  if (ev) {
    const p = local(ev);
    cursor.style.transform = `translate(${p.x}px, ${p.y}px) translate(-50%, -50%)`;
  }
}

// ---------------------------------------------------------------- mask
function pushUndo() {
  // up to 50 snapshots, and no more than ~200 MB of them (a big photo keeps at least 3)
  const limit = Math.max(3, Math.min(50, Math.floor(2e8 / (ed.w * ed.h * 4))));
  ed.undo.push(mctx.getImageData(0, 0, ed.w, ed.h));
  while (ed.undo.length > limit) ed.undo.shift();
}

export function undo() {
  const d = ed.undo.pop();
  if (d) mctx.putImageData(d, 0, 0);
}

export function clear() {
  if (!ed.w || maskIsEmpty()) return;
  pushUndo();
  mctx.clearRect(0, 0, ed.w, ed.h);
}

function dab(from, to) {
  mctx.globalCompositeOperation = ed.tool === "eraser" ? "destination-out" : "source-over";
  mctx.strokeStyle = MASK_COLOR;
  mctx.lineCap = mctx.lineJoin = "round";
  mctx.lineWidth = brushSize();
  mctx.beginPath();
  mctx.moveTo(from.x, from.y);
  mctx.lineTo(to.x + 0.01, to.y);
  mctx.stroke();
}

export function maskIsEmpty() {
  const d = mctx.getImageData(0, 0, ed.w, ed.h).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) return false;
  return true;
}

// a black-and-white PNG of the painted hole (white = hole), the photo's size
export function maskBlob() {
  const c = document.createElement("canvas");
  c.width = ed.w; c.height = ed.h;
  const src = mctx.getImageData(0, 0, ed.w, ed.h);
  const out = c.getContext("2d").createImageData(ed.w, ed.h);
  for (let i = 0; i < src.data.length; i += 4) {
    const v = src.data[i + 3] >= 128 ? 255 : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = v;
    out.data[i + 3] = 255;
  }
  c.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

// ---------------------------------------------------------------- pointers: paint, pan, split, pinch
function moveSplit(ev) {
  view.split = clamp((local(ev).x - view.x) / (ed.w * view.s), 0, 1);
  render();
}

function endDrag() {
  ed.drag = null;
  ed.pinch = null;
}

viewport.addEventListener("pointerdown", (ev) => {
  if (ed.mode === "empty") return;
  ev.preventDefault();
  viewport.focus({ preventScroll: true });
  viewport.setPointerCapture(ev.pointerId);
  ed.pointers.set(ev.pointerId, local(ev));
  if (ed.pointers.size === 2) { // a second finger: pinch-zoom (and drop the stroke the first one began)
    if (ed.drag?.kind === "paint") undo();
    const [a, b] = [...ed.pointers.values()];
    ed.drag = null;
    ed.pinch = { d: Math.hypot(a.x - b.x, a.y - b.y), s: view.s, mid: toImage({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }) };
    return;
  }
  if (ed.pointers.size > 2) return;
  if (panning(ev)) {
    ed.drag = { kind: "pan", x: ev.clientX - view.x, y: ev.clientY - view.y };
  } else if (ed.mode === "compare") {
    ed.drag = { kind: "split" };
    moveSplit(ev);
  } else if (ev.button === 0) {
    pushUndo();
    const p = toImage(local(ev));
    ed.drag = { kind: "paint", last: p };
    dab(p, p);
    ed.onStroke();
  }
  updateCursor(ev);
});

viewport.addEventListener("pointermove", (ev) => {
  if (ed.mode === "empty") return;
  if (ed.pointers.has(ev.pointerId)) ed.pointers.set(ev.pointerId, local(ev));
  if (ed.pinch && ed.pointers.size === 2) {
    const [a, b] = [...ed.pointers.values()];
    const [lo, hi] = scaleLimits();
    view.s = clamp(ed.pinch.s * Math.hypot(a.x - b.x, a.y - b.y) / ed.pinch.d, lo, hi);
    view.x = (a.x + b.x) / 2 - ed.pinch.mid.x * view.s;
    view.y = (a.y + b.y) / 2 - ed.pinch.mid.y * view.s;
    ed.fitted = false;
    render();
  } else if (ed.drag?.kind === "pan") {
    view.x = ev.clientX - ed.drag.x;
    view.y = ev.clientY - ed.drag.y;
    ed.fitted = false;
    render();
  } else if (ed.drag?.kind === "split") {
    moveSplit(ev);
  } else if (ed.drag?.kind === "paint") {
    const p = toImage(local(ev));
    dab(ed.drag.last, p);
    ed.drag.last = p;
  }
  updateCursor(ev);
});

for (const name of ["pointerup", "pointercancel"]) {
  viewport.addEventListener(name, (ev) => {
    ed.pointers.delete(ev.pointerId);
    if (ed.pinch && ed.pointers.size < 2) { endDrag(); ed.pointers.clear(); }
    if (!ed.pointers.size) ed.drag = null;
    updateCursor(ev);
  });
}
viewport.addEventListener("pointerleave", () => { if (!ed.drag) cursor.hidden = true; });
viewport.addEventListener("contextmenu", (ev) => { if (ed.mode !== "empty") ev.preventDefault(); });

viewport.addEventListener("wheel", (ev) => {
  if (ed.mode === "empty") return;
  ev.preventDefault();
  const unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
  const p = local(ev);
  zoomAt(Math.exp(-ev.deltaY * unit * (ev.ctrlKey ? 0.01 : 0.0015)), p.x, p.y); // ctrl: a trackpad pinch
}, { passive: false });

// ---------------------------------------------------------------- keys (when not typing in a field)
const typing = (ev) => ev.target.closest && ev.target.closest("input, select, textarea");

document.addEventListener("keydown", (ev) => {
  if (ed.mode === "empty" || typing(ev) || $("panel-restore").hidden) return;
  const k = ev.key;
  if (k === " " && ev.target.closest && ev.target.closest("button, a, label")) return; // a space there clicks
  if (k === " ") { ed.space = true; updateCursor(); ev.preventDefault(); return; }
  if ((ev.ctrlKey || ev.metaKey) && k.toLowerCase() === "z") { undo(); ev.preventDefault(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const size = (d) => { brush.value = String(Number(brush.value) + d); brush.dispatchEvent(new Event("input")); };
  const acts = {
    "+": () => zoomBy(1.25), "=": () => zoomBy(1.25), "-": () => zoomBy(0.8), 0: fit,
    b: () => ed.painting && setTool("brush"), e: () => ed.painting && setTool("eraser"), h: () => setTool("pan"),
    "[": () => size(-Math.max(1, Math.round(brushSize() / 8))), "]": () => size(Math.max(1, Math.round(brushSize() / 8))),
  };
  if (acts[k]) { acts[k](); ev.preventDefault(); }
});
document.addEventListener("keyup", (ev) => { if (ev.key === " ") { ed.space = false; updateCursor(); } });
window.addEventListener("blur", () => { ed.space = false; });

brush.addEventListener("input", () => {
  $("brush-out").textContent = `${brush.value} px`;
  render();
});

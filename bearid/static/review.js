"use strict";
let state = {page: 0, pages: 1, items: [], classes: [], current: 0};
const $ = (id) => document.getElementById(id);

function status(text, bad) { const s = $("status"); s.textContent = text; s.className = bad ? "error" : ""; }

async function load(page) {
  const r = await fetch(`/api/candidates?page=${page}`);
  const data = await r.json();
  if (!r.ok) { status(data.error, true); return; }
  Object.assign(state, data, {current: 0});
  render();
  if (data.decisions_error) status(data.decisions_error + " Nothing will be saved until the file is fixed.", true);
}

function describe(d) {
  if (!d) return "";
  return d.action === "relabel" ? `relabel \u2192 ${d.label}` : d.action;
}

function render() {
  $("pageinfo").textContent = ` ${state.page + 1} / ${state.pages} `;
  $("progress").textContent = `${state.decided} of ${state.total} decided`;
  $("classes").textContent = "Classes: " + state.classes.map((c, i) => `${i + 1} ${c}`).join(", ");
  const grid = $("grid");
  grid.replaceChildren();
  state.items.forEach((item, i) => {
    const card = document.createElement("div");
    card.className = "card" + (item.decision ? " " + item.decision.action : "") + (i === state.current ? " current" : "");
    card.dataset.path = item.path;
    card.innerHTML = `<img alt="">
      <div class="meta"><div>given <b class="given"></b> &middot; suggested <b class="suggested"></b></div>
      <div>score <span class="score"></span> &middot; <span class="reason"></span></div>
      <div class="decision"></div></div><div class="buttons"></div>`;
    card.querySelector("img").src = item.image;
    card.querySelector("img").alt = item.path;
    card.querySelector(".given").textContent = item.label;
    card.querySelector(".suggested").textContent = item.suggested;
    card.querySelector(".score").textContent = Number(item.score).toFixed(3);
    card.querySelector(".reason").textContent = item.reason || "not flagged";
    card.querySelector(".decision").textContent = describe(item.decision);
    const buttons = card.querySelector(".buttons");
    const add = (text, action, label) => {
      const b = document.createElement("button");
      b.textContent = text; b.dataset.action = action; if (label) b.dataset.label = label;
      const d = item.decision;
      if (d && d.action === action && (action !== "relabel" || d.label === label)) b.classList.add("chosen");
      b.addEventListener("click", () => { state.current = i; decide(action, label); });
      buttons.appendChild(b);
    };
    add("keep", "keep");
    add("delete", "delete");
    state.classes.forEach((c) => { if (c !== item.label) add("\u2192 " + c, "relabel", c); });
    card.addEventListener("click", (e) => { if (e.target.tagName !== "BUTTON") { state.current = i; render(); } });
    grid.appendChild(card);
  });
}

async function decide(action, label) {
  const item = state.items[state.current];
  if (!item) return;
  if (state.decisions_error) { status(state.decisions_error + " Nothing is saved until the file is fixed.", true); return; }
  const r = await fetch("/api/decisions", {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify({path: item.path, action, label: label || ""})});
  const data = await r.json().catch(() => ({error: `the server answered ${r.status}`}));
  if (!r.ok) { status(data.error, true); return; }
  if (!item.decision && data.decision) state.decided += 1;
  if (item.decision && !data.decision) state.decided -= 1;
  item.decision = data.decision;
  status(`saved: ${item.path} ${describe(item.decision) || "undecided"}`);
  if (data.decision) move(1); else render();
}

function move(step) {
  const next = state.current + step;
  if (next >= state.items.length) { if (state.page + 1 < state.pages) { load(state.page + 1); return; } }
  else if (next < 0) { if (state.page > 0) { load(state.page - 1); return; } }
  else state.current = next;
  render();
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key;
  if (k === "k") decide("keep");
  else if (k === "d") decide("delete");
  else if (k === "u") decide("undecided");
  else if (/^[1-9]$/.test(k) && Number(k) <= state.classes.length) decide("relabel", state.classes[Number(k) - 1]);
  else if (k === "j" || k === "ArrowRight" || k === "ArrowDown") move(1);
  else if (k === "ArrowLeft" || k === "ArrowUp") move(-1);
  else if (k === "n") { if (state.page + 1 < state.pages) load(state.page + 1); }
  else if (k === "p") { if (state.page > 0) load(state.page - 1); }
  else return;
  e.preventDefault();
});
$("next").addEventListener("click", () => { if (state.page + 1 < state.pages) load(state.page + 1); });
$("prev").addEventListener("click", () => { if (state.page > 0) load(state.page - 1); });
load(0);

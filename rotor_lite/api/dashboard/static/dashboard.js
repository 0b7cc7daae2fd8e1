// rotor-lite dashboard: the few things a server-rendered page cannot do by itself.
// Every page works without this file; it adds live counts, the run graph's refresh, the cron preview,
// the approvals' keyboard shortcuts, times in the viewer's zone, and confirmations.
"use strict";

function localFormat() {
  return new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
}

// Times in the viewer's time zone: <time datetime="…" data-local>
function showLocalTimes(root) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const format = localFormat();
  for (const el of root.querySelectorAll("time[data-local]")) {
    const moment = new Date(el.getAttribute("datetime"));
    if (!isNaN(moment)) { el.textContent = format.format(moment); el.title = zone; }
  }
}

// Live queue counts over server-sent events: [data-live] holds cells [data-count=queue][data-state=state]
function liveCounts() {
  const holder = document.querySelector("[data-live]");
  if (!holder || !window.EventSource) return;
  const source = new EventSource(holder.getAttribute("data-live"));
  const status = document.querySelector("[data-live-status]");
  source.addEventListener("counts", (event) => {
    const counts = JSON.parse(event.data);
    for (const cell of document.querySelectorAll("[data-count]")) {
      const queue = counts[cell.getAttribute("data-count")];
      const value = queue && queue[cell.getAttribute("data-state")];
      if (value !== undefined && cell.textContent !== String(value)) cell.textContent = String(value);
    }
    if (status) status.textContent = "Counts updated " + new Date().toLocaleTimeString() + ".";
  });
  source.addEventListener("signout", () => { source.close(); window.location.reload(); });
  window.addEventListener("pagehide", () => source.close());
}

// A run's graph, fetched again every 2 s while the run is open: [data-refresh] holds the figure
function refreshGraph() {
  const holder = document.querySelector("[data-refresh]");
  if (!holder) return;
  const tick = async () => {
    const figure = holder.querySelector("figure");
    if (!figure || figure.getAttribute("data-open") !== "true") return;
    try {
      const response = await fetch(holder.getAttribute("data-refresh"), { credentials: "same-origin" });
      if (response.ok) {
        const html = await response.text();
        if (html !== holder.dataset.last) { holder.dataset.last = html; holder.innerHTML = html; }
        if (holder.querySelector("figure[data-open='false']")) { window.location.reload(); return; }
      }
    } catch (error) { /* the next tick tries again */ }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

// The cron preview: [data-cron-preview] (its URL), [data-cron-zone], [data-preview-out]
function cronPreview() {
  const cron = document.querySelector("[data-cron-preview]");
  const zone = document.querySelector("[data-cron-zone]");
  const out = document.querySelector("[data-preview-out]");
  if (!cron || !zone || !out) return;
  const local = localFormat();
  let timer = null, asked = 0;
  const show = (lines, isError) => {
    out.replaceChildren();
    const list = document.createElement(isError ? "p" : "ol");
    if (isError) { list.className = "bad"; list.textContent = lines[0]; }
    else for (const line of lines) { const item = document.createElement("li"); item.textContent = line; list.append(item); }
    out.append(list);
  };
  const ask = async () => {
    const number = ++asked;
    const query = new URLSearchParams({ cron: cron.value, timezone: zone.value });
    try {
      const response = await fetch(cron.getAttribute("data-cron-preview") + "?" + query, { credentials: "same-origin" });
      const body = await response.json();
      if (number !== asked) return;  // a later keystroke's answer wins
      if (!response.ok) { show([body.error || "not a valid cron"], true); return; }
      const heading = document.createElement("p");
      heading.textContent = body.description;
      show(body.next.map((fire) => fire.zoned + " — yours: " + local.format(new Date(fire.utc))), false);
      out.prepend(heading);
    } catch (error) { /* offline: keep the last preview */ }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(ask, 250); };
  cron.addEventListener("input", later);
  zone.addEventListener("input", later);
  ask();
}

// Approvals: j/k move between items, a approves the selected one, r goes to its reason field
function shortcuts() {
  const box = document.querySelector("[data-shortcuts]");
  if (!box) return;
  const items = () => Array.from(box.querySelectorAll("[data-item]"));
  let index = -1;
  const select = (next) => {
    const all = items();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, next));
    all.forEach((item, i) => item.classList.toggle("selected", i === index));
    all[index].focus();
    all[index].scrollIntoView({ block: "nearest" });
  };
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    const current = items()[index];
    if (event.key === "j") select(index + 1);
    else if (event.key === "k") select(index - 1);
    else if (event.key === "a" && current && current.querySelector("[data-approve]")) current.querySelector("[data-approve]").click();
    else if (event.key === "r" && current && current.querySelector("[data-reason]")) current.querySelector("[data-reason]").focus();
    else return;
    event.preventDefault();
  });
}

// Forms with data-confirm ask first; a [data-select-all=name] checkbox ticks every box of that name
function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault(); });
  }
  for (const all of document.querySelectorAll("[data-select-all]")) {
    const name = all.getAttribute("data-select-all");
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("input[type=checkbox][name='" + name + "']")) box.checked = all.checked;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const part of [() => showLocalTimes(document), liveCounts, refreshGraph, cronPreview, shortcuts, confirmations]) {
    try { part(); } catch (error) { console.error(error); }  // one part failing leaves the others working
  }
});

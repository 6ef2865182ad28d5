// eplb-harness report: sorting, filters and hover labels. No library, no network.
"use strict";

function cellValue(row, index, numeric) {
  const raw = row.cells[index].dataset.v;
  if (!numeric) return raw === undefined ? row.cells[index].textContent : raw;
  const v = parseFloat(raw);
  return Number.isFinite(v) ? v : null;
}

function sortTable(table, index, numeric, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
    if (x === null || x === "") return (y === null || y === "") ? 0 : 1;   // missing values last
    if (y === null || y === "") return -1;
    const order = numeric ? x - y : String(x).localeCompare(String(y));
    return descending ? -order : order;
  });
  rows.forEach((row) => body.appendChild(row));
}

function makeSortable(table) {
  const heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach((th, index) => {
    th.addEventListener("click", () => {
      const numeric = th.dataset.sort === "num";
      const current = th.getAttribute("aria-sort");
      // First click: best first by the figure's declared direction (rank and text: ascending).
      const first = th.dataset.better === "high" ? "descending" : "ascending";
      const next = current === null ? first : (current === "ascending" ? "descending" : "ascending");
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", next);
      sortTable(table, index, numeric, next === "descending");
    });
  });
}

function applyFilters() {
  const suite = document.getElementById("f-suite");
  const deployment = document.getElementById("f-deployment");
  const origin = document.getElementById("f-origin");
  if (!suite) return;
  document.querySelectorAll("section.board").forEach((section) => {
    const shown = section.dataset.suite === suite.value && section.dataset.deployment === deployment.value;
    section.classList.toggle("hidden", !shown);
  });
  document.querySelectorAll("table.sortable tbody tr").forEach((row) => {
    row.classList.toggle("hidden", origin.value !== "" && row.dataset.origin !== origin.value);
  });
}

function hoverLabels() {
  const tip = document.getElementById("tooltip");
  if (!tip) return;
  document.querySelectorAll("[data-label]").forEach((el) => {
    el.addEventListener("mousemove", (event) => {
      tip.textContent = el.dataset.label;
      tip.style.left = (event.clientX + 12) + "px";
      tip.style.top = (event.clientY + 12) + "px";
      tip.hidden = false;
    });
    el.addEventListener("mouseleave", () => { tip.hidden = true; });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  ["f-suite", "f-deployment", "f-origin"].forEach((id) => {
    const el = document.getElementById(id);
    if (el) el.addEventListener("change", applyFilters);
  });
  applyFilters();
  hoverLabels();
});

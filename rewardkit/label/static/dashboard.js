// The admin dashboard, live: poll stats.json, update the figures and table, reload plots when data changed.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  if (!root) return;
  const base = "/admin/projects/" + root.dataset.project;
  let version = null;
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
  const num = (v, d) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

  function render(stats) {
    root.querySelectorAll("[data-stat]").forEach((el) => {
      const value = stats[el.dataset.stat];
      el.textContent = el.dataset.format === "pct" ? pct(value) : el.dataset.format === "num" ? num(value, 3) : value;
    });
    const body = root.querySelector("#annotators tbody");
    body.replaceChildren(...stats.annotators.map((a) => {
      const row = document.createElement("tr");
      const cells = [a.name, a.rankings, a.skips, a.unsafe_flags, num(a.per_hour, 0), num(a.median_seconds, 1),
        pct(a.vs_others_majority) + " (" + a.pairs_vs_majority + ")", pct(a.rm_agreement)];
      cells.forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = String(text);
        row.appendChild(cell);
      });
      return row;
    }));
    if (version !== null && stats.version !== version) {
      root.querySelectorAll("img[data-plot]").forEach((img) => {
        img.src = base + "/plots/" + img.dataset.plot + ".png?v=" + stats.version;
      });
    }
    version = stats.version;
    root.dataset.version = String(stats.version);
  }
  async function poll() {
    try {
      const response = await fetch(base + "/stats.json", {credentials: "same-origin", cache: "no-store"});
      if (response.ok) render(await response.json());
    } catch (error) {
      // the server restarted or the network blinked: try again on the next tick
    }
  }
  poll();
  setInterval(poll, 3000);
})();

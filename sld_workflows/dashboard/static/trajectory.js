// Plots of one trajectory from /api/trajectories/<id>/series and /spins. Database values only ever
// reach the page through Plotly (SVG text) or textContent — never innerHTML.
"use strict";
(function () {
  const section = document.getElementById("plots");
  const note = document.getElementById("series-note");
  const base = { margin: { l: 60, r: 20, t: 30, b: 40 }, legend: { orientation: "h" } };
  const cfg = { displaylogo: false, responsive: true };

  function line(cols, key, name, axis) {
    const y = cols[key];
    if (!y || y.every((v) => v === null)) return null;
    const t = { x: cols.time_fs, y: y, name: name, mode: "lines+markers", marker: { size: 3 } };
    if (axis) t.yaxis = axis;
    return t;
  }
  function plot(id, traces, title, ytitle, extra) {
    traces = traces.filter((t) => t !== null);
    if (!traces.length) return;
    const layout = Object.assign({}, base, { height: 300, title: { text: title }, xaxis: { title: { text: "time (fs)" } },
      yaxis: { title: { text: ytitle } } }, extra || {});
    Plotly.newPlot(id, traces, layout, cfg);
  }
  fetch(section.dataset.series).then((r) => r.json()).then((s) => {
    const c = s.columns;
    note.textContent = s.n_points + " of " + s.n_stored_steps + " stored steps shown" +
      (s.material ? " · order parameters of preset " + s.material : "");
    plot("plot-energy", [line(c, "energy_ev", "E")], "Energy", "eV");
    plot("plot-temperature", [line(c, "T_lattice_K", "T lattice"), line(c, "T_spin_K", "T spin")],
      "Temperatures", "K");
    const skip = new Set(["step", "time_fs", "energy_ev", "wall_time_s", "T_lattice_K", "T_spin_K", "scf_iterations",
      "custodian_corrections", "restart_break", "a_A", "b_A", "c_A", "volume_A3", "c_axis"]);
    const order = [line(c, "m", "|m|")];
    Object.keys(c).filter((k) => !skip.has(k) && k !== "m").forEach((k) => order.push(line(c, k, k)));
    plot("plot-order", order, "Magnetisation and order parameters", "");
    if (s.npt) {
      plot("plot-cell", [line(c, "a_A", "a"), line(c, "b_A", "b"), line(c, "c_A", "c"),
        line(c, "volume_A3", "volume", "y2")], "Cell (NpT)", "Å",
        { margin: { l: 60, r: 80, t: 30, b: 40 },
          yaxis2: { title: { text: "volume (Å³)" }, overlaying: "y", side: "right", tickformat: ".2f" } });
    }
    if (s.dft) {
      const bar = (k, n) => (c[k] ? { x: c.step, y: c[k], name: n, type: "bar" } : null);
      plot("plot-dft", [bar("scf_iterations", "SCF iterations"), bar("custodian_corrections", "Custodian corrections"),
        bar("restart_break", "restart-chain break")], "DFT cost per step", "count",
        { xaxis: { title: { text: "step" } }, barmode: "group" });
    }
    section.dataset.loaded = "series";
  }).catch((e) => { note.textContent = "could not load the series: " + e; });

  fetch(section.dataset.spins).then((r) => (r.ok ? r.json() : null)).then((sp) => {
    if (!sp || !sp.positions) return;
    const p = sp.positions, s = sp.spins;
    const trace = { type: "cone", x: p.map((v) => v[0]), y: p.map((v) => v[1]), z: p.map((v) => v[2]),
      u: s.map((v) => v[0]), v: s.map((v) => v[1]), w: s.map((v) => v[2]), sizemode: "absolute", sizeref: 0.6,
      anchor: "center", colorscale: "Viridis", showscale: false,
      text: sp.species, hoverinfo: "text+u+v+w" };
    Plotly.newPlot("plot-spins", [trace], Object.assign({}, base, {
      height: 520, title: { text: "Spins at step " + sp.step }, scene: { aspectmode: "data" } }), cfg);
    section.dataset.spinsLoaded = "1";
  });
})();

// The endpoint page's plots: uPlot draws them; this file only hands it the data.
// It builds one uPlot per chart from the JSON the page carries (the last hour
// the scheduler sampled), then every few seconds asks for the points newer
// than the last one it has, appends them and drops those older than the window.
(function () {
  "use strict";
  const source = document.getElementById("history-data");
  if (!source || typeof uPlot === "undefined") return;
  const state = JSON.parse(source.textContent);
  const palette = ["#2563eb", "#dc6803", "#12b76a", "#7a5af8", "#e31b54", "#0ba5ec", "#667085"];
  const plots = {};

  function options(chart, width) {
    return {
      title: chart.title,
      width: width,
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: chart.unit, size: 60 }],
      series: [{}].concat(chart.series.map(function (label, i) {
        return { label: label, stroke: palette[i % palette.length], width: 2 };
      })),
    };
  }

  for (const chart of state.charts) {
    const el = document.getElementById("chart-" + chart.id);
    if (!el) continue;
    plots[chart.id] = { chart: chart, plot: new uPlot(options(chart, el.clientWidth || 560), chart.data, el), el: el };
  }

  function append(fresh) {
    const oldest = Date.now() / 1000 - state.window_s;
    for (const chart of fresh.charts) {
      const held = plots[chart.id];
      if (!held || held.chart.series.join() !== chart.series.join()) continue; // variants changed: a reload redraws
      const data = held.chart.data;
      chart.data.forEach(function (column, i) { data[i].push.apply(data[i], column); });
      let drop = 0;
      while (drop < data[0].length && data[0][drop] < oldest) drop++;
      if (drop) data.forEach(function (column) { column.splice(0, drop); });
      held.plot.setData(data);
      held.el.dataset.points = String(data[0].length);
    }
    state.last = Math.max(state.last, fresh.last);
  }

  function refresh() {
    const url = "/console/endpoints/" + encodeURIComponent(state.endpoint) + "/history.json?since=" + state.last;
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (fresh) { if (fresh) append(fresh); })
      .catch(function () { /* the next tick tries again */ });
  }

  setInterval(refresh, state.refresh_ms);
  window.addEventListener("resize", function () {
    for (const id in plots) plots[id].plot.setSize({ width: plots[id].el.clientWidth, height: 220 });
  });
})();

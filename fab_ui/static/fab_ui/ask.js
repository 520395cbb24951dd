/* The Ask page. A client of /graphql like any other: the first answer comes from `ask`, every edit of
 * the interpretation re-runs the edited semantic query through `load`. The session cookie
 * authenticates, so the server applies the user's policies; this script never decides access.
 * Everything from the server is written with textContent / DOM nodes, never as HTML. */
(function () {
  "use strict";

  var root = document.getElementById("ask-app");
  if (!root) return;
  var GRAPHQL_URL = root.getAttribute("data-graphql-url") || "/graphql";
  var CSRF_TOKEN = root.getAttribute("data-csrf-token") || "";

  var COLUMN_FIELDS = "key kind title shortTitle type format granularity";
  var ASK_QUERY =
    "query Ask($question: String!, $today: Date) { ask(question: $question, today: $today) { " +
    "question query restatement confidence data columns { " + COLUMN_FIELDS + " } chart narrative " +
    "alternatives clarification titles comparison sql } }";
  var LOAD_QUERY =
    "query Load($query: QueryInput!) { load(query: $query) { data columns { " + COLUMN_FIELDS + " } sql } }";
  var META_QUERY =
    "{ meta { cubes { name type title members { name kind type title shortTitle granularities } } } }";

  var DEFAULT_GRANULARITIES = ["day", "week", "month", "quarter", "year"];
  var OPERATORS = {
    string: ["equals", "notEquals", "contains", "notContains", "startsWith", "endsWith", "set", "notSet"],
    number: ["equals", "notEquals", "gt", "gte", "lt", "lte", "set", "notSet"],
    boolean: ["equals", "notEquals", "set", "notSet"],
    time: ["inDateRange", "notInDateRange", "beforeDate", "afterDate", "set", "notSet"],
  };
  var OPERATOR_WORDS = {
    equals: "is", notEquals: "is not", contains: "contains", notContains: "does not contain",
    startsWith: "starts with", endsWith: "ends with", gt: "over", gte: "at least", lt: "under",
    lte: "at most", set: "is set", notSet: "is not set", inDateRange: "in", notInDateRange: "not in",
    beforeDate: "before", afterDate: "after", beforeOrOnDate: "on or before", afterOrOnDate: "on or after",
  };
  var NO_VALUES = { set: true, notSet: true };
  var MAX_CHART_POINTS = 500;

  var el = function (id) { return document.getElementById(id); };
  var form = el("ask-form");
  var input = el("ask-question");

  var state = {
    question: "",
    query: null,         // the semantic query being shown, normalised (order as [{id, desc}])
    titles: {},          // member -> title, from the answer and from meta
    suggestedChart: "table",
    edited: false,
    answer: null,
    meta: null,          // member name -> {name, kind, type, title, shortTitle, granularities}
    valueLists: {},      // member -> Promise of distinct values (for filter suggestions)
    comparison: null,    // {shift: {months} | {days}, label} while a "vs last year" is shown
    seq: 0,
  };

  // --- GraphQL ------------------------------------------------------------------------------

  function graphql(query, variables) {
    // application/json is what makes this safe from CSRF: a cross-site form cannot send it, and a
    // cross-origin fetch with it needs a CORS preflight that the server never grants.
    return fetch(GRAPHQL_URL, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": CSRF_TOKEN,
        "X-Requested-With": "XMLHttpRequest",
      },
      body: JSON.stringify({ query: query, variables: variables || {} }),
    }).then(function (response) {
      return response.json().catch(function () {
        throw new Error("The server answered " + response.status + " without a readable body.");
      }).then(function (body) {
        if (response.status === 401) {
          var error = new Error("Your session has ended: sign in again to ask questions.");
          error.unauthenticated = true;
          throw error;
        }
        if (body && body.errors && body.errors.length) {
          throw new Error(body.errors.map(function (e) { return e.message; }).join("\n"));
        }
        if (!response.ok || !body || !body.data) {
          throw new Error("The server answered " + response.status + ".");
        }
        return body.data;
      });
    });
  }

  function loadMeta() {
    graphql(META_QUERY).then(function (data) {
      var members = {};
      data.meta.cubes.forEach(function (cube) {
        cube.members.forEach(function (m) { members[m.name] = m; });
      });
      state.meta = members;
      if (state.query) renderChips();
      if (state.answer) renderSuggestions(state.answer);
    }).catch(function () { /* the page works without it: no "add" menus, fewer titles */ });
  }

  // --- queries: the answer's Cube JSON <-> QueryInput ---------------------------------------

  function orderList(order) {
    if (!order) return [];
    if (Array.isArray(order)) {
      return order.map(function (o) {
        return Array.isArray(o) ? { id: o[0], desc: o[1] === "desc" } : { id: o.id, desc: !!o.desc };
      });
    }
    return Object.keys(order).map(function (id) { return { id: id, desc: order[id] === "desc" }; });
  }

  function cloneFilter(f) {
    if (f.and) return { and: f.and.map(cloneFilter) };
    if (f.or) return { or: f.or.map(cloneFilter) };
    return { member: f.member || f.dimension, operator: f.operator, values: (f.values || []).slice() };
  }

  function normalise(q) {
    var out = { measures: [], dimensions: [], segments: [], timeDimensions: [], filters: [], order: [] };
    ["measures", "dimensions", "segments"].forEach(function (k) {
      if (Array.isArray(q[k])) out[k] = q[k].slice();
    });
    (q.timeDimensions || []).forEach(function (td) {
      out.timeDimensions.push({
        dimension: td.dimension, granularity: td.granularity || null,
        dateRange: td.dateRange === undefined ? null : td.dateRange,
      });
    });
    out.filters = (q.filters || []).map(cloneFilter);
    out.order = orderList(q.order);
    ["limit", "offset", "timezone", "ungrouped", "total"].forEach(function (k) {
      if (q[k] !== undefined && q[k] !== null) out[k] = q[k];
    });
    return out;
  }

  function filterReady(f) {
    if (f.and || f.or) return true;
    return !!(f.member && f.operator && (NO_VALUES[f.operator] || (f.values && f.values.length)));
  }

  function filterInput(f) {
    if (f.and) return { and: f.and.filter(filterReady).map(filterInput) };
    if (f.or) return { or: f.or.filter(filterReady).map(filterInput) };
    var out = { member: f.member, operator: f.operator };
    if (!NO_VALUES[f.operator]) {
      out.values = f.values.map(function (v) { return v === null ? null : String(v); });
    }
    return out;
  }

  /* The query as `load`'s QueryInput; filters still waiting for a value are left out. */
  function toQueryInput(q) {
    var out = {};
    ["measures", "dimensions", "segments"].forEach(function (k) { if (q[k].length) out[k] = q[k]; });
    if (q.timeDimensions.length) {
      out.timeDimensions = q.timeDimensions.map(function (td) {
        var item = { dimension: td.dimension };
        if (td.granularity) item.granularity = td.granularity;
        if (td.dateRange) item.dateRange = Array.isArray(td.dateRange) ? td.dateRange : [td.dateRange];
        return item;
      });
    }
    var filters = q.filters.filter(filterReady).map(filterInput);
    if (filters.length) out.filters = filters;
    if (q.order.length) out.order = q.order.map(function (o) { return { id: o.id, desc: o.desc }; });
    ["limit", "offset", "timezone", "ungrouped", "total"].forEach(function (k) {
      if (q[k] !== undefined && q[k] !== null) out[k] = q[k];
    });
    return out;
  }

  /* Cube's JSON form of the query, for showing and copying. */
  function toCubeJson(q) {
    var out = toQueryInput(q);
    if (out.order) {
      var order = {};
      out.order.forEach(function (o) { order[o.id] = o.desc ? "desc" : "asc"; });
      out.order = order;
    }
    return out;
  }

  function isEmpty(q) {
    return !q.measures.length && !q.dimensions.length && !q.timeDimensions.some(function (td) {
      return td.granularity;
    });
  }

  function selected(q) {
    var names = q.measures.concat(q.dimensions);
    q.timeDimensions.forEach(function (td) {
      if (td.granularity) names.push(td.dimension, td.dimension + "." + td.granularity);
    });
    return names;
  }

  /* Sort keys must name selected members; drop the ones a removal left behind. */
  function pruneOrder(q) {
    var names = selected(q);
    q.order = q.order.filter(function (o) { return names.indexOf(o.id) >= 0; });
    if (!q.order.length) delete q.limit;
  }

  // --- titles and restatement ---------------------------------------------------------------

  function titleOf(name) {
    if (state.titles[name]) return state.titles[name];
    var m = state.meta && state.meta[name];
    if (m) return m.shortTitle || m.title;
    var last = String(name).split(".").pop().replace(/_/g, " ");
    return last.charAt(0).toUpperCase() + last.slice(1);
  }

  function joinWords(words) {
    if (words.length <= 2) return words.join(" and ");
    return words.slice(0, -1).join(", ") + " and " + words[words.length - 1];
  }

  function restateFilter(f) {
    if (f.and || f.or) {
      var key = f.and ? "and" : "or";
      return "(" + f[key].map(restateFilter).join(" " + key + " ") + ")";
    }
    var values = (f.values || []).map(String);
    var joiner = /^(equals|contains|startsWith|endsWith)$/.test(f.operator) ? " or "
      : (/^not/.test(f.operator) && f.operator !== "notInDateRange" ? " nor " : " to ");
    var shown = values.join(joiner);
    return titleOf(f.member).toLowerCase() + " " + (OPERATOR_WORDS[f.operator] || f.operator) +
      (shown ? " " + shown : "");
  }

  /* The edited query read back in the words the server uses: what is shown is what runs. */
  function restate(q) {
    var dims = q.dimensions.map(function (d) { return titleOf(d).toLowerCase(); });
    var period = null;
    q.timeDimensions.forEach(function (td) {
      var name = titleOf(td.dimension).toLowerCase();
      if (td.granularity) dims.push(name + " (" + td.granularity + ")");
      if (td.dateRange) {
        period = Array.isArray(td.dateRange)
          ? (td.dateRange.length === 2 ? td.dateRange[0] + " to " + td.dateRange[1] : td.dateRange.join(" "))
          : String(td.dateRange);
      }
    });
    var parts = [q.measures.length ? joinWords(q.measures.map(titleOf)) : "Rows"];
    if (dims.length) parts.push("by " + joinWords(dims));
    var filters = q.filters.filter(filterReady).map(restateFilter)
      .concat(q.segments.map(function (s) { return titleOf(s).toLowerCase(); }));
    if (filters.length) parts.push("where " + filters.join(" and "));
    if (q.order.length) {
      var o = q.order[0];
      var name = titleOf(o.id).toLowerCase();
      if (q.limit) parts.push((o.desc ? "top " : "bottom ") + q.limit + " by " + name);
      else parts.push("sorted by " + name + (o.desc ? " descending" : " ascending"));
    } else if (q.limit) {
      parts.push("first " + q.limit);
    }
    if (period) parts.push("for " + period);
    var compared = state.comparison && comparisonQuery(q, state.comparison.shift);
    if (compared) parts.push("compared with " + compared.label);
    return parts.join(", ");
  }

  // --- DOM helpers --------------------------------------------------------------------------

  function node(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") e.textContent = v;
      else if (k === "className") e.className = v;
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  function show(e, visible) { e.hidden = !visible; }

  var uid = 0;
  function nextId(prefix) { uid += 1; return prefix + "-" + uid; }

  function setStatus(text) { el("ask-status").textContent = text; }

  function showError(error) {
    var box = el("ask-error");
    clear(box);
    if (!error) { show(box, false); return; }
    box.appendChild(document.createTextNode(error.message || String(error)));
    if (error.unauthenticated) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(node("a", { href: "/login/", text: "Sign in" }));
    }
    show(box, true);
  }

  // --- formatting ---------------------------------------------------------------------------

  var numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  var moneyFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var percentFormat = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

  function formatTime(value, granularity) {
    var s = String(value);
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/.exec(s);
    if (!m) return s;
    switch (granularity) {
      case "year": return m[1];
      case "quarter": return m[1] + " Q" + (Math.floor((Number(m[2]) - 1) / 3) + 1);
      case "month": return m[1] + "-" + m[2];
      case "week": return "week of " + m[1] + "-" + m[2] + "-" + m[3];
      case "day": return m[1] + "-" + m[2] + "-" + m[3];
      case "hour": case "minute": return m[1] + "-" + m[2] + "-" + m[3] + " " + (m[4] || "00") + ":" + (m[5] || "00");
      default: return s.replace("T", " ").replace(/\.000$/, "");
    }
  }

  function formatValue(value, column) {
    if (value === null || value === undefined) return "—";
    if (column.type === "time") return formatTime(value, column.granularity);
    if (column.type === "boolean") return value ? "yes" : "no";
    if (column.type === "number" || column.kind === "measure") {
      var n = Number(value);
      if (value === "" || isNaN(n)) return String(value);
      if (column.format === "percent") return percentFormat.format(n);
      return column.format === "currency" ? moneyFormat.format(n) : numberFormat.format(n);
    }
    return String(value);
  }

  // --- result: columns, table, chart --------------------------------------------------------

  /* The columns to show: a time dimension's plain key duplicates its granularity key. */
  function visibleColumns(columns, rows) {
    var keys = columns.map(function (c) { return c.key; });
    var shown = columns.filter(function (c) {
      if (c.kind === "timeDimension" && !c.granularity) {
        return !keys.some(function (k) { return k !== c.key && k.indexOf(c.key + ".") === 0; });
      }
      return true;
    });
    if (!shown.length && rows.length) {
      shown = Object.keys(rows[0]).map(function (k) {
        return { key: k, kind: "dimension", title: titleOf(k), shortTitle: titleOf(k), type: "string" };
      });
    }
    return shown;
  }

  function columnTitle(c) {
    var title = c.shortTitle || c.title || c.key;
    return c.granularity ? title + " (" + c.granularity + ")" : title;
  }

  function renderTable(table, captionId, caption, columns, rows) {
    el(captionId).textContent = caption;
    var thead = table.tHead, tbody = table.tBodies[0];
    clear(thead); clear(tbody);
    var head = node("tr");
    columns.forEach(function (c) {
      var numeric = c.kind === "measure" || c.type === "number";
      head.appendChild(node("th", { scope: "col", className: numeric ? "ask-num" : null, text: columnTitle(c) }));
    });
    thead.appendChild(head);
    rows.forEach(function (row) {
      var tr = node("tr");
      columns.forEach(function (c) {
        var numeric = c.kind === "measure" || c.type === "number";
        tr.appendChild(node("td", { className: numeric ? "ask-num" : null, text: formatValue(row[c.key], c) }));
      });
      tbody.appendChild(tr);
    });
    if (!rows.length) {
      tbody.appendChild(node("tr", {}, [node("td", { colspan: String(columns.length || 1), text: "No rows." })]));
    }
  }

  /* number | bar | line | pie | table, from the shape of the result; the server's suggestion wins
   * where it still fits (pie only makes sense for one measure over one breakdown). */
  function chooseChart(suggested, columns, rows) {
    var measures = columns.filter(function (c) { return c.kind === "measure"; });
    var dims = columns.filter(function (c) { return c.kind !== "measure"; });
    var times = dims.filter(function (c) { return c.type === "time" && c.granularity; });
    if (!rows.length || !measures.length) return "table";
    if (!dims.length && rows.length === 1) return "number";
    if (rows.length > MAX_CHART_POINTS) return "table";
    if (times.length === 1 && dims.length <= 2) return "line";
    if (dims.length === 1 && suggested === "pie" && measures.length === 1) return "pie";
    if (dims.length === 1 && !times.length) return "bar";
    if (dims.length === 2 && !times.length && measures.length === 1) return "bar";
    return "table";
  }

  /* plotly reads a few HTML tags in its labels (<a href>, <b>, <br>): data must show as typed. */
  function plotText(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function plotTitle(column) { return plotText(columnTitle(column)); }

  function axisValues(rows, column) {
    return rows.map(function (r) {
      var v = r[column.key];
      if (column.type === "time") return v === null || v === undefined ? null : String(v).replace(/\.\d+$/, "");
      return v === null || v === undefined ? "(none)" : plotText(formatValue(v, column));
    });
  }

  function measureValues(rows, column) {
    return rows.map(function (r) { var v = r[column.key]; return v === null || v === undefined ? null : Number(v); });
  }

  function seriesBy(rows, x, series, measure, kind) {
    var groups = {}, order = [];
    rows.forEach(function (r) {
      var key = r[series.key] === null || r[series.key] === undefined ? "(none)" : plotText(formatValue(r[series.key], series));
      if (!groups[key]) { groups[key] = []; order.push(key); }
      groups[key].push(r);
    });
    return order.map(function (key) {
      var trace = { name: key, x: axisValues(groups[key], x), y: measureValues(groups[key], measure), type: kind };
      if (kind === "scatter") trace.mode = "lines+markers";
      return trace;
    });
  }

  function figure(kind, columns, rows, separate) {
    var measures = columns.filter(function (c) { return c.kind === "measure"; });
    var dims = columns.filter(function (c) { return c.kind !== "measure"; });
    var first = measures[0];
    var yTitle = measures.length === 1 ? plotTitle(first) : "";
    var layout = {
      margin: { t: 50, r: 20, b: 60, l: 70 }, font: { size: 13 }, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      yaxis: { title: { text: yTitle }, tickformat: first.format === "percent" ? ".0%" : null, automargin: true },
      xaxis: { automargin: true },
    };
    if (kind === "number") {
      return {
        data: measures.slice(0, 4).map(function (m, i) {
          var n = measures.length > 1 ? Math.min(measures.length, 4) : 1;
          var trace = {
            type: "indicator", mode: "number", value: Number(rows[0][m.key]), title: { text: plotTitle(m) },
            number: { valueformat: m.format === "percent" ? ".1%" : ",.2~f" },
            domain: { x: [i / n, (i + 1) / n], y: [0, 1] },
          };
          var then = rows[0][m.key + "@cmp"];
          if (then !== undefined && then !== null) {  // "vs last year": the change, relative
            trace.mode = "number+delta";
            trace.delta = { reference: Number(then), relative: true, valueformat: ".1%" };
          }
          return trace;
        }),
        layout: { margin: { t: 40, r: 20, b: 20, l: 20 }, height: 220 },
      };
    }
    if (kind === "pie") {
      return {
        data: [{ type: "pie", labels: axisValues(rows, dims[0]), values: measureValues(rows, first), hole: 0.35,
                 sort: false, textinfo: "label+percent" }],
        layout: { margin: { t: 30, r: 20, b: 30, l: 20 }, showlegend: true },
      };
    }
    var plotType = kind === "line" ? "scatter" : "bar";
    var x = kind === "line" ? dims.filter(function (c) { return c.type === "time" && c.granularity; })[0] : dims[0];
    var other = dims.filter(function (c) { return c !== x; })[0];
    var data;
    if (other) {
      data = seriesBy(rows, x, other, first, plotType);
      layout.yaxis.title.text = plotTitle(first);
    } else {
      data = measures.map(function (m) {
        var trace = { name: plotTitle(m), x: axisValues(rows, x), y: measureValues(rows, m), type: plotType };
        if (plotType === "scatter") trace.mode = "lines+markers";
        return trace;
      });
    }
    if (separate && kind === "line" && !other) {
      // Drawn over the asked period (shifted forward), so the same month of each year lines up.
      var back = separate.shift, original = axisValues(separate.data, x);
      var forward = back && (back.months !== undefined ? { months: -back.months } : { days: -back.days });
      data.push({
        name: plotTitle(first) + " (" + plotText(separate.label) + ")", type: "scatter", mode: "lines+markers",
        x: forward ? original.map(function (v) { return v && shiftDay(v.slice(0, 10), forward) + v.slice(10); }) : original,
        y: measureValues(separate.data, first), line: { dash: "dash" },
        customdata: separate.data.map(function (r) { return plotText(formatValue(r[x.key], x)); }),
        hovertemplate: "%{customdata}: %{y:,.2f}<extra></extra>",
      });
    }
    layout.xaxis.title = { text: plotTitle(x) };
    layout.xaxis.type = x.type === "time" ? "date" : "category";
    layout.barmode = "group";
    layout.showlegend = data.length > 1;
    return { data: data, layout: layout };
  }

  function chartDescription(kind, columns, rows) {
    var measures = columns.filter(function (c) { return c.kind === "measure"; }).map(columnTitle);
    var dims = columns.filter(function (c) { return c.kind !== "measure"; }).map(columnTitle);
    var what = joinWords(measures) + (dims.length ? " by " + joinWords(dims) : "");
    var names = { number: "Number", bar: "Bar chart", line: "Line chart", pie: "Pie chart" };
    return names[kind] + ": " + what + ", " + rows.length + (rows.length === 1 ? " value" : " rows") +
      ". The table below has the same numbers.";
  }

  function renderChart(kind, columns, rows, separate) {
    var box = el("ask-chart");
    if (window.Plotly) window.Plotly.purge(box);
    clear(box);
    box.removeAttribute("data-chart");
    if (kind === "table" || !window.Plotly) {
      box.hidden = true;
      box.removeAttribute("aria-label");
      return;
    }
    box.hidden = false;
    box.setAttribute("data-chart", kind);
    box.setAttribute("aria-label", chartDescription(kind, columns, rows));
    var fig = figure(kind, columns, rows, separate);
    window.Plotly.newPlot(box, fig.data, fig.layout, {
      displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud", "select2d", "lasso2d"],
    });
  }

  /* "vs last year": without time buckets the other period joins the rows (its value and the
   * change per measure); with time buckets it stays a table of its own and a dashed line. */
  function withComparison(columns, rows, comparison) {
    var none = { columns: columns, rows: rows, separate: null };
    if (!comparison || !Array.isArray(comparison.data)) return none;
    var label = comparison.label || "comparison";
    var dims = columns.filter(function (c) { return c.kind !== "measure"; });
    var measures = columns.filter(function (c) { return c.kind === "measure"; });
    if (dims.some(function (c) { return c.type === "time"; })) {
      var shift = state.comparison && state.comparison.shift;
      return { columns: columns, rows: rows, separate: { label: label, data: comparison.data, shift: shift } };
    }
    var keyOf = function (r) { return JSON.stringify(dims.map(function (d) { return r[d.key]; })); };
    var previous = {};
    comparison.data.forEach(function (r) { previous[keyOf(r)] = r; });
    var extra = [];
    measures.forEach(function (m) {
      var name = m.shortTitle || m.title;
      extra.push({ key: m.key + "@cmp", kind: "measure", type: "number", format: m.format, comparisonOf: m.key,
                   title: name + " (" + label + ")", shortTitle: name + " (" + label + ")" });
      extra.push({ key: m.key + "@chg", kind: "measure", type: "number", format: "percent", changeOf: m.key,
                   title: "Change", shortTitle: measures.length > 1 ? name + " change" : "Change" });
    });
    var merged = rows.map(function (r) {
      var out = Object.assign({}, r), p = previous[keyOf(r)] || {};
      measures.forEach(function (m) {
        var now = r[m.key], then = p[m.key];
        out[m.key + "@cmp"] = then === undefined ? null : then;
        out[m.key + "@chg"] = now === null || then === null || then === undefined || Number(then) === 0
          ? null : Number(now) / Number(then) - 1;
      });
      return out;
    });
    return { columns: columns.concat(extra), rows: merged, separate: null };
  }

  function renderResult(result, options) {
    var rows = Array.isArray(result.data) ? result.data : [];
    var view = withComparison(visibleColumns(result.columns || [], rows), rows, options.comparison);
    var shape = view.columns.filter(function (c) { return !c.comparisonOf && !c.changeOf; });
    var kind = chooseChart(state.suggestedChart, shape, rows);
    var plotted = kind === "number" ? shape : view.columns.filter(function (c) { return !c.changeOf; });
    show(el("ask-result"), true);
    var narrative = options.narrative || "";
    el("ask-narrative").textContent = narrative;
    show(el("ask-narrative"), !!narrative);
    renderTable(el("ask-table"), "ask-table-caption", restate(state.query), view.columns, view.rows);
    renderChart(kind, plotted, view.rows, view.separate);
    el("ask-query-json").textContent = JSON.stringify(toCubeJson(state.query), null, 2);
    var sql = result.sql || "";
    el("ask-sql").textContent = sql;
    show(el("ask-sql-details"), !!sql);
    if (view.separate) {
      var label = view.separate.label;
      el("ask-comparison-label").textContent = "Compared with " + label;
      renderTable(el("ask-comparison-table"), "ask-comparison-caption", "The same query for " + label,
        visibleColumns(result.columns || [], view.separate.data), view.separate.data);
      show(el("ask-comparison"), true);
    } else {
      show(el("ask-comparison"), false);
    }
    return rows.length;
  }

  // --- interpretation: restatement, confidence, chips ---------------------------------------

  function renderInterpretation(restatement, keepChips) {
    el("ask-restatement").textContent = restatement;
    var badge = el("ask-confidence");
    show(badge.parentNode, !!state.query);  // nothing understood: the question back says it all
    if (state.edited) {
      badge.className = "label label-default";
      badge.textContent = "edited";
      badge.title = "You changed the interpretation: the query runs exactly as shown.";
    } else if (state.answer) {
      var c = Number(state.answer.confidence) || 0;
      badge.className = "label " + (c >= 0.8 ? "label-success" : c >= 0.5 ? "label-warning" : "label-danger");
      badge.textContent = "confidence " + Math.round(c * 100) + "%";
      badge.title = c >= 0.8 ? "A confident reading." : "Not sure: check the interpretation and the suggestions.";
    }
    if (!keepChips) { renderChips(); return; }
    var compared = el("ask-chips").querySelector(".ask-chip-compared-with .ask-chip-label");
    if (compared && state.comparison) {
      var other = comparisonQuery(state.query, state.comparison.shift);
      compared.textContent = other ? other.label : "(needs a date range)";
    }
  }

  function chip(kind, label, controls, onRemove, removeLabel) {
    var children = [
      node("span", { className: "ask-chip-kind", text: kind }),
      node("span", { className: "ask-chip-label", text: label }),
    ].concat(controls || []);
    if (onRemove) {
      children.push(node("button", {
        type: "button", className: "ask-chip-remove", "aria-label": "Remove " + removeLabel,
        title: "Remove " + removeLabel, onclick: onRemove,
      }, ["\u00d7"]));
    }
    return node("li", { className: "ask-chip ask-chip-" + kind.toLowerCase().replace(/\W+/g, "-") }, children);
  }

  /* Apply a change and run it. `inPlace`: the control that changed already shows the new value, so
   * the chips are not rebuilt (rebuilding would reset e.g. a date being typed). */
  function edit(change, inPlace) {
    change(state.query);
    var before = state.query.order.length;
    pruneOrder(state.query);
    state.edited = true;
    runEdited(null, inPlace && before === state.query.order.length);
  }

  function granularitiesOf(dimension) {
    var m = state.meta && state.meta[dimension];
    var offered = m && m.granularities && m.granularities.length ? m.granularities : DEFAULT_GRANULARITIES;
    return offered.filter(function (g) { return ["second", "minute"].indexOf(g) < 0; });
  }

  function plausible(day) { return !day || Number(day.slice(0, 4)) >= 1900; }

  function isDate(s) { return typeof s === "string" && /^\d{4}-\d{2}-\d{2}/.test(s); }

  function timeChip(td, index) {
    var title = titleOf(td.dimension);
    var select = node("select", { className: "form-control input-sm", "aria-label": "Granularity of " + title,
      onchange: function () { var g = select.value; edit(function (q) { q.timeDimensions[index].granularity = g || null; }, true); },
    }, [node("option", { value: "", text: "no breakdown" })].concat(granularitiesOf(td.dimension).map(function (g) {
      return node("option", { value: g, text: "by " + g, selected: g === td.granularity });
    })));
    if (td.granularity && granularitiesOf(td.dimension).indexOf(td.granularity) < 0) {
      select.appendChild(node("option", { value: td.granularity, text: "by " + td.granularity, selected: true }));
    }
    var controls = [select];
    var range = td.dateRange;
    if (range && !Array.isArray(range)) range = [range];
    if (range && range.length === 1 && !isDate(range[0])) {
      var relative = node("input", { type: "text", className: "form-control input-sm ask-relative",
        value: range[0], "aria-label": "Date range of " + title + " (e.g. last 3 months)",
        onchange: function () {
          var v = relative.value.trim();
          edit(function (q) { q.timeDimensions[index].dateRange = v ? v : null; }, true);
        },
      });
      controls.push(relative);
    } else {
      var from = node("input", { type: "date", className: "form-control input-sm",
        value: range && isDate(range[0]) ? range[0].slice(0, 10) : null, "aria-label": title + " from" });
      var to = node("input", { type: "date", className: "form-control input-sm",
        value: range && range.length > 1 && isDate(range[1]) ? range[1].slice(0, 10) : null, "aria-label": title + " to" });
      var onRange = function () {
        if (!plausible(from.value) || !plausible(to.value)) return;  // a year still being typed
        if (from.value && to.value) {
          edit(function (q) { q.timeDimensions[index].dateRange = [from.value, to.value]; }, true);
        } else if (!from.value && !to.value) {
          edit(function (q) { q.timeDimensions[index].dateRange = null; }, true);
        } else {
          setStatus("Set both dates of the range (or clear both for all time).");
        }
      };
      from.addEventListener("change", onRange);
      to.addEventListener("change", onRange);
      var allTime = node("span", { className: "ask-chip-sep", text: "(all time)", hidden: !!range });
      from.addEventListener("change", function () { allTime.hidden = !!(from.value || to.value); });
      to.addEventListener("change", function () { allTime.hidden = !!(from.value || to.value); });
      controls.push(from, node("span", { className: "ask-chip-sep", text: "to" }), to, allTime);
    }
    return chip("Time", title, controls, function () {
      edit(function (q) { q.timeDimensions.splice(index, 1); });
    }, "time " + title);
  }

  function memberType(name) {
    var m = state.meta && state.meta[name];
    if (m) return m.kind === "measure" ? "number" : (m.type || "string");
    var col = (state.lastColumns || []).filter(function (c) { return c.key === name; })[0];
    return col ? (col.kind === "measure" ? "number" : col.type) : "string";
  }

  function valuesOf(member) {
    if (!state.valueLists[member]) {
      // Distinct values through `load`, so they are the user's own rows (row filters apply).
      state.valueLists[member] = graphql(LOAD_QUERY, { query: { dimensions: [member], limit: 200 } })
        .then(function (data) {
          return data.load.data.map(function (r) { return r[member]; }).filter(function (v) { return v !== null; });
        }).catch(function () { return []; });
    }
    return state.valueLists[member];
  }

  function filterChip(f, index) {
    if (f.and || f.or) {
      var text = restateFilter(f);
      return chip("Filter", text, [], function () { edit(function (q) { q.filters.splice(index, 1); }); }, "filter " + text);
    }
    var title = titleOf(f.member);
    var type = memberType(f.member);
    var operators = (OPERATORS[type] || OPERATORS.string).slice();
    if (operators.indexOf(f.operator) < 0) operators.unshift(f.operator);
    var op = node("select", { className: "form-control input-sm", "aria-label": "Condition on " + title,
      onchange: function () { var v = op.value; edit(function (q) { q.filters[index].operator = v; }); },
    }, operators.map(function (o) {
      return node("option", { value: o, text: OPERATOR_WORDS[o] || o, selected: o === f.operator });
    }));
    var controls = [op];
    if (!NO_VALUES[f.operator]) {
      var listId = nextId("ask-values");
      var values = node("input", { type: type === "number" ? "text" : "text", className: "form-control input-sm ask-values",
        value: (f.values || []).join(", "), "aria-label": "Values of " + title + " (separate several with commas)",
        list: type === "string" ? listId : null, placeholder: "value",
        onchange: function () {
          var parts = values.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
          edit(function (q) { q.filters[index].values = parts; }, true);
        },
      });
      controls.push(values);
      if (type === "string") {
        var datalist = node("datalist", { id: listId });
        controls.push(datalist);
        values.addEventListener("focus", function () {
          valuesOf(f.member).then(function (list) {
            if (datalist.childNodes.length) return;
            list.forEach(function (v) { datalist.appendChild(node("option", { value: String(v) })); });
          });
        }, { once: true });
      }
    }
    return chip("Filter", title, controls, function () {
      edit(function (q) { q.filters.splice(index, 1); });
    }, "filter " + title);
  }

  function sortChip(q) {
    var o = q.order[0];
    var title = titleOf(o.id);
    var dir = node("select", { className: "form-control input-sm", "aria-label": "Sort direction of " + title,
      onchange: function () { var d = dir.value === "desc"; edit(function (x) { x.order[0].desc = d; }, true); },
    }, [node("option", { value: "desc", text: "highest first", selected: o.desc }),
        node("option", { value: "asc", text: "lowest first", selected: !o.desc })]);
    var limit = node("input", { type: "number", min: "1", step: "1", className: "form-control input-sm ask-limit",
      value: q.limit ? String(q.limit) : "", placeholder: "all", "aria-label": "Number of rows",
      onchange: function () {
        var n = parseInt(limit.value, 10);
        edit(function (x) { if (n > 0) x.limit = n; else delete x.limit; }, true);
      },
    });
    return chip("Sort", title, [dir, node("span", { className: "ask-chip-sep", text: "rows" }), limit], function () {
      edit(function (x) { x.order = []; delete x.limit; });
    }, "sorting by " + title);
  }

  /* Chips are rebuilt after every edit: keep the keyboard where it was (the same control, else the
   * chip that took the removed one's place, else the question box). */
  function keepFocus(render) {
    var list = el("ask-chips"), active = document.activeElement;
    var inside = active && list.contains(active);
    var label = inside ? active.getAttribute("aria-label") : null;
    var position = inside ? Array.prototype.indexOf.call(list.children, active.closest("li")) : -1;
    render();
    if (!inside) return;
    var same = label && Array.prototype.filter.call(list.querySelectorAll("[aria-label]"), function (e) {
      return e.getAttribute("aria-label") === label;
    })[0];
    var chips = list.children;
    var target = same || (chips.length ? chips[Math.min(position, chips.length - 1)].querySelector("button, select, input")
      : null) || input;
    target.focus();
  }

  function renderChips() { keepFocus(buildChips); }

  function buildChips() {
    var list = el("ask-chips");
    clear(list);
    var q = state.query;
    if (!q) { renderAdd(); return; }
    q.measures.forEach(function (m, i) {
      list.appendChild(chip("Metric", titleOf(m), [], function () {
        edit(function (x) { x.measures.splice(i, 1); });
      }, "metric " + titleOf(m)));
    });
    q.dimensions.forEach(function (d, i) {
      list.appendChild(chip("By", titleOf(d), [], function () {
        edit(function (x) { x.dimensions.splice(i, 1); });
      }, "breakdown " + titleOf(d)));
    });
    q.timeDimensions.forEach(function (td, i) { list.appendChild(timeChip(td, i)); });
    q.filters.forEach(function (f, i) { list.appendChild(filterChip(f, i)); });
    q.segments.forEach(function (s, i) {
      list.appendChild(chip("Only", titleOf(s), [], function () {
        edit(function (x) { x.segments.splice(i, 1); });
      }, "segment " + titleOf(s)));
    });
    if (state.comparison) {
      var compared = state.edited ? comparisonQuery(q, state.comparison.shift) : state.comparison;
      var label = compared ? compared.label : "(needs a date range)";
      list.appendChild(chip("Compared with", label, [], function () {
        state.comparison = null;
        edit(function () {});
      }, "comparison with " + label));
    }
    if (q.order.length) list.appendChild(sortChip(q));
    else if (q.limit) {
      list.appendChild(chip("Limit", "first " + q.limit + " rows", [], function () {
        edit(function (x) { delete x.limit; });
      }, "row limit"));
    }
    renderAdd();
  }

  /* Menus to add a metric, a breakdown or a filter from the cubes or views the query already uses. */
  function renderAdd() {
    var box = el("ask-add");
    clear(box);
    var q = state.query;
    if (!q || !state.meta) { show(box, false); return; }
    var owners = {};
    var used = selected(q).concat(q.segments);
    used.concat(q.timeDimensions.map(function (td) { return td.dimension; })).forEach(function (n) {
      owners[String(n).split(".")[0]] = true;
    });
    if (!Object.keys(owners).length) { show(box, false); return; }
    var candidates = Object.keys(state.meta).map(function (k) { return state.meta[k]; }).filter(function (m) {
      return owners[m.name.split(".")[0]] && used.indexOf(m.name) < 0;
    });
    var measures = candidates.filter(function (m) { return m.kind === "measure"; });
    var dims = candidates.filter(function (m) { return m.kind === "dimension"; });
    var menu = function (label, items, onPick) {
      var select = node("select", { className: "form-control input-sm", "aria-label": label, onchange: function () {
        var picked = state.meta[select.value];
        if (picked) onPick(picked);
      } }, [node("option", { value: "", text: label + "…" })].concat(items.map(function (m) {
        return node("option", { value: m.name, text: m.shortTitle || m.title });
      })));
      return select;
    };
    if (measures.length) box.appendChild(menu("Add a metric", measures, function (m) { pickMember(m.name); }));
    if (dims.length) box.appendChild(menu("Add a breakdown", dims, function (m) { pickMember(m.name); }));
    if (dims.length) {
      box.appendChild(menu("Add a filter", dims, function (m) {
        var operator = m.type === "time" ? "inDateRange" : "equals";
        state.query.filters.push({ member: m.name, operator: operator, values: [] });
        state.edited = true;
        renderInterpretation(restate(state.query));
        setStatus("Type a value for the new filter on " + (m.shortTitle || m.title) + ".");
        var inputs = el("ask-chips").querySelectorAll(".ask-values");
        if (inputs.length) inputs[inputs.length - 1].focus();
      }));
    }
    show(box, box.childNodes.length > 0);
  }

  /* A member picked from a menu or a suggestion joins the query in its natural place. */
  function pickMember(name) {
    var m = state.meta && state.meta[name];
    var kind = m ? m.kind : (state.titles[name] ? "dimension" : "measure");
    if (!state.query) state.query = normalise({});
    edit(function (q) {
      if (kind === "measure") { if (q.measures.indexOf(name) < 0) q.measures.push(name); }
      else if (kind === "segment") { if (q.segments.indexOf(name) < 0) q.segments.push(name); }
      else if (m && m.type === "time") {
        if (!q.timeDimensions.some(function (td) { return td.dimension === name; })) {
          q.timeDimensions.push({ dimension: name, granularity: "month", dateRange: null });
        }
      } else if (q.dimensions.indexOf(name) < 0) q.dimensions.push(name);
    });
  }

  // --- suggestions: other readings and questions back ----------------------------------------

  function renderSuggestions(answer) {
    var list = el("ask-suggestion-list");
    clear(list);
    var alternatives = Array.isArray(answer.alternatives) ? answer.alternatives : [];
    alternatives.forEach(function (alt) {
      if (alt && alt.query) {
        var text = alt.restatement || JSON.stringify(alt.query);
        list.appendChild(node("li", {}, [node("button", { type: "button", className: "btn btn-default btn-sm ask-alt",
          onclick: function () { useReading(alt); } }, [text])]));
      } else if (alt && (alt.clarification || alt.suggestions)) {
        var buttons = (alt.suggestions || []).map(function (name) {
          return node("button", { type: "button", className: "btn btn-default btn-sm ask-suggest", "data-member": name,
            onclick: function () { useSuggestion(name); } }, [fullTitle(name)]);
        });
        // The answer's own clarification is already shown above the chips: do not repeat it.
        var text = alt.clarification && alt.clarification !== answer.clarification ? alt.clarification : "Pick one:";
        list.appendChild(node("li", { className: "ask-clarify" },
          [node("span", { className: "ask-clarify-text", text: text })].concat(buttons)));
      }
    });
    el("ask-suggestions-heading").textContent = state.query ? "Other readings" : "Did you mean";
    show(el("ask-suggestions"), list.childNodes.length > 0);
  }

  function useReading(alt) {
    state.query = normalise(alt.query);
    Object.assign(state.titles, alt.titles || {});
    state.edited = true;
    runEdited(alt.restatement);
  }

  /* A picked member joins the query shown, or becomes the query when nothing could be run. */
  function useSuggestion(name) {
    pickMember(name);
  }

  function fullTitle(name) {
    var m = state.meta && state.meta[name];
    return m ? m.title : titleOf(name);
  }

  // --- comparisons that follow edits -------------------------------------------------------

  function parseDay(s) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(s).slice(0, 10));
    return m ? { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) } : null;
  }

  function daysIn(y, m) { return new Date(Date.UTC(y, m, 0)).getUTCDate(); }

  function formatDay(y, m, d) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return y + "-" + pad(m) + "-" + pad(d);
  }

  function absoluteRange(q) {
    var td = q.timeDimensions.filter(function (t) { return Array.isArray(t.dateRange) && t.dateRange.length === 2; })[0];
    return td && parseDay(td.dateRange[0]) && parseDay(td.dateRange[1]) ? td.dateRange : null;
  }

  /* How the compared period sits relative to the asked one: whole months ("vs last year",
   * "vs previous quarter") when both start on the same day of the month, else days. */
  function comparisonShift(query, comparison) {
    var a = absoluteRange(normalise(query)), b = comparison && comparison.query && absoluteRange(normalise(comparison.query));
    if (!a || !b) return null;
    var x = parseDay(a[0]), y = parseDay(b[0]);
    if (x.d === y.d) return { months: (y.y - x.y) * 12 + (y.m - x.m) };
    return { days: Math.round((Date.UTC(y.y, y.m - 1, y.d) - Date.UTC(x.y, x.m - 1, x.d)) / 86400000) };
  }

  function shiftDay(s, shift) {
    var p = parseDay(s);
    if (shift.days !== undefined) {
      var t = new Date(Date.UTC(p.y, p.m - 1, p.d + shift.days));
      return formatDay(t.getUTCFullYear(), t.getUTCMonth() + 1, t.getUTCDate());
    }
    var total = p.y * 12 + (p.m - 1) + shift.months, y = Math.floor(total / 12), m = total % 12 + 1;
    var last = p.d === daysIn(p.y, p.m);  // month ends stay month ends (Feb 29 -> Feb 28)
    return formatDay(y, m, last ? daysIn(y, m) : Math.min(p.d, daysIn(y, m)));
  }

  /* The edited query over the compared period, or null when it has no absolute date range. */
  function comparisonQuery(q, shift) {
    if (!shift || !absoluteRange(q)) return null;
    var other = normalise(toCubeJson(q));
    other.timeDimensions.forEach(function (td) {
      if (Array.isArray(td.dateRange) && td.dateRange.length === 2) {
        td.dateRange = [shiftDay(td.dateRange[0], shift), shiftDay(td.dateRange[1], shift)];
      }
    });
    var range = absoluteRange(other);
    return { query: other, label: range[0] + " to " + range[1] };
  }

  // --- running -------------------------------------------------------------------------------

  function today() {
    var fixed = new URLSearchParams(window.location.search).get("today");
    if (fixed && /^\d{4}-\d{2}-\d{2}$/.test(fixed)) return fixed;
    var d = new Date();  // the user's own calendar day, not the server's
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }

  function busy(on) {
    root.setAttribute("aria-busy", on ? "true" : "false");
    el("ask-submit").disabled = on;
  }

  function ask(question) {
    var seq = ++state.seq;
    busy(true);
    showError(null);
    setStatus("Asking…");
    graphql(ASK_QUERY, { question: question, today: today() }).then(function (data) {
      if (seq !== state.seq) return;
      var answer = data.ask;
      state.answer = answer;
      state.question = answer.question || question;
      state.titles = Object.assign({}, answer.titles || {});
      state.suggestedChart = answer.chart || "table";
      state.edited = false;
      state.valueLists = {};
      state.query = answer.query ? normalise(answer.query) : null;
      state.comparison = answer.comparison && answer.query ? {
        shift: comparisonShift(answer.query, answer.comparison), label: answer.comparison.label,
      } : null;
      state.lastColumns = answer.columns || [];
      show(el("ask-answer"), true);
      renderInterpretation(answer.restatement);
      var clarification = el("ask-clarification");
      clarification.textContent = answer.clarification || "";
      show(clarification, !!answer.clarification);
      renderSuggestions(answer);
      if (state.query) {
        var n = renderResult(answer, { narrative: answer.narrative, comparison: answer.comparison });
        setStatus("Answered: " + n + (n === 1 ? " row." : " rows."));
      } else {
        show(el("ask-result"), false);
        setStatus("The question needs clarifying.");
      }
    }).catch(function (error) {
      if (seq !== state.seq) return;
      showError(error);
      setStatus("");
    }).then(function () { if (seq === state.seq) busy(false); });
  }

  function runEdited(restatement, keepChips) {
    var seq = ++state.seq;
    var q = state.query;
    showError(null);
    renderInterpretation(restatement || restate(q), keepChips);
    show(el("ask-clarification"), false);
    el("ask-suggestions-heading").textContent = "Other readings";
    if (isEmpty(q)) {
      show(el("ask-result"), false);
      setStatus("Nothing left to show: add a metric or a breakdown.");
      return;
    }
    busy(true);
    setStatus("Running the edited query…");
    var compared = state.comparison ? comparisonQuery(q, state.comparison.shift) : null;
    var runs = [graphql(LOAD_QUERY, { query: toQueryInput(q) })];
    if (compared) runs.push(graphql(LOAD_QUERY, { query: toQueryInput(compared.query) }));
    Promise.all(runs).then(function (results) {
      if (seq !== state.seq) return;
      var data = results[0];
      state.lastColumns = data.load.columns || [];
      var comparison = compared ? { label: compared.label, data: results[1].load.data } : null;
      var n = renderResult(data.load, { narrative: "", comparison: comparison });
      setStatus("Updated: " + n + (n === 1 ? " row." : " rows."));
    }).catch(function (error) {
      if (seq !== state.seq) return;
      showError(error);
      setStatus("");
    }).then(function () { if (seq === state.seq) busy(false); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var question = input.value.trim();
    if (!question) { input.focus(); return; }
    var url = new URL(window.location.href);
    url.searchParams.set("q", question);
    window.history.replaceState(null, "", url.toString());
    ask(question);
  });

  loadMeta();
  var initial = new URLSearchParams(window.location.search).get("q");
  if (initial) {
    input.value = initial;
    ask(initial);
  }
})();

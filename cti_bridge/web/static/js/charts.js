// The KPI charts, drawn as plain SVG: four small bar charts need no library. Colours come
// from app.css (classes), so the charts follow the page's palette.
// Each chart sets `data-total` on its <svg> (what it counts), for people and tests alike.

import { categoryLabel, svg } from "./dom.js";
import { formatDay, formatDuration, formatPercent, t } from "./i18n.js";

const W = 460;
const H = 210;
const PAD = { top: 18, right: 10, bottom: 26, left: 34 };

function reset(el, total) {
  el.replaceChildren();
  el.setAttribute("viewBox", `0 0 ${W} ${H}`);
  el.setAttribute("class", "chart");
  el.setAttribute("role", "img");
  el.dataset.total = String(total);
}

function noData(el) {
  el.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-text" }, t("chart.noData")));
}

/** A round upper bound for an axis: 7 -> 8, 23 -> 25, 130 -> 150. */
function niceMax(value) {
  if (value <= 4) return 4; // counts: four gridlines, each a whole number
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function yAxis(el, max, plotHeight, format = String) {
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    const y = PAD.top + plotHeight - (plotHeight * i) / 4;
    el.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: i === 0 ? "axis" : "grid" }));
    // Counts: only whole numbers on the axis.
    if (i === 0 || Number.isInteger(value) || format !== String) {
      el.append(svg("text", { x: PAD.left - 5, y: y + 4, "text-anchor": "end" }, format(value)));
    }
  }
}

/**
 * Tickets created per day, every day of the period shown (quiet days as zero).
 * @param {SVGSVGElement} el
 * @param {Record<string, number>} byDay "YYYY-MM-DD" -> tickets
 * @param {string} from first day, "YYYY-MM-DD"
 * @param {string} to last day
 */
export function volumeChart(el, byDay, from, to) {
  const days = daysBetween(from, to);
  const counts = days.map((day) => byDay[day] || 0);
  const total = counts.reduce((a, b) => a + b, 0);
  reset(el, total);
  if (!days.length) return noData(el);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const max = niceMax(Math.max(...counts));
  yAxis(el, max, plotH);
  const slot = plotW / days.length;
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const labelEvery = Math.ceil(days.length / 12); // about a dozen dates fit under the axis
  days.forEach((day, i) => {
    const x = PAD.left + slot * i + (slot - barW) / 2;
    const height = (counts[i] / max) * plotH;
    const y = PAD.top + plotH - height;
    el.append(
      svg(
        "rect",
        { x, y, width: barW, height: Math.max(height, 0), class: "bar", rx: 2 },
        svg("title", {}, `${formatDay(day, { withYear: true })}: ${counts[i]}`),
      ),
    );
    if (counts[i] && days.length <= 20) {
      el.append(svg("text", { x: x + barW / 2, y: y - 4, "text-anchor": "middle", class: "value" }, String(counts[i])));
    }
    if (i % labelEvery === 0) {
      el.append(svg("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle", class: "day" }, formatDay(day)));
    }
  });
}

/**
 * First response and resolution times side by side, each on its own scale (seconds and
 * hours do not share an axis): mean, median and p90.
 */
export function responseChart(el, firstResponse, resolution) {
  reset(el, firstResponse?.count || 0);
  const groups = [
    [t("chart.firstResponse"), firstResponse],
    [t("chart.resolution"), resolution],
  ];
  if (!groups.some(([, stats]) => stats?.count)) return noData(el);
  const half = W / 2;
  const plotTop = PAD.top + 16;
  const plotH = H - plotTop - PAD.bottom;
  groups.forEach(([name, stats], g) => {
    const left = g * half + 14;
    const width = half - 28;
    el.append(
      svg("text", { x: left + width / 2, y: PAD.top, "text-anchor": "middle", class: "value" }, `${name} (n=${stats?.count || 0})`),
    );
    el.append(svg("line", { x1: left, x2: left + width, y1: plotTop + plotH, y2: plotTop + plotH, class: "axis" }));
    const bars = [
      ["mean", stats?.mean],
      ["p50", stats?.p50],
      ["p90", stats?.p90],
    ];
    const max = Math.max(...bars.map(([, v]) => v || 0)) || 1;
    const slot = width / bars.length;
    const barW = Math.min(44, slot * 0.6);
    bars.forEach(([key, value], i) => {
      const x = left + slot * i + (slot - barW) / 2;
      const height = value ? (value / max) * (plotH - 14) : 0;
      const y = plotTop + plotH - height;
      el.append(
        svg("rect", { x, y, width: barW, height, class: `bar bar-${key}`, rx: 2 }, svg("title", {}, `${name} ${t(`chart.${key}`)}: ${formatDuration(value)}`)),
      );
      el.append(
        svg("text", { x: x + barW / 2, y: y - 4, "text-anchor": "middle", class: "value bar-value" }, value == null ? "–" : formatDuration(value)),
      );
      el.append(svg("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle" }, t(`chart.${key}`)));
    });
  });
}

/** How many customers gave each score, 1 to 5, with the mean marked. */
export function csatChart(el, csat) {
  const counts = [1, 2, 3, 4, 5].map((score) => Number(csat?.distribution?.[String(score)] || 0));
  const total = csat?.count ?? counts.reduce((a, b) => a + b, 0);
  reset(el, total);
  if (!total) return noData(el);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const max = niceMax(Math.max(...counts));
  yAxis(el, max, plotH);
  const slot = plotW / 5;
  const barW = Math.min(56, slot * 0.6);
  const centre = (score) => PAD.left + slot * (score - 1) + slot / 2;
  counts.forEach((count, i) => {
    const x = centre(i + 1) - barW / 2;
    const height = (count / max) * plotH;
    const y = PAD.top + plotH - height;
    el.append(svg("rect", { x, y, width: barW, height, class: `bar bar-csat-${i + 1}`, rx: 2 }, svg("title", {}, `${i + 1}: ${count}`)));
    el.append(svg("text", { x: centre(i + 1), y: y - 4, "text-anchor": "middle", class: "value" }, String(count)));
    el.append(svg("text", { x: centre(i + 1), y: H - 8, "text-anchor": "middle" }, `${i + 1} ★`));
  });
  if (csat?.mean) {
    const x = centre(csat.mean); // the scores' scale is linear, so the mean sits between bars
    el.append(svg("line", { x1: x, x2: x, y1: PAD.top - 6, y2: PAD.top + plotH, class: "mean-line" }));
    el.append(
      svg("text", { x: Math.min(x + 4, W - 80), y: PAD.top - 6, class: "value" }, `${t("chart.mean")} ${csat.mean.toFixed(2)}`),
    );
  }
}

/** Met against breached per SLA target (running targets shown grey, not counted). */
export function slaChart(el, sla) {
  const targets = [
    ["first_response", sla?.first_response],
    ["resolution", sla?.resolution],
  ];
  const total = targets.reduce((sum, [, a]) => sum + (a?.met || 0) + (a?.breached || 0), 0);
  reset(el, total);
  if (!targets.some(([, a]) => a && a.met + a.breached + a.pending > 0)) return noData(el);
  const left = 112;
  const right = 64;
  const barH = 34;
  const width = W - left - right;
  targets.forEach(([name, a], i) => {
    const y = 30 + i * 78;
    const counted = a ? a.met + a.breached + a.pending : 0;
    el.append(svg("text", { x: 8, y: y + barH / 2 + 4, class: "value" }, t(`sla.${name}`)));
    el.append(svg("rect", { x: left, y, width, height: barH, class: "bar-pending", rx: 3 }));
    let x = left;
    for (const part of ["met", "breached", "pending"]) {
      const n = a?.[part] || 0;
      if (!n || !counted) continue;
      const w = (n / counted) * width;
      el.append(svg("rect", { x, y, width: w, height: barH, class: `bar bar-${part}` }, svg("title", {}, `${t(`chart.${part}`)}: ${n}`)));
      if (w > 22) {
        el.append(svg("text", { x: x + w / 2, y: y + barH / 2 + 4, "text-anchor": "middle", class: `seg-label seg-${part}` }, String(n)));
      }
      x += w;
    }
    el.append(svg("text", { x: W - 8, y: y + barH / 2 + 4, "text-anchor": "end", class: "value" }, formatPercent(a?.rate)));
    el.append(
      svg(
        "text",
        { x: left, y: y + barH + 14 },
        `${t("chart.met")} ${a?.met || 0} · ${t("chart.breached")} ${a?.breached || 0} · ${t("chart.pending")} ${a?.pending || 0}`,
      ),
    );
  });
}

const CATEGORY_BARS = 6; // the largest groups; the rest as one bar

/**
 * Tickets per top-level category (大类), the largest first, labelled in the page's language.
 * @param {SVGSVGElement} el
 * @param {Record<string, number>} byGroup the report's volumes.by_category_group: Chinese
 *   label (as stored) -> tickets; "-" for tickets without a category
 */
export function categoryChart(el, byGroup) {
  const entries = Object.entries(byGroup || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  reset(el, total);
  if (!total) return noData(el);
  let rows = entries.map(([group, n]) => [group === "-" ? t("chart.noCategory") : categoryLabel(group), n, group]);
  if (rows.length > CATEGORY_BARS) {
    const rest = rows.slice(CATEGORY_BARS - 1);
    rows = [...rows.slice(0, CATEGORY_BARS - 1), [t("chart.otherCategories"), rest.reduce((s, [, n]) => s + n, 0), ""]];
  }
  const left = 150;
  const right = 48;
  const slot = (H - PAD.top - 8) / CATEGORY_BARS;
  const barH = Math.min(22, slot * 0.7);
  const max = Math.max(...rows.map(([, n]) => n));
  rows.forEach(([name, n, group], i) => {
    const y = PAD.top + slot * i;
    const width = ((W - left - right) * n) / max;
    // An SVG text does not wrap or cut itself: long labels are cut here, whole in the tooltip.
    const shown = name.length > 22 ? `${name.slice(0, 21)}…` : name;
    el.append(
      svg(
        "g",
        {},
        svg("title", {}, name),
        svg("text", { x: left - 8, y: y + barH / 2 + 4, "text-anchor": "end", class: "category-name", "data-group": group }, shown),
      ),
    );
    el.append(svg("rect", { x: left, y, width, height: barH, class: "bar", rx: 2 }, svg("title", {}, `${name}: ${n}`)));
    el.append(svg("text", { x: left + width + 6, y: y + barH / 2 + 4, class: "value" }, String(n)));
  });
}

/** Every day from `from` to `to`, inclusive, as "YYYY-MM-DD" (no time zones involved). */
export function daysBetween(from, to) {
  const days = [];
  const [fy, fm, fd] = from.split("-").map(Number);
  const [ty, tm, td] = to.split("-").map(Number);
  const day = new Date(Date.UTC(fy, fm - 1, fd));
  const last = Date.UTC(ty, tm - 1, td);
  while (day.getTime() <= last && days.length < 400) {
    days.push(day.toISOString().slice(0, 10));
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return days;
}

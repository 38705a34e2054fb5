using System.Globalization;
using System.Net;
using System.Text;

namespace AspireTune.Comparison.Reports;

/// <summary>Small, dependency-free SVG charts for the report: they render in any browser and in mail clients.</summary>
public static class Svg
{
    private static readonly string[] Palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"];
    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    private static string E(string s) => WebUtility.HtmlEncode(s);

    /// <summary>Horizontal bars with 95% interval whiskers, values in [0, 1] shown as percentages.</summary>
    public static string BarsWithIntervals(string title, IReadOnlyList<(string Label, double Value, double Lower, double Upper)> bars)
    {
        const int rowHeight = 34, width = 860;
        var left = LabelWidth(bars.Select(b => b.Label));
        var plot = width - left - 60;
        var height = 50 + bars.Count * rowHeight + 30;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{E(title)}\" font-family=\"system-ui,sans-serif\" font-size=\"13\">");
        sb.Append($"<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"600\">{E(title)}</text>");
        for (var t = 0; t <= 10; t += 2)
        {
            var x = left + plot * t / 10.0;
            sb.Append($"<line x1=\"{F(x)}\" y1=\"40\" x2=\"{F(x)}\" y2=\"{height - 28}\" stroke=\"#e5e5e5\"/>");
            sb.Append($"<text x=\"{F(x)}\" y=\"{height - 12}\" text-anchor=\"middle\" fill=\"#555\">{t * 10}%</text>");
        }
        for (var i = 0; i < bars.Count; i++)
        {
            var (label, value, lower, upper) = bars[i];
            var y = 48 + i * rowHeight;
            var w = Clamp(value) * plot;
            sb.Append($"<text x=\"{left - 8}\" y=\"{y + 16}\" text-anchor=\"end\">{E(label)}</text>");
            sb.Append($"<rect x=\"{left}\" y=\"{y + 4}\" width=\"{F(w)}\" height=\"18\" fill=\"{Palette[i % Palette.Length]}\"><title>{E(label)}: {F(value * 100)}%</title></rect>");
            if (!double.IsNaN(lower) && !double.IsNaN(upper))
            {
                double x1 = left + Clamp(lower) * plot, x2 = left + Clamp(upper) * plot;
                sb.Append($"<line x1=\"{F(x1)}\" y1=\"{y + 13}\" x2=\"{F(x2)}\" y2=\"{y + 13}\" stroke=\"#222\" stroke-width=\"1.5\"/>");
                sb.Append($"<line x1=\"{F(x1)}\" y1=\"{y + 7}\" x2=\"{F(x1)}\" y2=\"{y + 19}\" stroke=\"#222\"/><line x1=\"{F(x2)}\" y1=\"{y + 7}\" x2=\"{F(x2)}\" y2=\"{y + 19}\" stroke=\"#222\"/>");
            }
            sb.Append($"<text x=\"{F(left + Math.Max(w, double.IsNaN(upper) ? w : Clamp(upper) * plot) + 6)}\" y=\"{y + 17}\" fill=\"#333\">{F(value * 100)}%</text>");
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>Scatter of quality against a cost-like axis, with the Pareto front joined by a line.</summary>
    public static string Scatter(string title, string xLabel, string yLabel, IReadOnlyList<(string Label, double X, double Y, bool Front)> points)
    {
        const int width = 860, height = 420, left = 70, right = 30, top = 40, bottom = 60;
        var valid = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        var maxX = valid.Count == 0 ? 1 : Math.Max(valid.Max(p => p.X), 1e-9) * 1.15;
        double Px(double x) => left + x / maxX * (width - left - right);
        double Py(double y) => height - bottom - Clamp(y) * (height - top - bottom);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{E(title)}\" font-family=\"system-ui,sans-serif\" font-size=\"13\">");
        sb.Append($"<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"600\">{E(title)}</text>");
        for (var t = 0; t <= 10; t += 2)
        {
            var y = Py(t / 10.0);
            sb.Append($"<line x1=\"{left}\" y1=\"{F(y)}\" x2=\"{width - right}\" y2=\"{F(y)}\" stroke=\"#e5e5e5\"/><text x=\"{left - 8}\" y=\"{F(y + 4)}\" text-anchor=\"end\" fill=\"#555\">{t * 10}%</text>");
        }
        var allZero = valid.All(p => p.X == 0);
        for (var t = 0; t <= (allZero ? 0 : 4); t++)
        {
            var xv = maxX * t / 4;
            sb.Append($"<text x=\"{F(Px(xv))}\" y=\"{height - bottom + 18}\" text-anchor=\"middle\" fill=\"#555\">{xv.ToString(xv < 1 ? "0.####" : xv < 10 ? "0.#" : "0", CultureInfo.InvariantCulture)}</text>");
        }
        sb.Append($"<text x=\"{(width + left) / 2}\" y=\"{height - 15}\" text-anchor=\"middle\">{E(xLabel)}{(allZero ? " (every candidate is 0 here)" : "")}</text>");
        sb.Append($"<text transform=\"translate(18,{(height - bottom + top) / 2}) rotate(-90)\" text-anchor=\"middle\">{E(yLabel)}</text>");
        var front = valid.Where(p => p.Front).OrderBy(p => p.X).ToList();
        if (front.Count > 1)
            sb.Append($"<polyline fill=\"none\" stroke=\"#C44E52\" stroke-dasharray=\"5,4\" stroke-width=\"1.5\" points=\"{string.Join(' ', front.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"))}\"/>");
        var placed = new Labels(top, height - bottom);
        for (var i = 0; i < valid.Count; i++)
        {
            var p = valid[i];
            sb.Append($"<circle cx=\"{F(Px(p.X))}\" cy=\"{F(Py(p.Y))}\" r=\"{(p.Front ? 8 : 6)}\" fill=\"{Palette[i % Palette.Length]}\" stroke=\"{(p.Front ? "#C44E52" : "none")}\" stroke-width=\"2\"><title>{E(p.Label)}</title></circle>");
            // Labels of points in the right third go to their left, so they stay inside the chart.
            var toLeft = Px(p.X) > left + (width - left - right) * 2 / 3.0;
            var x = Px(p.X) + (toLeft ? -10 : 10);
            var y = placed.Place(toLeft ? x - TextWidth(p.Label) : x, Py(p.Y) - 8, TextWidth(p.Label));
            if (Math.Abs(y - (Py(p.Y) - 8)) > 1) // moved away from its point: a leader line says whose it is
                sb.Append($"<line x1=\"{F(Px(p.X))}\" y1=\"{F(Py(p.Y))}\" x2=\"{F(x)}\" y2=\"{F(y - 4)}\" stroke=\"#999\" stroke-width=\"0.8\"/>");
            sb.Append($"<text x=\"{F(x)}\" y=\"{F(y)}\" text-anchor=\"{(toLeft ? "end" : "start")}\">{E(p.Label)}</text>");
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>Grouped horizontal bars (e.g. latency p50/p95/p99 per candidate) on a shared linear axis.</summary>
    public static string GroupedBars(string title, string unit, IReadOnlyList<string> series, IReadOnlyList<(string Label, double[] Values)> groups)
    {
        const int width = 860, barHeight = 11;
        var left = LabelWidth(groups.Select(g => g.Label));
        var plot = width - left - 80;
        var rowHeight = series.Count * barHeight + 14;
        var height = 70 + groups.Count * rowHeight + 20;
        var max = groups.SelectMany(g => g.Values).Where(double.IsFinite).DefaultIfEmpty(1).Max();
        max = max <= 0 ? 1 : max * 1.1;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{E(title)}\" font-family=\"system-ui,sans-serif\" font-size=\"13\">");
        sb.Append($"<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"600\">{E(title)}</text>");
        for (var s = 0; s < series.Count; s++)
            sb.Append($"<rect x=\"{left + s * 90}\" y=\"34\" width=\"12\" height=\"12\" fill=\"{Palette[s % Palette.Length]}\"/><text x=\"{left + s * 90 + 16}\" y=\"45\">{E(series[s])}</text>");
        for (var g = 0; g < groups.Count; g++)
        {
            var y = 60 + g * rowHeight;
            sb.Append($"<text x=\"{left - 8}\" y=\"{y + rowHeight / 2 + 2}\" text-anchor=\"end\">{E(groups[g].Label)}</text>");
            for (var s = 0; s < series.Count && s < groups[g].Values.Length; s++)
            {
                var v = groups[g].Values[s];
                var w = double.IsFinite(v) ? v / max * plot : 0;
                sb.Append($"<rect x=\"{left}\" y=\"{y + s * barHeight}\" width=\"{F(w)}\" height=\"{barHeight - 2}\" fill=\"{Palette[s % Palette.Length]}\"><title>{E(series[s])}: {F(v)} {E(unit)}</title></rect>");
                sb.Append($"<text x=\"{F(left + w + 4)}\" y=\"{y + s * barHeight + 9}\" font-size=\"11\" fill=\"#333\">{(double.IsFinite(v) ? F(v) : "n/a")} {E(unit)}</text>");
            }
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>
    /// Daily cost against volume (requests a day), one straight line per candidate (one-off cost spread over the
    /// horizon + fixed cost a day + cost per request times volume), with the volumes where the cheapest changes marked.
    /// </summary>
    public static string CostLines(string title, IReadOnlyList<(string Label, double Intercept, double Slope)> lines, IReadOnlyList<double> breakEvens, double maxVolume)
    {
        const int width = 860, height = 420, right = 30, top = 40, bottom = 60;
        var labelRoom = Math.Clamp(lines.Select(l => TextWidth(l.Label)).DefaultIfEmpty(60).Max() + 16, 80, 300);
        const int left = 80;
        var plotRight = width - right - labelRoom;
        var maxY = lines.Select(l => l.Intercept + l.Slope * maxVolume).Where(double.IsFinite).DefaultIfEmpty(1).Max();
        maxY = maxY <= 0 ? 1 : maxY * 1.1;
        double Px(double v) => left + v / maxVolume * (plotRight - left);
        double Py(double y) => height - bottom - y / maxY * (height - top - bottom);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{E(title)}\" font-family=\"system-ui,sans-serif\" font-size=\"13\">");
        sb.Append($"<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"600\">{E(title)}</text>");
        for (var t = 0; t <= 5; t++)
        {
            var yv = maxY * t / 5;
            sb.Append($"<line x1=\"{left}\" y1=\"{F(Py(yv))}\" x2=\"{F(plotRight)}\" y2=\"{F(Py(yv))}\" stroke=\"#e5e5e5\"/><text x=\"{left - 8}\" y=\"{F(Py(yv) + 4)}\" text-anchor=\"end\" fill=\"#555\">{Round(yv)}</text>");
            var xv = maxVolume * t / 5;
            sb.Append($"<text x=\"{F(Px(xv))}\" y=\"{height - bottom + 18}\" text-anchor=\"middle\" fill=\"#555\">{Round(xv)}</text>");
        }
        sb.Append($"<text x=\"{(plotRight + left) / 2}\" y=\"{height - 15}\" text-anchor=\"middle\">requests a day</text>");
        sb.Append($"<text transform=\"translate(18,{(height - bottom + top) / 2}) rotate(-90)\" text-anchor=\"middle\">USD a day</text>");
        foreach (var v in breakEvens.Where(v => v > 0 && v <= maxVolume))
            sb.Append($"<line x1=\"{F(Px(v))}\" y1=\"{top}\" x2=\"{F(Px(v))}\" y2=\"{height - bottom}\" stroke=\"#999\" stroke-dasharray=\"3,3\"><title>break-even at {Round(v)} requests a day</title></line>");
        var placed = new Labels(top, height - bottom);
        for (var i = 0; i < lines.Count; i++)
        {
            var (label, a, b) = lines[i];
            var end = a + b * maxVolume;
            sb.Append($"<line x1=\"{F(Px(0))}\" y1=\"{F(Py(a))}\" x2=\"{F(Px(maxVolume))}\" y2=\"{F(Py(end))}\" stroke=\"{Palette[i % Palette.Length]}\" stroke-width=\"2\"><title>{E(label)}: {F(a)} USD a day + {b.ToString("0.######", CultureInfo.InvariantCulture)} USD a request</title></line>");
            var y = placed.Place(plotRight + 6, Py(end) + 4, TextWidth(label));
            sb.Append($"<text x=\"{F(plotRight + 6)}\" y=\"{F(y)}\" fill=\"{Palette[i % Palette.Length]}\">{E(label)}</text>");
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>Training loss (every point) and validation loss (where it ran) against the step; the best step as a dashed line.</summary>
    public static string LossCurves(string title, IReadOnlyList<(int Step, double Train, double? Valid)> points, int bestStep)
    {
        const int width = 860, height = 360, left = 70, right = 150, top = 40, bottom = 50;
        var finite = points.Where(p => double.IsFinite(p.Train)).ToList();
        var values = finite.Select(p => p.Train).Concat(points.Select(p => p.Valid).OfType<double>().Where(double.IsFinite)).ToList();
        var maxX = Math.Max(1, points.Select(p => p.Step).DefaultIfEmpty(1).Max());
        // The axis spans the losses seen (padded by a tenth), so a flat stretch near the end still shows its slope.
        var maxY = values.DefaultIfEmpty(1).Max();
        var minY = values.DefaultIfEmpty(0).Min();
        var pad = Math.Max(0.05, (maxY - minY) / 10);
        (minY, maxY) = (Math.Max(0, minY - pad), maxY + pad);
        double Px(double step) => left + step / maxX * (width - left - right);
        double Py(double y) => height - bottom - (y - minY) / (maxY - minY) * (height - top - bottom);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{E(title)}\" font-family=\"system-ui,sans-serif\" font-size=\"13\">");
        sb.Append($"<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"600\">{E(title)}</text>");
        for (var t = 0; t <= 5; t++)
        {
            var yv = minY + (maxY - minY) * t / 5;
            sb.Append($"<line x1=\"{left}\" y1=\"{F(Py(yv))}\" x2=\"{width - right}\" y2=\"{F(Py(yv))}\" stroke=\"#e5e5e5\"/><text x=\"{left - 8}\" y=\"{F(Py(yv) + 4)}\" text-anchor=\"end\" fill=\"#555\">{Round(yv)}</text>");
            var xv = Math.Round(maxX * t / 5.0); // steps are whole
            sb.Append($"<text x=\"{F(Px(xv))}\" y=\"{height - bottom + 18}\" text-anchor=\"middle\" fill=\"#555\">{Round(xv)}</text>");
        }
        sb.Append($"<text x=\"{(width - right + left) / 2}\" y=\"{height - 12}\" text-anchor=\"middle\">step</text>");
        sb.Append($"<text transform=\"translate(18,{(height - bottom + top) / 2}) rotate(-90)\" text-anchor=\"middle\">loss</text>");
        if (bestStep > 0 && bestStep <= maxX)
            sb.Append($"<line x1=\"{F(Px(bestStep))}\" y1=\"{top}\" x2=\"{F(Px(bestStep))}\" y2=\"{height - bottom}\" stroke=\"#999\" stroke-dasharray=\"3,3\"><title>best step {bestStep}</title></line>");
        var series = new (string Name, List<(int Step, double Loss)> Points)[]
        {
            ("training", finite.Select(p => (p.Step, p.Train)).ToList()),
            ("validation", points.Where(p => p.Valid is { } v && double.IsFinite(v)).Select(p => (p.Step, p.Valid!.Value)).ToList()),
        };
        var placed = new Labels(top, height - bottom);
        for (var i = 0; i < series.Length; i++)
        {
            var (name, line) = series[i];
            if (line.Count == 0)
                continue;
            var color = Palette[i];
            sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(' ', line.Select(p => $"{F(Px(p.Step))},{F(Py(p.Loss))}"))}\"/>");
            foreach (var (step, loss) in line.Count <= 60 ? line : [])
                sb.Append($"<circle cx=\"{F(Px(step))}\" cy=\"{F(Py(loss))}\" r=\"2.5\" fill=\"{color}\"><title>{name} loss {loss.ToString("0.####", CultureInfo.InvariantCulture)} at step {step}</title></circle>");
            var y = placed.Place(width - right + 6, Py(line[^1].Loss) + 4, TextWidth(name));
            sb.Append($"<text x=\"{F(width - right + 6)}\" y=\"{F(y)}\" fill=\"{color}\">{name}</text>");
        }
        return sb.Append("</svg>").ToString();
    }

    private static string Round(double v) => v.ToString(v == 0 ? "0" : v < 1 ? "0.###" : v < 10 ? "0.#" : "#,0", CultureInfo.InvariantCulture);

    private static double TextWidth(string label) => label.Length * 7;

    /// <summary>Text labels placed so that none overlaps another: a label that would is moved up or down, nearest free row first.</summary>
    private sealed class Labels(double top, double bottom)
    {
        private const double Height = 15;
        private readonly List<(double X1, double X2, double Y)> _placed = [];

        /// <summary>The baseline to draw at, as near <paramref name="y"/> as a free row allows.</summary>
        public double Place(double x, double y, double width)
        {
            for (var step = 0; step < 40; step++)
            {
                var offset = (step + 1) / 2 * Height * (step % 2 == 1 ? 1 : -1);
                var candidate = Math.Clamp(y + offset, top + Height, bottom);
                if (_placed.All(p => p.X2 < x || p.X1 > x + width || Math.Abs(p.Y - candidate) >= Height))
                {
                    _placed.Add((x, x + width, candidate));
                    return candidate;
                }
            }
            _placed.Add((x, x + width, y));
            return y;
        }
    }

    private static double Clamp(double v) => double.IsNaN(v) ? 0 : Math.Clamp(v, 0, 1);

    /// <summary>Room for the longest label (about 7 px a character at 13 px), so names are never clipped.</summary>
    private static int LabelWidth(IEnumerable<string> labels) => Math.Clamp(labels.Select(l => l.Length).DefaultIfEmpty(10).Max() * 7 + 16, 120, 380);
}

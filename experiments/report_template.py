# ruff: noqa: E501 - an HTML template reads better unwrapped
"""The jinja2 template of the study report: one self-contained page, figures as data: URIs,
no script, no external link (a Python string, so it ships with the package)."""

STUDY_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Study {{ study.name }}</title>
<style>
  :root { --ok: #e8f5e9; --ok-ink: #1b5e20; --bad: #ffebee; --bad-ink: #b71c1c;
          --warn: #fff3e0; --warn-ink: #e65100; --muted: #666; --line: #ddd; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
         color: #222; background: #fafafa; }
  main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 18px; margin: 30px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
  p.lead, .caption { color: var(--muted); }
  .caption { font-size: 12px; margin: 0 0 14px; }
  .badges span { display: inline-block; padding: 3px 10px; border-radius: 12px;
                 margin: 2px 6px 2px 0; font-weight: 600; }
  .good { background: var(--ok); color: var(--ok-ink); }
  .bad { background: var(--bad); color: var(--bad-ink); }
  .warn { background: var(--warn); color: var(--warn-ink); }
  .neutral { background: #eceff1; color: #37474f; }
  .alarm { background: var(--bad); color: var(--bad-ink); border: 2px solid var(--bad-ink);
           padding: 10px 14px; font-weight: 700; margin: 12px 0; }
  table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
  th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
  th { background: #f5f5f5; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.cell-ok { background: var(--ok); color: var(--ok-ink); }
  td.cell-bad { background: var(--bad); color: var(--bad-ink); font-weight: 700; }
  code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  img.figure { max-width: 100%; height: auto; display: block; margin: 6px 0 4px; }
  li { margin: 3px 0; }
  .scroll { overflow-x: auto; }
</style>
</head>
<body>
<main>
<h1>Study {{ study.name }}</h1>
<p class="lead">{{ study.description }}. {{ runs }} real run{{ "s" if runs != 1 }} over
{{ cells }} cells{% if study.quick %} (quick){% endif %}; generated {{ generated_at }}.</p>
<div class="badges">
  {% if study.mode == "real" %}
  {% if violations %}<span class="bad">{{ violations }} run{{ "s" if violations != 1 }} with
    exactly-once violations</span>{% else %}<span class="good">no exactly-once violation</span>{% endif %}
  {% if hung %}<span class="warn">{{ hung }} hung</span>{% endif %}
  {% endif %}
  {% if validation %}
  <span class="{{ 'good' if validation.validated else 'bad' }}">simulator
    {{ "validated" if validation.validated else "NOT validated" }}: median relative error
    {{ "%.1f"|format(validation.median_relative_error * 100) }}%</span>
  {% endif %}
  {% if extrapolated_from %}<span class="neutral">extrapolated from {{ extrapolated_from }}</span>{% endif %}
</div>
{% if violation_rows %}
<div class="alarm" id="violations">{% if violations %}EXACTLY-ONCE VIOLATIONS: {{ violations }} run(s) broke
  what their settings promise{% if hung %}, and {{ hung }} run(s) hung{% endif %}{% else %}{{ violation_rows|length }} run(s) HUNG: past
  the study's run_timeout (the checker flags them; look at each history for a stuck run or a slow one){% endif %}. Each history is kept; replay with
  <code>python -m chaos replay RUN_DIR/schedule.json</code>.
  <ul>{% for row in violation_rows %}<li><code>{{ row.cell }}</code> repetition {{ row.repetition }}:
  {{ row.violation_kinds }} (verdict {{ row.verdict }}) — <code>{{ row.run_dir }}</code></li>{% endfor %}</ul>
</div>
{% endif %}

<h2 id="recommendation">Recommendation</h2>
<p class="caption">Objective: {{ recommendation.objective }}. From the simulator in the study's
preemption model (notice honoured, lost workers replaced after the study's replacement delay),
calibrated on the real runs{% if validation %} and validated against them{% endif %}.</p>
<table id="recommendation-table">
<thead><tr><th>preemptions per worker-hour</th><th>settings</th><th>makespan vs none</th>
<th>P(task failed)</th><th>memory per worker</th><th>in plain words</th></tr></thead>
<tbody>
{% for entry in recommendation.recommendations %}
<tr><td class="num">{{ entry.preemption_rate }}</td><td><code>{{ entry.settings_text }}</code></td>
<td class="num">{{ entry.overhead_text }}</td><td class="num">{{ "%.3g"|format(entry.failure_probability) }}</td>
<td class="num">{{ entry.memory_text }}</td>
<td class="{{ 'cell-ok' if entry.meets_objective else 'cell-bad' }}">{{ entry.why }}</td></tr>
{% endfor %}
</tbody></table>

{% for figure in figures %}
<h2 id="{{ figure.id }}">{{ figure.title }}</h2>
<p class="caption">{{ figure.caption }}</p>
<img class="figure" alt="{{ figure.title }}" src="{{ figure.uri }}">
{% endfor %}

{% if step_rows %}
<h2 id="step-advice-table">Step length</h2>
<p class="caption">Optimal step length by Young (√(2δ/λ)) and Daly, in the study's world
(δ = {{ "%.0f"|format(step_checkpoint) }} model s per step boundary) and in a real cluster
(δ = {{ "%.3f"|format(real_checkpoint) }} s, the library's per-step cost measured here, not compressed).</p>
<table><thead><tr><th>preemptions per worker-hour</th><th>Young (study)</th><th>Daly (study)</th>
<th>Young (real cluster)</th><th>Daly (real cluster)</th></tr></thead><tbody>
{% for row in step_rows %}<tr><td class="num">{{ row.rate }}</td><td class="num">{{ row.young }}</td>
<td class="num">{{ row.daly }}</td><td class="num">{{ row.young_real }}</td><td class="num">{{ row.daly_real }}</td></tr>{% endfor %}
</tbody></table>
{% endif %}

<h2 id="limits">What the real runs could and could not exercise</h2>
<ul>{% for item in limits %}<li>{{ item }}</li>{% endfor %}</ul>

{% if validation %}
<h2 id="validation">Validation</h2>
<p class="caption">Per measured cell, the simulator in harness mode (the real runs' seeds, so the
same step durations and fault times; {{ validation.simulated_runs_per_measured_run }} simulated
runs per real one) against the measurement.</p>
<div class="scroll"><table><thead><tr><th>cell</th><th>runs</th><th>makespan measured</th>
<th>predicted</th><th>rel. error</th><th>P(fail) measured</th><th>predicted</th></tr></thead><tbody>
{% for cell in validation.cells %}<tr><td><code>{{ cell.cell }}</code></td><td class="num">{{ cell.runs }}</td>
<td class="num">{{ "%.3f"|format(cell.makespan.measured) }}</td><td class="num">{{ "%.3f"|format(cell.makespan.predicted) }}</td>
<td class="num">{{ "%.1f"|format(cell.makespan.relative_error * 100) }}%</td>
<td class="num">{{ "%.3f"|format(cell.failure_probability.measured) }}</td>
<td class="num">{{ "%.3f"|format(cell.failure_probability.predicted) }}</td></tr>{% endfor %}
</tbody></table></div>
{% endif %}

<h2 id="calibration">Calibrated constants</h2>
<p class="caption">Real seconds; the median of each latency in the histories ({{ calibration.source }}).
A constant with 0 samples fell back to the default shown.</p>
<table><thead><tr><th>constant</th><th>seconds</th><th>samples</th></tr></thead><tbody>
{% for name, value, samples in constants %}<tr><td>{{ name }}</td><td class="num">{{ "%.4f"|format(value) }}</td>
<td class="num">{{ samples }}</td></tr>{% endfor %}
</tbody></table>

<h2 id="reproduce">Reproduce</h2>
<p><code>{{ command }}</code> — the same command with the same <code>--out</code> continues an
interrupted study; <code>python -m experiments report {{ folder }}</code> rebuilds this page.</p>
</main>
</body>
</html>
"""

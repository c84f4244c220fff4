"""The jinja2 template of the campaign report: one self-contained page, no external links.

It lives in a Python string, not a data file, so it ships with the package however the
package is installed. Figures arrive as `data:` URIs; there is no script at all.
"""

CAMPAIGN_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>
  :root { --ok: #e8f5e9; --ok-ink: #1b5e20; --bad: #ffebee; --bad-ink: #b71c1c;
          --muted: #666; --line: #ddd; --hung: #fff3e0; --hung-ink: #e65100; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
         color: #222; background: #fafafa; }
  main { max-width: 1250px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 18px; margin: 34px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
  h3 { font-size: 15px; margin: 20px 0 6px; }
  p.lead { color: var(--muted); margin: 0 0 14px; }
  nav a { margin-right: 14px; }
  .badges span { display: inline-block; padding: 3px 10px; border-radius: 12px;
                 margin: 2px 6px 2px 0; font-weight: 600; }
  .good { background: var(--ok); color: var(--ok-ink); }
  .bad { background: var(--bad); color: var(--bad-ink); }
  .warn { background: var(--hung); color: var(--hung-ink); }
  .neutral { background: #eceff1; color: #37474f; }
  table { border-collapse: collapse; font-size: 13px; }
  th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left;
           vertical-align: top; }
  th { background: #f5f5f5; position: sticky; top: 0; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.cell-ok { background: var(--ok); color: var(--ok-ink); text-align: center; }
  td.cell-bad { background: var(--bad); color: var(--bad-ink); font-weight: 700;
                text-align: center; }
  td.cell-info { color: var(--muted); text-align: center; }
  td.cell-hung { background: var(--hung); color: var(--hung-ink); font-weight: 700;
                 text-align: center; }
  tr.group td { background: #eceff1; font-weight: 600; }
  code.cmd { font-size: 11px; word-break: break-all; }
  th.rot { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap;
           text-align: left; padding: 8px 4px; }
  td.config { white-space: nowrap; font-family: ui-monospace, monospace; font-size: 12px; }
  code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  img.figure { max-width: 100%; height: auto; display: block; margin: 6px 0 4px; }
  .caption { color: var(--muted); font-size: 12px; margin: 0 0 14px; }
  details { margin: 4px 0 12px; }
  summary { cursor: pointer; }
  .scroll { overflow-x: auto; }
  .meta td:first-child { color: var(--muted); white-space: nowrap; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
<p class="lead">{{ summary.runs }} run{{ "s" if summary.runs != 1 }} over
{{ summary.configurations }} configuration{{ "s" if summary.configurations != 1 }},
generated {{ generated_at }}.</p>
<div class="badges">
  {% if summary.failing == 0 %}<span class="good">every run passed</span>
  {% else %}<span class="bad">{{ summary.failing }} failing
    run{{ "s" if summary.failing != 1 }}</span>{% endif %}
  {% if summary.hung %}<span class="warn">{{ summary.hung }} hung or cut short</span>{% endif %}
  <span class="{{ 'warn' if summary.inconclusive else 'good' }}">{{ summary.inconclusive }}
    inconclusive</span>
  <span class="{{ 'bad' if summary.lost_runs else 'good' }}">{{ summary.lost_runs }}
    with silent loss</span>
  <span class="neutral">{{ summary.faults }} faults injected</span>
</div>
<nav><a href="#verdicts">Verdicts</a><a href="#failing">Failing runs</a>
<a href="#replays">Replays</a><a href="#inconclusive">Inconclusive runs</a>
<a href="#coverage">Coverage</a>
<a href="#timelines">Timelines</a><a href="#recovery">Recovery</a><a href="#waste">Wasted work</a>
<a href="#overhead">Overhead</a><a href="#provenance">Versions &amp; seeds</a></nav>

<h2 id="verdicts">Verdicts</h2>
<p class="caption">Each cell counts the runs of a configuration that showed at least one violation
of that class; green means none. <em>Must deliver</em> counts the runs in which the expected-outcome
model said every output had to arrive. Grey columns are information, not violations: failures the
model allowed, and re-executions (execution is at-least-once; delivery must be exactly-once).
<em>Inconclusive</em> counts runs with no violation whose scheduled faults did not all land
(skipped, not reached, a harness error, landing never confirmed), or that lost a worker no fault
explains: they prove less than their schedule claims, or suffered more, so they are never counted
valid.</p>
<div class="scroll">
<table id="verdict-table">
<thead><tr>
  <th>configuration</th><th class="num">runs</th><th class="num">failing</th>
  <th class="num">must deliver</th><th class="num">inconclusive</th>
  {% for kind in violation_kinds %}<th class="rot">{{ kind_titles[kind] }}</th>{% endfor %}
  <th class="rot">allowed failures</th><th class="rot">re-executions</th>
</tr></thead>
<tbody>
{% for row in verdict_rows %}
{% if loop.changed(row.target) %}
<tr class="group"><td colspan="{{ 7 + violation_kinds|length }}">{{ row.target }}
  {%- if target_notes.get(row.target) %}: {{ target_notes[row.target] }}{% endif %}</td></tr>
{% endif %}
<tr>
  <td class="config">{{ row.label }}</td><td class="num">{{ row.runs }}</td>
  <td class="{{ 'cell-bad' if row.failing else 'cell-ok' }}">{{ row.failing }}</td>
  <td class="num">{{ row.must_deliver }}</td>
  <td class="{{ 'cell-info' if row.inconclusive else 'cell-ok' }}">{{ row.inconclusive }}</td>
  {% for kind in violation_kinds %}
  <td class="{{ 'cell-bad' if row[kind] else 'cell-ok' }}">{{ row[kind] or "✓" }}</td>
  {% endfor %}
  <td class="cell-info">{{ row.excused_failures }}</td>
  <td class="cell-info">{{ row.re_executions }}</td>
</tr>
{% endfor %}
</tbody>
</table>
</div>

<h2 id="failing">Failing runs</h2>
{% if not failing_runs %}<p>None: every run delivered what its configuration promised.</p>
{% else %}
<p class="caption">Every run whose verdict is not valid, with the command that replays its fault
schedule. Hover an expectation for the model's reasoning; the evidence (task ids, output indexes,
event seqs) follows the table.</p>
<div class="scroll">
<table id="failing-table">
<thead><tr><th>run</th><th>configuration</th><th>verdict</th><th>found</th><th>expected</th>
  <th class="num">seed</th><th class="num">faults</th><th>reproduce</th></tr></thead>
<tbody>
{% for run in failing_runs %}
<tr>
  <td><a href="#evidence-{{ loop.index }}">{{ run.run_id }}</a></td>
  <td class="config">{{ run.label }}</td>
  <td class="{{ 'cell-hung' if run.outcome == 'hung' else 'cell-bad' }}">{{ run.outcome }}</td>
  <td>{{ run.found }}</td><td title="{{ run.expected }}">{{ run.expected_short }}</td>
  <td class="num">{{ run.seed }}</td><td class="num">{{ run.faults }}</td>
  <td><code class="cmd">{{ run.replay }}</code></td>
</tr>
{% endfor %}
</tbody>
</table>
</div>
{% if more_failing %}<p class="caption">{{ more_failing }} more failing runs are counted in the
verdict table but not listed.</p>{% endif %}
<h3>Evidence</h3>
{% for run in failing_runs %}
<details id="evidence-{{ loop.index }}">
<summary><strong>{{ run.run_id }}</strong> · {{ run.label }} · {{ run.found }}</summary>
<p>Expected: {{ run.expected }}. Run status <code>{{ run.status }}</code>
{%- if run.error %}: {{ run.error }}{% endif %}.</p>
<table><thead><tr><th>class</th><th>task</th><th>index</th><th>event seqs</th><th>detail</th>
</tr></thead><tbody>
{% for v in run.violations %}
<tr><td>{{ v.kind }}</td><td>{{ v.task_id }}</td><td>{{ v.index }}</td>
  <td><code>{{ v.seqs }}</code></td><td>{{ v.detail }}</td></tr>
{% endfor %}
</tbody></table>
{% if run.more %}<p class="caption">{{ run.more }} more violations in this run's verdict.</p>
{% endif %}
</details>
{% endfor %}
{% endif %}

<h2 id="replays">Replay determinism</h2>
{% if not replays %}<p>The failing runs were not replayed in this campaign (pass
<code>--replays N</code>, or run <code>python -m chaos replays DIR --times N</code>).</p>
{% else %}
<p>{{ replays.runs }} failing run(s) replayed {{ (replays.replays / replays.runs)|round|int }}
time(s) each: <strong>{{ "%.0f"|format(replays.share * 100) }}%</strong> of the
{{ replays.replays }} replays matched their original (same verdict, same violations by class,
same fault points); {{ "%.0f"|format(replays.same_classes_share * 100) }}% had the same verdict,
violation classes and fault points (counts may differ: how many other tasks' inputs a killed
worker held depends on Dask's placement); {{ "%.0f"|format(replays.same_outcome_share * 100) }}%
had the same verdict outcome.</p>
<div class="scroll"><table id="replay-table"><thead><tr>
  <th>run</th><th class="num">matching replays</th><th class="num">same outcome</th>
</tr></thead><tbody>
{% for r in replays.per_run %}
<tr><td>{{ r.run }}</td><td class="num">{{ r.matches }}/{{ r.replays }}</td>
  <td class="num">{{ r.same_outcome }}/{{ r.replays }}</td></tr>
{% endfor %}
</tbody></table></div>
{% endif %}

<h2 id="inconclusive">Inconclusive runs</h2>
{% if not inconclusive_runs %}<p>None: every scheduled fault landed (or could not exist in its
configuration, counted as not applicable).</p>
{% else %}
<div class="scroll"><table id="inconclusive-table"><thead><tr>
  <th>run</th><th>configuration</th><th>faults that did not land</th><th>replay</th>
</tr></thead><tbody>
{% for run in inconclusive_runs %}
<tr><td>{{ run.run_id }}</td><td class="config">{{ run.label }}</td>
  <td>{{ run.misses }}</td><td><code>{{ run.replay }}</code></td></tr>
{% endfor %}
</tbody></table></div>
{% endif %}

<h2 id="coverage">Coverage</h2>
<p class="caption">Per configuration: which (fault kind, lifecycle window) cells the landed faults
hit, out of the cells that exist there (inline inputs have no holder). Windows: running step k;
result computed, not fetched; input holder (the victim held the input and ran the step); replica
holder (it held a copy while another worker ran the step); between steps (it ran nothing).</p>
<div class="scroll"><table id="coverage-table"><thead><tr>
  <th>configuration</th><th class="num">cells hit</th><th>hits</th><th>never hit</th>
</tr></thead><tbody>
{% for r in coverage_rows %}
<tr><td class="config">{{ r.label }}</td><td class="num">{{ r.covered }}/{{ r.cells }}</td>
  <td>{{ r.hits }}</td><td>{{ r.missing }}</td></tr>
{% endfor %}
</tbody></table></div>

<h2 id="timelines">Timelines</h2>
<p class="caption">One lane per worker; every execution is a bar coloured by its outcome. A cross
marks where a fault landed, shaded by kind until the scheduler noticed. The top lane is the client:
deliveries, resubmissions and tasks reported failed. {{ timelines|length }}
run{{ "s" if timelines|length != 1 }} shown: the failing runs first
{%- if sampled %}, then {{ sampled }} sampled passing run{{ "s" if sampled != 1 }}{% endif %}.</p>
{% for t in timelines %}
<img class="figure" alt="timeline of {{ t.run_id }}" src="{{ t.image }}">
{% endfor %}

<h2 id="recovery">Recovery latency</h2>
{% if recovery_image %}
<img class="figure" alt="recovery latency CDFs" src="{{ recovery_image }}">
<p class="caption">For every step a fault disturbed: seconds from the kill landing to the step's
resubmission by the library, to its next execution, and to the first delivery that came from it.
Curves stop below 1 by the share that never got there. <em>With workers</em> leaves out the
time the cluster had no worker able to run (every worker gone or frozen): what the library and
Dask took, not the fleet. <em>One fault, with workers</em> also leaves out the recoveries
another fault weighed on (one that landed before their delivery, or an earlier freeze still
on) and those from freezes (a pause, not a loss): a lost worker's recovery on its own, what
the library and Dask answer for; its p99 is held to 1 s by the <code>isolated_recovery</code>
gate.
{%- if grouped %} With {{ summary.configurations }} configurations, there is one row of panels per
target and one curve per way of protecting inputs (registry, replicas, inline inputs, none).
{%- endif %}
{%- if scheduler_recovery %} Rows marked <em>(the scheduler lost)</em> are recoveries from a
scheduler kill: they include its outage (a new scheduler, every worker and the client
reconnecting), and a gate of their own holds what came after it (the "with workers"
columns: from the first worker registered with the new scheduler).{% endif %}</p>
<div class="scroll"><table><thead><tr>
  <th>{{ "group" if grouped else "configuration" }}</th><th class="num">disturbed steps</th>
  <th class="num">median to resubmit (s)</th><th class="num">to deliver p50 (s)</th>
  <th class="num">p90</th><th class="num">p99</th><th class="num">max</th>
  <th class="num">with workers p99 (s)</th><th class="num">max</th>
  <th class="num">one fault, with workers p99 (s)</th><th class="num">max</th>
  <th class="num">never delivered</th>
</tr></thead><tbody>
{% for r in recovery_rows %}
<tr><td class="config">{{ r.group }}</td><td class="num">{{ r.n }}</td>
  <td class="num">{{ r.resubmit }}</td><td class="num">{{ r.deliver_p50 }}</td>
  <td class="num">{{ r.deliver_p90 }}</td><td class="num">{{ r.deliver_p99 }}</td>
  <td class="num">{{ r.deliver_max }}</td><td class="num">{{ r.working_p99 }}</td>
  <td class="num">{{ r.working_max }}</td><td class="num">{{ r.isolated_p99 }}</td>
  <td class="num">{{ r.isolated_max }}</td>
  <td class="num">{{ r.never }}</td></tr>
{% endfor %}
</tbody></table></div>
{% else %}<p>No fault disturbed any step.</p>{% endif %}

<h2 id="waste">Wasted work</h2>
<img class="figure" alt="wasted work per configuration" src="{{ waste_image }}">
<p class="caption">CPU-seconds (execution time on a worker thread) of executions whose result was
not used: cut short by a fault, raised, or a duplicate whose result was dropped. Bars are the mean
per run, dots single runs; the note is the share of all execution time.</p>

<h2 id="overhead">Makespan overhead</h2>
<img class="figure" alt="makespan overhead" src="{{ overhead_image }}">
<p class="caption">Median makespan of runs with faults against the median of fault-free runs of
the same configuration, minus one (a ratio of medians: one slow run cannot swing it), with a
{{ confidence_percent }}% percentile-bootstrap interval when each group has at least three runs;
the method column says which estimator each figure is.</p>
<div class="scroll"><table><thead><tr>
  <th>configuration</th><th class="num">runs with faults</th><th class="num">fault-free runs</th>
  <th class="num">overhead</th><th class="num">interval</th><th>method</th>
</tr></thead><tbody>
{% for r in overhead_rows %}
<tr><td class="config">{{ r.label }}</td><td class="num">{{ r.faulty_runs }}</td>
  <td class="num">{{ r.clean_runs }}</td><td class="num">{{ r.overhead }}</td>
  <td class="num">{{ r.interval }}</td><td>{{ r.method }}</td></tr>
{% endfor %}
</tbody></table></div>

<h2 id="provenance">Versions, commit and seeds</h2>
<table class="meta"><tbody>
<tr><td>commit</td><td><code>{{ provenance.commits }}</code></td></tr>
{% if provenance.campaign_seed is not none %}
<tr><td>campaign seed</td><td><code>{{ provenance.campaign_seed }}</code></td></tr>
{% endif %}
<tr><td>run seeds</td><td><code>{{ provenance.seeds }}</code></td></tr>
<tr><td>targets</td><td>{{ provenance.targets }}</td></tr>
{% for name, value in provenance.versions %}
<tr><td>{{ name }}</td><td><code>{{ value }}</code></td></tr>
{% endfor %}
</tbody></table>
<details id="all-runs"><summary>All {{ all_runs|length }} runs
{%- if more_runs %} listed of {{ all_runs|length + more_runs }}{% endif %}: seed, faults, verdict,
makespan</summary>
<div class="scroll"><table><thead><tr>
  <th>run</th><th>configuration</th><th class="num">seed</th><th class="num">faults</th>
  <th>verdict</th><th class="num">delivered</th><th class="num">makespan (s)</th>
  <th class="num">wasted (CPU-s)</th>
</tr></thead><tbody>
{% for r in all_runs %}
<tr><td>{{ r.run_id }}</td><td class="config">{{ r.label }}</td><td class="num">{{ r.seed }}</td>
  <td class="num">{{ r.faults }}</td>
  <td class="{{ 'cell-ok' if r.outcome == 'valid'
               else 'cell-hung' if r.outcome == 'hung' else 'cell-bad' }}">{{ r.outcome }}</td>
  <td class="num">{{ r.delivered }}/{{ r.expected_outputs }}</td>
  <td class="num">{{ "%.2f"|format(r.makespan) }}</td>
  <td class="num">{{ "%.2f"|format(r.wasted_seconds) }}</td></tr>
{% endfor %}
</tbody></table></div></details>
</main>
</body>
</html>
"""

// Drives an XForm in the ODK Web Forms engine (@getodk/xforms-engine) on node, as a browser would.
//
// Reads {"form": "<path of the .xml>", "scenarios": [[step, ...], ...]} on standard input and
// writes {"load": {...}, "scenarios": [[observation, ...], ...]} on standard output. Each scenario
// starts from a new instance of the form. Steps:
//   {"op": "set", "path": "/tip_victims/intro/consent", "value": "yes"}   (a select takes
//        space-separated choice names; an empty value clears)
//   {"op": "state", "path": ...}     -> {relevant, required, value, valid, violation, options, label}
//   {"op": "language", "label": "French (fr)"}
//   {"op": "payload"}                -> {status, violations, xml}
import { JSDOM } from 'jsdom';

// The engine needs a DOM, and on node its embedded parser looks for `__dirname` and `module`.
const { window } = new JSDOM('<!doctype html><html><body></body></html>');
for (const name of Object.getOwnPropertyNames(window)) {
  if (!(name in globalThis) && /^[A-Z]/.test(name)) globalThis[name] = window[name];
}
globalThis.window = window;
globalThis.document = window.document;
globalThis.__dirname = '/';
globalThis.module = { exports: {} };

const { readFileSync } = await import('node:fs');
const { loadForm } = await import('@getodk/xforms-engine');

const request = JSON.parse(readFileSync(0, 'utf8'));
const form = await loadForm(readFileSync(request.form, 'utf8'));
const output = { load: { status: form.status, warnings: form.warnings, error: form.error ? String(form.error) : null } };

function nodesOf(root) {
  const byPath = new Map();
  const walk = (node) => {
    byPath.set(node.definition.nodeset, node);
    for (const child of node.currentState.children ?? []) walk(child);
  };
  walk(root);
  return byPath;
}

function observe(node) {
  const state = node.currentState;
  const violation = node.validationState?.violation ?? null;
  return {
    relevant: state.relevant,
    required: state.required,
    value: Array.isArray(state.value) ? state.value.join(' ') : state.value == null ? '' : String(state.value),
    valid: violation === null,
    violation: violation ? violation.condition : null,
    message: violation?.message?.asString ?? null,
    options: (state.valueOptions ?? []).map((item) => item.value),
    option_labels: (state.valueOptions ?? []).map((item) => item.label?.asString ?? ''),
    label: state.label?.asString ?? null,
  };
}

async function run(steps) {
  const { root } = form.createInstance();
  const results = [];
  for (const step of steps) {
    const nodes = nodesOf(root);
    const node = step.path ? nodes.get(step.path) : null;
    if (step.path && !node) {
      results.push({ error: `no node ${step.path}` });
      continue;
    }
    if (step.op === 'set') {
      if (node.nodeType === 'select') {
        node.selectValues(step.value === '' ? [] : String(step.value).split(' '));
      } else {
        node.setValue(String(step.value));
      }
      results.push(observe(node));
    } else if (step.op === 'state') {
      results.push(observe(node));
    } else if (step.op === 'language') {
      const language = root.languages.find((item) => item.language === step.label);
      if (!language) results.push({ error: `no language ${step.label}` });
      else {
        root.setLanguage(language);
        results.push({ language: root.currentState.activeLanguage.language });
      }
    } else if (step.op === 'payload') {
      const payload = await root.prepareInstancePayload();
      const file = payload.data[0].get('xml_submission_file');
      results.push({
        status: payload.status,
        violations: (payload.violations ?? []).map((item) => item.reference),
        xml: file ? await file.text() : null,
      });
    } else {
      results.push({ error: `unknown step ${step.op}` });
    }
  }
  return results;
}

output.scenarios = [];
if (form.status !== 'failure') {
  for (const steps of request.scenarios) output.scenarios.push(await run(steps));
}
process.stdout.write(JSON.stringify(output));

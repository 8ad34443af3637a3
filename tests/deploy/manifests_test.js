// //tests:deploy_manifests_test: the Kubernetes manifests of deploy/k8s,
// checked offline (no cluster, no kubectl).
//
// For the base and every overlay it renders the kustomization itself
// (k8s_render.js), then checks every object against the Kubernetes API
// schemas (kubernetes-models' validate(), plus unknown fields from its type
// declarations), the references between objects (selectors, serviceName,
// probe ports, volumes), and that every --flag a container passes exists in
// that binary's --helpfull output (the binaries are data of the test).
//
// Usage (from the runfiles root): node manifests_test.js KUSTOMIZATION_DIR...
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { Cases, requireModule } = require('./lib.js');
const { renderKustomization, podSpecs, podTemplates, containersOf, CLUSTER_SCOPED } = require('./k8s_render.js');
const { unknownFields } = require('./k8s_fields.js');

// The binaries an image command may name, as data files of the test.
const BINARIES = {
  conductor: 'conductor/conductor',
  storage_node: 'storage_node/storage_node',
  queue_worker: 'queue_worker/queue_worker',
  conductorctl: 'client/conductorctl',
};
// common/server.h: shutdown_grace_ms = 2000. "Comfortably above": 5x.
const MIN_TERMINATION_GRACE_S = 10;

// --- helpers -------------------------------------------------------------------

const helpCache = new Map();
// The flag names a binary defines, from its --helpfull output.
function flagsOf(binary) {
  if (helpCache.has(binary)) return helpCache.get(binary);
  const file = BINARIES[binary];
  if (!file || !fs.existsSync(file)) throw new Error(`binary ${binary} is not a data file of this test (${file})`);
  const r = spawnSync(file, ['--helpfull'], { encoding: 'utf8', timeout: 20000 });
  const out = `${r.stdout || ''}${r.stderr || ''}`;
  const flags = new Set();
  for (const m of out.matchAll(/^ {4}--([A-Za-z0-9_]+) \(/gm)) flags.add(m[1]);
  if (!out.includes('Flags from') || flags.size < 3) {
    throw new Error(`${file} --helpfull printed no flag list (exit ${r.status}): ${out.slice(0, 300)}`);
  }
  helpCache.set(binary, flags);
  return flags;
}

function binaryOf(container) {
  const cmd = container.command || [];
  if (cmd.length === 0) return null;
  return path.basename(cmd[0]);
}

// --name=value / --name -> Map name -> value (true when no value).
function parseArgs(args) {
  const out = new Map();
  for (const a of args || []) {
    const m = /^--([^=]+)(?:=([\s\S]*))?$/.exec(a);
    if (!m) throw new Error(`argument "${a}" is not --flag or --flag=value`);
    out.set(m[1], m[2] === undefined ? true : m[2]);
  }
  return out;
}

function labelsMatch(selector, labels) {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels && labels[k] === v);
}

function matchLabelsOf(selector) {
  if (!selector) return null;
  if (selector.matchExpressions && selector.matchExpressions.length) {
    throw new Error('matchExpressions are not supported by this check');
  }
  return selector.matchLabels || null;
}

function nsOf(o) {
  return o.metadata.namespace || '';
}

function id(o) {
  return `${o.kind}/${o.metadata.name}`;
}

// Bytes or cores of a Kubernetes quantity (enough for requests/limits).
function quantity(q) {
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  if (!m) throw new Error(`cannot read quantity "${q}"`);
  const mult = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

function hostPort(address) {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) throw new Error(`"${address}" is not HOST:PORT`);
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

// Every pod-bearing object with its pod template labels and containers.
function workloads(objects) {
  const out = [];
  for (const o of objects) {
    const templates = podTemplates(o);
    if (templates.length === 0) continue;
    const t = templates[0];
    out.push({ obj: o, labels: (t.metadata && t.metadata.labels) || {}, spec: t.spec, containers: containersOf(t.spec) });
  }
  return out;
}

function workloadsRunning(objects, binary) {
  return workloads(objects).filter((w) => w.containers.some((c) => binaryOf(c) === binary));
}

function containerRunning(w, binary) {
  return w.containers.find((c) => binaryOf(c) === binary);
}

// The kubernetes-models class of an object, by apiVersion and kind.
function modelClass(apiVersion, kind) {
  const modulePath = `kubernetes-models/${apiVersion}`;
  let mod;
  try {
    mod = requireModule(modulePath);
  } catch (e) {
    throw new Error(`no kubernetes-models module for apiVersion ${apiVersion}`);
  }
  const cls = mod[kind];
  if (typeof cls !== 'function') throw new Error(`kubernetes-models has no ${apiVersion} ${kind}`);
  return cls;
}

// --- checks --------------------------------------------------------------------

function checkKustomization(cases, dir) {
  let objects = null;
  cases.run(`${dir}: renders`, (errors) => {
    objects = renderKustomization(dir).objects;
    if (objects.length === 0) errors.push('no objects');
  });
  if (!objects) return;
  const c = (name, fn) => cases.run(`${dir}: ${name}`, fn);

  c('every object validates against the API schema (kubernetes-models)', (errors) => {
    for (const o of objects) {
      try {
        new (modelClass(o.apiVersion, o.kind))(o).validate();
      } catch (e) {
        errors.push(`${id(o)}: ${e.message}`);
      }
    }
  });

  c('no unknown fields', (errors) => {
    for (const o of objects) errors.push(...unknownFields(o));
  });

  c('names are unique per kind and namespace', (errors) => {
    const seen = new Set();
    for (const o of objects) {
      const key = `${o.kind}/${nsOf(o)}/${o.metadata.name}`;
      if (seen.has(key)) errors.push(`${key} twice`);
      seen.add(key);
    }
  });

  c('namespaces are consistent', (errors) => {
    const namespaces = objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name);
    const used = new Set(objects.filter((o) => !CLUSTER_SCOPED.has(o.kind)).map(nsOf));
    if (used.size > 1) errors.push(`objects in several namespaces: ${[...used].join(', ')}`);
    for (const ns of used) {
      if (ns !== '' && !namespaces.includes(ns)) errors.push(`namespace ${ns} is used but no Namespace object creates it`);
    }
    for (const ns of namespaces) if (!used.has(ns)) errors.push(`Namespace ${ns} holds none of the objects`);
  });

  c('workload selectors match their own pod templates', (errors) => {
    for (const w of workloads(objects)) {
      const sel = matchLabelsOf(w.obj.spec.selector);
      if (!labelsMatch(sel, w.labels)) errors.push(`${id(w.obj)}: selector ${JSON.stringify(sel)} does not match its pod labels`);
    }
  });

  c('every Service selects pods and targets their ports', (errors) => {
    for (const s of objects.filter((o) => o.kind === 'Service')) {
      const pods = workloads(objects).filter((w) => nsOf(w.obj) === nsOf(s) && labelsMatch(s.spec.selector, w.labels));
      if (pods.length === 0) {
        errors.push(`Service ${s.metadata.name}: selector ${JSON.stringify(s.spec.selector)} matches no pod template`);
        continue;
      }
      for (const p of s.spec.ports || []) {
        const target = p.targetPort === undefined ? p.port : p.targetPort;
        for (const w of pods) {
          const ok = w.containers.some((ct) => (ct.ports || []).some((cp) => cp.name === target || cp.containerPort === target));
          if (!ok) errors.push(`Service ${s.metadata.name} port ${p.port}: ${id(w.obj)} has no container port ${target}`);
        }
      }
    }
  });

  c('StatefulSets are governed by a headless Service that selects them', (errors) => {
    for (const sts of objects.filter((o) => o.kind === 'StatefulSet')) {
      const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === sts.spec.serviceName && nsOf(o) === nsOf(sts));
      if (!svc) {
        errors.push(`${id(sts)}: serviceName "${sts.spec.serviceName}" is no Service`);
        continue;
      }
      if (svc.spec.clusterIP !== 'None') errors.push(`${id(sts)}: Service ${svc.metadata.name} is not headless`);
      if (!labelsMatch(svc.spec.selector, sts.spec.template.metadata.labels)) {
        errors.push(`${id(sts)}: Service ${svc.metadata.name} does not select its pods`);
      }
    }
  });

  c('every container has gRPC readiness and liveness probes on a container port', (errors) => {
    for (const w of workloads(objects)) {
      for (const ct of w.containers) {
        const ports = (ct.ports || []).map((p) => p.containerPort);
        for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
          const probe = ct[kind];
          if (!probe) {
            if (kind !== 'startupProbe') errors.push(`${id(w.obj)} ${ct.name}: no ${kind}`);
            continue;
          }
          if (!probe.grpc) {
            errors.push(`${id(w.obj)} ${ct.name}: ${kind} is not a grpc probe (grpc.health.v1)`);
          } else if (!ports.includes(probe.grpc.port)) {
            errors.push(`${id(w.obj)} ${ct.name}: ${kind} port ${probe.grpc.port} is not a container port (${ports.join(', ')})`);
          }
        }
      }
    }
  });

  c('every container has CPU and memory requests and limits', (errors) => {
    for (const w of workloads(objects)) {
      for (const ct of w.containers) {
        const r = ct.resources || {};
        for (const res of ['cpu', 'memory']) {
          const req = r.requests && r.requests[res];
          const lim = r.limits && r.limits[res];
          if (req === undefined) errors.push(`${id(w.obj)} ${ct.name}: no ${res} request`);
          if (lim === undefined) errors.push(`${id(w.obj)} ${ct.name}: no ${res} limit`);
          if (req !== undefined && lim !== undefined && quantity(req) > quantity(lim)) {
            errors.push(`${id(w.obj)} ${ct.name}: ${res} request ${req} is above the limit ${lim}`);
          }
        }
      }
    }
  });

  c(`terminationGracePeriodSeconds is at least ${MIN_TERMINATION_GRACE_S}`, (errors) => {
    for (const w of workloads(objects)) {
      const g = w.spec.terminationGracePeriodSeconds;
      if (g === undefined || g < MIN_TERMINATION_GRACE_S) errors.push(`${id(w.obj)}: terminationGracePeriodSeconds ${g}`);
    }
  });

  c('pods run as non-root', (errors) => {
    for (const w of workloads(objects)) {
      const podNonRoot = w.spec.securityContext && w.spec.securityContext.runAsNonRoot === true;
      for (const ct of w.containers) {
        const ctNonRoot = ct.securityContext && ct.securityContext.runAsNonRoot;
        if (!(ctNonRoot === true || (podNonRoot && ctNonRoot !== false))) errors.push(`${id(w.obj)} ${ct.name}: may run as root`);
      }
    }
  });

  c('volume mounts name volumes or volume claim templates', (errors) => {
    for (const w of workloads(objects)) {
      const names = new Set([
        ...(w.spec.volumes || []).map((v) => v.name),
        ...((w.obj.spec.volumeClaimTemplates || []).map((v) => v.metadata.name)),
      ]);
      for (const ct of w.containers) {
        for (const m of ct.volumeMounts || []) if (!names.has(m.name)) errors.push(`${id(w.obj)} ${ct.name}: mount ${m.name} names no volume`);
      }
      for (const v of w.obj.spec.volumeClaimTemplates || []) {
        if (!w.containers.some((ct) => (ct.volumeMounts || []).some((m) => m.name === v.metadata.name))) {
          errors.push(`${id(w.obj)}: volume claim template ${v.metadata.name} is mounted nowhere`);
        }
      }
    }
  });

  c('every --flag exists in the binary\'s --helpfull', (errors) => {
    for (const w of workloads(objects)) {
      for (const ct of w.containers) {
        const bin = binaryOf(ct);
        if (!bin || !BINARIES[bin]) {
          errors.push(`${id(w.obj)} ${ct.name}: command ${JSON.stringify(ct.command)} runs none of ${Object.keys(BINARIES).join(', ')}`);
          continue;
        }
        if (ct.command.length !== 1) errors.push(`${id(w.obj)} ${ct.name}: put flags in args, not command`);
        const known = flagsOf(bin);
        for (const name of parseArgs(ct.args).keys()) {
          if (!known.has(name)) errors.push(`${id(w.obj)} ${ct.name}: ${bin} has no flag --${name}`);
        }
      }
    }
  });

  c('$(VAR) references in args are defined in env', (errors) => {
    for (const w of workloads(objects)) {
      for (const ct of w.containers) {
        const env = new Set((ct.env || []).map((e) => e.name));
        for (const a of ct.args || []) {
          for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
            if (!env.has(m[1])) errors.push(`${id(w.obj)} ${ct.name}: ${a} uses $(${m[1]}), which env does not define`);
          }
        }
      }
    }
  });

  c('servers listen on all interfaces on a container port', (errors) => {
    for (const w of workloads(objects)) {
      for (const ct of w.containers) {
        const bin = binaryOf(ct);
        if (!['conductor', 'storage_node', 'queue_worker'].includes(bin)) continue;
        const listen = parseArgs(ct.args).get('listen');
        if (typeof listen !== 'string') {
          errors.push(`${id(w.obj)} ${ct.name}: no --listen (the defaults are loopback or unset)`);
          continue;
        }
        const { host, port } = hostPort(listen);
        if (host !== '0.0.0.0' && host !== '[::]') errors.push(`${id(w.obj)} ${ct.name}: --listen=${listen} is not reachable by probes`);
        if (!(ct.ports || []).some((p) => p.containerPort === port)) errors.push(`${id(w.obj)} ${ct.name}: listen port ${port} is no container port`);
      }
    }
  });

  c('storage nodes: StatefulSet with per-pod volume, node id from the pod name, PDB', (errors) => {
    const ws = workloadsRunning(objects, 'storage_node');
    if (ws.length === 0) errors.push('no workload runs storage_node');
    for (const w of ws) {
      if (w.obj.kind !== 'StatefulSet') {
        errors.push(`${id(w.obj)} runs storage_node but is no StatefulSet`);
        continue;
      }
      const ct = containerRunning(w, 'storage_node');
      const args = parseArgs(ct.args);
      if (args.get('node_id') !== '$(POD_NAME)') errors.push(`${id(w.obj)}: --node_id is ${args.get('node_id')}, not $(POD_NAME)`);
      const podName = (ct.env || []).find((e) => e.name === 'POD_NAME');
      if (!podName || !podName.valueFrom || !podName.valueFrom.fieldRef || podName.valueFrom.fieldRef.fieldPath !== 'metadata.name') {
        errors.push(`${id(w.obj)}: env POD_NAME is not the downward API's metadata.name`);
      }
      const dataDir = args.get('data_dir');
      const persistent = (w.obj.spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
      const mount = (ct.volumeMounts || []).find((m) => persistent.includes(m.name) && typeof dataDir === 'string' &&
        (dataDir === m.mountPath || dataDir.startsWith(`${m.mountPath}/`)));
      if (!mount) errors.push(`${id(w.obj)}: --data_dir=${dataDir} is not on a volume claim template`);
      const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget' && nsOf(o) === nsOf(w.obj) &&
        labelsMatch(matchLabelsOf(o.spec.selector), w.labels));
      if (pdbs.length !== 1) errors.push(`${id(w.obj)}: ${pdbs.length} PodDisruptionBudgets select its pods, want 1`);
    }
  });

  c('conductor: one-replica StatefulSet whose --storage_nodes are the storage pods\' stable DNS names', (errors) => {
    const ws = workloadsRunning(objects, 'conductor');
    if (ws.length !== 1) {
      errors.push(`${ws.length} workloads run the conductor, want 1`);
      return;
    }
    const w = ws[0];
    if (w.obj.kind !== 'StatefulSet') errors.push(`${id(w.obj)} runs the conductor but is no StatefulSet`);
    if (w.obj.spec.replicas !== 1) errors.push(`${id(w.obj)}: replicas ${w.obj.spec.replicas}, want 1`);
    const ct = containerRunning(w, 'conductor');
    const args = parseArgs(ct.args);
    const dataDir = args.get('data_dir');
    const persistent = (w.obj.spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
    if (!(ct.volumeMounts || []).some((m) => persistent.includes(m.name) && typeof dataDir === 'string' &&
      (dataDir === m.mountPath || dataDir.startsWith(`${m.mountPath}/`)))) {
      errors.push(`${id(w.obj)}: --data_dir=${dataDir} is not on a volume claim template`);
    }
    const nsEnv = (ct.env || []).find((e) => e.name === 'POD_NAMESPACE');
    if (!nsEnv || !nsEnv.valueFrom || !nsEnv.valueFrom.fieldRef || nsEnv.valueFrom.fieldRef.fieldPath !== 'metadata.namespace') {
      errors.push(`${id(w.obj)}: env POD_NAMESPACE is not the downward API's metadata.namespace`);
    }
    const list = args.get('storage_nodes');
    if (typeof list !== 'string' || list === '') {
      errors.push(`${id(w.obj)}: no --storage_nodes`);
      return;
    }
    const want = new Set();
    for (const s of workloadsRunning(objects, 'storage_node')) {
      if (s.obj.kind !== 'StatefulSet') continue;
      const port = hostPort(parseArgs(containerRunning(s, 'storage_node').args).get('listen')).port;
      const n = s.obj.spec.replicas === undefined ? 1 : s.obj.spec.replicas;
      for (let i = 0; i < n; i++) {
        want.add(`${s.obj.metadata.name}-${i}.${s.obj.spec.serviceName}.$(POD_NAMESPACE).svc.cluster.local:${port}`);
      }
    }
    const got = list.split(',');
    for (const a of got) if (!want.has(a)) errors.push(`--storage_nodes lists ${a}, which is no storage pod's stable DNS name:port`);
    for (const a of want) if (!got.includes(a)) errors.push(`--storage_nodes lacks ${a}`);
    if (new Set(got).size !== got.length) errors.push('--storage_nodes lists an address twice');
  });

  c('queue workers: a Deployment whose --conductor is the conductor Service', (errors) => {
    const ws = workloadsRunning(objects, 'queue_worker');
    if (ws.length === 0) errors.push('no workload runs queue_worker');
    const conductorPods = workloadsRunning(objects, 'conductor');
    for (const w of ws) {
      if (w.obj.kind !== 'Deployment') errors.push(`${id(w.obj)} runs queue_worker but is no Deployment`);
      const target = parseArgs(containerRunning(w, 'queue_worker').args).get('conductor');
      if (typeof target !== 'string') {
        errors.push(`${id(w.obj)}: no --conductor`);
        continue;
      }
      const { host, port } = hostPort(target);
      const m = /^([a-z0-9-]+)(?:\.\$\(POD_NAMESPACE\)\.svc\.cluster\.local)?$/.exec(host);
      const svc = m && objects.find((o) => o.kind === 'Service' && o.metadata.name === m[1] && nsOf(o) === nsOf(w.obj));
      if (!svc) {
        errors.push(`${id(w.obj)}: --conductor=${target} names no Service`);
        continue;
      }
      const sp = (svc.spec.ports || []).find((p) => p.port === port);
      if (!sp) errors.push(`${id(w.obj)}: Service ${svc.metadata.name} has no port ${port}`);
      if (!conductorPods.some((c2) => labelsMatch(svc.spec.selector, c2.labels))) {
        errors.push(`${id(w.obj)}: Service ${svc.metadata.name} does not select the conductor`);
      }
    }
  });
}

function main() {
  const dirs = process.argv.slice(2);
  if (dirs.length === 0) throw new Error('usage: manifests_test.js KUSTOMIZATION_DIR...');
  const cases = new Cases('deploy_manifests_test');
  for (const dir of dirs) checkKustomization(cases, dir);
  cases.finish();
}

main();

// Renders a kustomization directory the way `kubectl kustomize` does, for the
// subset of kustomize that deploy/k8s uses (no kubectl on a fresh Debian 12):
//
//   resources   files (YAML, several documents) and directories
//   patches     JSON 6902 patches (a YAML list of add/replace/remove
//               operations) with a target of group/version/kind/name
//   namespace   set on every namespaced object
//   labels      pairs, with includeSelectors / includeTemplates
//   commonLabels  (= labels with includeSelectors)
//   images      name -> newName / newTag / digest
//
// Anything else in a kustomization.yaml is an error, so that a manifest
// using more of kustomize makes the check fail instead of passing unchecked.
'use strict';

const fs = require('fs');
const path = require('path');
const { requireModule } = require('./lib.js');

const YAML = requireModule('yaml');

const KNOWN_KEYS = new Set([
  'apiVersion', 'kind', 'resources', 'namespace', 'images', 'labels', 'commonLabels', 'patches',
]);
const CLUSTER_SCOPED = new Set([
  'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass',
  'CustomResourceDefinition', 'PriorityClass', 'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration', 'IngressClass', 'RuntimeClass',
]);
const POD_TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

function readYamlDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  const out = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function kustomizationFile(dir) {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const f = path.join(dir, name);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`${dir}: no kustomization.yaml`);
}

// The pod specs inside an object (Pod, workloads, CronJob).
function podSpecs(obj) {
  const spec = obj.spec || {};
  if (obj.kind === 'Pod') return [spec];
  if (POD_TEMPLATE_KINDS.has(obj.kind)) return spec.template && spec.template.spec ? [spec.template.spec] : [];
  if (obj.kind === 'CronJob') {
    const t = spec.jobTemplate && spec.jobTemplate.spec && spec.jobTemplate.spec.template;
    return t && t.spec ? [t.spec] : [];
  }
  return [];
}

function podTemplates(obj) {
  const spec = obj.spec || {};
  if (POD_TEMPLATE_KINDS.has(obj.kind)) return spec.template ? [spec.template] : [];
  if (obj.kind === 'CronJob') {
    const t = spec.jobTemplate && spec.jobTemplate.spec && spec.jobTemplate.spec.template;
    return t ? [t] : [];
  }
  return [];
}

function containersOf(podSpec) {
  return [...(podSpec.initContainers || []), ...(podSpec.containers || [])];
}

// --- JSON 6902 ---------------------------------------------------------------

function pointerTokens(pointer) {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`JSON pointer "${pointer}" does not start with /`);
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyOperation(obj, op, where) {
  const tokens = pointerTokens(op.path);
  if (tokens.length === 0) throw new Error(`${where}: patching the whole object is not supported`);
  let parent = obj;
  for (const t of tokens.slice(0, -1)) {
    const next = Array.isArray(parent) ? parent[Number(t)] : parent[t];
    if (next === undefined || next === null || typeof next !== 'object') {
      throw new Error(`${where}: ${op.op} ${op.path}: ${t} does not exist`);
    }
    parent = next;
  }
  const last = tokens[tokens.length - 1];
  const exists = Array.isArray(parent)
    ? /^\d+$/.test(last) && Number(last) < parent.length
    : Object.prototype.hasOwnProperty.call(parent, last);
  const value = op.value === undefined ? undefined : JSON.parse(JSON.stringify(op.value));
  switch (op.op) {
    case 'add':
      if (Array.isArray(parent)) {
        if (last === '-') parent.push(value);
        else if (/^\d+$/.test(last) && Number(last) <= parent.length) parent.splice(Number(last), 0, value);
        else throw new Error(`${where}: add ${op.path}: bad array index`);
      } else {
        parent[last] = value;
      }
      break;
    case 'replace':
      if (!exists) throw new Error(`${where}: replace ${op.path}: nothing there to replace`);
      if (Array.isArray(parent)) parent[Number(last)] = value;
      else parent[last] = value;
      break;
    case 'remove':
      if (!exists) throw new Error(`${where}: remove ${op.path}: nothing there to remove`);
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      break;
    default:
      throw new Error(`${where}: JSON 6902 op "${op.op}" is not supported by this renderer`);
  }
}

function targetMatches(target, obj) {
  for (const key of Object.keys(target)) {
    if (!['group', 'version', 'kind', 'name', 'namespace'].includes(key)) {
      throw new Error(`patch target field "${key}" is not supported by this renderer`);
    }
  }
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  if (target.group !== undefined && target.group !== group) return false;
  if (target.version !== undefined && target.version !== version) return false;
  if (target.kind !== undefined && target.kind !== obj.kind) return false;
  if (target.name !== undefined && target.name !== obj.metadata.name) return false;
  if (target.namespace !== undefined && target.namespace !== obj.metadata.namespace) return false;
  return true;
}

// --- transformers --------------------------------------------------------------

function addLabels(obj, pairs, includeSelectors, includeTemplates) {
  const put = (holder, key) => {
    holder[key] = { ...(holder[key] || {}), ...pairs };
  };
  obj.metadata = obj.metadata || {};
  put(obj.metadata, 'labels');
  if (includeTemplates || includeSelectors) {
    for (const t of podTemplates(obj)) {
      t.metadata = t.metadata || {};
      put(t.metadata, 'labels');
    }
  }
  if (includeSelectors) {
    if (obj.kind === 'Service' && obj.spec) put(obj.spec, 'selector');
    if ((POD_TEMPLATE_KINDS.has(obj.kind) || obj.kind === 'PodDisruptionBudget') && obj.spec) {
      obj.spec.selector = obj.spec.selector || {};
      put(obj.spec.selector, 'matchLabels');
    }
  }
}

function splitImage(image) {
  let rest = image;
  let digest;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { name: rest, tag, digest };
}

function setImages(obj, images) {
  for (const ps of podSpecs(obj)) {
    for (const c of containersOf(ps)) {
      if (typeof c.image !== 'string') continue;
      const img = splitImage(c.image);
      const rule = images.find((i) => i.name === img.name);
      if (!rule) continue;
      const name = rule.newName || img.name;
      let out = name;
      if (rule.digest) out += `@${rule.digest}`;
      else if (rule.newTag) out += `:${rule.newTag}`;
      else if (img.digest) out += `@${img.digest}`;
      else if (img.tag) out += `:${img.tag}`;
      c.image = out;
    }
  }
}

// --- render --------------------------------------------------------------------

function render(dir) {
  const file = kustomizationFile(dir);
  const k = readYamlDocs(file)[0] || {};
  for (const key of Object.keys(k)) {
    if (!KNOWN_KEYS.has(key)) throw new Error(`${file}: "${key}" is not supported by this renderer (tests/deploy/k8s_render.js)`);
  }
  if (k.kind !== undefined && k.kind !== 'Kustomization') throw new Error(`${file}: kind is not Kustomization`);

  let objects = [];
  for (const r of k.resources || []) {
    if (/^[a-z]+:\/\//.test(r) || r.includes('?ref=')) throw new Error(`${file}: remote resource ${r} is not supported`);
    const p = path.join(dir, r);
    if (!fs.existsSync(p)) throw new Error(`${file}: resource ${r} does not exist`);
    if (fs.statSync(p).isDirectory()) objects.push(...render(p));
    else objects.push(...readYamlDocs(p).map((o) => ({ ...o, __source: path.relative(process.cwd(), p) })));
  }
  for (const o of objects) {
    if (!o || typeof o !== 'object' || !o.apiVersion || !o.kind || !o.metadata || !o.metadata.name) {
      throw new Error(`${file}: an object without apiVersion, kind or metadata.name (${o && o.__source})`);
    }
  }

  for (const p of k.patches || []) {
    const where = `${file}: patch ${p.path || '(inline)'}`;
    if (!p.target) throw new Error(`${where}: no target (strategic merge patches are not supported by this renderer)`);
    const body = p.path ? readYamlDocs(path.join(dir, p.path))[0] : YAML.parse(p.patch);
    if (!Array.isArray(body)) throw new Error(`${where}: not a JSON 6902 patch (a list of operations)`);
    const hits = objects.filter((o) => targetMatches(p.target, o));
    if (hits.length === 0) throw new Error(`${where}: the target matches no object`);
    for (const o of hits) for (const op of body) applyOperation(o, op, where);
  }

  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  if (k.commonLabels) for (const o of objects) addLabels(o, k.commonLabels, true, true);
  for (const l of k.labels || []) {
    for (const o of objects) addLabels(o, l.pairs || {}, !!l.includeSelectors, !!l.includeTemplates);
  }
  if (k.images) for (const o of objects) setImages(o, k.images);
  return objects;
}

// The rendered objects, without the bookkeeping field __source (kept in a map).
function renderKustomization(dir) {
  const objects = render(dir);
  const sources = new Map();
  const clean = objects.map((o) => {
    const { __source, ...rest } = o;
    sources.set(rest, __source);
    return rest;
  });
  return { objects: clean, sources };
}

module.exports = { renderKustomization, podSpecs, podTemplates, containersOf, CLUSTER_SCOPED };

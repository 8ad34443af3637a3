// Unknown-field check for Kubernetes objects. kubernetes-models' validate()
// checks types, formats and required fields but accepts any unknown key (a
// typo such as "replica:" or "readinesProbe:" passes), while the API server
// rejects or drops them. This walks an object along the TypeScript
// declarations that ship with kubernetes-models (one interface per API type,
// generated from the same OpenAPI schemas) and reports every key that its
// type does not declare.
'use strict';

const fs = require('fs');
const path = require('path');
const { nodeModules } = require('./lib.js');

const interfaceCache = new Map(); // d.ts file -> {props: Map, imports: Map}

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

// Index just past the bracket that closes the one at text[open].
function matchBracket(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === '{' || ch === '<' || ch === '(' || ch === '[') depth++;
    else if (ch === '}' || ch === '>' || ch === ')' || ch === ']') {
      depth--;
      if (depth === 0) return i + 1;
    } else if (ch === '"') {
      i = text.indexOf('"', i + 1);
    }
  }
  throw new Error('unbalanced brackets in a .d.ts');
}

// Parses the members of an interface body ("{ ... }") into Map name -> type.
function parseMembers(body) {
  const props = new Map();
  const inner = body.trim().replace(/^\{/, '').replace(/\}$/, '');
  let i = 0;
  while (i < inner.length) {
    while (i < inner.length && /[\s;]/.test(inner[i])) i++;
    if (i >= inner.length) break;
    let name;
    if (inner[i] === '"') {
      const end = inner.indexOf('"', i + 1);
      name = inner.slice(i + 1, end);
      i = end + 1;
    } else if (inner[i] === '[') {
      // An index signature: [key: string]: T
      const end = matchBracket(inner, i);
      name = '[index]';
      i = end;
    } else {
      const m = /^[A-Za-z_$][\w$]*/.exec(inner.slice(i));
      if (!m) throw new Error(`cannot parse .d.ts members near: ${inner.slice(i, i + 40)}`);
      name = m[0];
      i += name.length;
    }
    if (inner[i] === '?') i++;
    while (/\s/.test(inner[i])) i++;
    if (inner[i] !== ':') throw new Error(`cannot parse .d.ts member ${name}`);
    i++;
    const start = i;
    while (i < inner.length && inner[i] !== ';') {
      if ('{<(['.includes(inner[i])) i = matchBracket(inner, i);
      else if (inner[i] === '"') i = inner.indexOf('"', i + 1) + 1;
      else i++;
    }
    props.set(name, inner.slice(start, i).trim());
  }
  return props;
}

// The first exported interface of a .d.ts file (null for type aliases).
function loadDts(file) {
  if (interfaceCache.has(file)) return interfaceCache.get(file);
  const text = stripComments(fs.readFileSync(file, 'utf8'));
  const imports = new Map();
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      const spec = m[2];
      const target = spec.startsWith('.') ? path.resolve(path.dirname(file), spec) : path.join(nodeModules(), spec);
      imports.set(name, `${target}.d.ts`);
    }
  }
  let result = null;
  const m = /export interface (\w+)(\s+extends[^{]*)?\s*\{/.exec(text);
  if (m) {
    // TypeMeta (apiVersion, kind) is redeclared by every top-level kind.
    if (m[2] && m[2].trim() !== 'extends TypeMeta') {
      throw new Error(`${file}: interface ${m[1]} ${m[2].trim()}: not supported`);
    }
    const open = m.index + m[0].length - 1;
    result = { props: parseMembers(text.slice(open, matchBracket(text, open))), imports, file };
  }
  interfaceCache.set(file, result);
  return result;
}

// Checks value against a type string of the .d.ts `context`; pushes errors.
function checkType(value, type, context, where, errors) {
  type = type.trim();
  if (value === null || value === undefined) return;
  const arr = /^Array<([\s\S]*)>$/.exec(type);
  if (arr) {
    if (Array.isArray(value)) value.forEach((v, i) => checkType(v, arr[1], context, `${where}[${i}]`, errors));
    return;
  }
  if (type.startsWith('{') && type.endsWith('}')) {
    if (typeof value !== 'object' || Array.isArray(value)) return;
    checkMembers(value, parseMembers(type), context, where, errors);
    return;
  }
  if (/^\w+$/.test(type) && context.imports.has(type)) {
    const file = context.imports.get(type);
    if (!fs.existsSync(file)) throw new Error(`${context.file}: imported ${file} does not exist`);
    const iface = loadDts(file);
    if (iface && typeof value === 'object' && !Array.isArray(value)) {
      checkMembers(value, iface.props, iface, where, errors);
    }
  }
  // Anything else (string, number, unions, literals) is a leaf: validate() checks it.
}

function checkMembers(value, props, context, where, errors) {
  const index = props.get('[index]');
  for (const [key, v] of Object.entries(value)) {
    if (props.has(key)) checkType(v, props.get(key), context, `${where}.${key}`, errors);
    else if (index !== undefined) checkType(v, index, context, `${where}.${key}`, errors);
    else errors.push(`${where}: unknown field "${key}"`);
  }
}

// The .d.ts of a top-level API kind, e.g. ("apps/v1", "StatefulSet").
function kindDts(apiVersion, kind) {
  return path.join(nodeModules(), 'kubernetes-models', ...apiVersion.split('/'), `${kind}.d.ts`);
}

// Unknown fields of a whole object, as "Kind/name.spec...: unknown field "x"".
function unknownFields(obj) {
  const file = kindDts(obj.apiVersion, obj.kind);
  if (!fs.existsSync(file)) return [`no declarations for ${obj.apiVersion} ${obj.kind} (${file})`];
  const iface = loadDts(file);
  const errors = [];
  checkMembers(obj, iface.props, iface, `${obj.kind}/${obj.metadata && obj.metadata.name}`, errors);
  return errors;
}

module.exports = { unknownFields };

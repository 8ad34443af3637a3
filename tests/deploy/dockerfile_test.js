// //tests:deploy_dockerfile_test: static facts of deploy/docker/Dockerfile.
// The image cannot be built here (base images cannot be pulled offline), so
// this checks what can go wrong without building it:
//
//   - two stages: debian:bookworm building with ./dev deps and
//     `bazel build -c opt`, then debian:bookworm-slim;
//   - every binary it copies out of bazel-bin is the output of a target it
//     builds, and is a real Bazel output (a data file of this test);
//   - the runtime stage installs exactly the Debian packages that own the
//     shared libraries `ldd` lists for those binaries (dpkg -S), apart from
//     libc6 and libgcc-s1, which every Debian image has;
//   - it runs as a non-root user, exposes the ports the manifests use, and
//     bakes in no secrets.
//
// Usage (from the runfiles root): node dockerfile_test.js DOCKERFILE K8S_BASE_DIR
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { Cases } = require('./lib.js');
const { renderKustomization, podSpecs, containersOf } = require('./k8s_render.js');

// In every Debian image (libc6 depends on libgcc-s1): not installed again.
const BASE_PACKAGES = new Set(['libc6', 'libgcc-s1']);
// Runtime packages the image may install although no binary links them
// (none today; e.g. ca-certificates if a binary ever reads the system roots).
const EXTRA_RUNTIME_PACKAGES = new Set([]);
const WANT_BINARIES = ['conductor', 'storage_node', 'queue_worker', 'conductorctl'];

// --- Dockerfile parsing ---------------------------------------------------------

// Instructions [{stage, op, args, line}] with continuation lines joined.
function parseDockerfile(text) {
  const out = [];
  let stage = -1;
  let buf = '';
  let startLine = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (buf === '' && /^\s*(#|$)/.test(raw)) continue;
    if (buf !== '' && /^\s*#/.test(raw)) continue; // comment inside a continued instruction
    if (buf === '') startLine = i + 1;
    if (/\\\s*$/.test(raw)) {
      buf += raw.replace(/\\\s*$/, ' ');
      continue;
    }
    buf += raw;
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buf);
    if (!m) throw new Error(`Dockerfile line ${startLine}: cannot parse "${buf}"`);
    const op = m[1].toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ stage, op, args: m[2].trim().replace(/\s+/g, ' '), line: startLine });
    buf = '';
  }
  return out;
}

function words(s) {
  return s.split(' ').filter(Boolean);
}

// "//a/b:c" -> "a/b/c"; "//a/b" -> "a/b/b".
function labelOutput(label) {
  const m = /^\/\/([^:]*)(?::(.+))?$/.exec(label);
  if (!m) throw new Error(`not a label: ${label}`);
  const pkg = m[1];
  const name = m[2] || path.basename(pkg);
  return pkg === '' ? name : `${pkg}/${name}`;
}

// --- shared libraries -------------------------------------------------------------

function lddPaths(binary, errors) {
  const r = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (r.status !== 0) {
    errors.push(`ldd ${binary} failed: ${r.stderr}`);
    return [];
  }
  const libs = [];
  for (const line of r.stdout.split('\n')) {
    if (/not found/.test(line)) errors.push(`${binary}: ${line.trim()}`);
    let m = /=>\s*(\/\S+)/.exec(line);
    if (!m) m = /^\s*(\/\S+)/.exec(line); // the dynamic loader
    if (m) libs.push(m[1]);
  }
  return libs;
}

// The paths dpkg may know a library by (merged /usr: /lib -> /usr/lib).
function candidates(p) {
  const out = new Set();
  let real = p;
  try {
    real = fs.realpathSync(p);
  } catch (e) {
    // keep p
  }
  for (const x of [p, real]) {
    out.add(x);
    out.add(x.startsWith('/usr/') ? x.slice(4) : `/usr${x}`);
  }
  return [...out];
}

// Map library path -> Debian package, with one dpkg -S call.
function packagesOf(libs, errors) {
  const all = [...new Set(libs.flatMap(candidates))];
  const r = spawnSync('dpkg', ['-S', ...all], { encoding: 'utf8' });
  const owner = new Map();
  for (const line of (r.stdout || '').split('\n')) {
    const m = /^([^:]+(?::[a-z0-9]+)?(?:, [^:]+(?::[a-z0-9]+)?)*): (\/.*)$/.exec(line);
    if (!m || line.startsWith('diversion ')) continue;
    const pkgs = m[1].split(', ').map((p) => p.replace(/:[a-z0-9]+$/, ''));
    owner.set(m[2], pkgs[0]);
  }
  const result = new Map();
  for (const lib of new Set(libs)) {
    const hit = candidates(lib).find((c) => owner.has(c));
    if (hit) result.set(lib, owner.get(hit));
    else errors.push(`no Debian package owns ${lib} (dpkg -S)`);
  }
  return result;
}

// --- checks ---------------------------------------------------------------------

function main() {
  const [dockerfile, k8sBase] = process.argv.slice(2);
  if (!dockerfile || !k8sBase) throw new Error('usage: dockerfile_test.js DOCKERFILE K8S_BASE_DIR');
  const cases = new Cases('deploy_dockerfile_test');
  const ins = parseDockerfile(fs.readFileSync(dockerfile, 'utf8'));
  const froms = ins.filter((i) => i.op === 'FROM');
  const last = froms.length - 1;
  const inStage = (s) => ins.filter((i) => i.stage === s);
  let builtPaths = []; // bazel-bin/... copied out of the build stage
  let outDir = null;

  cases.run('two stages: debian:bookworm build, debian:bookworm-slim runtime', (errors) => {
    if (froms.length !== 2) errors.push(`${froms.length} FROM lines, want 2`);
    if (!froms[0] || !/^debian:bookworm AS build$/i.test(froms[0].args)) errors.push(`first stage is "${froms[0] && froms[0].args}", want "debian:bookworm AS build"`);
    if (!froms[last] || froms[last].args !== 'debian:bookworm-slim') errors.push(`last stage is "${froms[last] && froms[last].args}", want "debian:bookworm-slim"`);
  });

  cases.run('build stage installs with ./dev deps, then bazel build -c opt', (errors) => {
    const build = inStage(0);
    const runs = build.filter((i) => i.op === 'RUN');
    const deps = runs.findIndex((i) => /(^|[\s;&])\.\/dev deps\b/.test(i.args));
    const bazel = runs.findIndex((i) => /\bbazel build\b/.test(i.args));
    if (deps < 0) errors.push('no RUN ./dev deps');
    if (bazel < 0) errors.push('no RUN bazel build');
    if (deps >= 0 && bazel >= 0 && deps > bazel) errors.push('./dev deps runs after bazel build');
    const copyDev = build.findIndex((i) => i.op === 'COPY' && words(i.args).slice(0, -1).some((w) => w === 'dev' || w === '.'));
    const depsAt = build.indexOf(runs[deps]);
    if (deps >= 0 && (copyDev < 0 || copyDev > depsAt)) errors.push('./dev is not copied in before ./dev deps runs');
    if (bazel < 0) return;
    const cmd = runs[bazel].args;
    const bazelPart = cmd.split('&&')[0];
    if (!/ -c opt\b/.test(bazelPart) && !/--compilation_mode[= ]opt\b/.test(bazelPart)) errors.push('bazel build is not -c opt');
    const labels = words(bazelPart).filter((w) => w.startsWith('//'));
    const wantLabels = ['//conductor', '//storage_node', '//queue_worker', '//client:conductorctl'];
    for (const l of wantLabels) if (!labels.includes(l)) errors.push(`bazel build lacks ${l}`);
    builtPaths = [...cmd.matchAll(/bazel-bin\/(\S+)/g)].map((m) => m[1]);
    const outputs = labels.map(labelOutput);
    for (const p of builtPaths) {
      if (!outputs.includes(p)) errors.push(`bazel-bin/${p} is the output of none of the targets built (${labels.join(' ')})`);
      else if (!fs.existsSync(p)) errors.push(`bazel-bin/${p}: no such Bazel output (not in this test's runfiles)`);
      else {
        try {
          fs.accessSync(p, fs.constants.X_OK);
        } catch (e) {
          errors.push(`bazel-bin/${p} is not executable`);
        }
      }
    }
    const names = builtPaths.map((p) => path.basename(p)).sort();
    if (JSON.stringify(names) !== JSON.stringify([...WANT_BINARIES].sort())) {
      errors.push(`copies ${names.join(', ')} out of bazel-bin, want ${WANT_BINARIES.join(', ')}`);
    }
    const cp = /\bcp\b[^&]*?\s(\/\S+)\/?\s*(?:&&|$)/.exec(cmd);
    outDir = cp ? cp[1].replace(/\/$/, '') : null;
    if (!outDir) errors.push('cannot find where the binaries are copied to (cp ... /DIR/)');
  });

  cases.run('runtime stage copies the four binaries into /usr/local/bin', (errors) => {
    const copies = inStage(last).filter((i) => i.op === 'COPY');
    const got = [];
    for (const c of copies) {
      const w = words(c.args);
      if (!w.includes('--from=build')) continue;
      const args = w.filter((x) => !x.startsWith('--'));
      const dest = args[args.length - 1];
      for (const src of args.slice(0, -1)) {
        if (outDir && path.dirname(src) !== outDir) errors.push(`COPY --from=build ${src}: not from ${outDir}`);
        got.push(dest.endsWith('/') ? `${dest}${path.basename(src)}` : dest);
      }
    }
    const want = WANT_BINARIES.map((b) => `/usr/local/bin/${b}`).sort();
    if (JSON.stringify(got.sort()) !== JSON.stringify(want)) errors.push(`copies ${got.join(', ')}, want ${want.join(', ')}`);
    for (const b of builtPaths) {
      if (!WANT_BINARIES.includes(path.basename(b))) errors.push(`builds ${b}, which is not copied`);
    }
  });

  cases.run('runtime packages are exactly the owners of the binaries\' shared libraries', (errors) => {
    const runs = inStage(last).filter((i) => i.op === 'RUN' && /apt-get install/.test(i.args));
    if (runs.length !== 1) {
      errors.push(`${runs.length} RUN apt-get install in the runtime stage, want 1`);
      return;
    }
    const cmd = runs[0].args;
    if (!/--no-install-recommends/.test(cmd)) errors.push('apt-get install without --no-install-recommends');
    if (!/rm -rf \/var\/lib\/apt\/lists/.test(cmd)) errors.push('apt lists are not removed');
    const install = cmd.split('&&').find((p) => /apt-get install/.test(p));
    const listed = new Set(words(install.slice(install.indexOf('apt-get install') + 'apt-get install'.length)).filter((w) => !w.startsWith('-')));
    const libs = [];
    for (const b of builtPaths) if (fs.existsSync(b)) libs.push(...lddPaths(b, errors));
    if (libs.length === 0) {
      errors.push('ldd listed no libraries (no binaries?)');
      return;
    }
    const owners = packagesOf(libs, errors);
    const needed = new Map(); // package -> a library of it
    for (const [lib, pkg] of owners) if (!needed.has(pkg)) needed.set(pkg, lib);
    for (const [pkg, lib] of needed) {
      if (!listed.has(pkg) && !BASE_PACKAGES.has(pkg)) errors.push(`${lib} needs package ${pkg}, which the runtime stage does not install`);
    }
    for (const pkg of listed) {
      if (!needed.has(pkg) && !EXTRA_RUNTIME_PACKAGES.has(pkg)) errors.push(`installs ${pkg}, which no binary needs (ldd)`);
    }
  });

  cases.run('runs as a non-root user', (errors) => {
    const users = inStage(last).filter((i) => i.op === 'USER');
    if (users.length === 0) errors.push('no USER in the runtime stage');
    const u = users.length ? users[users.length - 1].args.split(':')[0] : '';
    if (u === '' || u === '0' || u === 'root') errors.push(`USER ${u}`);
  });

  cases.run('exposes the ports the Kubernetes manifests use', (errors) => {
    const exposed = new Set(inStage(last).filter((i) => i.op === 'EXPOSE').flatMap((i) => words(i.args)).map((p) => Number(p.split('/')[0])));
    const used = new Set();
    for (const o of renderKustomization(k8sBase).objects) {
      for (const ps of podSpecs(o)) for (const c of containersOf(ps)) for (const p of c.ports || []) used.add(p.containerPort);
    }
    if (used.size === 0) errors.push(`no container ports in ${k8sBase}`);
    for (const p of used) if (!exposed.has(p)) errors.push(`port ${p} is used in ${k8sBase} but not EXPOSEd`);
    for (const p of exposed) if (!used.has(p)) errors.push(`EXPOSE ${p} is used by no manifest`);
  });

  cases.run('no secrets in the image definition', (errors) => {
    for (const i of ins) {
      if (i.op === 'ENV' || i.op === 'ARG') {
        if (/(token|secret|passw|credential|api_?key|private)/i.test(i.args)) errors.push(`line ${i.line}: ${i.op} ${i.args}`);
      }
      if (i.op === 'COPY' || i.op === 'ADD') {
        if (/\.(pem|key|crt|p12)\b|token|secret/i.test(i.args)) errors.push(`line ${i.line}: ${i.op} ${i.args}`);
      }
    }
  });

  cases.finish();
}

main();

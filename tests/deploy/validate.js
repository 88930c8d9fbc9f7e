#!/usr/bin/env node
// Checks of deploy/ that need a YAML parser and the Kubernetes / prometheus-operator / KEDA /
// cert-manager schemas (npm packages pinned in package-lock.json, installed by npm-ci.sh; NODE_PATH
// points at them).
//
//   validate.js manifests --repo DIR --help-dir DIR NAME=RENDERED.yaml ...
//       schema validation of every object plus the project's invariants (see checkOverlay): mutual TLS
//       on every gRPC hop, probes on the plaintext health ports, NetworkPolicies, no root, ...
//   validate.js mutate MUTATION RENDERED.yaml OUT.yaml     a broken copy, which `manifests` must reject
//   validate.js mutations                                  the mutations' names, one a line
//   validate.js schema FILE.yaml ...                       schema validation alone
//   validate.js monitoring --repo DIR MONITORING.yaml OVERLAY.yaml
//       ServiceMonitor/PodMonitor against the workloads, PrometheusRule == rules file, runbooks
//   validate.js autoscaling --repo DIR AUTOSCALING.yaml OVERLAY.yaml
//   validate.js mount-pod RENDERED.yaml SECRETS.yaml KIND/NAME ROOT [VAR=VALUE...]
//       lays out the ConfigMap and Secret volumes the pod's first container mounts under ROOT, as the
//       kubelet would (subPathExpr expanded with the VAR=VALUE given); fails where the kubelet would
//   validate.js security-context RENDERED.yaml KIND/NAME   "UID GID NO_NEW_PRIVS ADDED_CAPS COMMAND"
//       of the pod's first container (ADDED_CAPS comma-separated, lower case, "-" for none)
//   validate.js binaries [--image NAME] RENDERED.yaml ...  every /usr/local/bin path a container of image
//       NAME (default latchkey) runs
//   validate.js env RENDERED.yaml KIND/NAME CONTAINER       NAME=VALUE of the container's literal env
//   validate.js prometheus-config PROMETHEUS.yml CONTROL_TARGET RELAY_TARGET OUT.yml
//       the shipped scrape config with Kubernetes discovery swapped for static loopback targets
//   validate.js dashboard-queries DASHBOARD.json          one PromQL expression per line
//   validate.js sync-rules --repo DIR                     rewrite prometheusrule.yaml from the rules
'use strict';

const fs = require('fs');
const path = require('path');
const assert = require('assert');
const YAML = require('yaml');

const failures = [];
function check(condition, message) {
  if (!condition) failures.push(message);
}
function finish(what) {
  if (failures.length) {
    for (const f of failures) console.error(`FAIL: ${f}`);
    console.error(`${what}: ${failures.length} failure(s)`);
    process.exit(1);
  }
  console.log(`${what}: ok`);
}

function loadAll(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJSON();
    })
    .filter((o) => o);
}

function writeAll(file, objs) {
  fs.writeFileSync(file, objs.map((o) => YAML.stringify(o, { lineWidth: 0 })).join('---\n'));
}

// apiVersion -> module holding one class per kind.
function modelModule(apiVersion) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  if (group === 'keda.sh') return `@kubernetes-models/keda/${apiVersion}`;
  if (group === 'cert-manager.io') return `@kubernetes-models/cert-manager/${apiVersion}`;
  return group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
}

function validateSchema(obj, where) {
  const label = `${where}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
  let Model;
  try {
    Model = require(modelModule(obj.apiVersion))[obj.kind];
  } catch (e) {
    Model = undefined;
  }
  if (!Model) {
    check(false, `${label}: no schema for ${obj.apiVersion} ${obj.kind}`);
    return;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    check(false, `${label}: schema: ${e.message}`);
  }
}

const CLUSTER_SCOPED = new Set(['Namespace', 'PriorityClass', 'ClusterRole', 'ClusterRoleBinding', 'ClusterIssuer']);

function checkNamespaces(objs, where) {
  for (const o of objs) {
    const ns = o.metadata.namespace;
    if (CLUSTER_SCOPED.has(o.kind)) check(ns === undefined, `${where}: ${o.kind}/${o.metadata.name} is cluster-scoped but has namespace ${ns}`);
    else check(ns === 'latchkey', `${where}: ${o.kind}/${o.metadata.name} has namespace ${ns}, want latchkey`);
  }
}

function find(objs, kind, name) {
  return objs.find((o) => o.kind === kind && o.metadata.name === name);
}

function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

// A LabelSelector (matchLabels and matchExpressions) against a label set.
function selectorMatches(selector, labels) {
  if (!selector) return true;
  if (!matches(selector.matchLabels, labels)) return false;
  return (selector.matchExpressions || []).every((e) => {
    const has = Object.prototype.hasOwnProperty.call(labels || {}, e.key);
    if (e.operator === 'In') return has && e.values.includes(labels[e.key]);
    if (e.operator === 'NotIn') return !has || !e.values.includes(labels[e.key]);
    if (e.operator === 'Exists') return has;
    if (e.operator === 'DoesNotExist') return !has;
    return false;
  });
}

function isEmptySelector(selector) {
  return !selector || (Object.keys(selector.matchLabels || {}).length === 0 && (selector.matchExpressions || []).length === 0);
}

// Flags a binary accepts, from its --helpfull output saved as HELP_DIR/<binary>.txt.
function flagsOf(helpDir, binary) {
  const text = fs.readFileSync(path.join(helpDir, `${binary}.txt`), 'utf8');
  const flags = new Set();
  for (const m of text.matchAll(/^\s+--([a-z_]+)/gm)) flags.add(m[1]);
  // latchkeyctl prints its usage, not absl's list.
  for (const m of text.matchAll(/--([a-z_]+)[=\s]/g)) flags.add(m[1]);
  return flags;
}

// The default of a flag in --helpfull output: `--listen (...); default: "127.0.0.1:7400";`.
function flagDefault(helpDir, binary, flag) {
  const text = fs.readFileSync(path.join(helpDir, `${binary}.txt`), 'utf8').replace(/\s+/g, ' ');
  const m = new RegExp(`--${flag} \\(.*?\\); default: "([^"]*)";`).exec(text);
  return m ? m[1] : undefined;
}

// "--name=value" arguments of a command line (a shell -c string is split on spaces).
function flagArgs(words) {
  const out = {};
  for (const w of words.flatMap((x) => String(x).split(/\s+/))) {
    const m = /^--([a-z_]+)(?:=(.*))?$/.exec(w);
    if (m) out[m[1]] = m[2] === undefined ? '' : m[2];
  }
  return out;
}

function portOf(address) {
  const m = /:(\d+)$/.exec(address || '');
  return m ? Number(m[1]) : undefined;
}

// Protobuf text format into plain objects: messages become objects, a field given twice an array;
// strings, numbers, booleans and enum names become values.
function parseTextproto(text) {
  const tokens = [];
  const re = /\s+|#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{}:;,<>\[\]])|([^\s{}:;,<>\[\]"'#]+)/gy;
  let m;
  while (re.lastIndex < text.length && (m = re.exec(text))) {
    if (m[1] !== undefined || m[2] !== undefined) tokens.push({ s: JSON.parse(`"${(m[1] !== undefined ? m[1] : m[2]).replace(/\\'/g, "'")}"`) });
    else if (m[3] !== undefined) tokens.push({ p: m[3] });
    else if (m[4] !== undefined) tokens.push({ w: m[4] });
  }
  if (re.lastIndex < text.length) throw new Error(`textproto: cannot read at offset ${re.lastIndex}`);
  let i = 0;
  const message = (closing) => {
    const out = {};
    while (i < tokens.length && !(tokens[i].p && tokens[i].p === closing)) {
      const name = tokens[i++].w;
      if (!name) throw new Error('textproto: field name expected');
      if (tokens[i] && tokens[i].p === ':') i++;
      let value;
      const t = tokens[i++];
      if (t && (t.p === '{' || t.p === '<')) {
        value = message(t.p === '{' ? '}' : '>');
        i++;
      } else if (t && t.s !== undefined) {
        value = t.s;
        while (tokens[i] && tokens[i].s !== undefined) value += tokens[i++].s; // adjacent strings
      } else if (t && t.w !== undefined) {
        value = /^-?\d+(\.\d+)?$/.test(t.w) ? Number(t.w) : t.w === 'true' ? true : t.w === 'false' ? false : t.w;
      } else {
        throw new Error(`textproto: value of ${name} expected`);
      }
      if (tokens[i] && (tokens[i].p === ';' || tokens[i].p === ',')) i++;
      if (Object.prototype.hasOwnProperty.call(out, name)) out[name] = [].concat(out[name], [value]);
      else out[name] = value;
    }
    return out;
  };
  return message(undefined);
}

function durationSeconds(d) {
  return d && typeof d === 'object' ? Number(d.seconds || 0) + Number(d.nanos || 0) / 1e9 : undefined;
}

function cpuCores(quantity) {
  const s = String(quantity);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

function podSpecs(objs) {
  return objs
    .filter((o) => ['Deployment', 'DaemonSet', 'StatefulSet', 'Job'].includes(o.kind))
    .map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, obj: o, pod: o.spec.template.spec, podLabels: o.spec.template.metadata.labels }));
}

// The binary a container runs, by its basename: the relay's file-capability copies (-netraw for
// components/raw-keepalive, -fastpath for components/fast-path) take the relay's flags.
function binaryOf(c) {
  return path.basename((c.command || [])[0] || '');
}
function flagsBinary(binary) {
  return binary.replace(/-(netraw|fastpath)$/, '');
}

// What each component may add to the relay, and only to the relay.
const NET_RAW_CAPS = ['NET_RAW'];
const FAST_PATH_CAPS = ['BPF', 'NET_ADMIN'];

function checkNoRoot(objs, where, { netRaw, fastPath }) {
  for (const { owner, pod } of podSpecs(objs)) {
    const psc = pod.securityContext || {};
    check(psc.runAsNonRoot === true, `${where}: ${owner}: pod securityContext.runAsNonRoot must be true`);
    check(Number.isInteger(psc.runAsUser) && psc.runAsUser > 0, `${where}: ${owner}: pod runAsUser must be a non-zero uid`);
    check(!pod.hostPID && !pod.hostIPC, `${where}: ${owner}: hostPID/hostIPC`);
    for (const c of [...(pod.initContainers || []), ...pod.containers]) {
      const sc = c.securityContext || {};
      const label = `${where}: ${owner}/${c.name}`;
      check(sc.privileged !== true, `${label}: privileged`);
      check(sc.runAsUser === undefined || sc.runAsUser > 0, `${label}: runAsUser 0`);
      check(sc.runAsNonRoot !== false, `${label}: runAsNonRoot false`);
      const caps = sc.capabilities || {};
      check((caps.drop || []).includes('ALL'), `${label}: capabilities must drop ALL`);
      const added = caps.add || [];
      const relay = owner === 'DaemonSet/latchkey-relay';
      const allowed = [...(netRaw && relay ? NET_RAW_CAPS : []), ...(fastPath && relay ? FAST_PATH_CAPS : [])];
      check(added.every((a) => allowed.includes(a)), `${label}: capabilities added ${added} (allowed: ${allowed})`);
      // Also where NET_RAW is added: the capability comes with the binary's file capability, which
      // needs no privilege escalation (components/raw-keepalive).
      check(sc.allowPrivilegeEscalation === false, `${label}: allowPrivilegeEscalation must be false`);
      // A non-root process keeps an added capability across exec only through a file capability:
      // NET_RAW goes with the relay's copy that has cap_net_raw=ep, and that copy does not even
      // execute without NET_RAW.
      const netrawBinary = binaryOf(c).endsWith('-netraw');
      check(added.includes('NET_RAW') === netrawBinary,
        `${label}: ${added.includes('NET_RAW') ? 'NET_RAW is added but the command is not the -netraw binary (a non-root process cannot use it)' : 'the -netraw binary (cap_net_raw=ep) needs NET_RAW added, or it does not execute'}`);
      // The same for the fast path: BPF and NET_ADMIN go with the copy that has
      // cap_bpf,cap_net_admin=ep, which needs both to execute.
      const fastpathBinary = binaryOf(c).endsWith('-fastpath');
      const fastPathCaps = FAST_PATH_CAPS.filter((x) => added.includes(x));
      check(fastpathBinary ? fastPathCaps.length === FAST_PATH_CAPS.length : fastPathCaps.length === 0,
        `${label}: ${fastpathBinary ? `the -fastpath binary (cap_bpf,cap_net_admin=ep) needs ${FAST_PATH_CAPS} added, or it does not execute (added: ${added})` : `${fastPathCaps} added but the command is not the -fastpath binary (a non-root process cannot use them)`}`);
      check(c.resources && c.resources.requests && c.resources.limits && c.resources.limits.memory,
        `${label}: resources need requests and a memory limit`);
    }
  }
}

// Probes: readiness, liveness and startup ask the plaintext health-only port (the kubelet's gRPC probe
// speaks no TLS), never a mutual-TLS port.
function checkProbes(container, label, { healthPort, tlsPorts, liveness }) {
  const named = Object.fromEntries((container.ports || []).map((p) => [p.name, p.containerPort]));
  const portNumber = (p) => (typeof p === 'string' ? named[p] : p);
  check(healthPort !== undefined, `${label}: no health port`);
  const ready = container.readinessProbe || {};
  check(ready.grpc && ready.grpc.port === healthPort, `${label}: readinessProbe must be grpc on the health port ${healthPort}`);
  if (container.startupProbe) {
    check(container.startupProbe.grpc && container.startupProbe.grpc.port === healthPort, `${label}: startupProbe must be grpc on the health port ${healthPort}`);
  }
  const live = container.livenessProbe || {};
  if (liveness === 'grpc') check(live.grpc && live.grpc.port === healthPort, `${label}: livenessProbe must be grpc on the health port ${healthPort}`);
  else check(live.tcpSocket && portNumber(live.tcpSocket.port) === healthPort, `${label}: livenessProbe must be tcpSocket on the health port ${healthPort}`);
  for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe].filter(Boolean)) {
    const port = portNumber((probe.grpc || probe.tcpSocket || probe.httpGet || {}).port);
    check(Object.values(named).includes(port), `${label}: a probe uses port ${port}, not a container port`);
    check(!tlsPorts.includes(port), `${label}: a probe uses the mutual-TLS port ${port} (the kubelet's probe has no certificate)`);
  }
}

function configMapFile(objs, pod, container, flag) {
  const configPath = flagArgs([...(container.command || []), ...(container.args || [])])[flag];
  if (!configPath) return undefined;
  const mount = (container.volumeMounts || []).find((m) => configPath.startsWith(`${m.mountPath}/`));
  if (!mount) return undefined;
  const volume = (pod.volumes || []).find((v) => v.name === mount.name);
  const cm = volume && volume.configMap && find(objs, 'ConfigMap', volume.configMap.name);
  const key = configPath.slice(mount.mountPath.length + 1);
  return cm && cm.data && cm.data[key];
}

// Where a file a container reads comes from: the volume behind the mount that holds filePath and the
// key (or subPath expression) within it.
function fileSource(pod, container, filePath) {
  const mounts = container.volumeMounts || [];
  let mount = mounts.find((x) => x.mountPath === filePath);
  let key;
  if (mount) {
    key = mount.subPath || mount.subPathExpr;
    if (!key) return { kind: 'directory-on-a-file', mount };
  } else {
    mount = mounts
      .filter((x) => filePath.startsWith(`${x.mountPath.replace(/\/$/, '')}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    if (!mount) return undefined;
    const rest = filePath.slice(mount.mountPath.replace(/\/$/, '').length + 1);
    const sub = mount.subPath || mount.subPathExpr;
    key = sub ? `${sub}/${rest}` : rest;
  }
  const volume = (pod.volumes || []).find((v) => v.name === mount.name);
  if (!volume) return { kind: 'no-volume', mount };
  const kind = Object.keys(volume).find((k) => k !== 'name');
  return { kind, volume, mount, key, byExpr: !!mount.subPathExpr, whole: !mount.subPath && !mount.subPathExpr };
}

function envFieldRefs(c) {
  return Object.fromEntries((c.env || []).map((e) => [e.name, e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath]));
}

const ROLE = '(pbx|operator|worker|control)';
const NAME = '([A-Za-z0-9._-]{1,128})';

// Mutual TLS of one server: the tls block names three files, each mounted from a Secret (or the
// cert-manager csi-driver), readable by the container, never allow_insecure. Returns the sources.
function checkTlsFiles(label, pod, c, tls) {
  check(tls && typeof tls === 'object', `${label}: config has no tls block: its gRPC ports would not be mutual TLS`);
  if (!tls || typeof tls !== 'object') return undefined;
  check(tls.allow_insecure !== true, `${label}: tls.allow_insecure is on`);
  const sources = {};
  for (const field of ['cert_file', 'key_file', 'ca_file']) {
    const file = tls[field];
    check(typeof file === 'string' && file.startsWith('/'), `${label}: tls.${field} must be an absolute path, got ${file}`);
    if (typeof file !== 'string') continue;
    const src = fileSource(pod, c, file);
    sources[field] = src;
    check(src && ['secret', 'csi'].includes(src.kind), `${label}: tls.${field} ${file} is not mounted from a Secret (or the cert-manager csi-driver): ${src ? src.kind : 'not mounted'}`);
    if (!src || !['secret', 'csi'].includes(src.kind)) continue;
    check(src.mount.readOnly === true, `${label}: the mount of ${file} must be readOnly`);
    const psc = pod.securityContext || {};
    if (src.kind === 'secret') {
      check(src.volume.secret.optional !== true, `${label}: Secret ${src.volume.secret.secretName} must not be optional (no start without certificates)`);
      check(!src.volume.secret.items, `${label}: Secret ${src.volume.secret.secretName}: items would hide keys; mount keys by name`);
      const mode = src.volume.secret.defaultMode === undefined ? 0o644 : src.volume.secret.defaultMode;
      check((mode & 0o004) === 0 || field !== 'key_file', `${label}: ${file}: a private key readable by every uid (defaultMode ${mode.toString(8)})`);
      if ((mode & 0o004) === 0) check(psc.fsGroup !== undefined && psc.fsGroup === psc.runAsGroup && (mode & 0o040),
        `${label}: ${file} (mode ${mode.toString(8)}) is readable only by the group fsGroup, which must be runAsGroup`);
    } else {
      const attrs = src.volume.csi.volumeAttributes || {};
      check(src.volume.csi.driver === 'csi.cert-manager.io', `${label}: csi driver ${src.volume.csi.driver}, want csi.cert-manager.io`);
      check(String(attrs['csi.cert-manager.io/fs-group']) === String(psc.runAsGroup), `${label}: csi fs-group must be the runAsGroup ${psc.runAsGroup}`);
      const fileAttr = { cert_file: ['certificate-file', 'tls.crt'], key_file: ['privatekey-file', 'tls.key'], ca_file: ['ca-file', 'ca.crt'] }[field];
      check((attrs[`csi.cert-manager.io/${fileAttr[0]}`] || fileAttr[1]) === src.key, `${label}: tls.${field} ${file} is not the csi volume's ${fileAttr[0]}`);
    }
  }
  return sources;
}

// A cert-manager Certificate for an identity: one URI SAN spiffe://TD/latchkey/ROLE/NAME, ECDSA P-256,
// renewed ahead, from the CA Issuer.
function checkCertificate(label, cert, objs, trustDomain) {
  const s = cert.spec;
  const uris = s.uris || [];
  const m = uris.length === 1 && new RegExp(`^spiffe://${trustDomain.replace(/\./g, '\\.')}/latchkey/${ROLE}/${NAME}$`).exec(uris[0]);
  check(m, `${label}: want one URI SAN spiffe://${trustDomain}/latchkey/ROLE/NAME, got ${uris}`);
  check(s.privateKey && s.privateKey.algorithm === 'ECDSA' && s.privateKey.size === 256, `${label}: key must be ECDSA P-256`);
  check(s.renewBefore, `${label}: renewBefore missing`);
  const usages = s.usages || [];
  check(usages.includes('client auth'), `${label}: usages need client auth`);
  if (m && ['control', 'worker'].includes(m[1])) check(usages.includes('server auth'), `${label}: a ${m[1]} certificate serves too: usages need server auth`);
  const issuer = objs.find((o) => o.kind === (s.issuerRef.kind || 'Issuer') && o.metadata.name === s.issuerRef.name);
  check(issuer && issuer.spec.ca, `${label}: issuerRef ${s.issuerRef.name} must be the CA Issuer`);
  return m ? { role: m[1], name: m[2] } : undefined;
}

function checkCertManager(where, objs, trustDomain) {
  const certs = objs.filter((o) => o.kind === 'Certificate');
  const caCerts = certs.filter((c) => c.spec.isCA);
  check(caCerts.length === 1, `${where}: want one CA Certificate, got ${caCerts.length}`);
  const ca = caCerts[0];
  if (ca) {
    const boot = objs.find((o) => o.kind === (ca.spec.issuerRef.kind || 'Issuer') && o.metadata.name === ca.spec.issuerRef.name);
    check(boot && boot.spec.selfSigned, `${where}: the CA Certificate must come from a self-signed bootstrap Issuer`);
    check(ca.spec.privateKey && ca.spec.privateKey.algorithm === 'ECDSA' && ca.spec.privateKey.size === 256, `${where}: CA key must be ECDSA P-256`);
    check(ca.spec.renewBefore, `${where}: CA renewBefore missing`);
    const caIssuers = objs.filter((o) => o.kind === 'Issuer' && o.spec.ca);
    check(caIssuers.length > 0 && caIssuers.every((i) => i.spec.ca.secretName === ca.spec.secretName), `${where}: the CA Issuer must use the CA Certificate's Secret ${ca.spec.secretName}`);
  }
  const identities = {};
  for (const cert of certs.filter((c) => !c.spec.isCA)) {
    const id = checkCertificate(`${where}: Certificate/${cert.metadata.name}`, cert, objs, trustDomain);
    if (id) identities[cert.spec.secretName] = id;
  }
  const roles = new Set(Object.values(identities).map((i) => i.role));
  for (const role of ['control', 'operator', 'pbx']) check(roles.has(role), `${where}: no ${role} Certificate`);
  return identities;
}

// The NetworkPolicy rules that let traffic reach PORT ({name, number, protocol}) of pods labelled
// POD_LABELS: [{policy, from}] (from undefined: every source).
function grants(policies, podLabels, port) {
  const out = [];
  for (const p of policies) {
    const types = p.spec.policyTypes || ['Ingress'];
    if (!types.includes('Ingress')) continue;
    if (!selectorMatches(p.spec.podSelector, podLabels)) continue;
    for (const rule of p.spec.ingress || []) {
      const covers = !rule.ports || rule.ports.length === 0 || rule.ports.some((pp) =>
        (pp.protocol || 'TCP') === port.protocol &&
        (pp.port === undefined || pp.port === port.name || pp.port === port.number ||
          (typeof pp.port === 'number' && pp.endPort !== undefined && port.number >= pp.port && port.number <= pp.endPort)));
      if (covers) out.push({ policy: p.metadata.name, from: rule.from && rule.from.length ? rule.from : undefined });
    }
  }
  return out;
}

function ipv4(addr) {
  const parts = addr.split('.').map(Number);
  return parts.length === 4 && parts.every((x) => x >= 0 && x <= 255) ? ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3] : undefined;
}
// Inside the address ranges nodes have: RFC 1918, shared (CGNAT, 100.64/10), IPv6 ULA.
function isPrivateCidr(cidr) {
  const [addr, lenText] = cidr.split('/');
  const len = Number(lenText);
  if (addr.includes(':')) return /^f[cd]/i.test(addr) && len >= 7;
  const a = ipv4(addr);
  if (a === undefined) return false;
  return [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10]].some(([net, n]) =>
    len >= n && (a >>> (32 - n)) === (ipv4(net) >>> (32 - n)));
}

// A peer that admits every source of its kind: any address, any pod of any namespace, any pod here.
function peerIsEveryone(peer) {
  if (peer.ipBlock) return ['0.0.0.0/0', '::/0'].includes(peer.ipBlock.cidr);
  if (peer.namespaceSelector) return isEmptySelector(peer.namespaceSelector) && isEmptySelector(peer.podSelector);
  return isEmptySelector(peer.podSelector);
}

// Whether PEER (of a policy in namespace latchkey) admits a pod labelled POD_LABELS in a namespace
// labelled NS_LABELS.
function peerAdmitsPod(peer, nsLabels, podLabels) {
  if (peer.ipBlock) return false;
  const nsOk = peer.namespaceSelector ? selectorMatches(peer.namespaceSelector, nsLabels) : nsLabels['kubernetes.io/metadata.name'] === 'latchkey';
  return nsOk && selectorMatches(peer.podSelector, podLabels);
}

const PBX_NAMESPACE = { 'latchkey.io/pbx': 'true', 'kubernetes.io/metadata.name': 'pbx' };
const MONITORING_SELECTOR = { 'kubernetes.io/metadata.name': 'monitoring' };

// Ingress NetworkPolicies: a default deny, then exactly one intended policy per TCP port, admitting
// exactly the intended peers; media and STUN from anywhere. See deploy/k8s/base/network-policy.yaml.
function checkNetworkPolicies(where, objs, { control, relay, udp }) {
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
  check(policies.length > 0, `${where}: no NetworkPolicy`);
  check(policies.some((p) => isEmptySelector(p.spec.podSelector) && (p.spec.policyTypes || []).includes('Ingress') && !(p.spec.ingress || []).length),
    `${where}: no default-deny ingress policy (podSelector {}, policyTypes [Ingress], no rules)`);
  const ns = find(objs, 'Namespace', 'latchkey');
  const nsLabels = { ...((ns && ns.metadata.labels) || {}), 'kubernetes.io/metadata.name': 'latchkey' };
  check(!matches({ 'latchkey.io/pbx': 'true' }, nsLabels), `${where}: the latchkey namespace must not carry the PBX label (its relays would reach the PBX port)`);
  const relayPod = (peer) => peerAdmitsPod(peer, nsLabels, relay.labels);
  const controlPod = (peer) => peerAdmitsPod(peer, nsLabels, control.labels);
  const pbxPod = (peer) => peerAdmitsPod(peer, PBX_NAMESPACE, {});
  const monitoringOnly = (peer) => !peer.ipBlock && !peer.podSelector && peer.namespaceSelector &&
    !(peer.namespaceSelector.matchExpressions || []).length && JSON.stringify(peer.namespaceSelector.matchLabels) === JSON.stringify(MONITORING_SELECTOR);
  const nodeBlock = (peer) => peer.ipBlock && isPrivateCidr(peer.ipBlock.cidr);

  const intended = [
    { pod: control, port: 'api', policy: 'latchkey-control-api', kind: 'api' },
    { pod: control, port: 'workers', policy: 'latchkey-control-workers', kind: 'workers' },
    { pod: control, port: 'health', policy: 'latchkey-control-health', kind: 'health' },
    { pod: control, port: 'metrics', policy: 'latchkey-control-metrics', kind: 'metrics' },
    { pod: relay, port: 'grpc', policy: 'latchkey-relay', kind: 'relay-grpc' },
    { pod: relay, port: 'health', policy: 'latchkey-relay', kind: 'health' },
    { pod: relay, port: 'metrics', policy: 'latchkey-relay', kind: 'metrics' },
  ];
  for (const { pod, port, policy, kind } of intended) {
    const number = pod.ports[port];
    const label = `${where}: NetworkPolicy for ${pod.name} port ${port} (${number})`;
    check(number !== undefined, `${label}: no such container port`);
    if (number === undefined) continue;
    const g = grants(policies, pod.labels, { name: port, number, protocol: 'TCP' });
    const names = [...new Set(g.map((x) => x.policy))];
    check(names.length === 1 && names[0] === policy, `${label}: must be opened by exactly ${policy}, is by [${names}]`);
    check(g.every((x) => x.from), `${label}: a rule without "from" admits every source`);
    const peers = g.flatMap((x) => x.from || []);
    check(!peers.some(peerIsEveryone), `${label}: a peer admits every source (${JSON.stringify(peers.filter(peerIsEveryone))})`);
    if (kind === 'api') {
      check(peers.some(pbxPod), `${label}: PBX namespaces (latchkey.io/pbx=true) must be admitted`);
      check(!peers.some(relayPod), `${label}: relay pods must not reach the PBX/operator port`);
      check(!peers.some((p) => p.ipBlock), `${label}: no ipBlock: host-network relays connect from node addresses`);
    } else if (kind === 'workers') {
      check(peers.some(relayPod), `${label}: relay pods must be admitted`);
      check(!peers.some(pbxPod), `${label}: PBX namespaces must not reach the worker port`);
      check(peers.every((p) => relayPod(p) || nodeBlock(p)), `${label}: only relays (pods, or node address ranges for host-network relays)`);
    } else if (kind === 'health') {
      check(peers.length > 0 && peers.every(nodeBlock), `${label}: only the nodes' address ranges (kubelet probes)`);
    } else if (kind === 'metrics') {
      check(peers.length > 0 && peers.every(monitoringOnly), `${label}: only the monitoring namespace (${JSON.stringify(MONITORING_SELECTOR)})`);
    } else if (kind === 'relay-grpc') {
      check(peers.length > 0 && peers.every((p) => controlPod(p) && !relayPod(p) && !pbxPod(p)), `${label}: only control pods`);
    }
  }
  // Media and STUN: phones and carriers, from anywhere.
  for (const number of [udp.min, udp.max, 3478]) {
    const g = grants(policies, relay.labels, { name: undefined, number, protocol: 'UDP' });
    check(g.some((x) => !x.from || x.from.some(peerIsEveryone)), `${where}: relay UDP ${number} must be open to every source`);
  }
}

function checkOverlay(name, objs, helpDir, options) {
  const where = `overlay ${name}`;
  for (const o of objs) validateSchema(o, where);
  checkNamespaces(objs, where);
  checkNoRoot(objs, where, options);

  // Every latchkey container runs one image, and a binary the image ships, with flags it accepts; no
  // container turns plaintext on.
  const images = new Set();
  const redisImages = new Set();
  for (const { owner, pod } of podSpecs(objs)) {
    // overlays/ha's Redis runs the project's other image (deploy/Dockerfile.redis): checkRedis.
    if (owner === `StatefulSet/${REDIS}`) {
      for (const c of pod.containers) redisImages.add(c.image);
      continue;
    }
    for (const c of pod.containers) {
      images.add(c.image);
      const binary = binaryOf(c);
      check(/^latchkey(-control|-relay|-relay-netraw|-relay-fastpath|ctl)$/.test(binary), `${where}: ${owner}/${c.name} runs ${binary}`);
      check(c.command && c.command[0] === `/usr/local/bin/${binary}`, `${where}: ${owner}/${c.name}: command must be /usr/local/bin/${binary}`);
      const accepted = flagsOf(helpDir, flagsBinary(binary));
      const flags = flagArgs([...(c.command || []), ...(c.args || [])]);
      for (const flag of Object.keys(flagArgs(c.args || []))) {
        check(accepted.has(flag), `${where}: ${owner}/${c.name}: ${binary} has no flag --${flag}`);
      }
      check(flags.allow_insecure === undefined || flags.allow_insecure === 'false', `${where}: ${owner}/${c.name}: --allow_insecure (plaintext gRPC)`);
      for (const flag of ['tls_cert', 'tls_key', 'tls_ca']) {
        check(flags[flag] === undefined, `${where}: ${owner}/${c.name}: --${flag} overrides the config's tls block (keep TLS in the config)`);
      }
      const preStop = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
      if (preStop) {
        const m = /\/usr\/local\/bin\/(latchkey[a-z-]*)/.exec(preStop.command.join(' '));
        check(m, `${where}: ${owner}/${c.name}: preStop runs no latchkey binary`);
        // latchkeyctl needs an operator certificate, which no pod here has (and a worker may not call
        // DrainWorker): a relay drains itself on SIGTERM.
        check(!m || m[1] !== 'latchkeyctl', `${where}: ${owner}/${c.name}: preStop runs latchkeyctl, which has no operator certificate here`);
        if (m) {
          const hookFlags = flagsOf(helpDir, flagsBinary(m[1]));
          for (const flag of Object.keys(flagArgs(preStop.command))) {
            check(hookFlags.has(flag), `${where}: ${owner}/${c.name}: preStop: ${m[1]} has no flag --${flag}`);
          }
        }
      }
    }
  }
  check(images.size === 1, `${where}: containers use ${images.size} images (${[...images]}), want one`);
  for (const image of images) check(/(^|\/)latchkey:[\w.-]+$/.test(image), `${where}: image ${image} is not latchkey:TAG`);
  for (const image of redisImages) {
    check(/(^|\/)latchkey-redis:[\w.-]+$/.test(image), `${where}: Redis image ${image} is not latchkey-redis:TAG`);
    const tag = (i) => i.slice(i.lastIndexOf(':') + 1);
    check([...images].every((i) => tag(i) === tag(image)), `${where}: latchkey-redis:${tag(image)} and ${[...images]} differ in version`);
  }

  // No config anywhere turns plaintext on.
  for (const cm of objs.filter((o) => o.kind === 'ConfigMap')) {
    for (const [key, value] of Object.entries(cm.data || {})) {
      if (!key.endsWith('.textproto')) continue;
      let parsed;
      try {
        parsed = parseTextproto(value);
      } catch (e) {
        check(false, `${where}: ConfigMap/${cm.metadata.name} ${key}: ${e.message}`);
        continue;
      }
      check(!(parsed.tls && parsed.tls.allow_insecure === true), `${where}: ConfigMap/${cm.metadata.name} ${key}: tls.allow_insecure is on`);
    }
  }

  const certManager = objs.some((o) => o.kind === 'Certificate');
  const info = {};

  // Control: Deployment, Service and PDB agree on labels and ports; the config's listen ports are the
  // container's; gRPC probes on the health port; mutual TLS from a mounted Secret.
  const control = find(objs, 'Deployment', 'latchkey-control');
  const service = find(objs, 'Service', 'latchkey-control');
  const pdb = find(objs, 'PodDisruptionBudget', 'latchkey-control');
  check(control && service && pdb, `${where}: control Deployment, Service and PodDisruptionBudget must exist`);
  let workerAddress;
  let controlTrustDomain;
  let controlSecret;
  if (control && service && pdb) {
    const pod = control.spec.template.spec;
    const podLabels = control.spec.template.metadata.labels;
    const c = pod.containers.find((x) => x.name === 'control');
    const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
    info.control = { name: 'control', labels: podLabels, ports };
    for (const n of ['api', 'workers', 'health', 'metrics']) check(ports[n] !== undefined, `${where}: control has no container port named ${n}`);
    checkProbes(c, `${where}: control`, { healthPort: ports.health, tlsPorts: [ports.api, ports.workers], liveness: 'grpc' });
    check(matches(service.spec.selector, podLabels), `${where}: Service selector does not match control pods`);
    check(matches(pdb.spec.selector.matchLabels, podLabels), `${where}: PDB selector does not match control pods`);
    for (const sp of service.spec.ports) {
      check(ports[sp.targetPort] !== undefined || Object.values(ports).includes(sp.targetPort),
        `${where}: Service port ${sp.name} targets ${sp.targetPort}, not a control container port`);
    }
    const servicePort = (n) => service.spec.ports.find((p) => p.name === n);
    for (const n of ['api', 'workers']) {
      const sp = servicePort(n);
      check(sp && sp.port === ports[n] && (sp.targetPort === n || sp.targetPort === ports[n]), `${where}: Service needs port ${n} ${ports[n]} -> container port ${n}`);
    }
    check(!servicePort('health'), `${where}: the plaintext health port is for the kubelet only, not a Service port`);
    const config = configMapFile(objs, pod, c, 'config');
    check(config !== undefined, `${where}: control --config must be a file of a mounted ConfigMap`);
    let fields = {};
    try {
      fields = parseTextproto(config || '');
    } catch (e) {
      check(false, `${where}: control.textproto: ${e.message}`);
    }
    check(portOf(fields.listen) === ports.api, `${where}: control listen ${fields.listen} vs containerPort api ${ports.api}`);
    check(portOf(fields.worker_listen) === ports.workers, `${where}: control worker_listen ${fields.worker_listen} vs containerPort workers ${ports.workers}`);
    check(portOf(fields.health_listen) === ports.health, `${where}: control health_listen ${fields.health_listen} vs containerPort health ${ports.health}`);
    check(portOf(fields.metrics_listen) === ports.metrics, `${where}: control metrics_listen ${fields.metrics_listen} vs containerPort metrics ${ports.metrics}`);
    // The binary's own defaults, which docs and latchkeyctl assume, are the ports used here too.
    for (const [flag, n] of [['listen', 'api'], ['worker_listen', 'workers'], ['metrics_listen', 'metrics']]) {
      const def = flagDefault(helpDir, 'latchkey-control', flag);
      check(portOf(def) === ports[n], `${where}: control containerPort ${n} ${ports[n]} vs --${flag} default ${def}`);
    }
    const tlsSources = checkTlsFiles(`${where}: control`, pod, c, fields.tls);
    controlTrustDomain = (fields.tls && fields.tls.trust_domain) || 'latchkey';
    if (tlsSources && tlsSources.cert_file && tlsSources.cert_file.kind === 'secret') {
      const src = tlsSources.cert_file;
      controlSecret = src.volume.secret.secretName;
      // Whole-Secret mounts: a renewed Secret reaches the files, which control re-reads.
      for (const s of Object.values(tlsSources)) check(s && s.whole, `${where}: control's TLS files must come from a whole-Secret mount (subPath mounts are never refreshed)`);
      check(Object.values(tlsSources).every((s) => s && s.kind === 'secret' && s.volume.secret.secretName === controlSecret), `${where}: control's certificate, key and CA must come from one Secret`);
      check(src.key === 'tls.crt' && tlsSources.key_file.key === 'tls.key' && tlsSources.ca_file.key === 'ca.crt',
        `${where}: control's Secret keys must be tls.crt, tls.key, ca.crt (cert-manager's, and create-secrets.sh's)`);
    }
    workerAddress = `${service.metadata.name}:${servicePort('workers') && servicePort('workers').port}`;
    const replicas = control.spec.replicas;
    if (pdb.spec.minAvailable !== undefined) check(pdb.spec.minAvailable < replicas, `${where}: PDB minAvailable ${pdb.spec.minAvailable} blocks every eviction with ${replicas} replicas`);
    if (options.ha) {
      // Interchangeable replicas sharing the Redis store: at least three, spread over nodes, rolled
      // and drained one at a time, scaled from that floor; the config is base's plus the store.
      check(replicas >= 3, `${where}: ha needs at least 3 control replicas, has ${replicas}`);
      const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.name === 'latchkey-control');
      check(hpa && hpa.spec.scaleTargetRef.kind === 'Deployment', `${where}: ha ships an HPA for the control Deployment`);
      if (hpa) check(hpa.spec.minReplicas >= 3 && hpa.spec.minReplicas <= replicas, `${where}: HPA minReplicas ${hpa.spec.minReplicas} must be at least 3 and at most the Deployment's ${replicas}`);
      if (hpa && pdb.spec.minAvailable !== undefined) check(hpa.spec.minReplicas > pdb.spec.minAvailable, `${where}: HPA minReplicas must exceed PDB minAvailable`);
      check(pdb.spec.maxUnavailable === 1 || (pdb.spec.minAvailable !== undefined && pdb.spec.minAvailable === replicas - 1),
        `${where}: control's PodDisruptionBudget must let a drain take one replica at a time`);
      const strategy = control.spec.strategy || {};
      check(strategy.type === 'RollingUpdate' && strategy.rollingUpdate && strategy.rollingUpdate.maxUnavailable === 0,
        `${where}: ha rolls control with maxUnavailable 0`);
      const anti = (pod.affinity && pod.affinity.podAntiAffinity) || {};
      const terms = [...(anti.requiredDuringSchedulingIgnoredDuringExecution || []),
        ...(anti.preferredDuringSchedulingIgnoredDuringExecution || []).map((t) => t.podAffinityTerm)];
      check(terms.some((t) => t.topologyKey === 'kubernetes.io/hostname' && selectorMatches(t.labelSelector, podLabels)),
        `${where}: control needs pod anti-affinity by kubernetes.io/hostname`);
      check(typeof fields.store === 'string' && fields.store.startsWith('redis+sentinel://'),
        `${where}: control's store must be redis+sentinel://..., got ${fields.store}`);
      if (options.repo) {
        const strip = (f) => Object.fromEntries(Object.entries(f).filter(([k]) => !k.startsWith('store')));
        try {
          const base = parseTextproto(fs.readFileSync(path.join(options.repo, 'deploy/k8s/base/control.textproto'), 'utf8'));
          assert.deepStrictEqual(strip(fields), strip(base));
        } catch (e) {
          check(false, `${where}: control.textproto differs from base's in more than the store: ${e.message.split('\n').slice(0, 12).join(' ')}`);
        }
      }
      info.store = fields.store;
    } else {
      check(replicas === 1 && control.spec.strategy && control.spec.strategy.type === 'Recreate',
        `${where}: one control with the in-memory store, replaced with Recreate`);
    }
  }

  // Relay: host network, media nodes, flags from the node, drain time, capabilities, mutual TLS with a
  // certificate whose name is its worker id.
  const relay = find(objs, 'DaemonSet', 'latchkey-relay');
  check(relay, `${where}: relay DaemonSet must exist`);
  let udp = { min: 30000, max: 39999 };
  if (relay) {
    const pod = relay.spec.template.spec;
    const c = pod.containers.find((x) => x.name === 'relay');
    const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
    info.relay = { name: 'relay', labels: relay.spec.template.metadata.labels, ports };
    checkProbes(c, `${where}: relay`, { healthPort: ports.health, tlsPorts: [ports.grpc], liveness: 'tcp' });
    check(pod.hostNetwork === true, `${where}: relay must use the host network`);
    check(pod.dnsPolicy === 'ClusterFirstWithHostNet', `${where}: relay on the host network needs dnsPolicy ClusterFirstWithHostNet`);
    check(pod.nodeSelector && Object.keys(pod.nodeSelector).length > 0, `${where}: relay needs a nodeSelector for media nodes`);
    const args = flagArgs(c.args);
    const env = envFieldRefs(c);
    check(portOf(args.listen) === ports.grpc, `${where}: relay --listen ${args.listen} vs containerPort grpc ${ports.grpc}`);
    check(portOf(args.health_listen) === ports.health, `${where}: relay --health_listen ${args.health_listen} vs containerPort health ${ports.health}`);
    check(portOf(args.metrics_listen) === ports.metrics, `${where}: relay --metrics_listen ${args.metrics_listen} vs containerPort metrics ${ports.metrics}`);
    for (const [flag, n] of [['listen', 'grpc'], ['metrics_listen', 'metrics']]) {
      const def = flagDefault(helpDir, 'latchkey-relay', flag);
      check(portOf(def) === ports[n], `${where}: relay containerPort ${n} ${ports[n]} vs --${flag} default ${def}`);
    }
    for (const flag of ['advertised_ip', 'media_ip', 'listen', 'health_listen']) {
      const m = /\$\((\w+)\)/.exec(args[flag] || '');
      check(m && env[m[1]] === 'status.hostIP', `${where}: relay --${flag} must come from the node (status.hostIP)`);
    }
    const idVar = (/^\$\((\w+)\)$/.exec(args.worker_id || '') || [])[1];
    check(idVar && ['spec.nodeName', 'metadata.name'].includes(env[idVar]), `${where}: relay --worker_id must be the node or pod name (a fieldRef), got ${args.worker_id}`);
    check(Number(args.threads) === cpuCores(c.resources.limits.cpu), `${where}: relay --threads ${args.threads} must equal its CPU limit ${c.resources.limits.cpu}`);
    const config = configMapFile(objs, pod, c, 'config');
    check(config !== undefined, `${where}: relay --config must be a file of a mounted ConfigMap`);
    let fields = {};
    try {
      fields = parseTextproto(config || '');
    } catch (e) {
      check(false, `${where}: relay.textproto: ${e.message}`);
    }
    udp = { min: fields.port_min || 30000, max: fields.port_max || 39999 };
    check(fields.control === workerAddress, `${where}: relay dials control at ${fields.control}, the Service's worker port is ${workerAddress}`);
    check(portOf(flagDefault(helpDir, 'latchkey-relay', 'control')) === portOf(fields.control),
      `${where}: relay dials control on another port than its --control default`);
    // The relay's identity: its certificate's NAME must be its worker id.
    const tlsSources = checkTlsFiles(`${where}: relay`, pod, c, fields.tls);
    const td = (fields.tls && fields.tls.trust_domain) || 'latchkey';
    check(td === controlTrustDomain, `${where}: relay trust domain ${td}, control's ${controlTrustDomain}`);
    const cert = tlsSources && tlsSources.cert_file;
    if (cert && cert.kind === 'secret') {
      // base: one pair per node in the Secret, mounted by the worker id's variable.
      check(env[idVar] === 'spec.nodeName', `${where}: relay: Secret pairs are per node; --worker_id must be the node name`);
      check(cert.byExpr && cert.key === `$(${idVar}).crt` && tlsSources.key_file.byExpr && tlsSources.key_file.key === `$(${idVar}).key`,
        `${where}: relay: the certificate and key must be the Secret's $(${idVar}).crt/.key, the pair named after --worker_id (got ${cert.key}, ${tlsSources.key_file && tlsSources.key_file.key})`);
      check(tlsSources.ca_file && tlsSources.ca_file.key === 'ca.crt', `${where}: relay: CA must be the Secret's ca.crt`);
      check(Object.values(tlsSources).every((s) => s.kind === 'secret' && s.volume.secret.secretName === cert.volume.secret.secretName), `${where}: relay: one Secret for certificate, key and CA`);
      check(cert.volume.secret.secretName !== controlSecret, `${where}: relay must not mount control's Secret`);
    } else if (cert && cert.kind === 'csi') {
      const attrs = cert.volume.csi.volumeAttributes || {};
      check(env[idVar] === 'metadata.name', `${where}: relay: the csi certificate names the pod; --worker_id must be the pod name`);
      check(attrs['csi.cert-manager.io/uri-sans'] === `spiffe://${td}/latchkey/worker/\${POD_NAME}`,
        `${where}: relay: csi uri-sans ${attrs['csi.cert-manager.io/uri-sans']}, want spiffe://${td}/latchkey/worker/\${POD_NAME}`);
      check(attrs['csi.cert-manager.io/key-algorithm'] === 'ECDSA' && ['256', undefined].includes(attrs['csi.cert-manager.io/key-size']), `${where}: relay: csi key must be ECDSA P-256`);
      const usages = String(attrs['csi.cert-manager.io/key-usages'] || '').split(',').map((s) => s.trim());
      check(usages.includes('server auth') && usages.includes('client auth'), `${where}: relay: csi key-usages need server auth and client auth`);
      check(attrs['csi.cert-manager.io/renew-before'], `${where}: relay: csi renew-before missing`);
      const issuer = objs.find((o) => o.kind === (attrs['csi.cert-manager.io/issuer-kind'] || 'Issuer') && o.metadata.name === attrs['csi.cert-manager.io/issuer-name']);
      check(issuer && issuer.spec.ca, `${where}: relay: csi issuer ${attrs['csi.cert-manager.io/issuer-name']} must be the CA Issuer`);
    }
    check(!(c.lifecycle && c.lifecycle.preStop), `${where}: relay needs no preStop hook: it drains on SIGTERM`);
    const drain = fields.drain_grace === undefined ? 30 : durationSeconds(fields.drain_grace);
    check(pod.terminationGracePeriodSeconds > drain + 5,
      `${where}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed drain_grace ${drain} s plus a margin`);
    check(relay.spec.updateStrategy.rollingUpdate && !relay.spec.updateStrategy.rollingUpdate.maxSurge,
      `${where}: relay updates cannot surge (host ports)`);
  }

  if (certManager) {
    const identities = checkCertManager(where, objs, controlTrustDomain || 'latchkey');
    check(controlSecret && identities[controlSecret] && identities[controlSecret].role === 'control',
      `${where}: no control Certificate for the Secret ${controlSecret} that control mounts`);
  }
  if (info.control && info.relay) checkNetworkPolicies(where, objs, { control: info.control, relay: info.relay, udp });
  const redis = find(objs, 'StatefulSet', REDIS);
  check(!!redis === !!options.ha, `${where}: ${options.ha ? 'ha needs' : 'only ha has'} the Redis StatefulSet`);
  if (redis && info.control && info.relay) checkRedis(where, objs, redis, info);
}

const REDIS = 'latchkey-redis';
const REDIS_ENTRYPOINT = '/usr/local/bin/redis-entrypoint.sh';

// "directive value" lines of a redis.conf / sentinel.conf (comments and blank lines dropped).
function redisDirectives(text) {
  return (text || '').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/));
}

// overlays/ha's Redis (deploy/k8s/redis): three nodes, each a server and its sentinel on a node of its
// own with a volume, drained one at a time, reachable only from control and from each other, with
// the durability settings docs/OPERATIONS.md states; control's store names exactly its sentinels.
function checkRedis(where, objs, sts, info) {
  const label = `${where}: StatefulSet/${REDIS}`;
  const spec = sts.spec;
  const pod = spec.template.spec;
  const labels = spec.template.metadata.labels;
  const replicas = spec.replicas;
  check(replicas === 3, `${label}: want 3 replicas (a primary, two replicas, three sentinels), got ${replicas}`);
  check(spec.podManagementPolicy === 'Parallel', `${label}: podManagementPolicy Parallel (the sentinels, not pod order, choose the primary)`);
  check(spec.updateStrategy && spec.updateStrategy.type === 'OnDelete', `${label}: updateStrategy OnDelete (replicas first, the primary after a failover)`);
  const claims = (spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
  check(claims.length > 0, `${label}: needs volumeClaimTemplates (the data must outlive the pod)`);
  const svc = find(objs, 'Service', spec.serviceName);
  check(svc && svc.spec.clusterIP === 'None' && matches(svc.spec.selector, labels),
    `${label}: serviceName ${spec.serviceName} must be a headless Service selecting its pods`);
  check(svc && svc.spec.publishNotReadyAddresses === true, `${label}: the headless Service must publish not-ready pods (peers must find a starting node)`);
  const anti = ((pod.affinity && pod.affinity.podAntiAffinity) || {}).requiredDuringSchedulingIgnoredDuringExecution || [];
  check(anti.some((t) => t.topologyKey === 'kubernetes.io/hostname' && selectorMatches(t.labelSelector, labels)),
    `${label}: needs required pod anti-affinity by kubernetes.io/hostname (one node per pod)`);
  const pdbs = objs.filter((o) => o.kind === 'PodDisruptionBudget' && selectorMatches(o.spec.selector, labels));
  check(pdbs.length === 1 && pdbs[0].spec.maxUnavailable === 1, `${label}: needs one PodDisruptionBudget with maxUnavailable 1`);

  const server = pod.containers.find((c) => c.name === 'redis');
  const sentinel = pod.containers.find((c) => c.name === 'sentinel');
  check(server && sentinel, `${label}: containers redis and sentinel`);
  if (!server || !sentinel) return;
  const env = (c) => Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
  const port = (c, n) => ((c.ports || []).find((p) => p.name === n) || {}).containerPort;
  const redisPort = port(server, 'redis');
  const sentinelPort = port(sentinel, 'sentinel');
  check(redisPort && sentinelPort, `${label}: container ports redis and sentinel`);
  const names = Array.from({ length: replicas }, (_, i) => `${sts.metadata.name}-${i}.${spec.serviceName}`);
  const nodes = names.map((n) => `${n}:${redisPort}:${sentinelPort}`).join(' ');
  const probeArg = (probe) => probe && probe.exec && probe.exec.command[0] === REDIS_ENTRYPOINT && probe.exec.command[1];
  for (const [c, mode, ready] of [[server, 'server', 'ready'], [sentinel, 'sentinel', 'sentinel-ready']]) {
    const l = `${label}/${c.name}`;
    check(JSON.stringify(c.command) === JSON.stringify([REDIS_ENTRYPOINT, mode]), `${l}: command must be ${REDIS_ENTRYPOINT} ${mode}`);
    check(/(^|\/)latchkey-redis:/.test(c.image), `${l}: image ${c.image}`);
    const e = env(c);
    check(e.LK_REDIS_NODES === nodes, `${l}: LK_REDIS_NODES must list every pod's DNS name in order: want "${nodes}", got "${e.LK_REDIS_NODES}"`);
    check(Number(e.LK_REDIS_QUORUM) === Math.floor(replicas / 2) + 1, `${l}: LK_REDIS_QUORUM ${e.LK_REDIS_QUORUM}, want a majority of ${replicas}`);
    check(e.LK_REDIS_MASTER_NAME === env(server).LK_REDIS_MASTER_NAME && e.LK_REDIS_DIR === env(server).LK_REDIS_DIR &&
      e.LK_REDIS_CONF_DIR === env(server).LK_REDIS_CONF_DIR, `${l}: server and sentinel must agree on the group, data and config directories`);
    check(probeArg(c.readinessProbe) === ready, `${l}: readinessProbe must run the entrypoint's ${ready}`);
    check(c.livenessProbe && c.livenessProbe.exec, `${l}: livenessProbe (exec) missing`);
    const data = (c.volumeMounts || []).find((m) => m.mountPath === e.LK_REDIS_DIR);
    check(data && claims.includes(data.name), `${l}: LK_REDIS_DIR ${e.LK_REDIS_DIR} must be a volumeClaimTemplate's mount`);
  }
  check(probeArg(server.livenessProbe) === 'live', `${label}/redis: livenessProbe must run the entrypoint's live (LOADING is alive)`);
  const preStop = server.lifecycle && server.lifecycle.preStop && server.lifecycle.preStop.exec;
  check(preStop && JSON.stringify(preStop.command) === JSON.stringify([REDIS_ENTRYPOINT, 'pre-stop']), `${label}/redis: preStop must hand the primary over (${REDIS_ENTRYPOINT} pre-stop)`);

  // The configs the entrypoint starts from.
  const e = env(server);
  const confMount = (server.volumeMounts || []).find((m) => m.mountPath === e.LK_REDIS_CONF_DIR);
  const confVolume = confMount && (pod.volumes || []).find((v) => v.name === confMount.name);
  const cm = confVolume && confVolume.configMap && find(objs, 'ConfigMap', confVolume.configMap.name);
  check(cm && cm.data && cm.data['redis.conf'] && cm.data['sentinel.conf'], `${label}: LK_REDIS_CONF_DIR must be a ConfigMap with redis.conf and sentinel.conf`);
  if (cm && cm.data) {
    const conf = Object.fromEntries(redisDirectives(cm.data['redis.conf']).map((w) => [w[0], w.slice(1).join(' ')]));
    check(conf.appendonly === 'yes', `${label}: redis.conf: appendonly must be yes (AOF), got ${conf.appendonly}`);
    check(conf.appendfsync === 'everysec', `${label}: redis.conf: appendfsync must be everysec, got ${conf.appendfsync}`);
    check(Number(conf['min-replicas-to-write']) >= 1, `${label}: redis.conf: min-replicas-to-write must be at least 1, got ${conf['min-replicas-to-write']}`);
    const lag = Number(conf['min-replicas-max-lag']);
    check(lag >= 1 && lag <= 10, `${label}: redis.conf: min-replicas-max-lag must be 1-10 s, got ${conf['min-replicas-max-lag']}`);
    check(conf['maxmemory-policy'] === 'noeviction', `${label}: redis.conf: maxmemory-policy must be noeviction (a store), got ${conf['maxmemory-policy']}`);
    const mb = /^(\d+)mb$/i.exec(conf.maxmemory || '');
    const limit = /^(\d+)Gi$/.exec(String(server.resources.limits.memory));
    check(mb && limit && Number(mb[1]) * 1.5 <= Number(limit[1]) * 1024,
      `${label}: maxmemory ${conf.maxmemory} needs room below the memory limit ${server.resources.limits.memory} (copy-on-write, buffers)`);
    for (const d of ['port', 'bind', 'dir', 'replicaof', 'replica-announce-ip']) check(conf[d] === undefined, `${label}: redis.conf sets ${d}, which the entrypoint writes per node`);
    const name = e.LK_REDIS_MASTER_NAME;
    const sconf = redisDirectives(cm.data['sentinel.conf']);
    const per = (d) => (sconf.find((w) => w[0] === 'sentinel' && w[1] === d && w[2] === name) || [])[3];
    const down = Number(per('down-after-milliseconds'));
    check(down >= 2000 && down <= 5000, `${label}: sentinel.conf: down-after-milliseconds ${name} must be 2000-5000, got ${per('down-after-milliseconds')}`);
    check(Number(per('failover-timeout')) > 0, `${label}: sentinel.conf: failover-timeout ${name} missing`);
    check(!sconf.some((w) => w[0] === 'sentinel' && w[1] === 'monitor'), `${label}: sentinel.conf must not name the primary (the entrypoint does, from the sentinels)`);
  }

  // Control's store: exactly these sentinels, this group.
  const m = /^redis\+sentinel:\/\/([^/]+)\/(.+)$/.exec(info.store || '');
  check(m, `${where}: control's store ${info.store} is not redis+sentinel://HOSTS/NAME`);
  if (m) {
    const want = names.map((n) => `${n}:${sentinelPort}`).join(',');
    check(m[1] === want, `${where}: control's store must name the Redis pods' sentinels ${want}, got ${m[1]}`);
    check(m[2] === e.LK_REDIS_MASTER_NAME, `${where}: control's store names group ${m[2]}, the sentinels watch ${e.LK_REDIS_MASTER_NAME}`);
  }

  // Only control and the Redis pods reach Redis and Sentinel.
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
  const nsLabels = { 'kubernetes.io/metadata.name': 'latchkey' };
  for (const [n, number] of [['redis', redisPort], ['sentinel', sentinelPort]]) {
    const l = `${where}: NetworkPolicy for ${REDIS} port ${n} (${number})`;
    const g = grants(policies, labels, { name: n, number, protocol: 'TCP' });
    check(g.length > 0, `${l}: no policy opens it (control could not reach it)`);
    check(g.every((x) => x.from), `${l}: a rule without "from" admits every source`);
    const peers = g.flatMap((x) => x.from || []);
    check(peers.every((p) => !p.ipBlock && !p.namespaceSelector && p.podSelector && !isEmptySelector(p.podSelector) &&
      (selectorMatches(p.podSelector, info.control.labels) || selectorMatches(p.podSelector, labels))),
    `${l}: only control pods and Redis pods (${JSON.stringify(peers)})`);
    check(peers.some((p) => peerAdmitsPod(p, nsLabels, info.control.labels)), `${l}: control pods must be admitted`);
    check(peers.some((p) => peerAdmitsPod(p, nsLabels, labels)), `${l}: the Redis pods must reach each other`);
    check(!peers.some((p) => peerAdmitsPod(p, nsLabels, info.relay.labels)), `${l}: relays must not reach Redis`);
  }
}

function githubAnchors(markdown) {
  const anchors = new Set();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)) {
    anchors.add(m[1].toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-'));
  }
  return anchors;
}

function rulesFile(repo) {
  return path.join(repo, 'deploy/monitoring/prometheus/latchkey-rules.yml');
}

function checkMonitoring(repo, monitoringFile, overlayFile) {
  const objs = loadAll(monitoringFile);
  const workloads = loadAll(overlayFile);
  const where = 'deploy/monitoring';
  for (const o of objs) validateSchema(o, where);
  checkNamespaces(objs, where);

  const rules = YAML.parse(fs.readFileSync(rulesFile(repo), 'utf8'));
  const alertJobs = new Set();
  for (const g of rules.groups) for (const r of g.rules) for (const m of (r.expr || '').matchAll(/job="([^"]+)"/g)) alertJobs.add(m[1]);

  const service = find(workloads, 'Service', 'latchkey-control');
  const sm = objs.find((o) => o.kind === 'ServiceMonitor');
  check(sm && service && matches(sm.spec.selector.matchLabels, service.metadata.labels), `${where}: ServiceMonitor must select the control Service`);
  if (sm && service) {
    for (const e of sm.spec.endpoints) check(service.spec.ports.some((p) => p.name === e.port), `${where}: ServiceMonitor port ${e.port} is not a Service port`);
    const job = sm.spec.jobLabel ? service.metadata.labels[sm.spec.jobLabel] : service.metadata.name;
    check(alertJobs.has(job), `${where}: ServiceMonitor job ${job} is not a job the alerts use (${[...alertJobs]})`);
  }
  const relay = find(workloads, 'DaemonSet', 'latchkey-relay');
  const pm = objs.find((o) => o.kind === 'PodMonitor');
  check(pm && relay && matches(pm.spec.selector.matchLabels, relay.spec.template.metadata.labels), `${where}: PodMonitor must select the relay pods`);
  if (pm && relay) {
    const c = relay.spec.template.spec.containers[0];
    for (const e of pm.spec.podMetricsEndpoints) check(c.ports.some((p) => p.name === e.port), `${where}: PodMonitor port ${e.port} is not a relay container port`);
    const job = relay.spec.template.metadata.labels[pm.spec.jobLabel];
    check(alertJobs.has(job), `${where}: PodMonitor job ${job} is not a job the alerts use (${[...alertJobs]})`);
  }

  // The PrometheusRule is the rules file, for prometheus-operator.
  const pr = objs.find((o) => o.kind === 'PrometheusRule');
  try {
    assert.deepStrictEqual(pr && pr.spec.groups, rules.groups);
  } catch (e) {
    check(false, `${where}: prometheusrule.yaml differs from latchkey-rules.yml; run: NODE_PATH=build/tests/deploy/node/node_modules node tests/deploy/validate.js sync-rules --repo .`);
  }

  // Every alert: a severity, a runbook anchor that exists, a unit test that expects it to fire.
  const ops = fs.readFileSync(path.join(repo, 'docs/OPERATIONS.md'), 'utf8');
  const anchors = githubAnchors(ops);
  const tests = YAML.parse(fs.readFileSync(path.join(repo, 'deploy/monitoring/prometheus/latchkey-rules.test.yml'), 'utf8'));
  const tested = new Set();
  for (const t of tests.tests) for (const a of t.alert_rule_test || []) if ((a.exp_alerts || []).length) tested.add(a.alertname);
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);
  check(alerts.length >= 6, `${where}: only ${alerts.length} alerts`);
  for (const a of alerts) {
    check(['critical', 'warning'].includes(a.labels && a.labels.severity), `${a.alert}: severity must be critical or warning`);
    const url = (a.annotations || {}).runbook_url || '';
    const m = /docs\/OPERATIONS\.md#([\w-]+)$/.exec(url);
    check(m && anchors.has(m[1]), `${a.alert}: runbook_url ${url} must point at a heading of docs/OPERATIONS.md`);
    check(tested.has(a.alert), `${a.alert}: no promtool unit test expects it to fire`);
  }

  const dash = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'latchkey-grafana-dashboard');
  check(dash, `${where}: Grafana dashboard ConfigMap missing`);
  if (dash) {
    const json = JSON.parse(Object.values(dash.data)[0]);
    const text = JSON.stringify(json);
    // The panels the issue asks for.
    for (const metric of ['latchkey_sessions_active', 'latchkey_relay_packets_total', 'latchkey_relay_drops_total',
      'latchkey_relay_latches_total', 'latchkey_bindings', 'latchkey_keepalive_rtt_seconds_bucket', 'latchkey_rpc_duration_seconds_bucket']) {
      check(text.includes(metric), `${where}: dashboard has no panel on ${metric}`);
    }
  }
}

function checkAutoscaling(repo, file, overlayFile) {
  const objs = loadAll(file);
  const workloads = loadAll(overlayFile);
  const where = 'deploy/k8s/autoscaling/relay-capacity';
  const extra = loadAll(path.join(repo, 'deploy/k8s/autoscaling/relay-capacity/hpa-external.yaml'));
  for (const o of [...objs, ...extra]) validateSchema(o, where);
  checkNamespaces(objs, where);
  const relay = find(workloads, 'DaemonSet', 'latchkey-relay');
  const placeholder = find(objs, 'Deployment', 'latchkey-relay-capacity');
  check(placeholder, `${where}: placeholder Deployment missing`);
  if (placeholder && relay) {
    const pod = placeholder.spec.template.spec;
    try {
      assert.deepStrictEqual(pod.nodeSelector, relay.spec.template.spec.nodeSelector);
      assert.deepStrictEqual(pod.tolerations, relay.spec.template.spec.tolerations);
    } catch (e) {
      check(false, `${where}: placeholders must go where relays go (nodeSelector, tolerations)`);
    }
    const anti = pod.affinity && pod.affinity.podAntiAffinity && pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
    check(anti && anti.some((t) => t.topologyKey === 'kubernetes.io/hostname'), `${where}: one placeholder per node`);
  }
  const rules = fs.readFileSync(rulesFile(repo), 'utf8');
  const so = objs.find((o) => o.kind === 'ScaledObject');
  check(so && so.spec.scaleTargetRef.name === 'latchkey-relay-capacity', `${where}: ScaledObject must scale the placeholders`);
  for (const t of (so && so.spec.triggers) || []) {
    for (const m of t.metadata.query.matchAll(/latchkey:[\w:]+/g)) check(rules.includes(`record: ${m[0]}`), `${where}: ${m[0]} is no recording rule`);
  }
  const hpa = extra.find((o) => o.kind === 'HorizontalPodAutoscaler');
  check(hpa && hpa.spec.scaleTargetRef.name === 'latchkey-relay-capacity', `${where}: HPA must scale the placeholders`);
}

// Broken copies of a rendered overlay, one per invariant: `manifests` must reject each
// (tests/deploy/manifests.sh). Each throws when its target is missing, so that a mutation that
// changes nothing cannot pass unnoticed.
function mustFind(objs, kind, name) {
  const o = objs.find((x) => x.kind === kind && (x.metadata.name === name || (kind === 'ConfigMap' && x.metadata.name.startsWith(`${name}-`))));
  if (!o) throw new Error(`mutation target ${kind}/${name} not found`);
  return o;
}
function containerIn(obj, name) {
  const c = obj.spec.template.spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`container ${name} not found`);
  return c;
}
function ruleFor(policy, port) {
  const rule = (policy.spec.ingress || []).find((r) => (r.ports || []).some((p) => p.port === port));
  if (!rule) throw new Error(`${policy.metadata.name}: no rule for port ${port}`);
  return rule;
}
function editConfig(objs, name, key, edit) {
  const cm = mustFind(objs, 'ConfigMap', name);
  const before = cm.data[key];
  cm.data[key] = edit(before);
  if (cm.data[key] === before) throw new Error(`${name} ${key}: the edit changed nothing`);
}
const relayLabels = { 'app.kubernetes.io/name': 'latchkey-relay' };
const MUTATIONS = {
  // NetworkPolicies
  'api-open-to-all': (o) => { delete ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-api'), 'api').from; },
  'api-from-every-namespace': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-api'), 'api').from.push({ namespaceSelector: {} }); },
  'api-open-to-relays': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-api'), 'api').from.push({ podSelector: { matchLabels: relayLabels } }); },
  'api-from-node-addresses': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-api'), 'api').from.push({ ipBlock: { cidr: '10.0.0.0/8' } }); },
  'workers-open-to-pbx': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-workers'), 'workers').from.push({ namespaceSelector: { matchLabels: { 'latchkey.io/pbx': 'true' } } }); },
  'workers-from-internet': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-workers'), 'workers').from.push({ ipBlock: { cidr: '0.0.0.0/0' } }); },
  'workers-uncovered': (o) => { o.splice(o.indexOf(mustFind(o, 'NetworkPolicy', 'latchkey-control-workers')), 1); },
  'api-covered-twice': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-metrics'), 'metrics').ports.push({ port: 'api', protocol: 'TCP' }); },
  'metrics-from-every-namespace': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-metrics'), 'metrics').from = [{ namespaceSelector: {} }]; },
  'metrics-from-pbx': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-relay'), 'metrics').from.push({ namespaceSelector: { matchLabels: { 'latchkey.io/pbx': 'true' } } }); },
  'health-open-to-all': (o) => { delete ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-control-health'), 'health').from; },
  'relay-grpc-open-to-namespace': (o) => { ruleFor(mustFind(o, 'NetworkPolicy', 'latchkey-relay'), 'grpc').from = [{ podSelector: {} }]; },
  'no-default-deny': (o) => {
    const p = o.find((x) => x.kind === 'NetworkPolicy' && isEmptySelector(x.spec.podSelector));
    if (!p) throw new Error('no default-deny policy');
    o.splice(o.indexOf(p), 1);
  },
  'media-closed': (o) => {
    const p = mustFind(o, 'NetworkPolicy', 'latchkey-relay');
    const before = p.spec.ingress.length;
    p.spec.ingress = p.spec.ingress.filter((r) => !(r.ports || []).some((x) => x.protocol === 'UDP'));
    if (p.spec.ingress.length === before) throw new Error('no UDP rule');
  },
  'namespace-labelled-pbx': (o) => { const ns = mustFind(o, 'Namespace', 'latchkey'); ns.metadata.labels = { ...(ns.metadata.labels || {}), 'latchkey.io/pbx': 'true' }; },
  // Mutual TLS
  'control-allow-insecure': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace(/^tls \{/m, 'tls {\n  allow_insecure: true')),
  'relay-allow-insecure-flag': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').args.push('--allow_insecure'); },
  'control-tls-removed': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace(/^tls \{[^}]*\}\n/m, '')),
  'relay-tls-removed': (o) => editConfig(o, 'latchkey-relay-config', 'relay.textproto', (t) => t.replace(/^tls \{[^}]*\}\n/m, '')),
  'control-tls-from-emptydir': (o) => {
    const pod = mustFind(o, 'Deployment', 'latchkey-control').spec.template.spec;
    const v = pod.volumes.find((x) => x.name === 'tls');
    if (!v) throw new Error('no tls volume');
    delete v.secret;
    v.emptyDir = {};
  },
  'control-tls-secret-optional': (o) => { mustFind(o, 'Deployment', 'latchkey-control').spec.template.spec.volumes.find((x) => x.name === 'tls').secret.optional = true; },
  'control-key-world-readable': (o) => { mustFind(o, 'Deployment', 'latchkey-control').spec.template.spec.volumes.find((x) => x.name === 'tls').secret.defaultMode = 0o444; },
  'relay-cert-of-another-node': (o) => {
    const m = containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').volumeMounts.find((x) => x.mountPath.endsWith('/tls.crt'));
    if (!m) throw new Error('no tls.crt mount');
    delete m.subPathExpr;
    m.subPath = 'media-1.crt';
  },
  'relay-tls-flags': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').args.push('--tls_cert='); },
  // Ports, probes, dialling
  'control-probe-on-tls-port': (o) => { containerIn(mustFind(o, 'Deployment', 'latchkey-control'), 'control').readinessProbe.grpc.port = 7400; },
  'control-startup-probe-on-worker-port': (o) => { containerIn(mustFind(o, 'Deployment', 'latchkey-control'), 'control').startupProbe.grpc.port = 7401; },
  'relay-probe-on-tls-port': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').readinessProbe.grpc.port = 7410; },
  'relay-liveness-on-tls-port': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').livenessProbe.tcpSocket.port = 7410; },
  'relay-dials-api-port': (o) => editConfig(o, 'latchkey-relay-config', 'relay.textproto', (t) => t.replace('control: "latchkey-control:7401"', 'control: "latchkey-control:7400"')),
  'service-without-worker-port': (o) => {
    const s = mustFind(o, 'Service', 'latchkey-control');
    s.spec.ports = s.spec.ports.filter((p) => p.name !== 'workers');
  },
  'control-worker-listen-elsewhere': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace('worker_listen: "0.0.0.0:7401"', 'worker_listen: "0.0.0.0:7403"')),
  'relay-prestop-drain-via-latchkeyctl': (o) => {
    containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').lifecycle = { preStop: { exec: { command: ['/bin/sh', '-c', 'exec /usr/local/bin/latchkeyctl --server=latchkey-control:7400 --timeout=5s workers drain "$WORKER_ID"'] } } };
  },
  // overlays/ha: control
  'ha-control-one-replica': (o) => { mustFind(o, 'Deployment', 'latchkey-control').spec.replicas = 1; },
  'ha-control-memory-store': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace(/^store: .*$/m, 'store: "memory"')),
  'ha-control-no-anti-affinity': (o) => { delete mustFind(o, 'Deployment', 'latchkey-control').spec.template.spec.affinity; },
  'ha-control-config-drift': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace('max_bindings: 1000000', 'max_bindings: 5000000')),
  'ha-store-another-sentinel': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace('latchkey-redis-2.latchkey-redis:26379', 'latchkey-redis-3.latchkey-redis:26379')),
  'ha-store-another-group': (o) => editConfig(o, 'latchkey-control-config', 'control.textproto', (t) => t.replace(/:26379\/latchkey"/, ':26379/mymaster"')),
  'ha-pdb-two-at-once': (o) => { mustFind(o, 'PodDisruptionBudget', 'latchkey-control').spec.maxUnavailable = 2; },
  // overlays/ha: Redis
  'redis-one-replica': (o) => { mustFind(o, 'StatefulSet', REDIS).spec.replicas = 1; },
  'redis-no-volume-claims': (o) => { delete mustFind(o, 'StatefulSet', REDIS).spec.volumeClaimTemplates; },
  'redis-aof-off': (o) => editConfig(o, 'latchkey-redis-config', 'redis.conf', (t) => t.replace(/^appendonly yes$/m, 'appendonly no')),
  'redis-fsync-never': (o) => editConfig(o, 'latchkey-redis-config', 'redis.conf', (t) => t.replace(/^appendfsync everysec$/m, 'appendfsync no')),
  'redis-no-min-replicas': (o) => editConfig(o, 'latchkey-redis-config', 'redis.conf', (t) => t.replace(/^min-replicas-to-write .*\n/m, '')),
  'redis-evicts': (o) => editConfig(o, 'latchkey-redis-config', 'redis.conf', (t) => t.replace(/^maxmemory-policy noeviction$/m, 'maxmemory-policy allkeys-lru')),
  'redis-slow-failover': (o) => editConfig(o, 'latchkey-redis-config', 'sentinel.conf', (t) => t.replace(/^sentinel down-after-milliseconds latchkey \d+$/m, 'sentinel down-after-milliseconds latchkey 30000')),
  'redis-config-names-primary': (o) => editConfig(o, 'latchkey-redis-config', 'sentinel.conf', (t) => `sentinel monitor latchkey latchkey-redis-0.latchkey-redis 6379 2\n${t}`),
  'redis-no-pdb': (o) => { o.splice(o.indexOf(mustFind(o, 'PodDisruptionBudget', REDIS)), 1); },
  'redis-no-anti-affinity': (o) => { delete mustFind(o, 'StatefulSet', REDIS).spec.template.spec.affinity; },
  'redis-ordered-start': (o) => { mustFind(o, 'StatefulSet', REDIS).spec.podManagementPolicy = 'OrderedReady'; },
  'redis-rolling-update': (o) => { mustFind(o, 'StatefulSet', REDIS).spec.updateStrategy = { type: 'RollingUpdate' }; },
  'redis-service-not-headless': (o) => { delete mustFind(o, 'Service', REDIS).spec.clusterIP; },
  'redis-nodes-missing-one': (o) => {
    const e = containerIn(mustFind(o, 'StatefulSet', REDIS), 'sentinel').env.find((x) => x.name === 'LK_REDIS_NODES');
    e.value = e.value.split(' ').slice(0, 2).join(' ');
  },
  'redis-no-readiness': (o) => { delete containerIn(mustFind(o, 'StatefulSet', REDIS), 'redis').readinessProbe; },
  'redis-no-prestop': (o) => { delete containerIn(mustFind(o, 'StatefulSet', REDIS), 'redis').lifecycle; },
  'redis-as-root': (o) => { Object.assign(mustFind(o, 'StatefulSet', REDIS).spec.template.spec.securityContext, { runAsUser: 0, runAsNonRoot: false }); },
  'redis-open-to-namespace': (o) => { mustFind(o, 'NetworkPolicy', REDIS).spec.ingress[0].from = [{ podSelector: {} }]; },
  'redis-open-to-relays': (o) => { mustFind(o, 'NetworkPolicy', REDIS).spec.ingress[0].from.push({ podSelector: { matchLabels: relayLabels } }); },
  'redis-from-node-addresses': (o) => { mustFind(o, 'NetworkPolicy', REDIS).spec.ingress[0].from.push({ ipBlock: { cidr: '10.0.0.0/8' } }); },
  'redis-control-shut-out': (o) => { mustFind(o, 'NetworkPolicy', REDIS).spec.ingress[0].from.shift(); },
  'redis-image-of-control': (o) => { containerIn(mustFind(o, 'StatefulSet', REDIS), 'redis').image = 'latchkey:0.1.0'; },
  // components/raw-keepalive
  'netraw-privilege-escalation': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.allowPrivilegeEscalation = true; },
  'netraw-extra-capability': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.capabilities.add.push('NET_ADMIN'); },
  'netraw-as-root': (o) => { Object.assign(containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext, { runAsUser: 0, runAsNonRoot: false }); },
  'netraw-keeps-all-capabilities': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.capabilities.drop = []; },
  'netraw-plain-binary': (o) => {
    const c = containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay');
    if (!c.command[0].endsWith('-netraw')) throw new Error('not the netraw binary');
    c.command = ['/usr/local/bin/latchkey-relay'];
  },
  // components/fast-path
  'fastpath-privilege-escalation': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.allowPrivilegeEscalation = true; },
  'fastpath-sys-admin': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.capabilities.add.push('SYS_ADMIN'); },
  'fastpath-net-raw-too': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.capabilities.add.push('NET_RAW'); },
  'fastpath-without-net-admin': (o) => {
    const sc = containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext;
    sc.capabilities.add = sc.capabilities.add.filter((x) => x !== 'NET_ADMIN');
  },
  'fastpath-as-root': (o) => { Object.assign(containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext, { runAsUser: 0, runAsNonRoot: false }); },
  'fastpath-keeps-all-capabilities': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.capabilities.drop = []; },
  'fastpath-privileged': (o) => { containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').securityContext.privileged = true; },
  'fastpath-plain-binary': (o) => {
    const c = containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay');
    if (!c.command[0].endsWith('-fastpath')) throw new Error('not the fastpath binary');
    c.command = ['/usr/local/bin/latchkey-relay'];
  },
  'fastpath-flag-missing': (o) => {
    const c = containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay');
    if (!c.args.includes('--fast_path=auto')) throw new Error('no --fast_path=auto');
    c.args = c.args.filter((a) => !a.startsWith('--fast_path'));
  },
  'fastpath-pod-network': (o) => { mustFind(o, 'DaemonSet', 'latchkey-relay').spec.template.spec.hostNetwork = false; },
  // components/cert-manager
  'csi-worker-id-is-node-name': (o) => {
    const e = containerIn(mustFind(o, 'DaemonSet', 'latchkey-relay'), 'relay').env.find((x) => x.name === 'WORKER_ID');
    if (e.valueFrom.fieldRef.fieldPath !== 'metadata.name') throw new Error('worker id is not the pod name');
    e.valueFrom.fieldRef.fieldPath = 'spec.nodeName';
  },
  'csi-uri-of-an-operator': (o) => {
    const v = mustFind(o, 'DaemonSet', 'latchkey-relay').spec.template.spec.volumes.find((x) => x.csi);
    if (!v) throw new Error('no csi volume');
    v.csi.volumeAttributes['csi.cert-manager.io/uri-sans'] = 'spiffe://latchkey/latchkey/operator/${POD_NAME}';
  },
  'csi-client-auth-only': (o) => {
    const v = mustFind(o, 'DaemonSet', 'latchkey-relay').spec.template.spec.volumes.find((x) => x.csi);
    if (!v) throw new Error('no csi volume');
    v.csi.volumeAttributes['csi.cert-manager.io/key-usages'] = 'digital signature,client auth';
  },
  'control-certificate-of-a-worker': (o) => { mustFind(o, 'Certificate', 'latchkey-control').spec.uris = ['spiffe://latchkey/latchkey/worker/control']; },
  'control-certificate-other-secret': (o) => { mustFind(o, 'Certificate', 'latchkey-control').spec.secretName = 'latchkey-control-cert'; },
  'control-certificate-rsa': (o) => { mustFind(o, 'Certificate', 'latchkey-control').spec.privateKey = { algorithm: 'RSA', size: 2048 }; },
  'control-certificate-self-signed': (o) => { mustFind(o, 'Certificate', 'latchkey-control').spec.issuerRef.name = 'latchkey-selfsigned'; },
};

function argValue(args, name) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function workload(objs, ref) {
  const [kind, name] = ref.split('/');
  const o = find(objs, kind, name);
  if (!o) throw new Error(`${ref} not found`);
  return o;
}

// The kubelet's view of a pod's volumes: ConfigMap and Secret contents laid out under ROOT at each
// mount path, subPath and subPathExpr honoured. A missing Secret, key or variable fails, as the pod
// would not start.
function mountPod(objs, secrets, ref, root, vars) {
  const obj = workload(objs, ref);
  const pod = obj.spec.template.spec;
  const c = pod.containers[0];
  const expand = (s) => s.replace(/\$\((\w+)\)/g, (_, v) => {
    if (vars[v] === undefined) throw new Error(`${ref}: no value for $(${v})`);
    return vars[v];
  });
  for (const m of c.volumeMounts || []) {
    const volume = (pod.volumes || []).find((v) => v.name === m.name);
    // A StatefulSet's volume from a claim template starts empty.
    if (!volume && (obj.spec.volumeClaimTemplates || []).some((v) => v.metadata.name === m.name)) {
      fs.mkdirSync(path.join(root, m.mountPath), { recursive: true });
      continue;
    }
    if (!volume) throw new Error(`${ref}: mount ${m.mountPath}: no volume ${m.name}`);
    let files;
    if (volume.configMap) {
      const cm = find(objs, 'ConfigMap', volume.configMap.name);
      if (!cm) throw new Error(`${ref}: ConfigMap ${volume.configMap.name} not rendered`);
      files = cm.data || {};
    } else if (volume.secret) {
      const s = find(secrets, 'Secret', volume.secret.secretName);
      if (!s) throw new Error(`${ref}: Secret ${volume.secret.secretName} does not exist`);
      files = {};
      for (const [k, v] of Object.entries(s.data || {})) files[k] = Buffer.from(v, 'base64');
      for (const [k, v] of Object.entries(s.stringData || {})) files[k] = v;
    } else {
      throw new Error(`${ref}: mount ${m.mountPath}: a ${Object.keys(volume).find((k) => k !== 'name')} volume cannot be laid out here`);
    }
    const target = path.join(root, m.mountPath);
    const sub = m.subPath || (m.subPathExpr && expand(m.subPathExpr));
    if (sub) {
      if (files[sub] === undefined) throw new Error(`${ref}: mount ${m.mountPath}: ${volume.name} has no key ${sub}`);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, files[sub], { mode: 0o600 });
    } else {
      fs.mkdirSync(target, { recursive: true });
      for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(target, k), v, { mode: 0o600 });
    }
  }
}

function main() {
  const [command, ...args] = process.argv.slice(2);
  const repo = argValue(args, '--repo');
  if (command === 'manifests') {
    const helpDir = argValue(args, '--help-dir');
    const pairs = args.filter((a) => a.includes('='));
    check(pairs.length > 0, 'no rendered overlays given');
    for (const pair of pairs) {
      const [name, file] = pair.split('=');
      checkOverlay(name, loadAll(file), helpDir, { ha: name.startsWith('ha'), netRaw: name.includes('raw-keepalive'), fastPath: name.includes('fast-path'), repo });
    }
    // The raw-keepalive component adds NET_RAW to the relay, the fast-path component BPF and
    // NET_ADMIN with --fast_path on; without them nothing adds any capability and the fast path
    // is off (the default).
    for (const pair of pairs) {
      const [name, file] = pair.split('=');
      const relay = find(loadAll(file), 'DaemonSet', 'latchkey-relay');
      const c = relay ? relay.spec.template.spec.containers[0] : { args: [] };
      const caps = relay ? c.securityContext.capabilities.add || [] : [];
      check(name.includes('raw-keepalive') === caps.includes('NET_RAW'), `overlay ${name}: NET_RAW ${caps.includes('NET_RAW') ? 'present' : 'absent'}`);
      const fastPath = name.includes('fast-path');
      for (const cap of FAST_PATH_CAPS) check(fastPath === caps.includes(cap), `overlay ${name}: ${cap} ${caps.includes(cap) ? 'present' : 'absent'}`);
      const mode = flagArgs(c.args || []).fast_path;
      check(fastPath ? ['auto', 'xdp', 'tc'].includes(mode) : [undefined, 'off'].includes(mode),
        `overlay ${name}: relay --fast_path=${mode}, want ${fastPath ? 'auto, xdp or tc' : 'off (the default)'}`);
    }
    finish(`manifests (${pairs.map((p) => p.split('=')[0]).join(', ')})`);
  } else if (command === 'schema') {
    for (const file of args) for (const o of loadAll(file)) validateSchema(o, file);
    finish(`schema (${args.map((f) => path.basename(f)).join(', ')})`);
  } else if (command === 'mutations') {
    console.log(Object.keys(MUTATIONS).join('\n'));
  } else if (command === 'mutate') {
    const [name, input, output] = args;
    if (!MUTATIONS[name]) throw new Error(`unknown mutation ${name}`);
    const objs = loadAll(input);
    MUTATIONS[name](objs);
    writeAll(output, objs);
  } else if (command === 'monitoring') {
    const files = args.filter((a) => !a.startsWith('--') && a !== repo);
    checkMonitoring(repo, files[0], files[1]);
    finish('monitoring');
  } else if (command === 'autoscaling') {
    const files = args.filter((a) => !a.startsWith('--') && a !== repo);
    checkAutoscaling(repo, files[0], files[1]);
    finish('autoscaling');
  } else if (command === 'mount-pod') {
    const [file, secretsFile, ref, root, ...assignments] = args;
    const vars = Object.fromEntries(assignments.map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
    try {
      mountPod(loadAll(file), loadAll(secretsFile), ref, root, vars);
    } catch (e) {
      console.error(`mount-pod: ${e.message}`);
      process.exit(1);
    }
  } else if (command === 'env') {
    // NAME=VALUE of a container's literal env, one a line.
    const [file, ref, container] = args;
    const c = workload(loadAll(file), ref).spec.template.spec.containers.find((x) => x.name === container);
    if (!c) throw new Error(`${ref}: no container ${container}`);
    for (const e of c.env || []) if (e.value !== undefined) console.log(`${e.name}=${e.value}`);
  } else if (command === 'security-context') {
    const [file, ref] = args;
    const pod = workload(loadAll(file), ref).spec.template.spec;
    const c = pod.containers[0];
    const sc = { ...(pod.securityContext || {}), ...(c.securityContext || {}) };
    const add = ((sc.capabilities && sc.capabilities.add) || []).map((x) => x.toLowerCase());
    console.log([sc.runAsUser === undefined ? 0 : sc.runAsUser, sc.runAsGroup === undefined ? 0 : sc.runAsGroup,
      sc.allowPrivilegeEscalation === false ? 1 : 0, add.length ? add.join(',') : '-', c.command[0]].join(' '));
  } else if (command === 'binaries') {
    const image = argValue(args, '--image') || 'latchkey';
    const bins = new Set();
    for (const file of args.filter((a, i) => a !== '--image' && args[i - 1] !== '--image')) {
      for (const { pod } of podSpecs(loadAll(file))) {
        for (const c of pod.containers) {
          if (!new RegExp(`(^|/)${image}(:|$)`).test(c.image)) continue;
          const words = [...(c.command || []), ...(c.args || []), ...((c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec && c.lifecycle.preStop.exec.command) || [])];
          for (const m of words.join(' ').matchAll(/\/usr\/local\/bin\/[\w.-]+/g)) bins.add(m[0]);
        }
      }
    }
    console.log([...bins].sort().join('\n'));
  } else if (command === 'prometheus-config') {
    const [file, controlTarget, relayTarget, out] = args;
    const config = YAML.parse(fs.readFileSync(file, 'utf8'));
    // Keep the shipped relabelling: give the static targets the labels Kubernetes discovery would.
    const targets = { 'latchkey-control': controlTarget, 'latchkey-relay': relayTarget };
    for (const job of config.scrape_configs) {
      assert(job.kubernetes_sd_configs, `${job.job_name}: expected kubernetes_sd_configs`);
      delete job.kubernetes_sd_configs;
      job.static_configs = [{
        targets: [targets[job.job_name]],
        labels: {
          __meta_kubernetes_pod_label_app_kubernetes_io_name: job.job_name,
          __meta_kubernetes_pod_container_port_name: 'metrics',
          __meta_kubernetes_pod_name: `${job.job_name}-test`,
          __meta_kubernetes_pod_node_name: 'loopback',
        },
      }];
      job.scrape_interval = '1s';
    }
    config.global.scrape_interval = '1s';
    config.global.evaluation_interval = '1s';
    config.rule_files = config.rule_files.map((f) => path.resolve(path.dirname(file), f));
    fs.writeFileSync(out, YAML.stringify(config));
  } else if (command === 'dashboard-queries') {
    const dash = JSON.parse(fs.readFileSync(args[0], 'utf8'));
    const exprs = [];
    const walk = (panels) => {
      for (const p of panels || []) {
        for (const t of p.targets || []) exprs.push(t.expr);
        walk(p.panels);
      }
    };
    walk(dash.panels);
    console.log(exprs.join('\n'));
  } else if (command === 'sync-rules') {
    const rules = YAML.parse(fs.readFileSync(rulesFile(repo), 'utf8'));
    const doc = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'latchkey', labels: { 'app.kubernetes.io/name': 'latchkey' } },
      spec: { groups: rules.groups },
    };
    const header = '# Generated from prometheus/latchkey-rules.yml: edit that file, then run\n#   NODE_PATH=build/tests/deploy/node/node_modules node tests/deploy/validate.js sync-rules --repo .\n# (tests/deploy fails while the two differ).\n';
    fs.writeFileSync(path.join(repo, 'deploy/monitoring/prometheusrule.yaml'), header + YAML.stringify(doc, { lineWidth: 0 }));
  } else {
    console.error(`unknown command ${command}`);
    process.exit(2);
  }
}

main();

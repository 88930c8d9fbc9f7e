#!/usr/bin/env node
// Checks of deploy/ that need a YAML parser and the Kubernetes / prometheus-operator / KEDA schemas
// (npm packages pinned in package-lock.json, installed by npm-ci.sh; NODE_PATH points at them).
//
//   validate.js manifests --repo DIR --help-dir DIR NAME=RENDERED.yaml ...
//       schema validation of every object plus the project's invariants (see checkOverlay)
//   validate.js monitoring --repo DIR MONITORING.yaml OVERLAY.yaml
//       ServiceMonitor/PodMonitor against the workloads, PrometheusRule == rules file, runbooks
//   validate.js autoscaling --repo DIR AUTOSCALING.yaml OVERLAY.yaml
//   validate.js extract-configs RENDERED.yaml OUT_DIR      ConfigMap files, for the binaries to load
//   validate.js binaries RENDERED.yaml ...                 every /usr/local/bin path a pod runs
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

// apiVersion -> module holding one class per kind.
function modelModule(apiVersion) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  if (group === 'keda.sh') return `@kubernetes-models/keda/${apiVersion}`;
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

const CLUSTER_SCOPED = new Set(['Namespace', 'PriorityClass', 'ClusterRole', 'ClusterRoleBinding']);

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

// Flags a binary accepts, from its --helpfull output saved as HELP_DIR/<binary>.txt.
function flagsOf(helpDir, binary) {
  const text = fs.readFileSync(path.join(helpDir, `${binary}.txt`), 'utf8');
  const flags = new Set();
  for (const m of text.matchAll(/^\s+--([a-z_]+)/gm)) flags.add(m[1]);
  // latchkeyctl prints its usage, not absl's list.
  for (const m of text.matchAll(/--([a-z_]+)[=\s]/g)) flags.add(m[1]);
  return flags;
}

// "--name=value" arguments of a command line (a shell -c string is split on spaces).
// The default of a flag in --helpfull output: `--listen (...); default: "127.0.0.1:7400";`.
function flagDefault(helpDir, binary, flag) {
  const text = fs.readFileSync(path.join(helpDir, `${binary}.txt`), 'utf8').replace(/\s+/g, ' ');
  const m = new RegExp(`--${flag} \\(.*?\\); default: "([^"]*)";`).exec(text);
  return m ? m[1] : undefined;
}

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

// Top-level `key: "value"` / `key: number` / `key { seconds: N }` of a text-format proto.
function textprotoFields(text) {
  const fields = {};
  const body = text.replace(/#.*$/gm, '');
  for (const m of body.matchAll(/^(\w+):\s*"([^"]*)"/gm)) fields[m[1]] = m[2];
  for (const m of body.matchAll(/^(\w+):\s*(\d+)\s*$/gm)) fields[m[1]] = Number(m[2]);
  for (const m of body.matchAll(/^(\w+)\s*\{\s*seconds:\s*(\d+)\s*\}/gm)) fields[m[1]] = Number(m[2]);
  return fields;
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

function checkNoRoot(objs, where, { netRaw }) {
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
      const allowed = netRaw && owner === 'DaemonSet/latchkey-relay' ? ['NET_RAW'] : [];
      check(added.every((a) => allowed.includes(a)), `${label}: capabilities added ${added} (allowed: ${allowed})`);
      if (!allowed.length) check(sc.allowPrivilegeEscalation === false, `${label}: allowPrivilegeEscalation must be false`);
      check(c.resources && c.resources.requests && c.resources.limits && c.resources.limits.memory,
        `${label}: resources need requests and a memory limit`);
    }
  }
}

function checkProbes(container, label, { liveness }) {
  const named = Object.fromEntries((container.ports || []).map((p) => [p.name, p.containerPort]));
  const grpcPort = named.grpc;
  check(grpcPort !== undefined, `${label}: no container port named grpc`);
  const ready = container.readinessProbe || {};
  check(ready.grpc && ready.grpc.port === grpcPort, `${label}: readinessProbe must be grpc on the grpc port ${grpcPort}`);
  const live = container.livenessProbe || {};
  if (liveness === 'grpc') check(live.grpc && live.grpc.port === grpcPort, `${label}: livenessProbe must be grpc on port ${grpcPort}`);
  else check(live.tcpSocket && live.tcpSocket.port === grpcPort, `${label}: livenessProbe must be tcpSocket on port ${grpcPort}`);
  for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe].filter(Boolean)) {
    const port = (probe.grpc || probe.tcpSocket || probe.httpGet || {}).port;
    check(Object.values(named).includes(port) || Object.keys(named).includes(port), `${label}: a probe uses port ${port}, not a container port`);
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

function checkOverlay(name, objs, helpDir, options) {
  const where = `overlay ${name}`;
  for (const o of objs) validateSchema(o, where);
  checkNamespaces(objs, where);
  checkNoRoot(objs, where, options);

  // Every latchkey container runs one image, and a binary the image ships, with flags it accepts.
  const images = new Set();
  for (const { owner, pod } of podSpecs(objs)) {
    for (const c of pod.containers) {
      images.add(c.image);
      const binary = path.basename((c.command || [])[0] || '');
      check(/^latchkey(-control|-relay|ctl)$/.test(binary), `${where}: ${owner}/${c.name} runs ${binary}`);
      check(c.command && c.command[0] === `/usr/local/bin/${binary}`, `${where}: ${owner}/${c.name}: command must be /usr/local/bin/${binary}`);
      const accepted = flagsOf(helpDir, binary);
      for (const flag of Object.keys(flagArgs(c.args || []))) {
        check(accepted.has(flag), `${where}: ${owner}/${c.name}: ${binary} has no flag --${flag}`);
      }
      const preStop = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
      if (preStop) {
        const m = /\/usr\/local\/bin\/(latchkey[a-z-]*)/.exec(preStop.command.join(' '));
        check(m, `${where}: ${owner}/${c.name}: preStop runs no latchkey binary`);
        if (m) {
          const hookFlags = flagsOf(helpDir, m[1]);
          for (const flag of Object.keys(flagArgs(preStop.command))) {
            check(hookFlags.has(flag), `${where}: ${owner}/${c.name}: preStop: ${m[1]} has no flag --${flag}`);
          }
        }
      }
    }
  }
  check(images.size === 1, `${where}: containers use ${images.size} images (${[...images]}), want one`);
  for (const image of images) check(/(^|\/)latchkey:[\w.-]+$/.test(image), `${where}: image ${image} is not latchkey:TAG`);

  // Control: Deployment, Service and PDB agree on labels and ports; the config's listen ports are the
  // container's; gRPC probes.
  const control = find(objs, 'Deployment', 'latchkey-control');
  const service = find(objs, 'Service', 'latchkey-control');
  const pdb = find(objs, 'PodDisruptionBudget', 'latchkey-control');
  check(control && service && pdb, `${where}: control Deployment, Service and PodDisruptionBudget must exist`);
  let controlAddress;
  if (control && service && pdb) {
    const pod = control.spec.template.spec;
    const podLabels = control.spec.template.metadata.labels;
    const c = pod.containers.find((x) => x.name === 'control');
    checkProbes(c, `${where}: control`, { liveness: 'grpc' });
    check(matches(service.spec.selector, podLabels), `${where}: Service selector does not match control pods`);
    check(matches(pdb.spec.selector.matchLabels, podLabels), `${where}: PDB selector does not match control pods`);
    const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
    for (const sp of service.spec.ports) {
      check(ports[sp.targetPort] !== undefined || Object.values(ports).includes(sp.targetPort),
        `${where}: Service port ${sp.name} targets ${sp.targetPort}, not a control container port`);
    }
    const config = configMapFile(objs, pod, c, 'config');
    check(config !== undefined, `${where}: control --config must be a file of a mounted ConfigMap`);
    const fields = textprotoFields(config || '');
    check(portOf(fields.listen) === ports.grpc, `${where}: control listen ${fields.listen} vs containerPort grpc ${ports.grpc}`);
    check(portOf(fields.metrics_listen) === ports.metrics, `${where}: control metrics_listen ${fields.metrics_listen} vs containerPort metrics ${ports.metrics}`);
    // The binary's own defaults, which docs and latchkeyctl assume, are the ports used here too.
    for (const [flag, name] of [['listen', 'grpc'], ['metrics_listen', 'metrics']]) {
      const def = flagDefault(helpDir, 'latchkey-control', flag);
      check(portOf(def) === ports[name], `${where}: control containerPort ${name} ${ports[name]} vs --${flag} default ${def}`);
    }
    const grpcServicePort = service.spec.ports.find((p) => p.name === 'grpc');
    controlAddress = `${service.metadata.name}:${grpcServicePort && grpcServicePort.port}`;
    const replicas = control.spec.replicas;
    if (pdb.spec.minAvailable !== undefined) check(pdb.spec.minAvailable < replicas, `${where}: PDB minAvailable ${pdb.spec.minAvailable} blocks every eviction with ${replicas} replicas`);
    if (options.ha) {
      check(replicas > 1, `${where}: ha needs several control replicas`);
      const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.name === 'latchkey-control');
      check(hpa && hpa.spec.scaleTargetRef.kind === 'Deployment', `${where}: ha ships an HPA for the control Deployment`);
      if (hpa && pdb.spec.minAvailable !== undefined) check(hpa.spec.minReplicas > pdb.spec.minAvailable, `${where}: HPA minReplicas must exceed PDB minAvailable`);
      check((control.metadata.annotations || {})['latchkey.io/not-yet-supported'], `${where}: ha must say what is not yet supported`);
    } else {
      check(replicas === 1 && control.spec.strategy && control.spec.strategy.type === 'Recreate',
        `${where}: one control with the in-memory store, replaced with Recreate`);
    }
  }

  // Relay: host network, media nodes, flags from the node, drain time, capabilities.
  const relay = find(objs, 'DaemonSet', 'latchkey-relay');
  check(relay, `${where}: relay DaemonSet must exist`);
  if (relay) {
    const pod = relay.spec.template.spec;
    const c = pod.containers.find((x) => x.name === 'relay');
    checkProbes(c, `${where}: relay`, { liveness: 'tcp' });
    check(pod.hostNetwork === true, `${where}: relay must use the host network`);
    check(pod.dnsPolicy === 'ClusterFirstWithHostNet', `${where}: relay on the host network needs dnsPolicy ClusterFirstWithHostNet`);
    check(pod.nodeSelector && Object.keys(pod.nodeSelector).length > 0, `${where}: relay needs a nodeSelector for media nodes`);
    const args = flagArgs(c.args);
    const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath]));
    const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
    check(portOf(args.listen) === ports.grpc, `${where}: relay --listen ${args.listen} vs containerPort grpc ${ports.grpc}`);
    check(portOf(args.metrics_listen) === ports.metrics, `${where}: relay --metrics_listen ${args.metrics_listen} vs containerPort metrics ${ports.metrics}`);
    for (const [flag, name] of [['listen', 'grpc'], ['metrics_listen', 'metrics']]) {
      const def = flagDefault(helpDir, 'latchkey-relay', flag);
      check(portOf(def) === ports[name], `${where}: relay containerPort ${name} ${ports[name]} vs --${flag} default ${def}`);
    }
    for (const flag of ['advertised_ip', 'media_ip', 'listen']) {
      const m = /\$\((\w+)\)/.exec(args[flag] || '');
      check(m && env[m[1]] === 'status.hostIP', `${where}: relay --${flag} must come from the node (status.hostIP)`);
    }
    check(/\$\((\w+)\)/.test(args.worker_id || '') && env[/\$\((\w+)\)/.exec(args.worker_id)[1]] === 'spec.nodeName',
      `${where}: relay --worker_id must be the node name`);
    check(Number(args.threads) === cpuCores(c.resources.limits.cpu), `${where}: relay --threads ${args.threads} must equal its CPU limit ${c.resources.limits.cpu}`);
    const config = configMapFile(objs, pod, c, 'config');
    check(config !== undefined, `${where}: relay --config must be a file of a mounted ConfigMap`);
    const fields = textprotoFields(config || '');
    check(fields.control === controlAddress, `${where}: relay dials control at ${fields.control}, the Service is ${controlAddress}`);
    check(portOf(flagDefault(helpDir, 'latchkey-relay', 'control')) === portOf(fields.control),
      `${where}: relay dials control on another port than its --control default`);
    const preStop = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
    check(preStop, `${where}: relay needs a preStop hook`);
    if (preStop) {
      const hook = flagArgs(preStop.command);
      check(hook.server === controlAddress, `${where}: preStop drains through ${hook.server}, the Service is ${controlAddress}`);
      check(/workers drain "\$NODE_NAME"/.test(preStop.command.join(' ')), `${where}: preStop must drain this worker ($NODE_NAME)`);
    }
    const drain = fields.drain_grace === undefined ? 30 : fields.drain_grace;
    check(pod.terminationGracePeriodSeconds > drain + 5,
      `${where}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed drain_grace ${drain} s plus the preStop hook`);
    check(relay.spec.updateStrategy.rollingUpdate && !relay.spec.updateStrategy.rollingUpdate.maxSurge,
      `${where}: relay updates cannot surge (host ports)`);
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

function argValue(args, name) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
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
      checkOverlay(name, loadAll(file), helpDir, { ha: name.startsWith('ha'), netRaw: name.includes('raw-keepalive') });
    }
    // The raw-keepalive component adds NET_RAW to the relay; without it nothing adds any capability.
    for (const pair of pairs) {
      const [name, file] = pair.split('=');
      const relay = find(loadAll(file), 'DaemonSet', 'latchkey-relay');
      const caps = relay ? relay.spec.template.spec.containers[0].securityContext.capabilities.add || [] : [];
      check(name.includes('raw-keepalive') === caps.includes('NET_RAW'), `overlay ${name}: NET_RAW ${caps.includes('NET_RAW') ? 'present' : 'absent'}`);
    }
    finish(`manifests (${pairs.map((p) => p.split('=')[0]).join(', ')})`);
  } else if (command === 'monitoring') {
    const files = args.filter((a) => !a.startsWith('--') && a !== repo);
    checkMonitoring(repo, files[0], files[1]);
    finish('monitoring');
  } else if (command === 'autoscaling') {
    const files = args.filter((a) => !a.startsWith('--') && a !== repo);
    checkAutoscaling(repo, files[0], files[1]);
    finish('autoscaling');
  } else if (command === 'extract-configs') {
    const [file, outDir] = args;
    for (const o of loadAll(file)) {
      if (o.kind !== 'ConfigMap') continue;
      for (const [key, value] of Object.entries(o.data || {})) {
        if (key.endsWith('.textproto')) fs.writeFileSync(path.join(outDir, key), value);
      }
    }
  } else if (command === 'binaries') {
    const bins = new Set();
    for (const file of args) {
      for (const { pod } of podSpecs(loadAll(file))) {
        for (const c of pod.containers) {
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

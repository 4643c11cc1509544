// deploy/kubernetes: every object matches the Kubernetes schema of the
// apiVersion/kind it declares (k8s-schema.ts), and the DaemonSet and RBAC
// say what meshnet needs them to say, which no schema can check.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ManifestParseError, parseManifests, validateManifests, type K8sObject, type SourcedObject } from './k8s-schema.js';

const root = resolve(import.meta.dirname, '../../..');
const baseDir = join(root, 'deploy/kubernetes');
const privilegedDir = join(root, 'deploy/kubernetes-privileged');
const SECRET_EXAMPLE = 'secret.example.yaml';

interface Kustomization {
  namespace?: string;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { path?: string }[];
}

function kustomization(dir: string): Kustomization {
  return parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
}

function load(file: string): SourcedObject[] {
  return parseManifests(readFileSync(join(baseDir, file), 'utf8'), `deploy/kubernetes/${file}`);
}

const applied = (kustomization(baseDir).resources ?? []).flatMap(load);
const example = load(SECRET_EXAMPLE);

function only<T>(objects: SourcedObject[], kind: string): T {
  const found = objects.filter((o) => o.obj.kind === kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0]!.obj as unknown as T;
}

const daemonSet = only<IDaemonSet>(applied, 'DaemonSet');
const podSpec = daemonSet.spec!.template.spec!;
const router = podSpec.containers.find((c) => c.name === 'meshnet')!;

function argv(c: IContainer): string[] {
  return [...(c.command ?? []), ...(c.args ?? [])];
}

function env(c: IContainer, name: string) {
  return c.env?.find((e) => e.name === name);
}

/** The host path behind a container's mount at `mountPath`. */
function hostPathAt(c: IContainer, mountPath: string): string | undefined {
  const mount = c.volumeMounts?.find((m) => m.mountPath === mountPath);
  return podSpec.volumes?.find((v) => v.name === mount?.name)?.hostPath?.path;
}

function kubectlAvailable(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('Kubernetes manifests match the Kubernetes API schema', () => {
  it('every YAML file in deploy/kubernetes is applied or is the Secret example', () => {
    const files = readdirSync(baseDir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));
    const resources = kustomization(baseDir).resources ?? [];
    for (const r of resources) expect(existsSync(join(baseDir, r)), r).toBe(true);
    expect(files.sort()).toEqual([...resources, 'kustomization.yaml', SECRET_EXAMPLE].sort());
    expect(resources).not.toContain(SECRET_EXAMPLE);
  });

  it('every object validates, the Secret example included', async () => {
    expect(applied.length).toBeGreaterThanOrEqual(4);
    expect(await validateManifests([...applied, ...example])).toEqual([]);
  });

  // The validator must really catch mistakes, or the test above means nothing.
  describe('the validator rejects invalid manifests', () => {
    function mutated(edit: (ds: IDaemonSet & K8sObject) => void): SourcedObject {
      const copy = structuredClone(applied.find((o) => o.obj.kind === 'DaemonSet')!);
      edit(copy.obj as IDaemonSet & K8sObject);
      return copy;
    }

    it('a typo in a field name, at any depth', async () => {
      const bad = mutated((ds) => {
        const spec = ds.spec!.template.spec! as unknown as Record<string, unknown>;
        spec.hostNetwrok = spec.hostNetwork;
        delete spec.hostNetwork;
        (ds.spec!.template.spec!.containers[0] as unknown as Record<string, unknown>).imagee = 'x';
      });
      const problems = await validateManifests([bad]);
      expect(problems.join('\n')).toContain('unknown field /spec/template/spec/hostNetwrok');
      expect(problems.join('\n')).toContain('unknown field /spec/template/spec/containers/0/imagee');
    });

    it('a value of the wrong type', async () => {
      const bad = mutated((ds) => {
        (ds.spec!.template.spec!.containers[0]!.ports![0] as unknown as Record<string, unknown>).containerPort = '6783';
      });
      const problems = await validateManifests([bad]);
      expect(problems.join('\n')).toMatch(/containers\/0\/ports\/0\/containerPort must be integer/);
    });

    it('a missing required field', async () => {
      const bad = mutated((ds) => {
        delete (ds.spec as unknown as Record<string, unknown>).selector;
      });
      expect((await validateManifests([bad])).join('\n')).toMatch(/data\/spec must have required property selector/);
    });

    it('a value outside its enumeration', async () => {
      const bad = mutated((ds) => {
        (ds.spec!.template.spec!.containers[0] as unknown as Record<string, unknown>).imagePullPolicy = 'Sometimes';
      });
      expect((await validateManifests([bad])).join('\n')).toContain('imagePullPolicy');
    });

    it('a kind that does not exist', async () => {
      const bad = mutated((ds) => {
        (ds as unknown as Record<string, unknown>).kind = 'DaemonSett';
      });
      expect((await validateManifests([bad])).join('\n')).toContain('no schema for kind DaemonSett');
      const foreign = mutated((ds) => {
        (ds as unknown as Record<string, unknown>).apiVersion = 'example.com/v1';
      });
      expect((await validateManifests([foreign])).join('\n')).toContain('no schema for apiVersion example.com/v1');
    });

    it('YAML 1.1 booleans where Kubernetes wants a string', async () => {
      const objects = parseManifests(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  enabled: yes\n',
        'inline.yaml',
      );
      expect((await validateManifests(objects)).join('\n')).toMatch(/data\/enabled must be string/);
    });

    it('text that is not a Kubernetes object', () => {
      expect(() => parseManifests('kind: [unclosed\n', 'broken.yaml')).toThrow(ManifestParseError);
      expect(() => parseManifests('- a\n- b\n', 'list.yaml')).toThrow(/not a mapping/);
      expect(() => parseManifests('kind: Pod\n', 'pod.yaml')).toThrow(/apiVersion and kind/);
    });
  });

  describe.runIf(kubectlAvailable())('rendered by kustomize (kubectl kustomize)', () => {
    function render(dir: string): SourcedObject[] {
      const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      return parseManifests(out, `kustomize ${dir.slice(root.length + 1)}`);
    }

    it('deploy/kubernetes renders to the same valid objects, all in kube-system', async () => {
      const objects = render(baseDir);
      expect(await validateManifests(objects)).toEqual([]);
      expect(objects.map((o) => o.obj.kind).sort()).toEqual(applied.map((o) => o.obj.kind).sort());
      for (const o of objects) {
        if (o.obj.kind !== 'ClusterRole' && o.obj.kind !== 'ClusterRoleBinding') {
          expect(o.obj.metadata?.namespace, o.obj.kind).toBe('kube-system');
        }
      }
    });

    it('deploy/kubernetes-privileged differs only in a privileged router container', async () => {
      const objects = render(privilegedDir);
      expect(await validateManifests(objects)).toEqual([]);
      const ds = only<IDaemonSet>(objects, 'DaemonSet');
      const c = ds.spec!.template.spec!.containers.find((x) => x.name === 'meshnet')!;
      expect(c.securityContext?.privileged).toBe(true);
      expect(c.securityContext?.capabilities).toBeUndefined();
      const strip = (d: IDaemonSet) => {
        const copy = structuredClone(d);
        delete copy.spec!.template.spec!.containers.find((x) => x.name === 'meshnet')!.securityContext;
        return copy;
      };
      expect(strip(ds)).toEqual(strip(only<IDaemonSet>(render(baseDir), 'DaemonSet')));
    });
  });
});

describe('the DaemonSet runs meshnet as deploy/docs describe', () => {
  it('runs `meshnet launch --foreground` on the host network, without hostPID', () => {
    expect(argv(router).slice(0, 3)).toEqual(['/usr/local/bin/meshnet', 'launch', '--foreground']);
    expect(podSpec.hostNetwork).toBe(true);
    expect(podSpec.hostPID).not.toBe(true);
    expect(podSpec.hostIPC).not.toBe(true);
  });

  it('installs the CNI plugin from an init container into the host directories', () => {
    const init = podSpec.initContainers ?? [];
    expect(init).toHaveLength(1);
    const c = init[0]!;
    expect(argv(c)).toEqual([
      '/usr/local/bin/meshnet', 'install-cni', '--bin-dir', '/host/opt/cni/bin', '--conf-dir', '/host/etc/cni/net.d',
    ]);
    expect(hostPathAt(c, '/host/opt/cni/bin')).toBe('/opt/cni/bin');
    expect(hostPathAt(c, '/host/etc/cni/net.d')).toBe('/etc/cni/net.d');
    expect(c.image).toBe(router.image);
    expect(c.securityContext?.capabilities?.add ?? []).toEqual([]);
    expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
  });

  it('takes the password from the Secret, optionally, and the Secret example fits', () => {
    const ref = env(router, 'MESHNET_PASSWORD')?.valueFrom?.secretKeyRef;
    expect(ref?.optional).toBe(true);
    const secret = only<ISecret>(example, 'Secret');
    expect(ref?.name).toBe(secret.metadata?.name);
    expect(Object.keys({ ...secret.stringData, ...secret.data })).toContain(ref?.key);
    expect(secret.metadata?.namespace).toBe(daemonSet.metadata?.namespace);
    // Never a literal password in the applied manifests.
    expect(applied.some((o) => o.obj.kind === 'Secret')).toBe(false);
    expect(env(router, 'MESHNET_PASSWORD')?.value).toBeUndefined();
  });

  it('takes the range and the peers from the environment, and resolves every $(VAR) it uses', () => {
    expect(env(router, 'IPALLOC_RANGE')?.value).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    expect(env(router, 'MESHNET_PEERS')).toBeDefined();
    expect(argv(router)).toContain('--peers-from-kubernetes');
    // Kubernetes leaves an unknown $(VAR) in args verbatim: catch it here.
    const defined = new Set((router.env ?? []).map((e) => e.name));
    for (const arg of argv(router)) {
      for (const [, name] of arg.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) expect(defined, arg).toContain(name);
    }
  });

  it('claims the first IPAM ring by a rule joining nodes cannot break (not consensus=<node count>)', () => {
    expect(argv(router)).toContain('--ipalloc-init=$(IPALLOC_INIT)');
    expect(env(router, 'IPALLOC_INIT')?.value).toBe('seed-from-kubernetes');
    // How a router knows whether it is the oldest Node (docs/deploy.md 3.2).
    expect(env(router, 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
  });

  it('adds only NET_ADMIN and SYS_ADMIN to an otherwise empty capability set, unprivileged', () => {
    const sc = router.securityContext!;
    expect(sc.privileged).not.toBe(true);
    expect(sc.capabilities?.drop).toEqual(['ALL']);
    expect([...(sc.capabilities?.add ?? [])].sort()).toEqual(['NET_ADMIN', 'SYS_ADMIN']);
    expect(sc.seccompProfile?.type).toBe('RuntimeDefault');
  });

  it('mounts state, run dir, pod namespaces and the TAP device from the host at the same paths', () => {
    expect(hostPathAt(router, '/var/lib/meshnet')).toBe('/var/lib/meshnet');
    expect(hostPathAt(router, '/run/meshnet')).toBe('/run/meshnet');
    expect(hostPathAt(router, '/run/netns')).toBe('/run/netns');
    expect(router.volumeMounts?.find((m) => m.mountPath === '/run/netns')?.mountPropagation).toBe('HostToContainer');
    expect(hostPathAt(router, '/dev/net/tun')).toBe('/dev/net/tun');
    expect(env(router, 'MESHNET_RUN_DIR')?.value).toBe('/run/meshnet');
    expect(argv(router)).toContain('--state-dir=/var/lib/meshnet');
    // Nothing it does not need: no /lib/modules, no host root, no docker socket.
    const hostPaths = (podSpec.volumes ?? []).flatMap((v) => (v.hostPath ? [v.hostPath.path] : []));
    expect(hostPaths.sort()).toEqual(
      ['/dev/net/tun', '/etc/cni/net.d', '/opt/cni/bin', '/run/meshnet', '/run/netns', '/var/lib/meshnet'].sort(),
    );
  });

  it('probes /healthz and /readyz on the loopback metrics address it is launched with', () => {
    const metrics = argv(router).find((a) => a.startsWith('--metrics-addr='))?.split('=')[1];
    expect(metrics).toBe('127.0.0.1:6782');
    const [host, port] = metrics!.split(':');
    for (const [probe, path] of [
      [router.startupProbe, '/healthz'],
      [router.livenessProbe, '/healthz'],
      [router.readinessProbe, '/readyz'],
    ] as const) {
      expect(probe?.httpGet).toMatchObject({ host, port: Number(port), path });
    }
  });

  it('runs on every node, first among pods, rolling one node at a time', () => {
    expect(podSpec.tolerations).toContainEqual({ operator: 'Exists' });
    expect(podSpec.priorityClassName).toBe('system-node-critical');
    expect(daemonSet.spec?.updateStrategy?.type).toBe('RollingUpdate');
    expect(daemonSet.spec?.updateStrategy?.rollingUpdate?.maxUnavailable).toBe(1);
    expect(router.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(router.resources?.limits?.cpu).toBeUndefined();
  });

  it('uses the image name the kustomization and deploy/Containerfile document', () => {
    const image = kustomization(baseDir).images?.[0];
    expect(router.image).toBe(`${image?.name}:${image?.newTag}`);
    expect(readFileSync(join(root, 'deploy/Containerfile'), 'utf8')).toContain(`-t ${router.image} `);
  });
});

describe('RBAC is minimal', () => {
  it('grants get/list/watch on nodes and nothing else, to the DaemonSet service account', () => {
    const kinds = applied.map((o) => o.obj.kind);
    expect(kinds.filter((k) => /Role/.test(k)).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding']);
    const role = only<IClusterRole>(applied, 'ClusterRole');
    expect(role.aggregationRule).toBeUndefined();
    expect(role.rules).toHaveLength(1);
    const rule = role.rules![0]!;
    expect(rule.apiGroups).toEqual(['']);
    expect(rule.resources).toEqual(['nodes']);
    expect(rule.resourceNames).toBeUndefined();
    expect(rule.nonResourceURLs).toBeUndefined();
    expect([...(rule.verbs ?? [])].sort()).toEqual(['get', 'list', 'watch']);

    const binding = only<IClusterRoleBinding>(applied, 'ClusterRoleBinding');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata?.name });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: podSpec.serviceAccountName, namespace: daemonSet.metadata?.namespace },
    ]);
    const account = only<K8sObject>(applied, 'ServiceAccount');
    expect(account.metadata?.name).toBe(podSpec.serviceAccountName);
  });
});

import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../inventory/model.js';
import { buildConnectionSpec, parseJumpTarget } from './connection-spec.js';
import { parseSshConfig } from './ssh-config.js';

function host(name: string, vars: Record<string, unknown>): InventoryHost {
  return {
    name,
    groups: ['all'],
    vars: Object.fromEntries(
      Object.entries(vars).map(([k, value], i) => [
        k,
        { value, location: { file: 'inv.yaml', line: i + 3, column: 7 }, valuePath: `all.hosts.${name}.${k}`, nested: new Map() },
      ]),
    ),
  };
}
const local = { user: 'me', home: '/home/me' };
const config = parseSshConfig(
  [
    'Host web1',
    '  HostName 10.0.0.11',
    '  User admin',
    '  Port 2200',
    '  IdentityFile ~/.ssh/web',
    'Host bastion',
    '  HostName 10.0.0.1',
    '  User jumper',
    'Host behind',
    '  ProxyJump bastion',
  ].join('\n'),
  'cfg',
);

describe('buildConnectionSpec', () => {
  it('defaults: the inventory name, port 22, the local user, the default socket, no jumps', () => {
    expect(buildConnectionSpec(host('h', {}), undefined, local)).toEqual({
      problems: [],
      spec: {
        host: 'h',
        connection: 'ssh',
        address: 'h',
        port: 22,
        user: 'me',
        privateKeyFile: undefined,
        jumps: [],
        become: false,
        incusSocket: '/var/lib/incus/unix.socket',
        // Where each came from, for -vvv.
        sources: {
          address: 'the inventory name',
          user: 'the local user',
          key: 'none named (ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)',
          become: 'default (no)',
        },
      },
    });
  });

  it('~/.ssh/config fills what the inventory leaves unset; inventory values win', () => {
    expect(buildConnectionSpec(host('web1', {}), config, local).spec).toMatchObject({
      address: '10.0.0.11',
      user: 'admin',
      port: 2200,
      privateKeyFile: '/home/me/.ssh/web',
    });
    expect(buildConnectionSpec(host('web1', { ansible_user: 'root', ansible_port: '22' }), config, local).spec).toMatchObject({ user: 'root', port: 22 });
    // ansible_host is the name handed to ssh: the config entry for it applies.
    expect(buildConnectionSpec(host('alias', { ansible_host: 'web1' }), config, local).spec).toMatchObject({ address: '10.0.0.11' });
  });

  it('jump hosts from -J, -o ProxyJump= or the config, each resolved through the config', () => {
    const viaJ = buildConnectionSpec(host('t', { ansible_host: '10.9.9.9', ansible_ssh_common_args: '-J bastion,ops@10.0.0.2:2222' }), config, local);
    expect(viaJ.spec?.jumps).toEqual([
      { address: '10.0.0.1', port: 22, user: 'jumper', privateKeyFile: undefined },
      { address: '10.0.0.2', port: 2222, user: 'ops', privateKeyFile: undefined },
    ]);
    const viaO = buildConnectionSpec(host('t', { ansible_ssh_common_args: "-o 'ProxyJump=root@j:2' -o UserKnownHostsFile=~/kh" }), undefined, local);
    expect(viaO.spec).toMatchObject({ jumps: [{ address: 'j', port: 2, user: 'root' }], knownHostsFiles: ['/home/me/kh'] });
    expect(buildConnectionSpec(host('behind', {}), config, local).spec?.jumps).toEqual([
      { address: '10.0.0.1', port: 22, user: 'jumper', privateKeyFile: undefined },
    ]);
    expect(buildConnectionSpec(host('behind', { ansible_ssh_common_args: '-o ProxyJump=none' }), config, local).spec?.jumps).toEqual([]);
  });

  it('become, local connection and incus_socket', () => {
    expect(buildConnectionSpec(host('h', { ansible_become: 'yes', incus_socket: '/run/incus.sock' }), undefined, local).spec).toMatchObject({
      become: true,
      incusSocket: '/run/incus.sock',
    });
    expect(buildConnectionSpec(host('h', { ansible_connection: 'local' }), undefined, local).spec?.connection).toBe('local');
  });

  it('what it cannot honour is a problem naming the variable and its place', () => {
    const r = buildConnectionSpec(
      host('h', {
        ansible_port: 'ssh',
        ansible_user: '{{ lookup("env", "USER") }}',
        ansible_ssh_common_args: '-o ProxyCommand="nc %h %p"',
        ansible_become: true,
        ansible_become_method: 'su',
        ansible_connection: 'winrm',
      }),
      undefined,
      local,
    );
    expect(r.spec).toBeUndefined();
    expect(r.problems.map((p) => `${p.location?.line}:${p.valuePath}: ${p.message}`)).toEqual([
      '8:all.hosts.h.ansible_connection: ansible_connection: winrm is not supported (use ssh or local)',
      '3:all.hosts.h.ansible_port: ansible_port must be a port number (1-65535), not "ssh"',
      '4:all.hosts.h.ansible_user: ansible_user uses a Jinja template ("{{ lookup(\\"env\\", \\"USER\\") }}"); reconcile does not evaluate templates: write the value itself',
      '7:all.hosts.h.ansible_become_method: ansible_become_method: su is not supported; reconcile uses sudo -n',
    ]);
  });

  it('what ~/.ssh/config says but reconcile cannot honour becomes warnings of the host (its jump hosts named)', () => {
    const cfg = parseSshConfig(
      ['Match exec "test -f /x"', '  Port 9', 'Host web1', '  ProxyJump gw', 'Host gw', '  ProxyCommand nc %h %p', 'Host plain', '  User u'].join('\n'),
      '/home/me/.ssh/config',
    );
    expect(buildConnectionSpec(host('web1', {}), cfg, local).spec?.warnings).toEqual([
      '/home/me/.ssh/config:1: Match exec test -f /x: criterion "exec" is not supported; block ignored',
      'jump host gw: its ProxyCommand is not supported (a jump host is reached directly, or through the jump hosts before it)',
    ]);
    expect(buildConnectionSpec(host('web1', { ansible_connection: 'local' }), cfg, local).spec).not.toHaveProperty('warnings');
    // Nothing to say: no warnings field at all.
    expect(buildConnectionSpec(host('plain', {}), config, local).spec).not.toHaveProperty('warnings');
  });

  it('reads jump targets in all their forms', () => {
    expect(parseJumpTarget('ssh://u@h:2')).toEqual({ user: 'u', host: 'h', port: 2 });
    expect(parseJumpTarget('[::1]:22')).toEqual({ user: undefined, host: '::1', port: 22 });
    expect(parseJumpTarget('a b')).toBeUndefined();
  });
});

describe('buildConnectionSpec: the HTTPS API and LXD', () => {
  const clients = {
    remote: (kind: 'incus' | 'lxd', name: string) =>
      name === 'prod'
        ? {
            found: {
              name,
              addr: 'https://incus.example:9443',
              configDir: `/home/me/.config/${kind === 'lxd' ? 'lxc' : 'incus'}`,
              configFile: 'config.yml',
              clientCertFile: '/home/me/.config/incus/client.crt',
              clientKeyFile: '/home/me/.config/incus/client.key',
              serverCertFile: '/home/me/.config/incus/servercerts/prod.crt',
            },
          }
        : { problem: `${name} is not a remote the incus client knows` },
    defaultDir: (kind: 'incus' | 'lxd') => `/home/me/.config/${kind === 'lxd' ? 'lxc' : 'incus'}`,
  };

  it('incus_api_url: no SSH at all; the incus client pair by default, the server pinned or CA-checked', () => {
    const pinned = buildConnectionSpec(
      host('os1', { incus_api_url: 'https://10.0.0.5', incus_server_cert_file: '~/pins/os1.crt' }),
      undefined,
      local,
      {},
      clients,
    ).spec!;
    expect(pinned).toMatchObject({ connection: 'https', address: '10.0.0.5', port: 8443, jumps: [], become: false });
    expect(pinned.api).toEqual({
      url: 'https://10.0.0.5',
      address: '10.0.0.5',
      port: 8443,
      clientCertFile: '/home/me/.config/incus/client.crt',
      clientKeyFile: '/home/me/.config/incus/client.key',
      serverCertFile: '/home/me/pins/os1.crt',
    });
    const ca = buildConnectionSpec(
      host('os2', { incus_api_url: 'https://[fd00::5]:9443/', incus_server_ca_file: '/ca.crt', incus_server_name: 'os2.lan' }),
      undefined,
      local,
      {},
      clients,
    ).spec!;
    expect(ca.api).toMatchObject({ address: 'fd00::5', port: 9443, caFile: '/ca.crt', serverName: 'os2.lan' });
    expect(ca.api!.serverCertFile).toBeUndefined();
    // SSH settings beside incus_api_url reach nothing: said.
    const both = buildConnectionSpec(host('os3', { ansible_host: '10.0.0.6', incus_api_url: 'https://10.0.0.6' }), undefined, local, {}, clients).spec!;
    expect(both.warnings).toEqual(['ansible_host not used: incus_api_url (inv.yaml:4) reaches this host over HTTPS only']);
    // LXD: the lxc client's pair.
    const lxd = buildConnectionSpec(host('l1', { incus_api_url: 'https://l1:8443', incus_server: 'lxd' }), undefined, local, {}, clients).spec!;
    expect(lxd).toMatchObject({ server: 'lxd', api: { clientCertFile: '/home/me/.config/lxc/client.crt' } });
  });

  it('incus_remote: the remote gives address, pair and pinned certificate; an unknown remote or a bad URL is a problem naming the variable', () => {
    const spec = buildConnectionSpec(host('p', { incus_remote: 'prod' }), undefined, local, {}, clients).spec!;
    expect(spec.api).toMatchObject({
      address: 'incus.example',
      port: 9443,
      serverCertFile: '/home/me/.config/incus/servercerts/prod.crt',
      remote: { name: 'prod' },
    });
    const unknown = buildConnectionSpec(host('p', { incus_remote: 'nope' }), undefined, local, {}, clients);
    expect(unknown.spec).toBeUndefined();
    expect(unknown.problems).toEqual([
      expect.objectContaining({ location: expect.objectContaining({ line: 3 }), message: 'nope is not a remote the incus client knows' }),
    ]);
    const http = buildConnectionSpec(host('p', { incus_api_url: 'http://p:8443' }), undefined, local, {}, clients);
    expect(http.problems[0]!.message).toBe('incus_api_url must be https://HOST[:PORT], not "http://p:8443"');
    const server = buildConnectionSpec(host('p', { incus_server: 'docker' }), undefined, local, {}, clients);
    expect(server.problems[0]!.message).toBe('incus_server must be incus or lxd, not "docker"');
  });

  it("incus_server: lxd over SSH tries the inventory's socket, then Debian's, then the snap's", () => {
    expect(buildConnectionSpec(host('l', { incus_server: 'lxd' }), undefined, local).spec).toMatchObject({
      server: 'lxd',
      incusSocket: '/var/lib/lxd/unix.socket',
      socketFallbacks: ['/var/snap/lxd/common/lxd/unix.socket'],
    });
    expect(buildConnectionSpec(host('l', { incus_server: 'lxd', incus_socket: '/run/lxd.sock' }), undefined, local).spec).toMatchObject({
      incusSocket: '/run/lxd.sock',
      socketFallbacks: ['/var/lib/lxd/unix.socket', '/var/snap/lxd/common/lxd/unix.socket'],
      socketGiven: true,
    });
  });
});

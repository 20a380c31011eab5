import { describe, expect, it } from 'vitest';
import { expandTokens, parseSshConfig, sshSettingsFor } from './ssh-config.js';

const CONFIG = `
# global
User fallback

Host web1 web2
  HostName %h.example.net
  Port 2222
  IdentityFile ~/.ssh/web_key

Host *.internal !bastion.internal
  ProxyJump bastion.internal
  User=ops

Host web1
  User never-used   # first value obtained wins
  IdentityFile ~/.ssh/second

Match host db*
  HostName 10.0.0.5
Match exec "true"
  Port 9

Host *
  UserKnownHostsFile /etc/kh "/with space/kh"
  IdentityFile ~/.ssh/id_ed25519
`;

describe('ssh config', () => {
  const config = parseSshConfig(CONFIG, '/home/u/.ssh/config');

  it('first value wins, identity files accumulate, %h expands in HostName', () => {
    const s = sshSettingsFor(config, 'web1');
    expect(s.hostName).toBe('web1.example.net');
    expect(s.port).toBe(2222);
    expect(s.user).toBe('fallback');
    expect(s.identityFiles).toEqual(['~/.ssh/web_key', '~/.ssh/second', '~/.ssh/id_ed25519']);
    expect(s.userKnownHostsFiles).toEqual(['/etc/kh', '/with space/kh']);
  });

  it('negated patterns exclude a host; key=value works', () => {
    expect(sshSettingsFor(config, 'app.internal').proxyJump).toBe('bastion.internal');
    expect(sshSettingsFor(config, 'bastion.internal').proxyJump).toBeUndefined();
  });

  it('a Host name matches whatever its case, in a comma list too; a negated name wins over a listed one', () => {
    const c = parseSshConfig('Host Web3,web4,db? !WEB4\n  Port 3\n', 'cfg');
    expect(['web3', 'WEB3', 'db1'].map((h) => sshSettingsFor(c, h).port)).toEqual([3, 3, 3]);
    expect(['web4', 'web5', 'db10'].map((h) => sshSettingsFor(c, h).port)).toEqual([undefined, undefined, undefined]);
  });

  it('Match host applies; other Match criteria never match and are reported', () => {
    const s = sshSettingsFor(config, 'db1');
    expect(s.hostName).toBe('10.0.0.5');
    expect(s.port).toBeUndefined();
    expect(s.warnings[0]).toMatch(/criterion "exec" is not supported/);
  });

  it('follows Include through the reader it is given', () => {
    const c = parseSshConfig('Include extra\nHost *\n  User z\n', 'main', (p) => (p === 'extra' ? [{ file: 'extra', text: 'Host x\n  Port 7\n' }] : []));
    expect(sshSettingsFor(c, 'x')).toMatchObject({ port: 7, user: 'z' });
    expect(sshSettingsFor(c, 'y').port).toBeUndefined();
  });

  it("what a host's blocks say but reconcile cannot honour comes back as that host's warnings, naming file:line", () => {
    const c = parseSshConfig(
      [
        'Include extra',
        'Host web1',
        '  ProxyCommand nc %h %p',
        'Match user ops host web*',
        '  Port 9',
        'Host db1',
        '  ProxyCommand none',
        'Host *',
        '  ProxyCommand ssh -W %h:%p gw',
      ].join('\n'),
      '/home/u/.ssh/config',
      undefined,
    );
    expect(sshSettingsFor(c, 'web1').warnings).toEqual([
      '/home/u/.ssh/config:1: Include not followed',
      '/home/u/.ssh/config:4: Match user ops host web*: criterion "user" is not supported; block ignored',
    ]);
    // ProxyCommand as written (the first value wins, tokens expanded later); `none` is kept as none.
    expect(sshSettingsFor(c, 'web1').proxyCommand).toBe('nc %h %p');
    expect(sshSettingsFor(c, 'db1').proxyCommand).toBe('none');
    expect(sshSettingsFor(c, 'other').proxyCommand).toBe('ssh -W %h:%p gw');
    expect(sshSettingsFor(c, 'db1').warnings).toEqual(['/home/u/.ssh/config:1: Include not followed', expect.stringMatching(/:4: Match user ops/)]);
  });

  it('expands ~ and tokens in paths', () => {
    expect(expandTokens('~/.ssh/%r@%h:%p', { h: 'w', p: 22, r: 'root', u: 'me', d: '/home/me' })).toBe('/home/me/.ssh/root@w:22');
    expect(expandTokens('relay %n %h %%h', { h: '10.0.0.1', p: 22, r: 'root', u: 'me', d: '/home/me', n: 'web1' })).toBe('relay web1 10.0.0.1 %h');
  });
});

/** Expected output of each bad inventory in test/fixtures/bad-inventories/, as `reconcile validate` prints it. */
export const EXPECTED: Record<string, string[]> = {
  'alias-bomb': [
    'alias-bomb/hosts.yaml:10:13: error: all.vars.a4: its YAML aliases expand to far more data than they are written with (an alias bomb): refused\n        a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n                ^',
    'alias-bomb/hosts.yaml:11:13: error: all.vars.a5: its YAML aliases expand to far more data than they are written with (an alias bomb): refused\n        a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n                ^',
    'alias-bomb/hosts.yaml:12:13: error: all.vars.a6: its YAML aliases expand to far more data than they are written with (an alias bomb): refused\n        a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\n                ^',
    'alias-bomb/hosts.yaml:13:28: error: all.vars.incus_trusted_clients: its YAML aliases expand to far more data than they are written with (an alias bomb): refused\n        incus_trusted_clients: *a6\n                               ^',
  ],
  'bad-connection': [
    'bad-connection/hosts.yaml:4:27: error: all.hosts.incus1.ansible_connection: must be one of "ssh", "smart", "paramiko", "local", not the string "winrm"\n          ansible_connection: winrm\n                              ^',
  ],
  'bad-host-pattern': [
    'bad-host-pattern/site.yaml:2:10: error: [0].hosts: bad host pattern "~incus(": invalid regular expression (/^(?:incus()/: Unterminated group)\n      hosts: "~incus(["\n             ^',
    'bad-host-pattern/site.yaml:6:28: error: [1].reconcile[1]: unknown kind "firewall" (known: incus_trust, qubes_prometheus_proxy, prometheus_scrape, prometheus_kubernetes)\n      reconcile: [incus_trust, firewall]\n                               ^',
  ],
  'bad-host-range': [
    'bad-host-range/hosts.yaml:3:5: error: all.hosts.incus[a:3]: bad host range [a:3] in "incus[a:3]": both ends must be numbers or single letters\n        incus[a:3]:\n        ^',
  ],
  'bad-port': [
    'bad-port/hosts.yaml:4:21: error: all.hosts.incus1.ansible_port: must be a port number (1-65535), not the number 70000\n          ansible_port: 70000\n                        ^',
  ],
  'bad-state': [
    'bad-state/hosts.yaml:8:16: error: all.vars.incus_trusted_clients[0].state: must be one of "present", "absent", not the string "revoked"\n            state: revoked\n                   ^',
  ],
  'clients-not-a-list': [
    'clients-not-a-list/hosts.yaml:6:7: error: all.vars.incus_trusted_clients: must be a list, not a mapping\n          name: admin\n          ^',
  ],
  'duplicate-key': ['duplicate-key/hosts.yaml:5:7: error: YAML syntax error: Map keys must be unique\n          ansible_host: 10.0.0.2\n          ^'],
  'duplicate-names': [
    'duplicate-names/hosts.yaml:10:15: error: all.vars.incus_trusted_clients[2].name: duplicate certificate name "admin" (also at duplicate-names/hosts.yaml:6:15); names must be unique on a host\n          - name: admin\n                  ^',
  ],
  'empty-name': ['empty-name/hosts.yaml:6:15: error: all.vars.incus_trusted_clients[0].name: must not be empty\n          - name: ""\n                  ^'],
  'expired-certificate': [
    'expired-certificate/hosts.yaml:7:27: error: all.vars.incus_trusted_clients[0].certificate_file: certificate in "certs/expired.crt" expired on 2020-01-31T00:00:00.000Z; Incus refuses expired certificates: issue a new one\n            certificate_file: certs/expired.crt\n                              ^',
  ],
  'group-loop': [
    'group-loop/hosts.yaml:5:9: error: all.children.a.children.b: group "b" cannot be a child of "a": a → b → a would be a loop\n            b:\n            ^',
  ],
  'group-not-mapping': [
    'group-not-mapping/hosts.yaml:3:12: error: all.children.incus: group "incus" must be a mapping with hosts, vars and children, not a list\n        incus: [incus1, incus2]\n               ^',
  ],
  'group-vars-not-mapping': [
    'group-vars-not-mapping/group_vars/incus.yaml:1:1: error: group_vars/incus.yaml must be a mapping of variable names to values, not a list\n    - incus_trust_prune\n    ^',
  ],
  'host-vars-wrong-type': [
    'host-vars-wrong-type/host_vars/incus1/trust.yaml:6:23: error: incus_trusted_clients[1].certificate_file: must be a string, not the number 42\n        certificate_file: 42\n                          ^',
  ],
  'hosts-as-list': [
    'hosts-as-list/hosts.yaml:5:9: error: all.children.incus.hosts: hosts must be a mapping of host names (each with its variables or nothing), not a list\n            - incus1\n            ^',
  ],
  jinja: [
    'jinja/hosts.yaml:8:27: error: all.vars.incus_trusted_clients[0].certificate_file: holds a Jinja template ({{ … }}); reconcile does not evaluate templates in the variables it reads: write the value itself\n            certificate_file: "{{ cert_dir }}/good.crt"\n                              ^',
    'jinja/hosts.yaml:10:27: error: all.vars.incus_trusted_clients[1].certificate_file: certificate file "certs/missing.crt" does not exist (paths are relative to the inventory folder jinja)\n            certificate_file: certs/missing.crt\n                              ^',
  ],
  'missing-certificate-file': [
    'missing-certificate-file/hosts.yaml:6:9: error: all.vars.incus_trusted_clients[0]: is missing the required key "certificate_file" (only an entry with state: absent may go without it)\n          - name: admin\n            ^',
  ],
  'missing-file': [
    'missing-file/hosts.yaml:7:27: error: all.vars.incus_trusted_clients[0].certificate_file: certificate file "certs/nowhere.crt" does not exist (paths are relative to the inventory folder missing-file)\n            certificate_file: certs/nowhere.crt\n                              ^',
  ],
  'missing-name': [
    'missing-name/hosts.yaml:6:9: error: all.vars.incus_trusted_clients[0]: is missing the required key "name"\n          - description: "who am I?"\n            ^',
  ],
  'multiple-problems': [
    'multiple-problems/hosts.yaml:4:24: error: all.vars.incus_trust_prune: must be a boolean (true or false), not the string "maybe"\n        incus_trust_prune: maybe\n                           ^',
    'multiple-problems/hosts.yaml:14:25: error: all.children.incus.hosts.incus1.ansible_port: must be a port number (1-65535), not the string "ssh"\n              ansible_port: "ssh"\n                            ^',
    'multiple-problems/hosts.yaml:8:15: error: all.vars.incus_trusted_clients[1].name: duplicate certificate name "admin" (also at multiple-problems/hosts.yaml:6:15); names must be unique on a host\n          - name: admin\n                  ^',
    'multiple-problems/hosts.yaml:9:27: error: all.vars.incus_trusted_clients[1].certificate_file: certificate file "certs/missing.crt" does not exist (paths are relative to the inventory folder multiple-problems)\n            certificate_file: certs/missing.crt\n                              ^',
    'multiple-problems/hosts.yaml:16:31: error: all.children.incus.hosts.incus2.ansible_connection: must be one of "ssh", "smart", "paramiko", "local", not the string "winrm"\n              ansible_connection: winrm\n                                  ^',
  ],
  'not-a-certificate': [
    'not-a-certificate/hosts.yaml:7:27: error: all.vars.incus_trusted_clients[0].certificate_file: certificate file "certs/README.md": no PEM certificate block (-----BEGIN CERTIFICATE-----) found\n            certificate_file: certs/README.md\n                              ^',
  ],
  'not-a-file': [
    'not-a-file/hosts.yaml:8:27: error: all.vars.incus_trusted_clients[0].certificate_file: certificate file "/dev/zero" is a device, not a file\n            certificate_file: /dev/zero\n                              ^',
    'not-a-file/hosts.yaml:10:27: error: all.vars.incus_trusted_clients[1].certificate_file: certificate file "certs/pipe" is a FIFO (named pipe), not a file\n            certificate_file: certs/pipe\n                              ^',
    'not-a-file/hosts.yaml:12:27: error: all.vars.incus_trusted_clients[2].certificate_file: certificate file "certs" is a folder, not a file\n            certificate_file: certs\n                              ^',
  ],
  'not-yet-valid': [
    'not-yet-valid/hosts.yaml:7:27: error: all.vars.incus_trusted_clients[0].certificate_file: certificate in "certs/future.crt" is not valid before 2099-12-31T23:59:00.000Z; Incus refuses it until then\n            certificate_file: certs/future.crt\n                              ^',
  ],
  'previous-until': [
    'previous-until/hosts.yaml:9:25: error: all.vars.incus_trusted_clients[0].previous_until: previous_until "2099-02-30" is not a date (YYYY-MM-DD, or an ISO 8601 time such as 2027-01-31T12:00:00Z)\n            previous_until: 2099-02-30\n                            ^',
    'previous-until/hosts.yaml:12:36: error: all.vars.incus_trusted_clients[1].previous_certificate_file: previous_certificate_file and previous_until go together: the date says until when the previous certificate stays trusted\n            previous_certificate_file: certs/good.crt\n                                       ^',
    'previous-until/hosts.yaml:15:36: error: all.vars.incus_trusted_clients[2].previous_certificate_file: certificate in "certs/expired.crt" expired on 2020-01-31T00:00:00.000Z; Incus refuses expired certificates: issue a new one\n            previous_certificate_file: certs/expired.crt\n                                       ^',
  ],
  'revoke-fingerprint': [
    'revoke-fingerprint/hosts.yaml:10:22: error: all.vars.incus_trusted_clients[1].fingerprint: must be a SHA-256 fingerprint: 12 to 64 hex digits, as \'incus config trust list\' shows it, not the string "0123abc"\n            fingerprint: 0123abc\n                         ^',
    "revoke-fingerprint/hosts.yaml:8:22: error: all.vars.incus_trusted_clients[0].fingerprint: fingerprint names a certificate to revoke and goes with state: absent; a present entry's certificate is its certificate_file\n            fingerprint: 0123456789ab\n                         ^",
    'revoke-fingerprint/hosts.yaml:14:22: error: all.vars.incus_trusted_clients[2].fingerprint: fingerprint 0123456789ab is not the one of "certs/expired.crt" (\'reconcile cert info certs/expired.crt\' shows it); give one of the two\n            fingerprint: 0123456789ab\n                         ^',
  ],
  'private-key': [
    'private-key/hosts.yaml:7:27: error: all.vars.incus_trusted_clients[0].certificate_file: certificate file "certs/admin.key" holds a private key; only the public certificate belongs in the inventory (keep the key out of it and out of Git)\n            certificate_file: certs/admin.key\n                              ^',
  ],
  'projects-not-a-list': [
    'projects-not-a-list/hosts.yaml:9:19: error: all.vars.incus_trusted_clients[0].projects: must be a list, not the string "production"\n            projects: production\n                      ^',
  ],
  'prune-not-boolean': [
    'prune-not-boolean/hosts.yaml:7:28: error: all.children.incus.vars.incus_trust_prune: must be a boolean (true or false), not the string "sometimes"\n            incus_trust_prune: "sometimes"\n                               ^',
  ],
  'root-not-mapping': ['root-not-mapping/hosts.yaml:1:1: error: the inventory must be a mapping of group names (usually `all:`), not a list\n    - all\n    ^'],
  'unknown-key': [
    'unknown-key/hosts.yaml:9:9: error: all.vars.incus_trusted_clients[0].projets: unknown key "projets" (allowed: name, type, description, certificate_file, fingerprint, previous_certificate_file, previous_until, restricted, projects, state)\n            projets: [production]\n            ^',
  ],
  'unknown-tag': [
    'unknown-tag/hosts.yaml:5:28: error: unknown YAML tag !include (Ansible knows !vault and !unsafe)\n        incus_trusted_clients: !include clients.yaml\n                               ^',
  ],
  vault: [
    'vault/hosts.yaml:6:9: error: all.vars.incus_trust_protected[0]: is an Ansible Vault value (!vault); reconcile cannot decrypt vault values: keep secrets out of the variables it reads\n          - !vault |\n            ^',
  ],
  'wrong-type-restricted': [
    'wrong-type-restricted/hosts.yaml:8:21: error: all.vars.incus_trusted_clients[0].restricted: must be a boolean (true or false), not the string "only production"\n            restricted: "only production"\n                        ^',
  ],
  'yaml-syntax': [
    'yaml-syntax/hosts.yaml:5:6: error: YAML syntax error: All mapping items must start at the same column\n         ansible_user: admin\n         ^',
  ],
};

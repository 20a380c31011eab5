/**
 * ssh2's client and key parser, imported from their own files (ssh.ts): ssh2's index also loads
 * its server and its HTTP agents, and with them Node's http, https and tls, which an SSH run
 * never uses. Typed as ssh2's own declarations type them.
 */
declare module 'ssh2/lib/client.js' {
  import { Client } from 'ssh2';
  export = Client;
}

declare module 'ssh2/lib/protocol/keyParser.js' {
  import { utils } from 'ssh2';
  const keyParser: { parseKey: typeof utils.parseKey };
  export = keyParser;
}

/**
 * The TCP proxy's and the WebSocket tunnels' tests again, with the bytes relayed through the
 * sockets' streams: the way Tandem relays where Node.js does not give the direct relay its
 * binding (lb/proxy/direct-relay.ts), and with TANDEM_DIRECT_RELAY=0. The worker processes
 * inherit the setting.
 */
process.env['TANDEM_DIRECT_RELAY'] = '0';
await import('./tcp-proxy.test.js');
await import('./protocol-upgrade.test.js');

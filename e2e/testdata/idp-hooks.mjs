// Preloaded into the demo IdP (examples/idp/server.js) by the e2e tests with
// `node --import`. It only observes: one JSON line per HTTP request
// ("e2e.http": method, path without the query, the names of the query's
// parameters, status) and per token
// revocation ("e2e.refresh_token.destroyed", "e2e.access_token.destroyed",
// "e2e.grant.revoked"), which examples/idp does not log itself. The tests
// read these lines from the IdP's output, e.g. to prove that the gateway
// revoked the refresh token at logout. Never logs tokens.
import { EventEmitter } from 'node:events';
import http from 'node:http';

function log(event, fields = {}) {
  console.log(JSON.stringify({ time: new Date().toISOString(), event, ...fields }));
}

const createServer = http.createServer;
http.createServer = function e2eCreateServer(...args) {
  const i = args.findIndex((a) => typeof a === 'function');
  if (i >= 0) {
    const handler = args[i];
    args[i] = function e2eHandler(req, res) {
      const start = process.hrtime.bigint();
      const [path, query = ''] = String(req.url || '').split('?');
      // The names of the query's parameters, never their values.
      const params = [...new URLSearchParams(query).keys()];
      res.on('finish', () => {
        log('e2e.http', {
          method: req.method,
          path,
          params,
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - start) / 1e6,
        });
      });
      return handler.call(this, req, res);
    };
  }
  return createServer.apply(this, args);
};

const emit = EventEmitter.prototype.emit;
EventEmitter.prototype.emit = function e2eEmit(name, ...args) {
  switch (name) {
    case 'refresh_token.destroyed':
    case 'access_token.destroyed': {
      const token = args[0] || {};
      log(`e2e.${name}`, { client_id: token.clientId, grant_id: token.grantId, sub: token.accountId });
      break;
    }
    case 'grant.revoked':
      log('e2e.grant.revoked', { client_id: args[0]?.oidc?.client?.clientId, grant_id: args[1] });
      break;
    default:
  }
  return emit.call(this, name, ...args);
};

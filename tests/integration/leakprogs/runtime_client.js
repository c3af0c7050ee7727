// A node program: one healthy connection held to the end (HOLD_PORT keeps it open), one used
// and closed (CLOSE_PORT closes it). With "plant", one more connection whose peer closed and
// that the program never ends nor destroys (allowHalfOpen): the one leak.
// usage: node runtime_client.js HOLD_PORT CLOSE_PORT clean|plant   prints the planted fd (or -1), "ok"
const net = require('net');
const [hold, close, mode] = process.argv.slice(2);
const pool = [net.connect(+hold, '127.0.0.1')];
const used = net.connect(+close, '127.0.0.1');
used.on('end', () => used.destroy());
used.resume();
let leaked = null;
if (mode === 'plant') {
  leaked = net.connect({ port: +close, host: '127.0.0.1', allowHalfOpen: true });
  leaked.resume();
  pool.push(leaked);
}
let ended = 0;
const want = leaked ? 2 : 1;
const done = () => {
  if (++ended < want) return;
  console.log(leaked ? leaked._handle.fd : -1);
  console.log('ok');
  process.exit(0);   // exit() with the pool still open
};
used.on('close', done);
if (leaked) leaked.on('end', done);
